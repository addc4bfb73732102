"""Server side of the container IO relay: spawn, reopen, attach, liveness, respawn, cleanup.

The relay owns the container's stdio FIFOs; the server only starts it, hands the FIFO
paths (:class:`RelayHandle`) to containerd's CreateTask, and talks to it over the
control socket. Everything needed later (respawn after a crash, cleanup) is found from
the IO directory alone, so a restarted server needs no memory of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cri_runtime
from cri_runtime.errors import DeadlineExceeded, FailedPrecondition, Internal, NotFound
from cri_runtime.store.atomic import write_json

from . import protocol
from .layout import CONTROL_SOCKET, MAX_SOCKET_PATH, IoDir

RELAY_MODULE = "cri_runtime.containers.relay"
#: ``-c`` rather than ``-m``: runpy costs ~4 ms of start-up. The module name stays in the
#: command line (``ps`` shows what the process is; _relay_pid checks it).
_BOOTSTRAP = f"import sys; from {RELAY_MODULE}.main import main; sys.exit(main())"
SPAWN_TIMEOUT = 10.0
CONTROL_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
_LOG_TAIL = 2000
_PACKAGE_ROOT = str(Path(cri_runtime.__file__).resolve().parent.parent)
PYTHON = sys.executable

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class RelayConfig:
    """What the relay needs besides its directory; saved as ``relay.json`` for respawns."""

    log_path: str
    max_line_size: int = 16384
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False


@dataclass(frozen=True)
class RelayHandle:
    """A running relay and the FIFO paths to pass to containerd (``""`` = not used)."""

    dir: Path
    pid: int
    stdin: str
    stdout: str
    stderr: str
    terminal: bool


def _io(io_dir: PathLike) -> IoDir:
    return IoDir(io_dir)


def relay_args(d: IoDir, config: RelayConfig, resume: bool) -> list[str]:
    """The relay's command-line arguments (without ``--ready-fd``)."""
    argv = ["--dir", d.path, "--log-path", config.log_path, "--max-line-size", str(config.max_line_size)]
    for flag, on in (("--tty", config.tty), ("--stdin", config.stdin), ("--stdin-once", config.stdin_once),
                     ("--resume", resume)):
        if on:
            argv.append(flag)
    return argv


def _relay_argv(d: IoDir, config: RelayConfig, ready_fd: int, resume: bool) -> list[str]:
    return [PYTHON, "-S", "-c", _BOOTSTRAP, *relay_args(d, config, resume), "--ready-fd", str(ready_fd)]


