"""Ctrl-C and SIGTERM end every command at once, with the exit code upstream crictl has.

Upstream (util.go SetupInterruptSignalHandler) treats SIGINT and SIGTERM alike: the first one
cancels what runs (logs -f and the -w watches then end with 0, events and an interrupted RPC
with the error "interrupted: context canceled" and 1), a second one exits with 1 at once.

The first signal raises `Interrupted` in the main thread and is also remembered: a loop that
polls (logs -f, stats -w) checks `requested()` on every round, so the signal ends it even if
the exception surfaced inside a library that swallowed it. That was the race behind the flaky
`logs -f` test: Ctrl-C landing during the periodic ContainerStatus call was lost inside grpc's
blocking call and the follow loop went on printing.
A command that does not handle the exception dies by the signal, as an unhandled Go program does.
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class Interrupted(BaseException):
    """Raised in the main thread by the first SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _handle(signum: int, frame: FrameType | None) -> None:
    if _received:
        os._exit(1)  # the second signal: upstream exits with 1 at once
    _received.append(signum)
    raise Interrupted(signum)


def install() -> None:
    for sig in SIGNALS:
        signal.signal(sig, _handle)


def requested() -> bool:
    """True once a first SIGINT or SIGTERM arrived."""
    return bool(_received)


def die_by_signal(signum: int) -> None:
    """End the process killed by `signum`, as a Go program without a handler for it ends."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # not reached unless the signal is blocked
