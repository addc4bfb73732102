"""Deadlines for calls that containerd forwards to a shim (the Tasks service).

containerd answers Tasks calls by asking the task's shim over ttrpc and waits
as long as its caller does. A shim that is frozen, or blocked behind a
`runc exec` that never returns, would then hold every caller forever. Each
Tasks method therefore gets a deadline of its own; containerd passes it on to
the shim, whose runc calls are bounded by it too. Wait is the exception: it
lasts as long as the process runs, and its callers bound it themselves.
"""

from __future__ import annotations

from typing import Any

TASKS_SERVICE = "/containerd.services.tasks.v1.Tasks/"

#: Seconds per Tasks method; methods not listed get DEFAULT_TASK_CALL_TIMEOUT.
TASK_CALL_TIMEOUTS: dict[str, float | None] = {
    "Wait": None,
    # runc create/start of a container, the shim start included: slow on a loaded node.
    "Create": 60.0,
    "Start": 60.0,
    "Exec": 30.0,
    "Update": 30.0,
    "Delete": 30.0,
    "DeleteProcess": 30.0,
    "Checkpoint": None,
    "Kill": 10.0,
    "Get": 10.0,
    "List": 10.0,
    "ListPids": 10.0,
    "Metrics": 10.0,
    "ResizePty": 10.0,
    "CloseIO": 10.0,
}
DEFAULT_TASK_CALL_TIMEOUT = 30.0


def method_path(rpc: Any) -> str:
    """The gRPC method path of a stub method ("" when it does not say)."""
    return str(getattr(rpc, "_path", ""))


def default_timeout(rpc: Any) -> float | None:
    """The deadline a call of `rpc` gets when its caller gives none (None: unbounded)."""
    path = method_path(rpc)
    if not path.startswith(TASKS_SERVICE):
        return None
    return TASK_CALL_TIMEOUTS.get(path.removeprefix(TASKS_SERVICE), DEFAULT_TASK_CALL_TIMEOUT)
