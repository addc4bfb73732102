"""SandboxManager's own logic against a fake containerd adapter (pure logic; tests/integration has the real one).

A host-network, host-IPC pod needs no netns, CNI or shm mount, so RunPodSandbox
runs here with only the fake: each containerd step that fails undoes every
earlier one (record, snapshot, status dir, pod files, name); a pod is listed
only once RunPodSandbox succeeded; Stop and Remove are idempotent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import config, errors
from cri_runtime.network.manager import PodNetworkManager
from cri_runtime.node.facts import NodeFacts
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.sandbox.model import NOTREADY, READY
from tests.unit.fake_containerd import CREATE, CREATE_TASK, PREPARE, START_TASK, FakeContainerd


class FakePauseImage:
    id = "sha256:" + "ab" * 32
    names = ["registry.test/pause:3.9"]
    record_name = "registry.test/pause:3.9"
    config: dict[str, Any] = {"config": {"Entrypoint": ["/pause"]}, "rootfs": {}}
    chain_id = "sha256:" + "cd" * 32


async def _ensure_image(ref: str) -> FakePauseImage:
    return FakePauseImage()


@pytest.fixture
def parts(tmp_path: Path) -> tuple[SandboxManager, FakeContainerd, list[tuple[str, str]]]:
    cfg = config.parse(f'[server]\nroot_dir = "{tmp_path}/root"\nstate_dir = "{tmp_path}/state"\n'
                       f'[network]\ncni_conf_dir = "{tmp_path}/net.d"\n', "f.toml")
    ctd = FakeContainerd()
    events: list[tuple[str, str]] = []

    async def on_event(kind: str, sandbox: Any) -> None:
        events.append((kind, sandbox.id))

    network = PodNetworkManager(cfg.network, str(tmp_path / "cni-cache"))
    manager = SandboxManager(cfg, ctd, network, _ensure_image, NodeFacts(cfg),  # type: ignore[arg-type]
                             on_event=on_event)
    return manager, ctd, events


def _request(name: str = "p") -> api_pb2.RunPodSandboxRequest:
    host = api_pb2.NamespaceOption(network=api_pb2.NODE, ipc=api_pb2.NODE, pid=api_pb2.POD)
    return api_pb2.RunPodSandboxRequest(config=api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="ns", uid="uid-" + name),
        linux=api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=host))))


def _leftovers(manager: SandboxManager) -> list[str]:
    return sorted(p.name for d in (manager.root, manager.state) if d.is_dir() for p in d.iterdir())


async def test_a_pod_is_listed_once_ready(parts: tuple[SandboxManager, FakeContainerd, list[tuple[str, str]]]) -> None:
    manager, ctd, events = parts
    pod_id = await manager.run(_request())
    assert [(p.id, p.state) for p in manager.list(None)] == [(pod_id, api_pb2.SANDBOX_READY)]
    assert manager.get(pod_id).status.state == READY and manager.get(pod_id).status.pid == 4242
    assert pod_id in ctd.records and pod_id in ctd.snapshot_keys and pod_id in ctd.started
    assert events == [("created", pod_id), ("started", pod_id)]


@pytest.mark.parametrize("failing", [CREATE, PREPARE, CREATE_TASK, START_TASK])
async def test_a_failing_step_undoes_every_earlier_one(
        parts: tuple[SandboxManager, FakeContainerd, list[tuple[str, str]]], failing: str) -> None:
    manager, ctd, events = parts
    ctd.fail = failing
    with pytest.raises(errors.Unavailable, match="injected failure"):
        await manager.run(_request())
    assert manager.list(None) == [] and events == []
    assert ctd.records == {} and ctd.snapshot_keys == set()
    assert _leftovers(manager) == []  # pod files and status dir
    ctd.fail = ""
    pod_id = await manager.run(_request())  # the name was released
    assert [p.id for p in manager.list(None)] == [pod_id]


async def test_stop_and_remove_are_idempotent(
        parts: tuple[SandboxManager, FakeContainerd, list[tuple[str, str]]]) -> None:
    manager, ctd, events = parts
    stopped: list[str] = []

    async def stop_containers(pod_id: str) -> None:
        stopped.append(pod_id)

    manager.stop_containers = stop_containers
    pod_id = await manager.run(_request())
    await manager.stop(pod_id)
    await manager.stop(pod_id)
    assert manager.get(pod_id).status.state == NOTREADY
    assert stopped == [pod_id, pod_id]  # the pod's containers are asked to stop each time
    assert events.count(("stopped", pod_id)) == 1
    await manager.remove(pod_id)
    await manager.remove(pod_id)
    await manager.stop(pod_id)  # unknown: success
    assert manager.list(None) == [] and ctd.records == {} and ctd.snapshot_keys == set()
    assert _leftovers(manager) == []
    assert events[-1] == ("deleted", pod_id)
