"""Issue 12 on real containerd and runc: one bad workload, request or shim never jams the node.

Each test waits on conditions with deadlines, never on fixed sleeps. Pods use
the host network where the network is beside the point, so these tests need
no CNI and run on servers of their own (whose stuck-shim state and config
they may change freely).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.containerd import shims
from cri_runtime.containers.exec import EXEC_START_DEADLINE
from cri_runtime.containers.recover import STALE_EXEC_AGE, STALE_EXEC_SWEEP
from cri_runtime.streaming.remotecommand import StreamOptions, run_remote_command
from cri_runtime.validation.process import MAX_ARG_BYTES
from tests.cri_server import CriServer
from tests.integration.streaming_containers.test_container_streaming import Collect
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages

pytestmark = pytest.mark.integration

HANG_MARKER = "HANG-FOR-WATCHDOG-TEST"
SLOW_MARKER = "SLOW-CREATE-FOR-RETRY-TEST"
SLOW_CREATE = 1.5


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not reached within {timeout}s"
        time.sleep(0.05)


class HostPod:
    """A host-network pod on `server` with busybox containers; removed on close."""

    def __init__(self, server: CriServer, images: TestImages, tmp_path: Path, handler: str = "") -> None:
        self.rt = server.runtime()
        self.images = images
        name = f"hard-{uuid.uuid4().hex[:8]}"
        self.config = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace="hardening", uid=uuid.uuid4().hex),
            log_directory=str(tmp_path / name))
        self.config.linux.security_context.namespace_options.network = api_pb2.NODE
        server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=images.busybox.ref)),
                                  timeout=60)
        self.id = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=self.config, runtime_handler=handler),
                                        timeout=60).pod_sandbox_id

    def create(self, name: str, cmd: list[str]) -> str:
        cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=name),
                                      image=api_pb2.ImageSpec(image=self.images.busybox.ref), command=cmd)
        return str(self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.id, config=cfg, sandbox_config=self.config), timeout=60).container_id)

    def run(self, name: str, cmd: list[str] | None = None) -> str:
        cid = self.create(name, cmd or ["sleep", "3600"])
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        return cid

    def exec_sync(self, cid: str, cmd: list[str], timeout: int = 10, rpc_timeout: float = 30) -> Any:
        return self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout),
                                timeout=rpc_timeout)

    def state(self, cid: str) -> int:
        return int(self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid),
                                           timeout=10).status.state)

    def close(self) -> None:
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=self.id), timeout=90)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=self.id), timeout=90)


@pytest.fixture
def server(make_cri_server: Callable[..., CriServer], test_images: TestImages) -> CriServer:
    return make_cri_server(sandbox_image=test_images.pause.ref).start()


@pytest.fixture
def pod(server: CriServer, test_images: TestImages, tmp_path: Path) -> Iterator[HostPod]:
    p = HostPod(server, test_images, tmp_path)
    yield p
    p.close()


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# ----------------------------------------------------------------- argv size


def test_exec_argument_above_the_limit_is_refused_before_runc(pod: HostPod) -> None:
    cid = pod.run("argv")
    err = rpc_error(lambda: pod.exec_sync(cid, ["echo", "x" * 65536]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"the limit for one argument is {MAX_ARG_BYTES} bytes" in (err.details() or "")
    # At the limit it runs, and the container still answers at once.
    resp = pod.exec_sync(cid, ["sh", "-c", 'echo ${#0}', "x" * MAX_ARG_BYTES])
    assert (resp.exit_code, resp.stdout) == (0, f"{MAX_ARG_BYTES}\n".encode())


def test_streaming_exec_argument_above_the_limit_is_refused(pod: HostPod) -> None:
    cid = pod.run("argv-stream")
    err = rpc_error(lambda: pod.rt.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["echo", "x" * 65536],
                                                            stdout=True), timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(MAX_ARG_BYTES) in (err.details() or "")


# ------------------------------------------------------------ missing binary


def test_exec_of_a_missing_binary_answers_like_a_shell(pod: HostPod) -> None:
    cid = pod.run("nobin")
    resp = pod.exec_sync(cid, ["/no/such/binary", "arg"])
    assert resp.exit_code == 127
    assert b"/no/such/binary" in resp.stderr and b"no such file or directory" in resp.stderr
    resp = pod.exec_sync(cid, ["no-such-command"])
    assert resp.exit_code == 127
    resp = pod.exec_sync(cid, ["/etc/passwd"])  # exists, not executable
    assert resp.exit_code == 126
    assert b"permission denied" in resp.stderr


@pytest.mark.parametrize("tty", [False, True])
def test_streaming_exec_of_a_missing_binary_answers_like_a_shell(pod: HostPod, tty: bool) -> None:
    cid = pod.run(f"nobin-stream-{int(tty)}")
    url = pod.rt.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["/no/such/binary"], tty=tty, stdout=True,
                                          stderr=not tty), timeout=10).url
    out, err = Collect(), Collect()
    code = asyncio.run(run_remote_command(url, StreamOptions(False, True, not tty, tty), stdout=out,
                                          stderr=None if tty else err))
    assert code == 127
    shown = bytes(out.data if tty else err.data)
    assert b"/no/such/binary" in shown and b"no such file or directory" in shown


# ----------------------------------------------------------------- sysctls


@pytest.mark.parametrize("name", ["net/../../etc/passwd", "net.ipv4/../../../etc/passwd", "net..core.somaxconn"])
def test_sysctl_path_traversal_is_refused(server: CriServer, test_images: TestImages, tmp_path: Path,
                                          name: str) -> None:
    cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=f"sysctl-{uuid.uuid4().hex[:6]}", namespace="hardening",
                                            uid=uuid.uuid4().hex),
        log_directory=str(tmp_path))
    cfg.linux.sysctls[name] = "1"
    rt = server.runtime()
    err = rpc_error(lambda: rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid name" in (err.details() or "")
    pods = rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items
    assert not [p for p in pods if p.metadata.name == cfg.metadata.name]


def test_update_pod_resources_out_of_range_is_invalid_argument(pod: HostPod) -> None:
    req = api_pb2.UpdatePodSandboxResourcesRequest(
        pod_sandbox_id=pod.id,
        overhead=api_pb2.LinuxContainerResources(memory_limit_in_bytes=2**63 - 1),
        resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=1 << 20))
    err = rpc_error(lambda: pod.rt.UpdatePodSandboxResources(req, timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "out of range" in (err.details() or "")
    req = api_pb2.UpdatePodSandboxResourcesRequest(
        pod_sandbox_id=pod.id, resources=api_pb2.LinuxContainerResources(unified={"../../cpu.max": "1"}))
    err = rpc_error(lambda: pod.rt.UpdatePodSandboxResources(req, timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


# ------------------------------------------------------------- ExecSync drain


@pytest.fixture
def drain_server(make_cri_server: Callable[..., CriServer], test_images: TestImages) -> CriServer:
    return make_cri_server(sandbox_image=test_images.pause.ref,
                           extra_toml='[runtime]\ndrain_exec_sync_io_timeout = "2s"\n').start()


def test_exec_sync_drain_timeout(drain_server: CriServer, test_images: TestImages, tmp_path: Path) -> None:
    pod = HostPod(drain_server, test_images, tmp_path)
    try:
        cid = pod.run("drain")
        # A background child writes after the command exited and then closes the pipes in time.
        resp = pod.exec_sync(cid, ["sh", "-c", "echo first; (sleep 0.5; echo late) & exit 3"])
        assert (resp.exit_code, resp.stdout) == (3, b"first\nlate\n")
        # One that keeps them open past the drain timeout fails, naming it.
        started = time.monotonic()
        err = rpc_error(lambda: pod.exec_sync(cid, ["sh", "-c", "echo x; sleep 30 & exit 0"]))
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "drain_exec_sync_io_timeout (2s)" in (err.details() or "")
        assert time.monotonic() - started < 15
    finally:
        pod.close()


def test_exec_sync_drain_default_ends_before_the_callers_deadline(pod: HostPod) -> None:
    """containerd's default "0s" drains until the caller's deadline: we answer just before it, saying why."""
    cid = pod.run("drain-default")
    err = rpc_error(lambda: pod.exec_sync(cid, ["sh", "-c", "echo x; sleep 30 & exit 0"], rpc_timeout=3))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "drain_exec_sync_io_timeout (0s: until the caller's deadline)" in (err.details() or ""), err.details()


# --------------------------------------------------------- exec watchdog


def _wrapper(tmp_path: Path) -> Path:
    """A runc for fault injection: an exec whose process spec holds HANG_MARKER never returns (as
    `runc exec` was seen to with a 64 KiB argument); a create whose bundle config holds
    SLOW_MARKER takes SLOW_CREATE seconds longer; everything goes on to the real runc."""
    runc = shutil.which("runc")
    assert runc is not None
    script = tmp_path / "runc-with-faults"
    script.write_text(f"""#!/bin/sh
