"""Containers end to end: create, start, logs, exec, stop, remove on real containerd/runc."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from tests.pod_rig import PodRig
from tests.rig.containerd import PrivateContainerd


class Rig:
    def __init__(self, pod_rig: PodRig, tmp_path: Path) -> None:
        self.rt = pod_rig.server.runtime()
        self.images = pod_rig.server.images()
        self.pod_rig = pod_rig
        self.log_dir = tmp_path / "logs"
        name = f"ctr-{uuid.uuid4().hex[:8]}"
        self.pod_config = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace="testns", uid=uuid.uuid4().hex),
            hostname=name, log_directory=str(self.log_dir))
        self.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=pod_rig.images.busybox.ref)),
                              timeout=60)
        self.pod_id = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=self.pod_config),
                                            timeout=60).pod_sandbox_id

    def create(self, cmd: list[str], name: str = "c", **kwargs: object) -> str:
        cfg = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name),
            image=api_pb2.ImageSpec(image=self.pod_rig.images.busybox.ref),
            command=cmd, log_path=f"{name}.log", **kwargs)  # type: ignore[arg-type]
        return str(self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod_id, config=cfg, sandbox_config=self.pod_config), timeout=60).container_id)

    def status(self, cid: str) -> api_pb2.ContainerStatus:
        return self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid), timeout=10).status

    def wait_state(self, cid: str, state: int, timeout: float = 15) -> api_pb2.ContainerStatus:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(cid)
            if st.state == state:
                return st
            assert time.monotonic() < deadline, f"container stayed in {st.state}"
            time.sleep(0.05)

    def close(self) -> None:
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=self.pod_id), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=self.pod_id), timeout=60)


@pytest.fixture
def rig(pod_rig: PodRig, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(pod_rig, tmp_path)
    yield r
    r.close()


def log_lines(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for line in path.read_text().splitlines():
        _ts, stream, tag, msg = line.split(" ", 3)
        out.append((stream, tag, msg))
    return out


def test_run_to_completion_with_logs(rig: Rig) -> None:
    cid = rig.create(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert rig.status(cid).state == api_pb2.CONTAINER_CREATED
    rig.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
    st = rig.wait_state(cid, api_pb2.CONTAINER_EXITED)
    assert st.exit_code == 3
    assert st.reason == "Error"
    assert st.started_at > 0 and st.finished_at >= st.started_at
    assert st.image_id == rig.pod_rig.images.busybox.image_id
    assert st.log_path == str(rig.log_dir / "c.log")
    deadline = time.monotonic() + 5
    while len(log_lines(Path(st.log_path))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(log_lines(Path(st.log_path))) == [("stderr", "F", "err"), ("stdout", "F", "out")]
    rig.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)
    with pytest.raises(grpc.RpcError) as err:
        rig.status(cid)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_long_running_exec_stop(rig: Rig) -> None:
    cid = rig.create(["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"], name="sleeper")
    rig.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
    assert rig.status(cid).state == api_pb2.CONTAINER_RUNNING
    resp = rig.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo hi; id -u; exit 7"],
                                                   timeout=10), timeout=30)
    assert resp.exit_code == 7
    assert resp.stdout == b"hi\n0\n"
    with pytest.raises(grpc.RpcError) as err:
        rig.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sleep", "30"], timeout=1), timeout=30)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    listed = rig.rt.ListContainers(api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(
        pod_sandbox_id=rig.pod_id)), timeout=10).containers
    assert [c.id for c in listed] == [cid]
    started = time.monotonic()
    rig.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=20), timeout=60)
    assert time.monotonic() - started < 10
    st = rig.status(cid)
    assert st.state == api_pb2.CONTAINER_EXITED
    assert st.exit_code == 0 and st.reason == "Completed"
    # idempotent
    rig.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=60)
    rig.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)
    rig.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)


def test_image_volume_read_only_with_sub_path(rig: Rig) -> None:
    img = rig.pod_rig.images.layers
    rig.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=img.ref)), timeout=60)
    mounts = [api_pb2.Mount(container_path="/vol", readonly=True, image=api_pb2.ImageSpec(image=img.ref)),
              api_pb2.Mount(container_path="/sub", readonly=True, image=api_pb2.ImageSpec(image=img.ref),
                            image_sub_path="bin")]
    cid = rig.create(["sleep", "600"], name="iv", mounts=mounts)
    rig.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
    out = rig.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["cat", "/vol/layer2"], timeout=10),
                          timeout=30)
    assert out.exit_code == 0 and out.stdout == b"two\n"
    assert rig.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["/sub/busybox", "true"], timeout=10),
                           timeout=30).exit_code == 0
    write = rig.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["touch", "/vol/x"], timeout=10),
                            timeout=30)
    assert write.exit_code != 0
    st = rig.status(cid)
    refs = {m.container_path: m.image.image_ref for m in st.mounts}
    assert refs["/vol"] == img.image_id
    rig.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)

    bad = [api_pb2.Mount(container_path="/vol", readonly=False, image=api_pb2.ImageSpec(image=img.ref))]
    with pytest.raises(grpc.RpcError) as err:
        rig.create(["true"], name="iv-rw", mounts=bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    missing = [api_pb2.Mount(container_path="/vol", readonly=True, image=api_pb2.ImageSpec(image=img.ref),
                             image_sub_path="no/such/dir")]
    with pytest.raises(grpc.RpcError) as err:
        rig.create(["true"], name="iv-missing", mounts=missing)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_image_user_is_resolved_from_passwd(rig: Rig) -> None:
    img = rig.pod_rig.images.busybox_user
    rig.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=img.ref)), timeout=60)
    for name in ("u1", "u2"):  # the second create reads the cached passwd/group
        cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=name),
                                      image=api_pb2.ImageSpec(image=img.ref), command=["sleep", "600"])
        cid = rig.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=rig.pod_id, config=cfg, sandbox_config=rig.pod_config), timeout=60).container_id
        rig.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        out = rig.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["id"], timeout=10), timeout=30)
        assert out.stdout.startswith(b"uid=33(www) gid=33(www)"), out.stdout
        st = rig.status(cid)
        assert (st.user.linux.uid, st.user.linux.gid) == (33, 33)


def _ours(containerd: PrivateContainerd, kind: str) -> list[str]:
    """IDs/keys/names in containerd's k8s.io namespace (records, snapshots, leases)."""
    return sorted(line.split()[0] for line in containerd.ctr(kind, "ls").stdout.splitlines()[1:])


