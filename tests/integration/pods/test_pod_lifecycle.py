"""Pod sandboxes end to end: real containerd, runc, pause image and CNI."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CriServer
from tests.pod_rig import PodRig
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.rig.network import TestNetwork


def pod_config(name: str | None = None, **kwargs: object) -> api_pb2.PodSandboxConfig:
    name = name or f"pod-{uuid.uuid4().hex[:8]}"
    cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="testns", uid=uuid.uuid4().hex, attempt=0),
        hostname=name, log_directory=f"/tmp/{name}", labels={"app": name, "tier": "test"},
        annotations={"note": "kept exactly", "empty": ""}, **kwargs)  # type: ignore[arg-type]
    return cfg


class Pods:
    """Runs pods and removes whatever a test left behind."""

    def __init__(self, rig: PodRig) -> None:
        self.rig = rig
        self.rt = rig.server.runtime()
        self.ids: list[str] = []

    def run(self, cfg: api_pb2.PodSandboxConfig, handler: str = "") -> str:
        pod_id: str = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                                            timeout=60).pod_sandbox_id
        self.ids.append(pod_id)
        return pod_id

    def status(self, pod_id: str, verbose: bool = False) -> api_pb2.PodSandboxStatusResponse:
        return self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose),
                                        timeout=10)

    def cleanup(self) -> None:
        for pod_id in self.ids:
            self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
            self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


@pytest.fixture
def pods(pod_rig: PodRig) -> Iterator[Pods]:
    p = Pods(pod_rig)
    yield p
    p.cleanup()


def in_netns(path: str, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--net={path}", *argv], check=True, capture_output=True,
                          text=True).stdout


def test_run_status_stop_remove(pods: Pods, pod_rig: PodRig) -> None:
    cfg = pod_config()
    pod_id = pods.run(cfg)
    assert len(pod_id) == 64
    st = pods.status(pod_id, verbose=True)
    assert st.status.state == api_pb2.SANDBOX_READY
    assert st.status.metadata == cfg.metadata
    assert dict(st.status.labels) == dict(cfg.labels)
    assert dict(st.status.annotations) == dict(cfg.annotations)
    assert st.status.network.ip.startswith(pod_rig.network.subnet.rsplit(".", 2)[0])
    assert st.status.created_at > 0
    info = json.loads(st.info["info"])
    netns_path = info["netNamespacePath"]
    assert os.path.exists(netns_path)
    assert info["pid"] > 0
    # Inside the pod's network namespace: eth0 carries the reported IP, lo is up.
    addrs = in_netns(netns_path, "ip", "-o", "addr")
    assert f"inet {st.status.network.ip}/" in addrs
    assert "lo " in addrs or "lo\\" in addrs
    assert pod_rig.network.allocations() == [st.status.network.ip]
    # The pause process runs in that namespace with the pod's hostname.
    pid = info["pid"]
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(netns_path).st_ino
    host = subprocess.run(["nsenter", "-t", str(pid), "--uts", "hostname"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert host == cfg.hostname

    listed = pods.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items
    assert pod_id in [p.id for p in listed]

    pods.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert pods.status(pod_id).status.state == api_pb2.SANDBOX_NOTREADY
    assert pod_rig.network.allocations() == []
    assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    pods.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    with pytest.raises(grpc.RpcError) as info_err:
        pods.status(pod_id)
    assert info_err.value.code() == grpc.StatusCode.NOT_FOUND
    assert not os.path.exists(netns_path)


def test_network_failure_while_pause_is_created_leaves_nothing(pods: Pods, pod_rig: PodRig,
                                                               containerd: PrivateContainerd) -> None:
    """CNI runs alongside the pause container's creation; its failure undoes both sides."""
    conf_dir = pod_rig.server.cni_conf_dir
    good = json.loads(pod_rig.network.conf_path.read_text())
    # The real bridge ADD (an IP allocated) runs first, then a plugin that is missing fails the chain.
    failing = dict(good, plugins=[*good["plugins"], {"type": "cri-runtime-test-missing-plugin"}])
    failing_path = conf_dir / "00-failing.conflist"

    def ours(kind: str) -> list[str]:
        return sorted(line.split()[0] for line in containerd.ctr(kind, "ls").stdout.splitlines()[1:])

    records, snapshots = ours("containers"), ours("snapshots")
    pins_dir = pod_rig.server.dir / "state" / "netns"
    pins = sorted(os.listdir(pins_dir)) if pins_dir.exists() else []
    failing_path.write_text(json.dumps(failing))
    try:
        with pytest.raises(grpc.RpcError) as err:
            pods.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod_config()), timeout=60)
    finally:
        failing_path.unlink()
    assert "cri-runtime-test-missing-plugin" in (err.value.details() or "")
    assert pod_rig.network.allocations() == []
    assert ours("containers") == records
    assert ours("snapshots") == snapshots
    assert (sorted(os.listdir(pins_dir)) if pins_dir.exists() else []) == pins
    assert pods.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items == []


