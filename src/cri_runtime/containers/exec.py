"""Processes executed inside a running container (ExecSync, and streaming Exec).

An exec is a containerd task process with its own FIFOs under the
container's state dir. Unlike the container's own output, exec output is
tied to one client call, so the server reads the FIFOs itself. Every exit
path (success, timeout, cancellation, error) kills and deletes the process
and removes its FIFOs.

Two failure modes get special care:

* a command that cannot be started (missing binary, not executable) is the
  caller's business, not ours: it is answered the way a shell answers it,
  exit code 127 or 126 with runc's reason on stderr (`CommandNotRunnable`);
* a `runc exec` that never returns blocks the shim for every other call of
  the container: when an exec is not started by its start deadline, a
  watchdog (which runs even when the caller has gone) kills that exec's runc
  (found under the shim through /proc), so the shim answers again, and the
  caller, if still there, gets DeadlineExceeded. As in containerd, an
  ExecSync timeout counts from the start, so a runc slowed by load is given
  EXEC_START_DEADLINE before being taken for stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_runtime import errors
from cri_runtime.containerd import objects, shims
from cri_runtime.containerd.connection import Containerd

PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
MAX_EXEC_OUTPUT = 16 * 1024 * 1024
# stdout and stderr together stay below kubelet's 16 MiB message limit (with room
# for the response's own fields), so a chatty command gets truncated output, not an error.
MAX_EXEC_RESPONSE_OUTPUT = MAX_EXEC_OUTPUT - 4096
# containerd 1.6's runc shim stalls for about a minute when dozens of execs are
# started into one container at once (measured here: 50 concurrent Exec+Start of
# `true` took 61 s; with at most 8 in flight, 0.9 s). Starting is quick, so
# bounding only Exec+Start per container costs nothing and avoids the stall.
MAX_CONCURRENT_STARTS = 8
_start_gates: dict[str, asyncio.Semaphore] = {}
_watchdogs: set[asyncio.Future[None]] = set()
_CHUNK = 64 * 1024
#: Seconds `runc exec` may take to start a process before the watchdog takes it for stuck.
EXEC_START_DEADLINE = 10.0
#: Seconds the shim gets to answer once the watchdog has killed a stuck runc.
_AFTER_WATCHDOG = 10.0
# runc's words for "this command cannot be started", and the exit code a shell gives for each.
_NOT_FOUND = ("no such file or directory", "executable file not found")
_NOT_EXECUTABLE = ("permission denied", "exec format error", "is a directory")


class CommandNotRunnable(errors.FailedPrecondition):
    """The exec's command could not be started; answered like a shell would (127 / 126)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def not_runnable(exc: errors.CriError, args: list[str]) -> CommandNotRunnable | None:
    """The shell-style answer for a failed exec start, or None if it failed for another reason."""
    text = exc.message
    if "exec failed" not in text:
        return None
    lowered = text.lower()
    if any(m in lowered for m in _NOT_FOUND):
        code = 127
    elif any(m in lowered for m in _NOT_EXECUTABLE):
        code = 126
    else:
        return None
    reason = text.split("unable to start container process: ", 1)[-1].removesuffix(": unknown")
    return CommandNotRunnable(f"{args[0]}: {reason}", code)


@dataclass
class ExecFds:
    """Our ends of an exec's FIFOs (-1 = not used); closed by `ExecProcess.cleanup`."""

    stdin: int = -1
    stdout: int = -1
    stderr: int = -1

    def close(self) -> None:
        for name in ("stdin", "stdout", "stderr"):
            fd = getattr(self, name)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, -1)


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


def _mkfifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def _open_read(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)


