"""Fixtures for relay tests: no containerd; the test plays the shim (and sometimes the server).

``relay_rig`` gives each test a scratch directory under the rig's session dir and makes
the test process a child subreaper while it runs, so relays (which detach by forking)
re-parent to it instead of PID 1 and are reaped at teardown: no process, zombie or file
is left behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import shutil
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cri_runtime.containers.relay import client
from cri_runtime.containers.relay.client import RelayConfig, RelayHandle
from tests.rig import paths

PR_SET_CHILD_SUBREAPER = 36
TIMESTAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?(Z|[+-]\d\d:\d\d)$")
RECORD = re.compile(rb"^(\S+) (stdout|stderr) ([FP]) (.*)$", re.DOTALL)


def _set_subreaper(on: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


@dataclass
class Record:
    timestamp: bytes
    stream: str
    tag: str
    content: bytes


def read_log(path: str | Path) -> list[Record]:
    """Parse a CRI log file strictly: every line must be a well-formed record."""
    data = Path(path).read_bytes()
    assert data == b"" or data.endswith(b"\n"), "log must end with a complete record"
    records = []
    for line in data.split(b"\n")[:-1]:
        m = RECORD.match(line)
        assert m, f"malformed record {line!r}"
        assert TIMESTAMP.match(m.group(1)), f"bad timestamp {m.group(1)!r}"
        records.append(Record(m.group(1), m.group(2).decode(), m.group(3).decode(), m.group(4)))
    return records


def logged(path: str | Path) -> list[bytes]:
    """The contents of the records logged so far; what tests wait for before acting on the relay."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    matches = (RECORD.match(line) for line in data.split(b"\n")[:-1])  # the last line may be unfinished
    return [m.group(4) for m in matches if m is not None]


def stream_text(records: list[Record], stream: str) -> bytes:
    """What kubelet reassembles from one stream: P pieces joined, F ends a line."""
    return b"".join(r.content + (b"\n" if r.tag == "F" else b"") for r in records if r.stream == stream)


class FakeShim:
    """Opens the FIFOs the way containerd-shim-runc-v2 does.

    For stdout/stderr: a write end, then a read end of its own that it never reads (so a
    dead relay makes writes wait instead of failing with EPIPE). For stdin: a
    non-blocking read end, as the shim copies stdin into the container.
    """

    def __init__(self, handle: RelayHandle) -> None:
        self.fds: list[int] = []
        self.out = self._open_output(handle.stdout)
        self.err = self._open_output(handle.stderr) if handle.stderr else -1
        self.stdin = self._open(handle.stdin, os.O_RDONLY | os.O_NONBLOCK) if handle.stdin else -1

    def _open(self, path: str, flags: int) -> int:
        fd = os.open(path, flags | os.O_CLOEXEC)
        self.fds.append(fd)
        return fd

    def _open_output(self, path: str) -> int:
        fd = self._open(path, os.O_WRONLY)
        self._open(path, os.O_RDONLY | os.O_NONBLOCK)
        return fd

    @staticmethod
    def write(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def read_stdin(self, timeout: float = 5.0) -> bytes:
        """Whatever is in the stdin FIFO (b'' means EOF: no writer left)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return os.read(self.stdin, 65536)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def close(self) -> None:
        """The container and the shim are gone: every end closes."""
        while self.fds:
            os.close(self.fds.pop())


class RelayRig:
    """Spawns relays in scratch dirs and guarantees they are gone (and reaped) afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pids: set[int] = set()
        self.dirs: set[Path] = set()
        self.shims: list[FakeShim] = []

    def io_dir(self, name: str = "c1") -> Path:
        path = self.root / name / "io"
        self.dirs.add(path)
        return path

    def log_path(self, name: str = "c1") -> Path:
        return self.root / "pods" / name / "0.log"

    async def spawn(self, name: str = "c1", **config: object) -> RelayHandle:
        config.setdefault("log_path", str(self.log_path(name)))
        handle = await client.spawn(self.io_dir(name), RelayConfig(**config))  # type: ignore[arg-type]
        self.pids.add(handle.pid)
        return handle

    def shim(self, handle: RelayHandle) -> FakeShim:
        shim = FakeShim(handle)
        self.shims.append(shim)
        return shim

    def track(self, pid: int) -> None:
        self.pids.add(pid)

    async def close(self) -> None:
        try:
            for shim in self.shims:
                shim.close()
            for d in self.dirs:
                if d.exists():
                    await client.stop(d, timeout=2.0)
        finally:
            for pid in self.pids:
                await reap(pid)
            shutil.rmtree(self.root, ignore_errors=True)


async def reap(pid: int, timeout: float = 5.0) -> None:
    """Wait for a relay (our child thanks to the subreaper flag) and collect its exit status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # not ours (or already reaped)
        if done:
            return
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        await asyncio.sleep(0.01)


@pytest.fixture
async def relay_rig() -> AsyncIterator[RelayRig]:
    _set_subreaper(True)
    rig = RelayRig(paths.make_dir("relay"))
    try:
        yield rig
    finally:
        await rig.close()
        _set_subreaper(False)