prev=""
for a in "$@"; do
  if [ "$prev" = "--process" ] && grep -q {HANG_MARKER} "$a" 2>/dev/null; then
    exec {sys.executable} -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)' "$@"
  fi
  if [ "$prev" = "--bundle" ] && grep -q {SLOW_MARKER} "$a/config.json" 2>/dev/null; then
    sleep {SLOW_CREATE}
  fi
  prev="$a"
done
exec {runc} "$@"
""")
    script.chmod(0o755)
    return script


@pytest.fixture
def faulty_server(make_cri_server: Callable[..., CriServer], containerd: PrivateContainerd,
                  test_images: TestImages, tmp_path: Path) -> CriServer:
    """A server whose handler "faulty" runs runc through `_wrapper`."""
    wrapper = _wrapper(tmp_path)
    return make_cri_server(
        sandbox_image=test_images.pause.ref,
        extra_toml=f'[runtime.handlers.faulty]\nbinary_name = "{wrapper}"\nroot = "{containerd.runc_root}"\n',
    ).start()


def _hung_execs() -> list[shims.Proc]:
    """The wrapper's stand-ins for a hung `runc exec` still alive."""
    return [p for p in shims.process_table()
            if p.argv and p.argv[0] == sys.executable and "--process" in p.argv and "exec" in p.argv]


