"""Undo steps of a multi-step operation when a later step fails.

RunPodSandbox and CreateContainer acquire things one after the other (a name,
a netns, a CNI allocation, a snapshot, a containerd record …). Each step
registers its undo; on failure — including the caller's deadline — the undos
run in reverse order, each failure logged and the rest still run.
`run_or_undo` is the one launcher of such operations: it runs the steps to
completion even when the caller gives up, and undoes them when they fail.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from cri_runtime.completion import run_to_completion

log = logging.getLogger(__name__)

Undo = Callable[[], Awaitable[None]]
T = TypeVar("T")


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


async def run_or_undo(steps: Coroutine[Any, Any, T], undo: Rollback) -> T:
    """Run `steps`; on any failure, its cancellation included, run `undo` before raising.

    A caller that gives up (its deadline) does not cut the steps off: they
    finish, or fail and undo themselves, in the background, so nothing is
    left half-made and the next attempt finds a clean slate.
    """

    async def attempt() -> T:
        try:
            return await steps
        except BaseException:
            await undo.run()
            raise

    return await run_to_completion(attempt())


def remove_dir(path: str) -> None:
    """rm -rf that tolerates a missing directory."""
    shutil.rmtree(path, ignore_errors=True)
