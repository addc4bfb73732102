"""Relay zygote: a warm process that forks container IO relays on request.

Starting a relay as a fresh interpreter costs ~12 ms of CPU, paid by every
CreateContainer/StartContainer and competing with the shim for the CPU. The
zygote pays it once: the server starts it with one end of a SOCK_SEQPACKET
socket pair, and per relay sends one message -- the relay's command line as
NUL-separated words, with the ready pipe's write end and the relay's log file
(stderr) attached as SCM_RIGHTS. The zygote forks; the child starts a new
session and runs the relay's ``main`` in the foreground. The relay is thus
never the server's child (it is the zygote's, which ignores SIGCHLD so the
kernel reaps its relays, and is re-parented to init when the zygote exits).

The zygote never outlives the server: when the server's end of the socket
closes (exit, crash, kill -9), ``recvmsg`` returns nothing and it exits. Relays
it forked are detached and unaffected. Like the relay, it imports only light
stdlib modules.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # `signal` minus its enum import
import _socket
import array
import os
import sys

from .main import main as relay_main

USAGE = "usage: python -c '...zygote...' --socket-fd FD [--for DIR]\n"
#: Longest request (a relay command line) accepted.
MAX_REQUEST = 65536
#: File descriptors per request: the ready pipe and the relay log.
REQUEST_FDS = 2


def _received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return list(fds)


def _write_quietly(fd: int, text: str) -> None:
    """Best effort (contextlib would cost start-up time)."""
    try:
        os.write(fd, text.encode())
    except OSError:
        return


def _run_relay(sock: _socket.socket, argv: list[str], ready_fd: int, log_fd: int) -> None:
    """In the forked child: become a relay as if spawned by the server. Never returns."""
    code = 1
    try:
        sock.close()
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(log_fd, 2)
        for fd in (devnull, log_fd):
            if fd > 2:
                os.close(fd)
        code = relay_main([*argv, "--foreground", "--ready-fd", str(ready_fd)])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # report anything, then exit
        _write_quietly(2, f"relay zygote child: {exc!r}\n")
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


def _fork_relay(sock: _socket.socket, argv: list[str], ready_fd: int, log_fd: int) -> None:
    try:
        pid = os.fork()
    except OSError as exc:
        _write_quietly(log_fd, f"relay zygote: fork failed: {exc}\n")
        return  # the caller closes ready_fd: the server reads EOF and the log
    if pid == 0:
        _run_relay(sock, argv, ready_fd, log_fd)


def serve(sock_fd: int) -> int:
    """Fork one relay per request until the server's end of the socket closes."""
    sock = _socket.socket(fileno=sock_fd)
    sock.setblocking(True)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)  # relays are reaped by the kernel
    while True:
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(MAX_REQUEST, _socket.CMSG_SPACE(REQUEST_FDS * 4))
        except ConnectionResetError:
            return 0
        fds = _received_fds(ancdata)
        try:
            if not data:
                return 0  # the server is gone
            if len(fds) != REQUEST_FDS:
                _write_quietly(2, f"relay zygote: request with {len(fds)} fds ignored\n")
                continue
            _fork_relay(sock, data.decode().split("\0"), fds[0], fds[1])
        finally:
            for fd in fds:
                os.close(fd)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sock_fd = -1
    i = 0
    while i < len(args):
        if args[i] == "--socket-fd" and i + 1 < len(args) and args[i + 1].isdigit():
            sock_fd = int(args[i + 1])
        elif args[i] != "--for" or i + 1 >= len(args):
            sys.stderr.write(f"relay zygote: unknown argument {args[i]!r}\n{USAGE}")
            return 2
        i += 2
    if sock_fd < 0:
        sys.stderr.write(USAGE)
        return 2
    return serve(sock_fd)
