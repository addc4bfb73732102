"""Start-up recovery: rebuild in-memory state before serving requests.

The gRPC server starts listening at once (so kubelet sees the socket), but
every RPC waits on `wait_recovered()` until each of its steps (one per component) has
rebuilt its index from containerd and the state dir. A component recovers
object by object, each bounded by `per_object_timeout`, so one wedged shim
cannot hold the node hostage; a component that fails is logged and the
server still serves what it could recover.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

RecoverFn = Callable[[float], Awaitable[None]]


@dataclass
class RecoveryReport:
    """What start-up recovery did, shown in verbose Status."""

    done: bool = False
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)


class Recovery:
    """Runs the recovery steps in order and gates RPCs until done."""

    def __init__(self, per_object_timeout: float, steps: Sequence[tuple[str, RecoverFn]] = ()) -> None:
        """`steps` (name, step) run in this order: pods before their containers, before their leftovers."""
        self.per_object_timeout = per_object_timeout
        self._steps = list(steps)
        self._done = asyncio.Event()
        self.report = RecoveryReport()

    async def run(self) -> None:
        started = time.monotonic()
        for name, step in self._steps:
            try:
                await step(self.per_object_timeout)
            except Exception as exc:
                log.exception("recovery of %s failed; continuing with what was recovered", name)
                self.report.failures[name] = f"{type(exc).__name__}: {exc}"
        self.report.seconds = round(time.monotonic() - started, 3)
        self.report.done = True
        self._done.set()
        log.info("recovery finished", extra={"fields": {"seconds": self.report.seconds,
                                                        "steps": len(self._steps)}})

    async def wait_recovered(self) -> None:
        await self._done.wait()
