"""Operating the server like containerd/CRI-O: drop-ins, config dump, readiness, SIGHUP reload, SIGUSR1.

Every test runs the real `cri-runtime serve` against the rig's containerd
and waits on conditions (log lines, notify datagrams) with deadlines.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CRI_RUNTIME, CriServer
from tests.rig import paths


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 15.0,
             server: CriServer | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f"; log: {full_log(server)[-6000:]}" if server else ""))


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self) -> None:
        self.dir = paths.make_dir("notify")
        self.path = str(self.dir / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[dict[str, str]] = []

    def receive_until(self, key: str, value: str, timeout: float = 20.0) -> dict[str, str]:
        """Read datagrams until one carries key=value; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            msg = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(msg)
            if msg.get(key) == value:
                return msg
        raise AssertionError(f"no {key}={value} on the notify socket; got {self.messages}")

    def close(self) -> None:
        self.sock.close()
        paths.remove_tree(self.dir)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    n = NotifySocket()
    yield n
    n.close()


CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "crirt-reload",
    "plugins": [{"type": "bridge", "bridge": "crirt-none1", "ipam": {"type": "host-local",
                                                                     "subnet": "10.99.251.0/24"}}],
}


def network_ready(server: CriServer) -> bool:
    status = server.runtime().Status(api_pb2.StatusRequest(), timeout=10).status
    return any(c.type == "NetworkReady" and c.status for c in status.conditions)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def effective_config(server: CriServer) -> dict[str, dict[str, object]]:
    resp = server.runtime().Status(api_pb2.StatusRequest(verbose=True), timeout=10)
    return json.loads(resp.info["config"])  # type: ignore[no-any-return]


def test_drop_in_changes_a_key_and_config_dump_names_it(make_cri_server: Callable[..., CriServer]) -> None:
    server = make_cri_server()
    drop = server.dir / "config.d"
    drop.mkdir()
    (drop / "10-first.toml").write_text('[image]\nmax_concurrent_downloads = 5\n')
    (drop / "20-second.toml").write_text('[image]\nmax_concurrent_downloads = 6\n'
                                         '[containerd]\nconnect_timeout_seconds = "1m30s"\n'
                                         '[server]\nbogus_key = 1\n')
    server.start()
    cfg = effective_config(server)
    assert cfg["image"]["max_concurrent_downloads"] == 6  # lexical order: 20 wins
    assert cfg["image"]["sandbox_image"] == "registry.k8s.io/pause:3.6"  # main file's key in the same table
    assert cfg["containerd"]["connect_timeout_seconds"] == 90.0
    # the unknown key warns, naming file and key, and the server serves anyway
    wait_for(lambda: "ignoring unknown key server.bogus_key" in server.log(), "the unknown-key warning")
    assert str(drop / "20-second.toml") in next(line for line in server.log().splitlines() if "bogus_key" in line)

    dump = subprocess.run([CRI_RUNTIME, "config", "dump", "--config", str(server.config_path),
                           "--config-dir", str(drop)], capture_output=True, text=True, timeout=30)
    assert dump.returncode == 0, dump.stderr
    assert f"max_concurrent_downloads = 6  # from {drop / '20-second.toml'}" in dump.stdout
    assert f"connect_timeout_seconds = 90.0  # from {drop / '20-second.toml'}" in dump.stdout
    assert f'socket = "{server.socket}"  # from {server.config_path}' in dump.stdout
    assert "ignoring unknown key server.bogus_key" in dump.stderr

    check = [CRI_RUNTIME, "config", "check", str(server.config_path), "--config-dir", str(drop)]
    lax = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert lax.returncode == 0 and "warning" in lax.stderr and "bogus_key" in lax.stderr
    strict = subprocess.run([*check, "--strict"], capture_output=True, text=True, timeout=30)
    assert strict.returncode == 1
    assert strict.stderr.strip() == (f"cri-runtime: {drop / '20-second.toml'}: unknown key server.bogus_key "
                                     "(known: log_format, log_level, metrics_address, recovery_timeout_seconds, "
                                     "root_dir, socket, state_dir)")


def test_bad_drop_in_fails_start_naming_file_and_key(make_cri_server: Callable[..., CriServer]) -> None:
    server = make_cri_server()
    drop = server.dir / "config.d"
    drop.mkdir()
    (drop / "50-bad.toml").write_text('[streaming]\nidle_timeout_seconds = "soon"\n')
    with pytest.raises(RuntimeError, match="exited with 1") as info:
        server.start(timeout=30)
    assert (f"cri-runtime: {drop / '50-bad.toml'}: streaming.idle_timeout_seconds: expected seconds or a Go "
            "duration") in str(info.value)


