"""Version, Status and RuntimeConfig against a real containerd; process behaviour."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CRI_RUNTIME, CriServer
from tests.rig.containerd import PrivateContainerd

CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "crirt-status",
    "plugins": [{"type": "bridge", "bridge": "crirt-none0", "ipam": {"type": "host-local",
                                                                     "subnet": "10.99.250.0/24"}}],
}


def conditions(server: CriServer) -> dict[str, api_pb2.RuntimeCondition]:
    status = server.runtime().Status(api_pb2.StatusRequest(), timeout=5).status
    return {c.type: c for c in status.conditions}


def test_version(cri_server: CriServer) -> None:
    resp = cri_server.runtime().Version(api_pb2.VersionRequest(), timeout=5)
    assert resp.runtime_name == "cri-runtime"
    assert resp.runtime_api_version == "v1"
    assert resp.version == "0.1.0"
    assert resp.runtime_version


def test_runtime_config_reports_cgroup_driver(cri_server: CriServer) -> None:
    resp = cri_server.runtime().RuntimeConfig(api_pb2.RuntimeConfigRequest(), timeout=5)
    assert resp.linux.cgroup_driver == api_pb2.CGROUPFS


def test_runtime_config_systemd(make_cri_server: Callable[..., CriServer]) -> None:
    server = make_cri_server(extra_toml='[runtime]\ncgroup_driver = "systemd"\n').start()
    resp = server.runtime().RuntimeConfig(api_pb2.RuntimeConfigRequest(), timeout=5)
    assert resp.linux.cgroup_driver == api_pb2.SYSTEMD


def test_status_verbose_has_effective_config(cri_server: CriServer) -> None:
    resp = cri_server.runtime().Status(api_pb2.StatusRequest(verbose=True), timeout=5)
    cfg = json.loads(resp.info["config"])
    assert cfg["server"]["socket"] == cri_server.socket
    assert cfg["containerd"]["namespace"] == "k8s.io"
    assert json.loads(resp.info["recovery"])["done"] is True
    assert conditions(cri_server)["RuntimeReady"].status is True


def test_network_ready_follows_cni_config(cri_server: CriServer) -> None:
    for leftover in cri_server.cni_conf_dir.iterdir():
        leftover.unlink()
    cond = conditions(cri_server)["NetworkReady"]
    assert cond.status is False
    assert cond.reason and cond.message
    path = cri_server.cni_conf_dir / "10-test.conflist"
    path.write_text(json.dumps(CONFLIST))
    try:
        cond = conditions(cri_server)["NetworkReady"]
        assert cond.status is True, cond
    finally:
        path.unlink()
    assert conditions(cri_server)["NetworkReady"].status is False


def _stop_daemon(ctrd: PrivateContainerd) -> None:
    pid = ctrd.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while ctrd.pid is not None:  # polling reaps the process
        assert time.monotonic() < deadline, "containerd did not stop"
        time.sleep(0.05)


def test_runtime_not_ready_while_containerd_is_down() -> None:
    ctrd = PrivateContainerd()
    ctrd.start()
    try:
        server = CriServer(ctrd.address).start()
        try:
            assert conditions(server)["RuntimeReady"].status is True
            _stop_daemon(ctrd)
            cond = conditions(server)["RuntimeReady"]
            assert cond.status is False
            assert cond.reason == "ContainerdUnavailable"
            assert ctrd.address in cond.message
            ctrd.start()
            deadline = time.monotonic() + 10
            while not conditions(server)["RuntimeReady"].status:
                assert time.monotonic() < deadline, "runtime did not become ready again"
                time.sleep(0.1)
        finally:
            server.cleanup()
    finally:
        ctrd.stop()


@pytest.mark.parametrize(
    ("rpc", "request_msg"),
    [
        ("RunPodSandbox", api_pb2.RunPodSandboxRequest()),
        ("ListContainers", api_pb2.ListContainersRequest()),
        ("UpdatePodSandboxResources", api_pb2.UpdatePodSandboxResourcesRequest()),
        ("CheckpointContainer", api_pb2.CheckpointContainerRequest()),
    ],
)
def test_unbuilt_rpcs_answer_unimplemented(cri_server: CriServer, rpc: str, request_msg: object) -> None:
    stub = cri_server.runtime()
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, rpc)(request_msg, timeout=5)
    if info.value.code() != grpc.StatusCode.UNIMPLEMENTED:
        pytest.skip(f"{rpc} is implemented now")
    assert rpc in info.value.details()


def test_second_server_on_same_socket_fails(cri_server: CriServer) -> None:
    proc = subprocess.run([CRI_RUNTIME, "serve", "--config", str(cri_server.config_path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"cri-runtime: another cri-runtime is already serving on {cri_server.socket}"
    # the first server is unharmed
    assert cri_server.runtime().Version(api_pb2.VersionRequest(), timeout=5).runtime_name == "cri-runtime"


def test_unreachable_containerd_fails_fast() -> None:
    server = CriServer("/run/nonexistent-containerd.sock")
    try:
        server.config_path.write_text(server.config_path.read_text().replace(
            'address = "/run/nonexistent-containerd.sock"',
            'address = "/run/nonexistent-containerd.sock"\nconnect_timeout_seconds = 0.5'))
        proc = subprocess.run([CRI_RUNTIME, "serve", "--config", str(server.config_path)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1
        assert "containerd at /run/nonexistent-containerd.sock is not usable" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not os.path.exists(server.socket)
    finally:
        server.cleanup()


def test_bad_config_fails_with_file_and_key() -> None:
    server = CriServer("/run/x.sock")
    try:
        server.config_path.write_text("[server]\nsocket = 5\n")
        proc = subprocess.run([CRI_RUNTIME, "serve", "--config", str(server.config_path)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1
        assert proc.stderr.strip() == (f"cri-runtime: {server.config_path}: server.socket: "
                                       "expected string, got int 5")
    finally:
        server.cleanup()


def test_sigterm_stops_gracefully_and_removes_socket(make_cri_server: Callable[..., CriServer]) -> None:
    server = make_cri_server().start()
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=15) == 0
    assert not os.path.exists(server.socket)
    assert "stopped" in server.log()


def test_restart_after_kill_replaces_stale_socket(make_cri_server: Callable[..., CriServer]) -> None:
    server = make_cri_server().start()
    server.kill(signal.SIGKILL)
    assert os.path.exists(server.socket)  # left behind by the crash
    with socket.socket(socket.AF_UNIX) as probe, pytest.raises(OSError):
        probe.connect(server.socket)
    server.start()
    assert server.runtime().Version(api_pb2.VersionRequest(), timeout=5).runtime_name == "cri-runtime"
    assert oct(os.stat(server.socket).st_mode & 0o777) == oct(0o660)