def test_watchdog_kills_a_stuck_runc_exec(faulty_server: CriServer, test_images: TestImages,
                                          tmp_path: Path) -> None:
    server = faulty_server
    pod = HostPod(server, test_images, tmp_path, handler="faulty")
    try:
        cid = pod.run("stuck")
        started = time.monotonic()
        err = rpc_error(lambda: pod.exec_sync(cid, ["echo", HANG_MARKER], timeout=2))
        elapsed = time.monotonic() - started
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "killed its stuck runc" in (err.details() or ""), err.details()
        assert EXEC_START_DEADLINE <= elapsed < EXEC_START_DEADLINE + 15
        wait_until(lambda: not _hung_execs(), 10, "stuck runc exec gone")
        # The shim answers again: exec, update and stop of the same container work.
        started = time.monotonic()
        assert pod.exec_sync(cid, ["echo", "ok"]).stdout == b"ok\n"
        pod.rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
            container_id=cid, linux=api_pb2.LinuxContainerResources(cpu_shares=512)), timeout=30)
        assert time.monotonic() - started < 10
        assert "killed stuck runc exec" in server.log_path.read_text()
        # A caller that gives up first does not leave the jam behind: the watchdog runs without it.
        err = rpc_error(lambda: pod.exec_sync(cid, ["echo", HANG_MARKER], timeout=1, rpc_timeout=2))
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        wait_until(lambda: _hung_execs(), 10, "the second stuck runc exec running")
        wait_until(lambda: not _hung_execs(), EXEC_START_DEADLINE + 10, "second stuck runc exec killed")
        assert pod.exec_sync(cid, ["echo", "ok"]).stdout == b"ok\n"
    finally:
        for p in _hung_execs():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        pod.close()


# ------------------------------------------------------------- frozen shim


def _shim_of(containerd: PrivateContainerd, pod_id: str) -> shims.Proc:
    shim = shims.find_shim(shims.process_table(), containerd.address, containerd.namespace, [pod_id])
    assert shim is not None, f"no shim for pod {pod_id}"
    return shim


def _all_threads_stopped(pid: int) -> bool:
    states = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
            stat = f.read()
            states.append(stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3])
    return bool(states) and all(st == b"T" for st in states)


