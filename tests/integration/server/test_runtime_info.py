"""Version, Status and RuntimeConfig against a real containerd; process behaviour."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CRI_RUNTIME, CriServer
from tests.rig.containerd import PrivateContainerd
from tests.rig.oci import LayerBuilder, busybox_image, push
from tests.rig.registry import LocalRegistry

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


ACCEPTABLE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED,
              grpc.StatusCode.FAILED_PRECONDITION}


@pytest.mark.parametrize("service", ["RuntimeService", "ImageService"])
def test_empty_request_to_every_rpc_is_never_unknown(cri_server: CriServer, service: str) -> None:
    """Every RPC, given an empty request, answers OK or a precise code; UNIMPLEMENTED names the RPC."""
    desc = api_pb2.DESCRIPTOR.services_by_name[service]
    stub = cri_server.runtime() if service == "RuntimeService" else cri_server.images()
    for method in desc.methods:
        request = getattr(api_pb2, method.input_type.name)()
        try:
            result = getattr(stub, method.name)(request, timeout=3 if method.server_streaming else 10)
            if method.server_streaming:
                for _ in result:
                    break
        except grpc.RpcError as exc:
            if method.server_streaming and exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                continue  # a live event stream with nothing to say
            assert exc.code() in ACCEPTABLE, f"{method.name}: {exc.code()} {exc.details()}"
            assert exc.details(), method.name
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                assert method.name in exc.details()


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


def test_missing_runc_fails_at_start_with_one_line() -> None:
    """The default handler's runc is checked before containerd is even asked (CRI-O checks its runtimes)."""
    server = CriServer("/run/nonexistent-containerd.sock",
                       extra_toml='[runtime.handlers.runc]\nbinary_name = "/nonexistent/runc"\n')
    try:
        proc = subprocess.run([CRI_RUNTIME, "serve", "--config", str(server.config_path)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1
        assert proc.stderr.strip() == ("cri-runtime: runtime handler 'runc': runc binary /nonexistent/runc "
                                       "(runtime.handlers.runc.binary_name) is not an executable file")
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


def test_the_serving_process_never_loads_grpcio(cri_server: CriServer, registry: LocalRegistry) -> None:
    """Serving CRI and calling containerd (unary calls, the event stream, a streamed layer
    write, content reads) all run on our own transport: grpcio's C core (~9 MiB) stays out."""
    layer = LayerBuilder().file("/big.bin", os.urandom(2 << 20))  # streamed: above the one-message limit
    res = push(busybox_image(extra_layers=[layer], compression="none"), registry, "test/no-grpcio",
               uuid.uuid4().hex[:12])
    images = cri_server.images()
    spec = api_pb2.ImageSpec(image=res.ref)
    assert images.PullImage(api_pb2.PullImageRequest(image=spec), timeout=60).image_ref
    assert images.ImageStatus(api_pb2.ImageStatusRequest(image=spec, verbose=True), timeout=10).image.id
    assert cri_server.proc is not None
    maps = Path(f"/proc/{cri_server.proc.pid}/maps").read_text()
    loaded = sorted({line.split()[-1] for line in maps.splitlines() if "grpc" in line.split()[-1]})
    assert loaded == []
    images.RemoveImage(api_pb2.RemoveImageRequest(image=spec), timeout=30)
