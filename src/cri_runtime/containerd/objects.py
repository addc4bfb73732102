"""Building and reading the containerd objects that back pods and containers.

Pods and containers are each one containerd container (spec, runtime,
snapshot, labels, extensions) plus, while they run, one task. These helpers
keep the encodings (type URLs, label names, Any payloads) in one place so the
sandbox and container code only deals with Python values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import any_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2
from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.containerd.types import mount_pb2
from cri_protos.containerd.types.runc.options import oci_pb2 as runc_options_pb2
from cri_protos.containerd.types.task import task_pb2
from cri_runtime import errors
from cri_runtime.config import RuntimeHandlerConfig
from cri_runtime.containerd import shims
from cri_runtime.containerd.connection import Containerd

log = logging.getLogger(__name__)

SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
RUNC_OPTIONS_TYPE_URL = "containerd.runc.v1.Options"

# Our label prefix: containerd's built-in CRI plugin only adopts objects
# labelled io.cri-containerd.*, and we only adopt io.cri-runtime.* ones.
LABEL_PREFIX = "io.cri-runtime"
KIND_LABEL = f"{LABEL_PREFIX}.kind"
KIND_SANDBOX = "sandbox"
KIND_CONTAINER = "container"
SANDBOX_ID_LABEL = f"{LABEL_PREFIX}.sandbox-id"
# On every snapshot we prepare, so leftovers of an interrupted create can be found.
SNAPSHOT_OWNER_LABEL = f"{LABEL_PREFIX}.owner"


def spec_any(spec: dict[str, Any]) -> any_pb2.Any:
    """An OCI runtime spec as containerd stores it."""
    return any_pb2.Any(type_url=SPEC_TYPE_URL, value=json.dumps(spec, separators=(",", ":")).encode())


def spec_from_any(value: any_pb2.Any) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(value.value or b"{}")
    return spec


def runc_options_any(*, binary_name: str, root: str, systemd_cgroup: bool) -> any_pb2.Any:
    opts = runc_options_pb2.Options(binary_name=binary_name, root=root, systemd_cgroup=systemd_cgroup)
    return any_pb2.Any(type_url=RUNC_OPTIONS_TYPE_URL, value=opts.SerializeToString())


def runtime_of(handler: RuntimeHandlerConfig, cgroup_driver: str) -> containers_pb2.Container.Runtime:
    """The record's runtime: the handler's shim with its runc options."""
    return containers_pb2.Container.Runtime(
        name=handler.runtime_type,
        options=runc_options_any(binary_name=handler.binary_name, root=handler.root,
                                 systemd_cgroup=cgroup_driver == "systemd"))


def json_extension(type_name: str, version: int, data: dict[str, Any]) -> any_pb2.Any:
    """Versioned metadata stored as a container extension (JSON in an Any)."""
    payload = {"version": version, "data": data}
    return any_pb2.Any(type_url=f"{LABEL_PREFIX}/{type_name}",
                       value=json.dumps(payload, sort_keys=True).encode())


def read_json_extension(container: containers_pb2.Container, key: str, type_name: str) -> tuple[int, dict[str, Any]]:
    """(version, data) of an extension written by `json_extension`."""
    ext = container.extensions.get(key)
    if ext is None:
        raise errors.Internal(f"container {container.id} has no {key} extension")
    if ext.type_url != f"{LABEL_PREFIX}/{type_name}":
        raise errors.Internal(f"container {container.id}: unexpected {key} type {ext.type_url!r}")
    payload = json.loads(ext.value)
    return int(payload["version"]), dict(payload["data"])


async def list_containers(ctd: Containerd, kind: str) -> list[containers_pb2.Container]:
    """Our containerd containers of one kind (sandbox or container)."""
    req = containers_pb2.ListContainersRequest(filters=[f'labels."{KIND_LABEL}"=="{kind}"'])
    resp = await ctd.call(ctd.containers.List, req, f"list {kind} records")
    return list(resp.containers)


async def recover_each(ctd: Containerd, kind: str, recover_one: Callable[[containers_pb2.Container], Awaitable[None]],
                       per_object_timeout: float) -> None:
    """Start-up recovery of every record of `kind`, each bounded by its own timeout.

    One broken or wedged record is logged and skipped; it never stops the others.
    """
    for record in await list_containers(ctd, kind):
        try:
            await asyncio.wait_for(recover_one(record), per_object_timeout)
        except Exception as exc:
            log.error("could not recover %s %s: %s", kind, record.id, exc)


async def create_container(ctd: Containerd, container: containers_pb2.Container, lease: str | None) -> None:
    await ctd.call(ctd.containers.Create, containers_pb2.CreateContainerRequest(container=container),
                   f"create containerd container {container.id}", lease=lease)


async def delete_container(ctd: Containerd, container_id: str) -> None:
    """Delete the record; a missing one is fine (idempotent removal)."""
    with contextlib.suppress(errors.NotFound):
        await ctd.call(ctd.containers.Delete, containers_pb2.DeleteContainerRequest(id=container_id),
                       f"delete containerd container {container_id}")


async def prepare_snapshot(ctd: Containerd, snapshotter: str, key: str, parent: str,
                           lease: str | None, labels: dict[str, str] | None = None) -> list[mount_pb2.Mount]:
    """A writable snapshot on top of an image's top layer chain ID.

    Without a lease the caller must make sure something references it (a container record).
    """
    req = snapshots_pb2.PrepareSnapshotRequest(snapshotter=snapshotter, key=key, parent=parent,
                                               labels={SNAPSHOT_OWNER_LABEL: "cri-runtime", **(labels or {})})
    resp = await ctd.call(ctd.snapshots.Prepare, req, f"prepare snapshot {key}", lease=lease)
    return list(resp.mounts)


async def snapshot_mounts(ctd: Containerd, snapshotter: str, key: str) -> list[mount_pb2.Mount]:
    req = snapshots_pb2.MountsRequest(snapshotter=snapshotter, key=key)
    resp = await ctd.call(ctd.snapshots.Mounts, req, f"mounts of snapshot {key}")
    return list(resp.mounts)


async def remove_snapshot(ctd: Containerd, snapshotter: str, key: str) -> None:
    with contextlib.suppress(errors.NotFound):
        await ctd.call(ctd.snapshots.Remove, snapshots_pb2.RemoveSnapshotRequest(snapshotter=snapshotter, key=key),
                       f"remove snapshot {key}")


@dataclass(frozen=True)
class TaskState:
    """What containerd knows about a task right now."""

    pid: int
    status: int  # containerd.v1.types.Status
    exit_status: int
    exited_at_ns: int

    @property
    def running(self) -> bool:
        return self.status in (task_pb2.RUNNING, task_pb2.PAUSED, task_pb2.PAUSING)

    @property
    def stopped(self) -> bool:
        return self.status == task_pb2.STOPPED

    @property
    def created(self) -> bool:
        return self.status == task_pb2.CREATED


async def task_state(ctd: Containerd, container_id: str, timeout: float | None = None) -> TaskState | None:
    """The task's state, or None when the container has no task."""
    try:
        resp = await ctd.call(ctd.tasks.Get, tasks_pb2.GetRequest(container_id=container_id),
                              f"get task {container_id}", timeout=timeout)
    except errors.NotFound:
        return None
    p = resp.process
    exited = p.exited_at.seconds * 1_000_000_000 + p.exited_at.nanos
    return TaskState(pid=p.pid, status=p.status, exit_status=p.exit_status, exited_at_ns=exited)