def debug_rpc_logged(server: CriServer, marker: str) -> bool:
    """Call Version with a fresh marker in flight and say whether its debug access line was logged."""
    before = len(server.log_path.read_text(errors="replace"))
    server.runtime().Version(api_pb2.VersionRequest(version=marker), timeout=10)
    # The access line is written before the reply; an INFO line after it proves the order.
    return "rpc Version code=OK" in server.log_path.read_text(errors="replace")[before:]


def full_log(server: CriServer) -> str:
    return server.log_path.read_text(errors="replace")


def test_ready_reload_on_sighup_and_stack_dump_on_sigusr1(make_cri_server: Callable[..., CriServer],
                                                          notify: NotifySocket) -> None:
    server = make_cri_server(env={"NOTIFY_SOCKET": notify.path}).start()
    ready = notify.receive_until("READY", "1")
    assert notify.messages[0]["STATUS"].startswith("recovering")  # STATUS= before READY=1
    assert ready["MAINPID"] == str(server.proc.pid)  # type: ignore[union-attr]
    assert ready["STATUS"].startswith("serving")
    assert server.proc is not None
    assert debug_rpc_logged(server, "a")  # the file says log_level = "debug"

    assert not network_ready(server)  # no CNI config in the server's conf dir
    drop = server.dir / "config.d"
    drop.mkdir()
    other_net = server.dir / "other-net.d"
    other_net.mkdir()
    (other_net / "10-reload.conflist").write_text(json.dumps(CONFLIST))
    (drop / "90-level.toml").write_text(f'[server]\nlog_level = "info"\n[streaming]\nport = 1\n'
                                        f'[network]\ncni_conf_dir = "{other_net}"\n'
                                        f'[image]\nregistry_config_path = "{server.dir}/certs.d"\n')
    server.proc.send_signal(signal.SIGHUP)
    notify.receive_until("RELOADING", "1")
    after = notify.receive_until("READY", "1")
    assert "needs restart for: streaming.port" in after["STATUS"]
    wait_for(lambda: "configuration reloaded" in full_log(server), "the reload log line")
    reloaded = next(line for line in full_log(server).splitlines() if "configuration reloaded" in line)
    assert ("applied=image.registry_config_path,network.cni_conf_dir,server.log_level" in reloaded
            and "needs_restart=streaming.port" in reloaded), reloaded
    assert network_ready(server)  # the CNI config of the new directory is loaded live
    assert "needs restart" in full_log(server)
    assert server.proc.poll() is None  # SIGHUP never ends the server
    assert not debug_rpc_logged(server, "b")  # info now: the debug access line is gone
    assert effective_config(server)["server"]["log_level"] == "info"
    assert effective_config(server)["streaming"]["port"] == 0  # not applied: needs a restart

    # A broken drop-in keeps the running configuration.
    (drop / "95-broken.toml").write_text('[server]\nlog_level = "loud"\n')
    server.proc.send_signal(signal.SIGHUP)
    notify.receive_until("RELOADING", "1")
    failed = notify.receive_until("READY", "1")
    assert "last reload failed" in failed["STATUS"] and "95-broken.toml" in failed["STATUS"]
    assert effective_config(server)["server"]["log_level"] == "info"

    # And back to debug, live; metrics come on without a restart.
    (drop / "95-broken.toml").unlink()
    port = free_port()
    (drop / "90-level.toml").write_text(f'[server]\nlog_level = "debug"\nmetrics_address = "127.0.0.1:{port}"\n')
    server.proc.send_signal(signal.SIGHUP)
    notify.receive_until("RELOADING", "1")
    notify.receive_until("READY", "1")
    assert debug_rpc_logged(server, "c")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert 'grpc_method="Version"' in resp.read().decode()

    server.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: "=== end task stack dump ===" in full_log(server), "the SIGUSR1 stack dump", server=server)
    dump = next(line for line in full_log(server).splitlines() if "begin task stack dump" in line)
    assert "asyncio tasks" in dump and "--- thread MainThread" in dump and "--- task " in dump
    assert server.proc.poll() is None

    server.proc.send_signal(signal.SIGTERM)
    stopping = notify.receive_until("STOPPING", "1")
    assert stopping["STATUS"] == "stopping"
    assert server.proc.wait(timeout=30) == 0
    assert not Path(server.socket).exists()
