"""StopContainer: the stop signal, the grace period, SIGKILL, a shim that does not answer reaped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containerd import objects
from cri_runtime.containers.exits import ExitOps
from cri_runtime.containers.model import RUNNING, Container

log = logging.getLogger(__name__)

KILL_WAIT = 10.0


class StillRunning(errors.DeadlineExceeded):
    """The container's shim answers, but its process did not exit after SIGKILL."""


def signal_number(name: str) -> int:
    """SIGTERM / TERM / 15 → 15; unknown names fall back to SIGTERM."""
    if not name:
        return int(signal.SIGTERM)
    if name.isdigit():
        try:
            number = int(name)
        except ValueError:  # a Unicode digit such as "²"
            return int(signal.SIGTERM)
        return number if 0 < number <= signal.SIGRTMAX else int(signal.SIGTERM)
    key = name.upper()
    if not key.startswith("SIG"):
        key = "SIG" + key
    sig = getattr(signal.Signals, key, None)
    return int(sig) if sig is not None else int(signal.SIGTERM)


class StopOps(ExitOps):
    """StopContainer: the stop signal, the grace period, SIGKILL, a shim that does not answer reaped."""

    async def stop(self, id_or_prefix: str, timeout: int) -> None:
        """StopContainer: stop signal, wait `timeout` seconds, then SIGKILL; unknown is success.

        A shim that does not answer (every call to it passes its deadline) cannot
        stop the container: then the shim is killed with its process tree, as
        containerd does with a dead shim, and the container is reported exited.
        """
        container = self.index.find(id_or_prefix)
        if container is None:
            return
        if container.state != RUNNING:
            return
        try:
            await self._stop_task(container, timeout)
        except StillRunning:
            raise  # the shim answers; the process ignores SIGKILL (uninterruptible sleep): killing
            # the shim would end the pod's other containers and not this process
        except errors.DeadlineExceeded as exc:
            await self._reap_unresponsive(container, exc)

    async def _reap_unresponsive(self, container: Container, why: errors.CriError) -> None:
        sandbox_id = container.metadata.sandbox_id
        others = [c.id for c in self.index if c.metadata.sandbox_id == sandbox_id and c.id != container.id
                  and c.state == RUNNING]
        log.warning("shim of container does not answer; killing it with its process tree",
                    extra={"fields": {"id": container.id, "reason": why.message, "also_ends": others}})
        final = await objects.reap_unresponsive_task(self.ctd, container.id, [container.id, sandbox_id])
        async with container.lock:
            if final is None:  # containerd's cleanup already deleted it: killed by SIGKILL
                await self._record_exit(container, 128 + signal.SIGKILL, time.time_ns())
            else:
                await self._record_exit(container, final.exit_status, final.exited_at_ns)

    async def _stop_task(self, container: Container, timeout: int) -> None:
        stop_signal = self._stop_signal(container)
        if timeout > 0:
            await objects.kill_task(self.ctd, container.id, stop_signal)
            await self._wait_exit(container, timeout)
        if container.state == RUNNING:
            await objects.kill_task(self.ctd, container.id, signal.SIGKILL, all_processes=False)
            if not await self._wait_exit(container, KILL_WAIT):
                raise StillRunning(f"container {container.id} did not exit after SIGKILL")

    @staticmethod
    def _stop_signal(container: Container) -> int:
        """The config's stop_signal, else the image's StopSignal, else SIGTERM."""
        if container.config.stop_signal != api_pb2.RUNTIME_DEFAULT:
            name = api_pb2.Signal.Name(container.config.stop_signal)
            return signal_number(name)
        return signal_number(container.metadata.stop_signal)

    async def _wait_exit(self, container: Container, timeout: float) -> bool:
        """Wait for the exit event; poll containerd too so a lost event cannot hang us."""
        deadline = time.monotonic() + timeout
        while container.state == RUNNING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # asyncio.timeout, not wait_for: no task of its own, so the exit reaches us a loop turn sooner.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await container.exited.wait()
            if container.state == RUNNING:
                await self._catch_up_exit(container)
        return True

    async def stop_all_in_pod(self, sandbox_id: str) -> None:
        for container in [c for c in self.index if c.metadata.sandbox_id == sandbox_id]:
            await self.stop(container.id, 0)