def shim_gone(exc: errors.CriError) -> bool:
    """containerd's answer when the shim's connection dropped (the shim died or was killed)."""
    return "ttrpc: closed" in exc.message or "ttrpc: client shutting down" in exc.message


async def kill_task(ctd: Containerd, container_id: str, signal: int, *, all_processes: bool = False) -> None:
    """Signal the task's init (or all its processes); a task that is gone or exiting is fine.

    A kill racing the task's exit fails in several ways ("process already
    finished", NotFound, or "ttrpc: closed" while the shim shuts down), so on
    any failure we ask containerd whether the task still runs before reporting it.
    """
    req = tasks_pb2.KillRequest(container_id=container_id, signal=signal, all=all_processes)
    try:
        await ctd.call(ctd.tasks.Kill, req, f"signal task {container_id}")
    except errors.NotFound:
        return
    except errors.DeadlineExceeded:
        raise  # the shim does not answer: asking it again would wait as long
    except errors.CriError:
        state = await task_state(ctd, container_id)
        if state is None or state.stopped:
            return
        raise


async def delete_task(ctd: Containerd, container_id: str) -> TaskState | None:
    """Delete the task (it must have exited); returns its final state if it existed."""
    try:
        resp = await ctd.call(ctd.tasks.Delete, tasks_pb2.DeleteTaskRequest(container_id=container_id),
                              f"delete task {container_id}")
    except errors.NotFound:
        return None
    except errors.CriError as exc:
        if not shim_gone(exc) or await task_state(ctd, container_id) is not None:
            raise
        return None  # the shim died and containerd's cleanup already removed the task
    exited = resp.exited_at.seconds * 1_000_000_000 + resp.exited_at.nanos
    return TaskState(pid=resp.pid, status=task_pb2.STOPPED, exit_status=resp.exit_status, exited_at_ns=exited)


