"""Churn: 50 pods run and removed, the server killed with -9 halfway; nothing leaks."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from cri_protos.runtime.v1 import api_pb2
from tests.pod_rig import PodRig
from tests.rig.containerd import PrivateContainerd

PODS = 50
PARALLEL = 5


def _config(i: int) -> api_pb2.PodSandboxConfig:
    return api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
        name=f"churn-{i}", namespace="churn", uid=uuid.uuid4().hex), hostname=f"churn-{i}")


def _count_netns(server_dir: Path) -> int:
    d = server_dir / "state" / "netns"
    return len(list(d.iterdir())) if d.is_dir() else 0


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path) + "/")]


def _active_snapshots(containerd: PrivateContainerd) -> list[str]:
    """Writable snapshots (rootfs of pods/containers); image layers are Committed."""
    lines = containerd.ctr("snapshots", "ls").stdout.splitlines()[1:]
    return sorted(line.split()[0] for line in lines if line.split()[-1] == "Active")


def test_churn_with_kill9(own_pod_rig: PodRig, containerd: PrivateContainerd) -> None:
    server = own_pod_rig.server
    ctr_before = containerd.ctr("containers", "ls", "-q").stdout.split()
    snaps_before = _active_snapshots(containerd)

    def run(i: int) -> str:
        return str(server.runtime().RunPodSandbox(api_pb2.RunPodSandboxRequest(config=_config(i)),
                                                  timeout=120).pod_sandbox_id)

    def remove(pod_id: str) -> None:
        rt = server.runtime()
        rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)

    with ThreadPoolExecutor(PARALLEL) as pool:
        first = list(pool.map(run, range(PODS // 2)))
        # Kill the server while it is busy starting more pods.
        pending = [pool.submit(run, i) for i in range(PODS // 2, PODS)]
        while sum(f.done() for f in pending) < 3:
            pass
        server.kill(signal.SIGKILL)
        second = []
        for f in pending:
            with contextlib.suppress(grpc.RpcError):  # cut off by the kill
                second.append(f.result())
        server.start()
        listed = {p.id for p in server.runtime().ListPodSandbox(api_pb2.ListPodSandboxRequest(),
                                                                 timeout=10).items}
        assert set(first) <= listed
        assert set(second) <= listed
        list(pool.map(remove, sorted(listed)))

    assert server.runtime().ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items == []
    assert own_pod_rig.network.allocations() == []
    assert _count_netns(server.dir) == 0
    assert [m for m in _mounts_under(server.dir) if not m.endswith("/netns")] == []
    assert containerd.ctr("containers", "ls", "-q").stdout.split() == ctr_before
    assert _active_snapshots(containerd) == snaps_before
    assert not [p for p in Path(server.dir, "root", "sandboxes").iterdir()] if \
        Path(server.dir, "root", "sandboxes").exists() else True
    assert os.path.exists(server.socket)