def test_frozen_shim_blocks_neither_stats_nor_removal(server: CriServer, containerd: PrivateContainerd,
                                                      test_images: TestImages, tmp_path: Path) -> None:
    healthy = HostPod(server, test_images, tmp_path)
    frozen = HostPod(server, test_images, tmp_path)
    shim: shims.Proc | None = None
    frozen_closed = False
    try:
        ok_id = healthy.run("healthy")
        stuck_id = frozen.run("frozen")
        shim = _shim_of(containerd, frozen.id)
        os.kill(shim.pid, signal.SIGSTOP)
        wait_until(lambda: _all_threads_stopped(shim.pid if shim else 0), 5, "every thread of the shim stopped")
        rt = server.runtime()
        for attempt in range(3):  # the first finds the stuck shim, the next ones skip it at once
            started = time.monotonic()
            stats = rt.ListContainerStats(api_pb2.ListContainerStatsRequest(), timeout=2).stats
            assert time.monotonic() - started < (2 if attempt == 0 else 0.5)
            ids = {s.attributes.id for s in stats}
            assert ok_id in ids and stuck_id not in ids, (attempt, ids)
            assert any(s.attributes.id == ok_id and s.memory.working_set_bytes.value for s in stats)
        pod_stats = rt.ListPodSandboxStats(api_pb2.ListPodSandboxStatsRequest(), timeout=2).stats
        assert healthy.id in {s.attributes.id for s in pod_stats}
        assert "did not answer for stats" in server.log_path.read_text()
        err = rpc_error(lambda: rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=stuck_id), timeout=2))
        assert err.code() == grpc.StatusCode.UNAVAILABLE and "does not answer" in (err.details() or "")
        err = rpc_error(lambda: rt.PodSandboxStats(api_pb2.PodSandboxStatsRequest(pod_sandbox_id=frozen.id),
                                                   timeout=2))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        # Status and listing never ask the shim.
        assert frozen.state(stuck_id) == api_pb2.CONTAINER_RUNNING

        started = time.monotonic()
        frozen.close()
        frozen_closed = True
        assert time.monotonic() - started < 60
        wait_until(lambda: not os.path.exists(f"/proc/{shim.pid if shim else 0}"), 10, "frozen shim gone")
        listed = rt.ListContainers(api_pb2.ListContainersRequest(), timeout=10).containers
        assert stuck_id not in {c.id for c in listed}
        tasks = containerd.ctr("tasks", "ls").stdout
        assert frozen.id not in tasks and stuck_id not in tasks
        assert "killing it with its process tree" in server.log_path.read_text()
        # The healthy pod never noticed.
        assert healthy.exec_sync(ok_id, ["true"]).exit_code == 0
    finally:
        if shim is not None and os.path.exists(f"/proc/{shim.pid}"):
            os.kill(shim.pid, signal.SIGCONT)
        if not frozen_closed:
            frozen.close()
        healthy.close()


def test_a_stuck_runc_exec_does_not_outlive_a_restart(faulty_server: CriServer, test_images: TestImages,
                                                      tmp_path: Path) -> None:
    server = faulty_server
    pod = HostPod(server, test_images, tmp_path, handler="faulty")
    try:
        cid = pod.run("stuck-restart")
        with contextlib.suppress(grpc.RpcError):
            pod.exec_sync(cid, ["echo", HANG_MARKER], timeout=1, rpc_timeout=1)
        wait_until(_hung_execs, 10, "stuck runc exec running")
        server.kill()  # before its watchdog fires: only the new server can end the jam
        assert _hung_execs()
        server.start()
        wait_until(lambda: not _hung_execs(), STALE_EXEC_AGE + STALE_EXEC_SWEEP + 10, "stale runc exec swept")
        assert pod.exec_sync(cid, ["echo", "ok"]).stdout == b"ok\n"
        assert "killed stale runc exec processes" in server.log_path.read_text()
    finally:
        for p in _hung_execs():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        pod.close()


# ------------------------------------------------------------ retried start


def test_start_container_retried_after_a_cut_off_first_attempt(faulty_server: CriServer, test_images: TestImages,
                                                                 tmp_path: Path) -> None:
    pod = HostPod(faulty_server, test_images, tmp_path, handler="faulty")
    slow = ["sh", "-c", "sleep 3600", SLOW_MARKER]
    start = api_pb2.StartContainerRequest
    try:
        # The retry arrives while the first attempt (its caller gone) is still inside runc create.
        joined = pod.create("joined", slow)
        err = rpc_error(lambda: pod.rt.StartContainer(start(container_id=joined), timeout=0.5))
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        pod.rt.StartContainer(start(container_id=joined), timeout=60)
        assert pod.state(joined) == api_pb2.CONTAINER_RUNNING
        # The retry arrives after the abandoned attempt finished.
        late = pod.create("late", slow)
        err = rpc_error(lambda: pod.rt.StartContainer(start(container_id=late), timeout=0.5))
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        wait_until(lambda: pod.state(late) == api_pb2.CONTAINER_RUNNING, 30, "abandoned start finished")
        pod.rt.StartContainer(start(container_id=late), timeout=60)
        for cid in (joined, late):
            assert pod.exec_sync(cid, ["true"]).exit_code == 0
            # Once answered, a further start is the caller's mistake, with a precise code.
            err = rpc_error(lambda c=cid: pod.rt.StartContainer(start(container_id=c), timeout=10))  # type: ignore[misc]
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        pod.close()


# -------------------------------------------------- runc refusing a config


