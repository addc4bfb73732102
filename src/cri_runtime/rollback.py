"""Undo steps of a multi-step operation when a later step fails.

RunPodSandbox and CreateContainer acquire things one after the other (a name,
a netns, a CNI allocation, a snapshot, a containerd record …). Each step
registers its undo; on failure — including the caller's deadline — the undos
run in reverse order, each failure logged and the rest still run.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Undo = Callable[[], Awaitable[None]]


class Rollback:
    """Undo actions registered as work proceeds; run in reverse on failure."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._undo: list[tuple[str, Undo]] = []

    def add(self, name: str, undo: Undo) -> None:
        self._undo.append((name, undo))

    def add_sync(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        """Register a plain (non-async) undo call."""

        async def run() -> None:
            fn(*args)

        self._undo.append((name, run))

    async def run(self) -> None:
        for name, undo in reversed(self._undo):
            try:
                await undo()
            except Exception:
                log.exception("rollback of %s: undoing %s failed", self.what, name)
        self._undo.clear()


def remove_dir(path: str) -> None:
    """rm -rf that tolerates a missing directory."""
    shutil.rmtree(path, ignore_errors=True)
