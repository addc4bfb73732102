"""Container lifecycle: the manager composed of one mixin per operation.

A container is a containerd container (spec, snapshot, our metadata
extension) plus, once started, a task whose stdio FIFOs are read by a
detached IO relay that writes the CRI log — so neither a restart of
cri-runtime nor its death can stop the container or lose output.

Where each CRI call lives: create.py, start.py, stop.py, remove.py,
status.py (and store.py for List), update.py; exits.py is the one path
to EXITED; recover.py rebuilds the store after a restart.
"""

from __future__ import annotations

import asyncio

from cri_runtime.containers.recover import RecoverOps
from cri_runtime.containers.remove import RemoveOps
from cri_runtime.containers.start import StartOps
from cri_runtime.containers.status import StatusOps
from cri_runtime.containers.update import UpdateOps


class ContainerManager(RecoverOps, UpdateOps, RemoveOps, StartOps, StatusOps):
    """All containers of this runtime: the store (store.py) plus one module per operation."""

    async def close(self) -> None:
        """Server shutdown: finish background removals, stop the relay zygote (relays run on)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        await self.relay_launcher.close()