def _create_and_start(pod: HostPod, **config: Any) -> None:
    cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=f"r{uuid.uuid4().hex[:6]}"),
                                  image=api_pb2.ImageSpec(image=pod.images.busybox.ref), **config)
    cid = pod.rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod.id, config=cfg, sandbox_config=pod.config), timeout=60).container_id
    pod.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)


R = api_pb2.LinuxContainerResources


@pytest.mark.parametrize(
    ("label", "config", "reason"),
    [
        ("command missing from the image", {"command": ["/no/such/binary"]}, "no such file or directory"),
        ("working dir is a file", {"command": ["true"], "working_dir": "/etc/passwd"}, "/etc/passwd"),
        ("memory limit no process fits in", {"command": ["true"], "linux": api_pb2.LinuxContainerConfig(
            resources=R(memory_limit_in_bytes=4096))}, "memory"),
        ("cpuset naming CPUs the node lacks", {"command": ["true"], "linux": api_pb2.LinuxContainerConfig(
            resources=R(cpuset_cpus="4095"))}, "cpuset"),
    ],
)
def test_runc_refusing_a_container_config_is_failed_precondition(pod: HostPod, label: str, config: dict[str, Any],
                                                                  reason: str) -> None:
    err = rpc_error(lambda: _create_and_start(pod, **config))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, (label, err.details())
    assert reason in (err.details() or ""), (label, err.details())


def test_runc_refusing_a_resource_update_is_failed_precondition(pod: HostPod) -> None:
    cid = pod.run("update")
    for resources, reason in ((R(memory_limit_in_bytes=4096), "memory limit"),
                              (R(unified={"memory.high": "max"}), "unified")):
        err = rpc_error(lambda r=resources: pod.rt.UpdateContainerResources(  # type: ignore[misc]
            api_pb2.UpdateContainerResourcesRequest(container_id=cid, linux=r), timeout=30))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
        assert reason in (err.details() or "")
    assert pod.exec_sync(cid, ["true"]).exit_code == 0


def test_sysctl_value_the_kernel_refuses_is_failed_precondition(server: CriServer, tmp_path: Path) -> None:
    cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=f"sv-{uuid.uuid4().hex[:6]}", namespace="hardening",
                                            uid=uuid.uuid4().hex), log_directory=str(tmp_path))
    cfg.linux.security_context.namespace_options.network = api_pb2.NODE
    cfg.linux.sysctls["kernel.shm_rmid_forced"] = "not-a-number"
    rt = server.runtime()
    err = rpc_error(lambda: rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=60))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    assert "shm_rmid_forced" in (err.details() or "")
    pods = rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items
    assert not [p for p in pods if p.metadata.name == cfg.metadata.name]


def test_run_pod_and_create_container_retried_after_a_cut_off_attempt(server: CriServer, test_images: TestImages,
                                                                      tmp_path: Path) -> None:
    """A retry of RunPodSandbox / CreateContainer with the same name either succeeds or is
    ALREADY_EXISTS naming the object the first attempt made; never INTERNAL or "file exists"."""
    rt = server.runtime()
    server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=test_images.busybox.ref)),
                              timeout=60)
    name = f"retry-{uuid.uuid4().hex[:6]}"
    cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="hardening", uid=uuid.uuid4().hex),
        log_directory=str(tmp_path))
    cfg.linux.security_context.namespace_options.network = api_pb2.NODE
    run = api_pb2.RunPodSandboxRequest(config=cfg)

    def pods_named() -> list[str]:
        return [p.id for p in rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items
                if p.metadata.name == name]

    try:
        with contextlib.suppress(grpc.RpcError):
            rt.RunPodSandbox(run, timeout=0.05)
        try:
            pod_id = rt.RunPodSandbox(run, timeout=60).pod_sandbox_id
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS, err.details()
            pod_id = wait_until(lambda: pods_named() and pods_named()[0], 30, "first attempt's pod listed")
        assert pods_named() == [pod_id]
        ccfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="c"),
                                       image=api_pb2.ImageSpec(image=test_images.busybox.ref), command=["true"])
        create = api_pb2.CreateContainerRequest(pod_sandbox_id=pod_id, config=ccfg, sandbox_config=cfg)
        with contextlib.suppress(grpc.RpcError):
            rt.CreateContainer(create, timeout=0.05)
        try:
            rt.CreateContainer(create, timeout=60)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS, err.details()

        def containers() -> list[Any]:
            return list(rt.ListContainers(api_pb2.ListContainersRequest(
                filter=api_pb2.ContainerFilter(pod_sandbox_id=pod_id)), timeout=10).containers)

        wait_until(lambda: len(containers()) == 1, 30, "one container")
    finally:
        for pid in pods_named():
            rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
            rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)
