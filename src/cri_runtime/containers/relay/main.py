"""Relay process entry point: ``python -m cri_runtime.containers.relay --dir DIR ...``.

Start-up order matters to the server waiting on ``--ready-fd``: detach (fork; the
parent exits at once so the relay is never the server's child), take the directory lock
(one relay per container, ever), create/open the FIFOs, open the log, listen on the
control socket, write the pid file, then write ``ready <pid>`` to the ready fd. Errors
before that go to stderr, which the spawner points at ``relay.log``.

The command line is parsed by hand: argparse and getopt import gettext, re and more,
which would be most of the relay's start-up time.
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
import time

from .engine import Relay, log, unlink_quietly
from .layout import IoDir

USAGE = """usage: python -m cri_runtime.containers.relay --dir DIR --log-path PATH [options]
  --dir DIR            the container's IO directory (FIFOs, control socket, state files)
  --log-path PATH      the container log file (CRI format)
  --max-line-size N    longer lines are split into P records (<= 0: no limit; default 16384)
  --tty                terminal: only stdout carries output
  --stdin              the container has a stdin FIFO
  --stdin-once         close stdin when the first attach session with stdin ends (no tty)
  --resume             take over FIFOs a dead relay was reading
  --ready-fd FD        write 'ready <pid>' to this fd once serving
  --foreground         do not fork (debugging)
"""

_FLAGS = ("tty", "stdin", "stdin-once", "resume", "foreground")
_VALUED = ("dir", "log-path", "max-line-size", "ready-fd")


class UsageError(Exception):
    """A bad command line."""


class Options:
    """The parsed command line."""

    def __init__(self) -> None:
        self.dir = ""
        self.log_path = ""
        self.max_line_size = 16384
        self.tty = False
        self.stdin = False
        self.stdin_once = False
        self.resume = False
        self.ready_fd = -1
        self.foreground = False


def parse_args(argv: list[str]) -> Options:
    """``--name value``, ``--name=value`` and ``--flag``; anything else is a UsageError."""
    options = Options()
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if not name.startswith("--") or name[2:] not in _FLAGS + _VALUED:
            raise UsageError(f"unknown argument {arg!r}")
        key = name[2:]
        attr = key.replace("-", "_")
        if key in _FLAGS:
            if eq:
                raise UsageError(f"{name} takes no value")
            setattr(options, attr, True)
            continue
        if not eq:
            if not args:
                raise UsageError(f"{name} needs a value")
            value = args.pop(0)
        if key in ("max-line-size", "ready-fd"):
            try:
                setattr(options, attr, int(value))
            except ValueError:
                raise UsageError(f"{name} needs an integer, not {value!r}") from None
        else:
            setattr(options, attr, value)
    if not options.dir or not options.log_path:
        raise UsageError("--dir and --log-path are required")
    return options


def ensure_fifo(path: str) -> None:
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        if not stat.S_ISFIFO(os.lstat(path).st_mode):
            raise RuntimeError(f"{path} exists and is not a FIFO") from None


def write_atomically(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


#: How long a starting relay keeps trying for the directory's lock (see `_lock`).
LOCK_ATTEMPTS, LOCK_RETRY_SECONDS = 20, 0.005


def _lock(lock_fd: int) -> bool:
    """Take the IO dir's lock, held for the relay's life; False when another relay holds it.

    `client.is_alive` probes the same lock shared for an instant: a probe that
    coincides with our attempt is waited out (a running relay holds it for good).
    """
    for attempt in range(LOCK_ATTEMPTS):
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < LOCK_ATTEMPTS:
                time.sleep(LOCK_RETRY_SECONDS)
    return False


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        sys.stderr.write(f"relay: {exc}\n{USAGE}")
        return 2
    if not args.foreground and os.fork() > 0:
        os._exit(0)  # the spawner reaps this at once; the relay lives on, re-parented

    try:
        relay = _set_up(args)
    except (OSError, RuntimeError) as exc:
        log(f"cannot start: {exc}")
        relay = None
    if relay is None:
        if args.ready_fd >= 0:
            os.close(args.ready_fd)  # EOF without "ready": the spawner reads relay.log
        return 1
    log(f"serving {args.dir} -> {args.log_path}" + (" (resumed)" if args.resume else ""))
    if args.ready_fd >= 0:
        try:
            os.write(args.ready_fd, f"ready {os.getpid()}\n".encode())
        except OSError as exc:  # the spawner died meanwhile: serve anyway, a restart finds us
            log(f"could not report ready: {exc}")
        finally:
            os.close(args.ready_fd)
    return relay.run()


def _set_up(args: Options) -> Relay | None:
    """Everything before ready; None when another relay already serves the directory."""
    io_dir = IoDir(args.dir)
    os.chdir(io_dir.path)
    lock_fd = os.open(io_dir.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    if not _lock(lock_fd):
        log(f"another relay is running for {io_dir.path}")
        os.close(lock_fd)
        return None
    # lock_fd stays open (and locked) until the process ends -- unless set-up fails: then
    # it is released before the spawner hears of the failure (no relay runs when spawn raises).
    try:
        fifos = [io_dir.stdout] + ([] if args.tty else [io_dir.stderr]) + ([io_dir.stdin] if args.stdin else [])
        for fifo in fifos:
            ensure_fifo(fifo)
        if not args.resume:
            unlink_quietly(io_dir.exited_marker)

        relay = Relay(
            io_dir=io_dir,
            log_path=args.log_path,
            max_line_size=args.max_line_size,
            tty=args.tty,
            stdin=args.stdin,
            stdin_once=args.stdin_once,
            resume=args.resume,
        )
        relay.install_signal_handlers()
        write_atomically(io_dir.pid_file, f"{os.getpid()}\n")
    except BaseException:
        os.close(lock_fd)
        raise
    return relay