def test_unobtainable_pause_image_leaves_no_pod_directories(containerd: PrivateContainerd,
                                                           test_images: TestImages) -> None:
    """The pod's shm and files are made while the pause image is looked up; its failure removes them."""
    missing = test_images.pause.ref.rsplit(":", 1)[0] + ":no-such-tag"
    server = CriServer(containerd.address, hosts_dir=str(containerd.hosts_dir),
                       runc_root=str(containerd.runc_root), sandbox_image=missing)
    network = TestNetwork(server.cni_conf_dir, index=2)
    try:
        server.start()
        state, root = server.dir / "state" / "sandboxes", server.dir / "root" / "sandboxes"
        before = {d: sorted(os.listdir(d)) if d.exists() else [] for d in (state, root)}
        with pytest.raises(grpc.RpcError) as err:
            server.runtime().RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod_config()), timeout=60)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
        assert "no-such-tag" in (err.value.details() or "")
        assert {d: sorted(os.listdir(d)) if d.exists() else [] for d in (state, root)} == before
        mount_points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        assert [m for m in mount_points if m.startswith(f"{state}/")] == []  # the pod's shm
        assert network.allocations() == []
    finally:
        server.cleanup()
        network.close()


def test_list_filters_and_entries_follow_the_state(pods: Pods) -> None:
    """ListPodSandbox by ID prefix, state and labels; a stopped pod's entry says NOTREADY."""
    first, second = pod_config(), pod_config()
    a, b = pods.run(first), pods.run(second)

    def listed(**flt: object) -> list[api_pb2.PodSandbox]:
        req = api_pb2.ListPodSandboxRequest(filter=api_pb2.PodSandboxFilter(**flt))  # type: ignore[arg-type]
        return [p for p in pods.rt.ListPodSandbox(req, timeout=10).items if p.id in (a, b)]

    everything = [p for p in pods.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items
                  if p.id in (a, b)]
    assert [p.id for p in everything] == [a, b]  # oldest first
    entry = everything[0]
    assert entry.metadata == first.metadata and dict(entry.labels) == dict(first.labels)
    assert dict(entry.annotations) == dict(first.annotations) and entry.state == api_pb2.SANDBOX_READY
    assert [p.id for p in listed(id=a[:12])] == [a]
    assert [p.id for p in listed(label_selector={"app": second.metadata.name})] == [b]
    assert listed(label_selector={"app": second.metadata.name, "tier": "other"}) == []

    pods.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=a), timeout=60)
    ready = api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_READY)
    not_ready = api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_NOTREADY)
    assert [p.id for p in listed(state=ready)] == [b]
    stopped = listed(state=not_ready)
    assert [p.id for p in stopped] == [a] and stopped[0].state == api_pb2.SANDBOX_NOTREADY