async def fifo_chunks(fd: int) -> AsyncIterator[bytes]:
    """Chunks read from a non-blocking FIFO until every writer has closed it."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            while True:
                try:
                    chunk = os.read(fd, _CHUNK)
                except BlockingIOError:
                    break
                if not chunk:
                    return
                yield chunk
    finally:
        loop.remove_reader(fd)


class OutputBudget:
    """Bytes the readers of one exec may still keep, shared between its streams."""

    def __init__(self, total: int) -> None:
        self.left = total


async def read_fifo(fd: int, limit: int = MAX_EXEC_OUTPUT, budget: OutputBudget | None = None) -> bytes:
    """Read a FIFO until every writer is gone; keep at most `limit` bytes (and what `budget` allows)."""
    buf = bytearray()
    async for chunk in fifo_chunks(fd):
        room = limit - len(buf)
        if budget is not None:
            room = min(room, budget.left)
        if room > 0:
            kept = chunk[:room]
            buf += kept
            if budget is not None:
                budget.left -= len(kept)
    return bytes(buf)


class ExecProcess:
    """One exec in a container; use `async with` so it is always cleaned up."""

    def __init__(self, ctd: Containerd, container_id: str, state_dir: Path) -> None:
        self.ctd = ctd
        self.container_id = container_id
        self.exec_id = "exec-" + secrets.token_hex(12)
        self.dir = state_dir / "exec" / self.exec_id
        self.started = False
        self.fds = ExecFds()
        self.unjammed: list[int] | None = None  # pids the watchdog killed (None: it did not act)

    async def __aenter__(self) -> ExecProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cleanup()

    async def process_spec(self, args: list[str], tty: bool,
                           console_size: tuple[int, int] | None = None) -> dict[str, Any]:
        record = await self.ctd.call(self.ctd.containers.Get,
                                     containers_pb2.GetContainerRequest(id=self.container_id),
                                     f"get container {self.container_id}")
        spec = objects.spec_from_any(record.container.spec)
        process: dict[str, Any] = dict(spec.get("process") or {})
        process["args"] = args
        process["terminal"] = tty
        process.pop("consoleSize", None)
        if tty and console_size is not None:
            process["consoleSize"] = {"width": console_size[0], "height": console_size[1]}
        return process

    async def start(self, args: list[str], *, tty: bool = False, stdin: bool = False,
                    stdout: bool = True, stderr: bool = True,
                    console_size: tuple[int, int] | None = None,
                    deadline: float = EXEC_START_DEADLINE) -> ExecFds:
        """Create the FIFOs (our ends open first), then create and start the process.

        CommandNotRunnable when the command cannot be started; DeadlineExceeded
        (after the watchdog killed the stuck runc) when runc does not start it within `deadline`.
        """
        if not args:
            raise errors.InvalidArgument("exec: cmd must not be empty")
        self.dir.mkdir(parents=True, mode=0o700)
        fds = ExecFds()
        paths = {}
        for name, wanted in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr and not tty)):
            if not wanted:
                continue
            path = self.dir / name
            _mkfifo(path)
            paths[name] = str(path)
            if name == "stdin":
                # O_RDWR never blocks and keeps the FIFO open until we close it.
                fds.stdin = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            else:
                setattr(fds, name, _open_read(path))
        self.fds = fds
        process = await self.process_spec(args, tty, console_size)
        req = tasks_pb2.ExecProcessRequest(
            container_id=self.container_id, exec_id=self.exec_id, terminal=tty,
            stdin=paths.get("stdin", ""), stdout=paths.get("stdout", ""), stderr=paths.get("stderr", ""),
            spec=any_pb2.Any(type_url=PROCESS_TYPE_URL, value=json.dumps(process).encode()))
        starting = asyncio.ensure_future(self.create_and_start(req))
        watchdog = asyncio.ensure_future(self._watchdog(starting, deadline))
        _watchdogs.add(watchdog)
        watchdog.add_done_callback(_watchdogs.discard)
        try:
            await asyncio.shield(starting)
        except (errors.CriError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and not starting.cancelled():
                raise  # our caller gave up; the start and its watchdog go on without it
            await asyncio.shield(watchdog)
            if self.unjammed is not None:
                what = (f"killed its stuck runc (pids {self.unjammed})" if self.unjammed
                        else "no stuck runc was found; the shim does not answer")
                raise errors.DeadlineExceeded(
                    f"exec in container {self.container_id}: runc did not start the process within "
                    f"{deadline:g}s; {what}") from None
            if isinstance(exc, asyncio.CancelledError):
                raise
            problem = not_runnable(exc, args)
            if problem is not None:
                raise problem from None
            raise
        return fds

    async def _watchdog(self, starting: asyncio.Future[int], deadline: float) -> None:
        """Runs beside the start, caller or not: past `deadline`, kill this exec's stuck runc."""
        done, _ = await asyncio.wait([starting], timeout=deadline)
        if done:
            return
        self.unjammed = await asyncio.to_thread(shims.kill_stuck_exec, self.ctd.address, self.ctd.namespace,
                                                self.exec_id)
        await asyncio.wait([starting], timeout=_AFTER_WATCHDOG)
        if not starting.done():
            starting.cancel()

    async def create_and_start(self, req: tasks_pb2.ExecProcessRequest) -> int:
        gate = _start_gates.setdefault(self.container_id, asyncio.Semaphore(MAX_CONCURRENT_STARTS))
        try:
            async with gate:
                await self.ctd.call(self.ctd.tasks.Exec, req, f"exec in container {self.container_id}")
                self.started = True
                resp = await self.ctd.call(
                    self.ctd.tasks.Start,
                    tasks_pb2.StartRequest(container_id=self.container_id, exec_id=self.exec_id),
                    f"start exec in container {self.container_id}")
        finally:
            if not gate.locked() and not getattr(gate, "_waiters", None):
                _start_gates.pop(self.container_id, None)
        return int(resp.pid)

    async def wait(self, timeout: float | None = None) -> int:
        """The exit code; DeadlineExceeded after `timeout` (our own clock, not a gRPC deadline,
        which containerd reports as UNKNOWN)."""
        call = self.ctd.call(
            self.ctd.tasks.Wait, tasks_pb2.WaitRequest(container_id=self.container_id, exec_id=self.exec_id),
            f"wait for exec in container {self.container_id}")
        try:
            resp = await asyncio.wait_for(call, timeout)
        except TimeoutError:
            raise errors.DeadlineExceeded(f"exec in container {self.container_id} still running after "
                                          f"{timeout:g}s") from None
        return int(resp.exit_status)

    async def resize(self, width: int, height: int) -> None:
        await self.ctd.call(
            self.ctd.tasks.ResizePty, tasks_pb2.ResizePtyRequest(
                container_id=self.container_id, exec_id=self.exec_id, width=width, height=height),
            f"resize exec tty in container {self.container_id}")

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
            await self.ctd.call(
                self.ctd.tasks.Kill, tasks_pb2.KillRequest(container_id=self.container_id, exec_id=self.exec_id,
                                                           signal=sig),
                f"kill exec in container {self.container_id}")

    async def cleanup(self) -> None:
        """Kill (if still running), delete the process, remove the FIFOs; never raises."""
        work = asyncio.ensure_future(self._cleanup())
        await asyncio.shield(work)

    async def _cleanup(self) -> None:
        if self.started:
            with contextlib.suppress(errors.CriError):
                await self.kill()
                with contextlib.suppress(errors.DeadlineExceeded):
                    await self.wait(timeout=5)
            with contextlib.suppress(errors.CriError):
                await self.ctd.call(
                    self.ctd.tasks.DeleteProcess,
                    tasks_pb2.DeleteProcessRequest(container_id=self.container_id, exec_id=self.exec_id),
                    f"delete exec in container {self.container_id}")
            self.started = False
        self.fds.close()
        shutil.rmtree(self.dir, ignore_errors=True)


