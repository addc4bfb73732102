"""Pod sandbox lifecycle: the manager composed of one mixin per operation.

Where each CRI call lives: run.py, stop.py, remove.py, status.py (and
store.py for List); exits.py handles the pause task's exit; recover.py
rebuilds the store after a restart.
"""

from __future__ import annotations

from cri_runtime.sandbox.exits import ExitOps
from cri_runtime.sandbox.recover import RecoverOps
from cri_runtime.sandbox.remove import RemoveOps
from cri_runtime.sandbox.run import RunOps
from cri_runtime.sandbox.status import StatusOps


class SandboxManager(RunOps, RemoveOps, StatusOps, RecoverOps, ExitOps):
    """All pod sandboxes of this runtime: the store (store.py) plus one module per operation."""
