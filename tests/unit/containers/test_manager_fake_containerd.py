"""ContainerManager's own logic against a fake containerd adapter (pure logic; tests/integration has the real one).

What is checked: a failing step undoes what was made and leaves nothing
listed or reserved; a container is visible only once every step succeeded;
RemoveContainer is idempotent. The fake answers the few containerd calls
these paths make and can be told to fail one of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import config, errors
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.containers.model import CREATED, EXITED, RUNNING
from cri_runtime.node.facts import NodeFacts
from cri_runtime.oci.user import ImageAccounts
from cri_runtime.sandbox.model import NOTREADY, READY, Sandbox, SandboxMetadata, SandboxStatus
from cri_runtime.store.index import IdIndex
from tests.unit.fake_containerd import CREATE, PREPARE, FakeContainerd


@dataclass
class FakeImage:
    id: str = "sha256:" + "ab" * 32
    names: list[str] = field(default_factory=lambda: ["registry.test/busybox:1"])
    config: dict[str, Any] = field(default_factory=lambda: {"config": {"Cmd": ["sh"]}, "rootfs": {}})
    chain_id: str = "sha256:" + "cd" * 32
    repo_tags: list[str] = field(default_factory=lambda: ["registry.test/busybox:1"])
    repo_digests: list[str] = field(default_factory=list)
    record_name: str = "registry.test/busybox:1"


class FakeImages:
    async def resolve(self, ref: str) -> FakeImage:
        return FakeImage()


class FakeSandboxes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.index: IdIndex[Sandbox] = IdIndex("pod sandbox")
        self.index.add(sandbox.id, sandbox)

    def get(self, id_or_prefix: str) -> Sandbox:
        return self.index.get(id_or_prefix)


def _sandbox(tmp_path: Path) -> Sandbox:
    pod = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(name="p", namespace="ns", uid="u"),
                                   log_directory=str(tmp_path / "logs"))
    md = SandboxMetadata(id="f" * 64, name="p_ns_u_0", config=pod.SerializeToString(), runtime_handler="runc",
                         created_at=time.time_ns(), netns_path="", pod_dir=str(tmp_path / "pod"), shm_path="",
                         hostname_path="", hosts_path="", resolv_conf_path="", cgroup_parent="", image="")
    return Sandbox(md, SandboxStatus(state=READY, pid=1), tmp_path / "pod-status.json")


@pytest.fixture
def parts(tmp_path: Path) -> tuple[ContainerManager, FakeContainerd]:
    cfg = config.parse(f'[server]\nroot_dir = "{tmp_path}/root"\nstate_dir = "{tmp_path}/state"\n', "f.toml")
    ctd = FakeContainerd()
    events: list[tuple[str, str]] = []

    async def on_event(kind: str, container: Any) -> None:
        events.append((kind, container.id))

    manager = ContainerManager(cfg, ctd, FakeSandboxes(_sandbox(tmp_path)), FakeImages(),  # type: ignore[arg-type]
                               NodeFacts(cfg), on_event=on_event)
    manager._accounts[FakeImage().id] = ImageAccounts(None, None)  # the image's users were read before
    manager.events = events  # type: ignore[attr-defined]
    return manager, ctd


def _request(name: str = "c") -> api_pb2.CreateContainerRequest:
    return api_pb2.CreateContainerRequest(
        pod_sandbox_id="f" * 64,
        config=api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=name),
                                       image=api_pb2.ImageSpec(image="registry.test/busybox:1")))


async def test_create_is_visible_only_after_every_step(parts: tuple[ContainerManager, FakeContainerd]) -> None:
    manager, ctd = parts
    container_id = await manager.create(_request())
    assert [c.id for c in manager.list(None)] == [container_id]
    assert container_id in ctd.records and container_id in ctd.snapshot_keys
    assert manager.get(container_id).state == CREATED
    assert manager.events == [("created", container_id)]  # type: ignore[attr-defined]


@pytest.mark.parametrize("failing", [CREATE, PREPARE])
async def test_a_failing_step_undoes_everything(parts: tuple[ContainerManager, FakeContainerd], failing: str) -> None:
    manager, ctd = parts
    ctd.fail = failing
    with pytest.raises(errors.Unavailable, match="injected failure"):
        await manager.create(_request())
    assert manager.list(None) == []
    assert ctd.records == {} and ctd.snapshot_keys == set()
    assert list(manager.state.iterdir()) == []  # the state dir was removed
    assert manager.events == []  # type: ignore[attr-defined]
    ctd.fail = ""
    # the name was released: the same name can be created now
    container_id = await manager.create(_request())
    assert [c.id for c in manager.list(None)] == [container_id] and list(ctd.records) == [container_id]


async def test_remove_is_idempotent(parts: tuple[ContainerManager, FakeContainerd]) -> None:
    manager, ctd = parts
    container_id = await manager.create(_request())
    await manager.remove(container_id)
    assert manager.list(None) == [] and ctd.records == {} and ctd.snapshot_keys == set()
    await manager.remove(container_id)  # unknown: success
    await manager.remove("0" * 64)
    assert manager.events == [("created", container_id), ("deleted", container_id)]  # type: ignore[attr-defined]
    await manager.close()


async def test_create_in_a_pod_that_is_not_ready_makes_nothing(
        parts: tuple[ContainerManager, FakeContainerd]) -> None:
    manager, ctd = parts
    manager.sandboxes.get("f" * 64).status.state = NOTREADY
    with pytest.raises(errors.FailedPrecondition, match="not ready"):
        await manager.create(_request())
    assert ctd.records == {} and manager.list(None) == []


async def test_a_task_gone_unheard_is_caught_up_as_an_exit(parts: tuple[ContainerManager, FakeContainerd]) -> None:
    """After an event gap, a running container whose task containerd no longer has is EXITED, code unknown (255)."""
    manager, _ = parts
    container_id = await manager.create(_request())
    container = manager.get(container_id)
    container.status.state = RUNNING  # as if started; the fake has no task for it
    await manager.resync()
    assert container.state == EXITED and container.status.exit_code == 255
    assert manager.events == [("created", container_id), ("stopped", container_id)]  # type: ignore[attr-defined]
    await manager.resync()  # once only
    assert manager.events[-1] == ("stopped", container_id)  # type: ignore[attr-defined]
    assert len(manager.events) == 2  # type: ignore[attr-defined]
