"""A fake containerd adapter for the managers' unit tests: answers the calls their paths make, fails one on demand.

Pure logic only; tests/integration runs the managers against the real containerd.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from cri_runtime import errors

CREATE, DELETE = "containers.Create", "containers.Delete"
PREPARE, REMOVE_SNAPSHOT = "snapshots.Prepare", "snapshots.Remove"
CREATE_TASK, START_TASK = "tasks.Create", "tasks.Start"


class FakeContainerd:
    """containerd's records and snapshots in a dict and a set; a task is made and started, never kept."""

    def __init__(self) -> None:
        self.containers = SimpleNamespace(Create=CREATE, Delete=DELETE)
        self.snapshots = SimpleNamespace(Prepare=PREPARE, Remove=REMOVE_SNAPSHOT)
        self.tasks = SimpleNamespace(Get="tasks.Get", Delete="tasks.Delete", Create=CREATE_TASK, Start=START_TASK,
                                     Kill="tasks.Kill", Wait="tasks.Wait")
        self.started: set[str] = set()
        self.records: dict[str, Any] = {}
        self.snapshot_keys: set[str] = set()
        self.fail: str = ""  # the method that answers UNAVAILABLE
        self.address, self.namespace = "/fake/containerd.sock", "k8s.io"

    async def call(self, method: str, request: Any, what: str, *, lease: str | None = None,
                   timeout: float | None = None) -> Any:
        if method == self.fail:
            raise errors.Unavailable(f"{what}: injected failure")
        if method == CREATE:
            self.records[request.container.id] = request.container
        elif method == DELETE:
            if self.records.pop(request.id, None) is None:
                raise errors.NotFound(f"container {request.id}")
        elif method == PREPARE:
            self.snapshot_keys.add(request.key)
            return SimpleNamespace(mounts=[])
        elif method == REMOVE_SNAPSHOT:
            if request.key not in self.snapshot_keys:
                raise errors.NotFound(f"snapshot {request.key}")
            self.snapshot_keys.discard(request.key)
        elif method == CREATE_TASK:
            return SimpleNamespace(pid=4242)
        elif method == START_TASK:
            self.started.add(request.container_id)
        else:  # tasks are never kept: asking for one finds none
            raise errors.NotFound(what)
        return None
