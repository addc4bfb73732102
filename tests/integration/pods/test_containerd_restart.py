"""Restarting containerd stops no container; we reconnect and carry on with it."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CriServer
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.rig.network import TestNetwork
from tests.rig.registry import LocalRegistry


def _wait(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_containers_survive_a_containerd_restart(registry: LocalRegistry, test_images: TestImages,
                                                 tmp_path: Path) -> None:
    ctrd = PrivateContainerd()
    ctrd.add_registry_host(registry.host, f"http://{registry.host}")
    ctrd.start()
    server = CriServer(ctrd.address, hosts_dir=str(ctrd.hosts_dir), runc_root=str(ctrd.runc_root),
                       sandbox_image=test_images.pause.ref)
    network = TestNetwork(server.cni_conf_dir, index=2)
    try:
        server.start()
        rt = server.runtime()
        server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=test_images.busybox.ref)),
                                  timeout=60)
        name = f"ctrd-restart-{uuid.uuid4().hex[:6]}"
        pod_cfg = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace="t", uid=uuid.uuid4().hex),
            hostname=name, log_directory=str(tmp_path))
        pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod_cfg), timeout=60).pod_sandbox_id
        cid = rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod, sandbox_config=pod_cfg, config=api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name="ticker"), image=api_pb2.ImageSpec(
                    image=test_images.busybox.ref), log_path="ticker.log",
                command=["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done"])),
            timeout=60).container_id
        rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        pid = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid, verbose=True),
                                 timeout=10).info["info"]
        log = tmp_path / "ticker.log"
        _wait(lambda: log.exists() and "tick 3" in log.read_text())

        old = ctrd.pid
        assert old is not None
        os.kill(old, signal.SIGTERM)
        _wait(lambda: ctrd.pid is None)
        ctrd.start()

        # Same container, still running, still logging; exec, stop and remove work.
        status = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid, verbose=True), timeout=30)
        assert status.status.state == api_pb2.CONTAINER_RUNNING
        assert status.info["info"] == pid
        lines = len(log.read_text().splitlines())
        _wait(lambda: len(log.read_text().splitlines()) > lines + 5)
        out = rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["echo", "alive"], timeout=10), timeout=30)
        assert out.stdout == b"alive\n" and out.exit_code == 0
        rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=2), timeout=60)
        assert rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid),
                                  timeout=10).status.state == api_pb2.CONTAINER_EXITED
        rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=60)
        rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        assert network.allocations() == []
    finally:
        server.cleanup()
        problems = ctrd.stop()
        network.close()
    assert problems == []