async def wait_task(ctd: Containerd, container_id: str, timeout: float | None = None) -> TaskState | None:
    """Block until the task's init exits (Tasks.Wait); None if there is no task."""
    try:
        async with asyncio.timeout(timeout):  # no task of its own (as wait_for makes): answered a loop turn sooner
            resp = await ctd.call(ctd.tasks.Wait, tasks_pb2.WaitRequest(container_id=container_id),
                                  f"wait for task {container_id}")
    except errors.NotFound:
        return None
    except TimeoutError:
        raise errors.DeadlineExceeded(f"task {container_id} still running after {timeout:g}s") from None
    except errors.CriError as exc:
        if not shim_gone(exc):
            raise
        # The shim died while we waited (killed, or it exited): the task has ended with it.
        state = await task_state(ctd, container_id, timeout=timeout)
        if state is None or state.stopped:
            return state
        raise
    exited = resp.exited_at.seconds * 1_000_000_000 + resp.exited_at.nanos
    return TaskState(pid=0, status=task_pb2.STOPPED, exit_status=resp.exit_status, exited_at_ns=exited)


#: Seconds a reaped shim's task may take to disappear from containerd.
REAP_TIMEOUT = 30.0
_REAP_POLL = 0.2


async def reap_unresponsive_task(ctd: Containerd, container_id: str, shim_ids: list[str],
                                 timeout: float = REAP_TIMEOUT) -> TaskState | None:
    """End a task whose shim does not answer; returns its final state if containerd still had one.

    containerd's own dead-shim cleanup is the model: the shim and everything
    below it are killed, containerd sees its connection drop, runs the shim's
    `delete` (runc delete --force, bundle removal) and forgets the task. We
    then delete what is left of the task record.
    """
    killed = await asyncio.to_thread(shims.kill_shim, ctd.address, ctd.namespace, shim_ids)
    if killed:
        shims.COUNTERS.shims_killed += 1
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = await task_state(ctd, container_id, timeout=2.0)
        except errors.DeadlineExceeded:
            state = TaskState(0, task_pb2.UNKNOWN, 0, 0)  # still asking the dying shim
        if state is None:
            return None
        if state.stopped:
            return await delete_task(ctd, container_id)
        if time.monotonic() >= deadline:
            raise errors.DeadlineExceeded(
                f"task {container_id}: its shim did not answer and was killed "
                f"(pids {killed or 'none found'}), but containerd still reports the task after {timeout:g}s")
        await asyncio.sleep(_REAP_POLL)