def relay_env() -> dict[str, str]:
    """The server's environment (TZ matters for log timestamps) minus Python's own knobs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = _PACKAGE_ROOT  # -S: no site-packages, the relay needs only the stdlib
    return env


def log_tail(io_dir: PathLike, limit: int = _LOG_TAIL) -> str:
    """The end of the relay's own log, for error messages."""
    try:
        with open(_io(io_dir).log_file, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    return data[-limit:].decode(errors="replace").strip()


async def _read_ready(fd: int) -> str:
    """Read the ready pipe up to a newline or EOF (the relay died before it was ready)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    buf = b""
    while b"\n" not in buf:
        readable = loop.create_future()
        loop.add_reader(fd, readable.set_result, None)
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        try:
            chunk = os.read(fd, 256)
        except BlockingIOError:
            continue
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace").strip()


async def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Reap the short-lived fork parent (it exits right after forking the relay)."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.001)


def prepare_dir(io_dir: PathLike, config: RelayConfig, *, resume: bool) -> IoDir:
    """Create the IO directory and (for a first spawn) save the relay's configuration."""
    d = _io(io_dir)
    os.makedirs(d.path, mode=0o700, exist_ok=True)
    if not resume:
        write_json(d.config_file, asdict(config))
    return d


def make_fifos(io_dir: PathLike, config: RelayConfig) -> RelayHandle:
    """Create the FIFOs a relay for ``config`` reads (existing ones are kept); pid 0.

    Lets containerd open them before the relay runs (it reads them once started).
    """
    d = _io(io_dir)
    os.makedirs(d.path, mode=0o700, exist_ok=True)
    handle = RelayHandle(dir=Path(d.path), pid=0, stdin=d.stdin if config.stdin else "", stdout=d.stdout,
                         stderr="" if config.tty else d.stderr, terminal=config.tty)
    for path in (handle.stdout, handle.stderr, handle.stdin):
        if path:
            with contextlib.suppress(FileExistsError):
                os.mkfifo(path, 0o600)
    return handle


def open_relay_log(d: IoDir) -> int:
    """The relay's own log (its stderr), opened for appending."""
    return os.open(d.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


async def spawn(io_dir: PathLike, config: RelayConfig, *, resume: bool = False,
                timeout: float = SPAWN_TIMEOUT) -> RelayHandle:
    """Start a detached relay for ``io_dir`` and wait until it reads the FIFOs.

    With ``resume`` the FIFOs are those a dead relay read (the container is running).
    Raises Internal with the relay's log when it fails, DeadlineExceeded on timeout.
    A fresh interpreter is started; :class:`.launcher.RelayLauncher` forks from a warm one.
    """
    d = prepare_dir(io_dir, config, resume=resume)
    ready_r, ready_w = os.pipe()
    try:
        log_fd = open_relay_log(d)
        try:
            proc = subprocess.Popen(
                _relay_argv(d, config, ready_w, resume),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_fd,
                pass_fds=(ready_w,), start_new_session=True, env=relay_env(), cwd="/",
            )
        finally:
            os.close(log_fd)
    except BaseException:
        os.close(ready_r)
        raise
    finally:
        os.close(ready_w)
    try:
        return await await_ready(d, config, ready_r, timeout)
    finally:
        await _reap(proc)


async def await_ready(d: IoDir, config: RelayConfig, ready_r: int, timeout: float) -> RelayHandle:
    """Wait for the relay's ``ready <pid>`` on the pipe (closes ``ready_r``)."""
    try:
        async with asyncio.timeout(timeout):  # no task of its own, unlike wait_for: on StartContainer's path
            line = await _read_ready(ready_r)
    except TimeoutError:
        await _kill_from_pid_file(d)
        raise DeadlineExceeded(
            f"container IO relay for {d.path} not ready after {timeout}s: {log_tail(d.path)}"
        ) from None
    finally:
        os.close(ready_r)
    words = line.split()
    if len(words) != 2 or words[0] != "ready":
        raise Internal(f"container IO relay for {d.path} failed to start: {log_tail(d.path) or 'no output'}")
    return RelayHandle(
        dir=Path(d.path),
        pid=int(words[1]),
        stdin=d.stdin if config.stdin else "",
        stdout=d.stdout,
        stderr="" if config.tty else d.stderr,
        terminal=config.tty,
    )


def load_config(io_dir: PathLike) -> RelayConfig:
    """The configuration the relay was first spawned with (NotFound if never spawned)."""
    d = _io(io_dir)
    try:
        with open(d.config_file) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise NotFound(f"no container IO relay was set up in {d.path}") from None
    return RelayConfig(**data)


def is_alive(io_dir: PathLike) -> bool:
    """True while a relay process holds the directory lock (immune to pid reuse)."""
    try:
        fd = os.open(_io(io_dir).lock_file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def has_exited(io_dir: PathLike) -> bool:
    """The relay saw EOF on all output (the container's output is complete in the log)."""
    return os.path.exists(_io(io_dir).exited_marker)


async def wait_exited(io_dir: PathLike, timeout: float) -> bool:
    """Wait until no relay runs for ``io_dir``; False on timeout."""
    deadline = time.monotonic() + timeout
    pause = 0.001  # a relay told to stop is usually gone within a few ms
    while is_alive(io_dir):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.01)
    return True


async def respawn_if_dead(io_dir: PathLike, *, timeout: float = SPAWN_TIMEOUT) -> RelayHandle | None:
    """Recovery: start a resuming relay if the last one died before the output ended.

    Returns the new relay's handle, or None when one is alive or the output already ended.
    """
    if is_alive(io_dir) or has_exited(io_dir):
        return None
    return await spawn(io_dir, load_config(io_dir), resume=True, timeout=timeout)


# ---------------------------------------------------------------------- control socket
async def _connect(io_dir: PathLike) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    d = _io(io_dir)
    path = d.control_socket
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    dir_fd = -1
    try:
        if len(path.encode()) > MAX_SOCKET_PATH:
            dir_fd = os.open(d.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            path = f"/proc/self/fd/{dir_fd}/{CONTROL_SOCKET}"
        await asyncio.wait_for(loop.sock_connect(sock, path), CONTROL_TIMEOUT)
    except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as exc:
        sock.close()
        raise FailedPrecondition(f"container IO relay in {d.path} is not running ({exc})") from None
    except BaseException:
        sock.close()
        raise
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    return await asyncio.open_unix_connection(sock=sock)


async def _command(io_dir: PathLike, command: str) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await _connect(io_dir)
    try:
        writer.write(command.encode() + b"\n")
        line = await asyncio.wait_for(reader.readline(), CONTROL_TIMEOUT)
    except BaseException:
        writer.close()
        raise
    answer = line.decode(errors="replace").strip()
    if not answer:
        writer.close()
        raise FailedPrecondition(f"container IO relay in {_io(io_dir).path} closed the connection")
    if answer.startswith("error"):
        writer.close()
        raise Internal(f"container IO relay: {answer[len('error'):].strip()}")
    return answer, reader, writer


async def _simple_command(io_dir: PathLike, command: str) -> str:
    answer, _reader, writer = await _command(io_dir, command)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return answer


async def ping(io_dir: PathLike) -> int:
    """The relay's pid, asked over its control socket."""
    answer = await _simple_command(io_dir, "ping")
    return int(answer.split()[1])


async def reopen(io_dir: PathLike) -> None:
    """ReopenContainerLog: the relay switches to a fresh file at the log path.

    Returns after the new file is in use. FailedPrecondition when no relay runs,
    Internal when it cannot open the file (it keeps writing the old one then).
    """
    await _simple_command(io_dir, "reopen")


class AttachSession:
    """One attach connection: container output frames in, stdin frames out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stdin: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.stdin = stdin  # False when the container has no (more) stdin to attach to

    async def read_frame(self) -> tuple[int, bytes] | None:
        """Next (FRAME_STDOUT | FRAME_STDERR | FRAME_END, payload); None when the relay closed."""
        try:
            header = await self.reader.readexactly(protocol.HEADER_SIZE)
            kind, size = protocol.HEADER.unpack(header)
            payload = await self.reader.readexactly(size) if size else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return kind, payload

    async def write_stdin(self, data: bytes) -> None:
        step = protocol.MAX_CLIENT_FRAME
        for start in range(0, len(data), step):
            self.writer.write(protocol.encode_frame(protocol.FRAME_STDIN, data[start : start + step]))
        await self.writer.drain()

    async def close_stdin(self) -> None:
        """This session's stdin ended (with stdin_once and no tty: the container's stdin closes)."""
        self.writer.write(protocol.encode_frame(protocol.FRAME_STDIN_EOF))
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def attach(io_dir: PathLike, *, stdin: bool = False) -> AttachSession:
    """Connect as an attach client; output from now on arrives as frames."""
    answer, reader, writer = await _command(io_dir, "attach stdin" if stdin else "attach")
    return AttachSession(reader, writer, stdin=answer.split()[1:] == ["stdin"])


# ---------------------------------------------------------------------- teardown
def _relay_pid(d: IoDir) -> int | None:
    """The relay's pid from its pid file, if that process still is this directory's relay.

    Checked by the lock file among the process's open files (a relay holds it for its
    whole life): immune to pid reuse, and true for relays forked by the zygote too,
    whose command line is the zygote's.
    """
    try:
        with open(d.pid_file) as f:
            pid = int(f.read().split()[0])
        fd_dir = f"/proc/{pid}/fd"
        names = os.listdir(fd_dir)
    except (OSError, ValueError, IndexError):
        return None
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{name}") == d.lock_file:
                return pid
    return None


async def _kill_from_pid_file(d: IoDir) -> None:
    pid = _relay_pid(d)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        await wait_exited(d.path, STOP_TIMEOUT)


async def stop(io_dir: PathLike, *, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a running relay: SIGTERM (it drains and flushes), SIGKILL after ``timeout``."""
    d = _io(io_dir)
    if not is_alive(d.path):
        return
    pid = _relay_pid(d)  # None: it is already past removing its pid file, i.e. exiting
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if await wait_exited(d.path, timeout):
        return
    await _kill_from_pid_file(d)
    if is_alive(d.path):
        raise Internal(f"container IO relay in {d.path} does not stop (pid {pid})")


async def cleanup(io_dir: PathLike, *, timeout: float = STOP_TIMEOUT) -> None:
    """RemoveContainer: stop the relay if it still runs and remove the IO directory."""
    d = _io(io_dir)
    await stop(d.path, timeout=timeout)
    shutil.rmtree(d.path, ignore_errors=True)