async def exec_sync(ctd: Containerd, container_id: str, state_dir: Path, args: list[str],
                    timeout: float, drain_timeout: float | None = None) -> ExecResult:
    """Run `args` in the container and collect its output (ExecSync).

    `timeout` bounds the command once started (0: none), as in containerd; the start
    has its own deadline, the larger of `timeout` and EXEC_START_DEADLINE.
    After the exit, output is read until every writer closes the pipes, for at
    most `drain_timeout` seconds (None: no limit, the caller's deadline applies;
    containerd's `drain_exec_sync_io_timeout`): a background child that keeps them
    open past it makes the call fail, naming the timeout, rather than lose output silently.
    """
    async with ExecProcess(ctd, container_id, state_dir) as proc:
        try:
            fds = await proc.start(args, deadline=max(timeout, EXEC_START_DEADLINE))
        except CommandNotRunnable as exc:
            return ExecResult(exc.exit_code, b"", (exc.message + "\n").encode())
        budget = OutputBudget(MAX_EXEC_RESPONSE_OUTPUT)
        readers = asyncio.gather(read_fifo(fds.stdout, budget=budget), read_fifo(fds.stderr, budget=budget))
        try:
            exit_code = await proc.wait(timeout=timeout if timeout > 0 else None)
        except BaseException as exc:
            readers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readers
            if isinstance(exc, errors.DeadlineExceeded):
                raise errors.DeadlineExceeded(
                    f"ExecSync in container {container_id}: command {args[:1]!r} timed out after {timeout:g}s"
                ) from None
            raise
        try:
            stdout, stderr = await asyncio.wait_for(readers, drain_timeout)
        except TimeoutError:
            raise errors.DeadlineExceeded(
                f"ExecSync in container {container_id}: the command exited with code {exit_code}, but its "
                f"stdout/stderr stayed open for drain_exec_sync_io_timeout ({drain_timeout:g}s) after the exit "
                "(a background process it started still holds them)") from None
        return ExecResult(exit_code, stdout, stderr)