def _state_entries(rig: Rig, timeout: float = 5.0) -> list[str]:
    """The server's container state dir, once background removals are done."""
    base = rig.pod_rig.server.dir / "state" / "containers"
    deadline = time.monotonic() + timeout
    while True:
        entries = sorted(os.listdir(base)) if base.exists() else []
        if not any(e.startswith(".removed-") for e in entries) or time.monotonic() > deadline:
            return entries


def test_remove_leaves_no_record_snapshot_lease_or_file(rig: Rig, containerd: PrivateContainerd) -> None:
    """Both a run container and one never started: record, snapshot, relay and state dir all go."""
    before = {kind: _ours(containerd, kind) for kind in ("containers", "snapshots", "leases")}
    entries = _state_entries(rig)
    ran = rig.create(["sh", "-c", "echo done"], name="ran")
    idle = rig.create(["true"], name="idle")
    assert len(_ours(containerd, "containers")) == len(before["containers"]) + 2
    assert set(_ours(containerd, "snapshots")) >= set(before["snapshots"]) | {ran, idle}
    assert _ours(containerd, "leases") == before["leases"]  # snapshots are held by the records, not leases
    rig.rt.StartContainer(api_pb2.StartContainerRequest(container_id=ran), timeout=30)
    rig.wait_state(ran, api_pb2.CONTAINER_EXITED)
    for cid in (ran, idle):
        rig.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)
    assert {kind: _ours(containerd, kind) for kind in before} == before
    assert _state_entries(rig) == entries
    assert (rig.log_dir / "ran.log").read_text().endswith(" stdout F done\n")


def test_failed_create_leaves_nothing(rig: Rig, containerd: PrivateContainerd) -> None:
    """A create failing after its state dir was made (missing image) undoes everything."""
    before = {kind: _ours(containerd, kind) for kind in ("containers", "snapshots", "leases")}
    entries = _state_entries(rig)
    cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="noimage"),
                                  image=api_pb2.ImageSpec(image="localhost:1/no/such:image"), command=["true"])
    with pytest.raises(grpc.RpcError) as err:
        rig.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=rig.pod_id, config=cfg, sandbox_config=rig.pod_config), timeout=60)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert {kind: _ours(containerd, kind) for kind in before} == before
    assert _state_entries(rig) == entries
    # the name is free again
    cid = rig.create(["true"], name="noimage")
    rig.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)


def test_list_filters_and_entries_follow_the_state(rig: Rig) -> None:
    """ListContainers by ID prefix, state, pod and labels; an entry follows its container's state."""
    first = rig.create(["sleep", "600"], name="listed-a", labels={"role": "a"})
    second = rig.create(["sleep", "600"], name="listed-b", labels={"role": "b"})

    def listed(**flt: object) -> list[api_pb2.Container]:
        req = api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(**flt))  # type: ignore[arg-type]
        return [c for c in rig.rt.ListContainers(req, timeout=10).containers if c.id in (first, second)]

    every = [c for c in rig.rt.ListContainers(api_pb2.ListContainersRequest(), timeout=10).containers
             if c.id in (first, second)]
    assert [c.id for c in every] == [first, second]  # oldest first
    assert every[0].metadata.name == "listed-a" and every[0].labels["role"] == "a"
    assert every[0].image_id == rig.pod_rig.images.busybox.image_id
    assert {c.state for c in every} == {api_pb2.CONTAINER_CREATED}
    assert [c.id for c in listed(id=second[:10])] == [second]
    assert [c.id for c in listed(label_selector={"role": "b"})] == [second]
    assert [c.id for c in listed(pod_sandbox_id=rig.pod_id[:8], label_selector={"role": "a"})] == [first]
    assert listed(pod_sandbox_id="0" * 64) == []

    rig.rt.StartContainer(api_pb2.StartContainerRequest(container_id=first), timeout=30)
    running = api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING)
    created = api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_CREATED)
    now_running = listed(state=running)
    assert [c.id for c in now_running] == [first] and now_running[0].state == api_pb2.CONTAINER_RUNNING
    assert [c.id for c in listed(state=created)] == [second]
    for cid in (first, second):
        rig.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)
    assert listed() == []


def test_exec_sync_output_is_truncated_to_fit_one_response(rig: Rig) -> None:
    """20 MB on stdout plus 1 MB on stderr: truncated output within kubelet's 16 MiB, not an error."""
    cid = rig.create(["sleep", "600"], name="chatty")
    rig.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
    resp = rig.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, timeout=60, cmd=[
        "sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' e >&2; head -c 20000000 /dev/zero | tr '\\0' o; exit 3"]),
        timeout=90)
    assert resp.exit_code == 3
    assert len(resp.stdout) + len(resp.stderr) == 16 * 1024 * 1024 - 4096
    assert set(resp.stdout) == {ord("o")} and set(resp.stderr) <= {ord("e")}
    assert resp.ByteSize() < 16 * 1024 * 1024
    rig.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=60)
