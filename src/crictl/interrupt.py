"""Ctrl-C and SIGTERM end the program at once, with the exit code upstream crictl has."""

from __future__ import annotations

import signal
from types import FrameType


class Interrupted(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.code = 128 + signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def install() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise)
