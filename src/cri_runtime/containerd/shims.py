"""Finding and killing a task's shim and the runc processes it runs, through /proc.

A shim that does not answer (frozen, or blocked on a `runc exec` that never
returns) blocks every task call of its containers, and containerd cannot
help: it only talks to the shim. Like containerd's own dead-shim cleanup, we
then act on the processes themselves:

* a stuck `runc exec` is a child of the shim whose command line names the
  exec's pid file (`<bundle>/<exec-id>.pid`); killing it (and its `runc init`)
  makes the shim answer again;
* a shim that does not answer at all is killed with its whole process tree;
  containerd sees the connection drop, runs the shim's `delete` cleanup and
  forgets the task.

The process table is read directly from /proc (no library needed for three
fields per process; psutil would add a compiled dependency for this).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Collection
from dataclasses import dataclass

log = logging.getLogger(__name__)

SHIM_PREFIX = "containerd-shim"


@dataclass
class StuckCounters:
    """How often a shim did not answer, for the metrics exporter to read (monotonic counts)."""

    stats_skipped: int = 0  # a container left out of a stats answer: its shim did not answer in time
    execs_killed: int = 0  # a stuck `runc exec` killed by the exec watchdog
    shims_killed: int = 0  # an unresponsive shim killed with its process tree


COUNTERS = StuckCounters()


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: tuple[str, ...]
    start_ticks: int = 0  # start time in clock ticks after boot (/proc/PID/stat field 22)


def _read_proc(pid: int, proc_root: str) -> Proc | None:
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"{proc_root}/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name in parentheses may hold spaces: fields resume after the last ')'.
    fields = stat[stat.rfind(b")") + 2:].split()
    if len(fields) < 2:
        return None
    argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
    start = int(fields[19]) if len(fields) > 19 else 0
    return Proc(pid=pid, ppid=int(fields[1]), argv=argv, start_ticks=start)


def process_table(proc_root: str = "/proc") -> list[Proc]:
    """Every process readable right now (those exiting meanwhile are skipped)."""
    out = []
    for name in os.listdir(proc_root):
        if name.isdigit():
            p = _read_proc(int(name), proc_root)
            if p is not None:
                out.append(p)
    return out


def _flag(argv: tuple[str, ...], name: str) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg in (name, "-" + name):
            return argv[i + 1]
    return None


def find_shim(table: list[Proc], containerd_address: str, namespace: str, task_ids: list[str]) -> Proc | None:
    """The shim serving one of `task_ids` (a pod's shim is named after the pod) for our containerd."""
    for p in our_shims(table, containerd_address, namespace):
        if _flag(p.argv, "-id") in task_ids:
            return p
    return None


def descendants(table: list[Proc], root: int) -> list[Proc]:
    """Every process below `root`, parents before children."""
    children: dict[int, list[Proc]] = {}
    for p in table:
        children.setdefault(p.ppid, []).append(p)
    out: list[Proc] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child.pid)
    return out


def stuck_runc(table: list[Proc], shim_pid: int, marker: str) -> list[Proc]:
    """Children of the shim whose command line contains `marker` (e.g. an exec's pid file name)."""
    return [p for p in table if p.ppid == shim_pid and any(marker in a for a in p.argv)]


def kill_tree(table: list[Proc], root: Proc) -> list[int]:
    """SIGKILL `root` and everything below it (SIGKILL also ends a stopped process); returns the pids."""
    victims = [root, *descendants(table, root.pid)]
    killed = []
    for p in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
            killed.append(p.pid)
    return killed


def our_shims(table: list[Proc], containerd_address: str, namespace: str) -> list[Proc]:
    """Every shim of our containerd and namespace."""
    address = containerd_address.removeprefix("unix://")
    return [p for p in table if p.argv and os.path.basename(p.argv[0]).startswith(SHIM_PREFIX)
            and _flag(p.argv, "-address") == address and _flag(p.argv, "-namespace") == namespace]


def kill_stuck_exec(containerd_address: str, namespace: str, exec_id: str) -> list[int]:
    """Kill the `runc exec` of `exec_id` (and its children) if it still runs under one of our shims.

    The shim runs `runc exec --pid-file <bundle>/<exec-id>.pid …`; exec IDs are
    random, so that name picks out exactly this exec's runc.
    """
    table = process_table()
    killed: list[int] = []
    for shim in our_shims(table, containerd_address, namespace):
        for p in stuck_runc(table, shim.pid, f"{exec_id}.pid"):
            killed += kill_tree(table, p)
    if killed:
        COUNTERS.execs_killed += 1
        log.warning("killed stuck runc exec", extra={"fields": {"exec_id": exec_id, "pids": killed}})
    return killed


def age_seconds(p: Proc, proc_root: str = "/proc") -> float:
    """How long `p` has been running."""
    with open(f"{proc_root}/uptime", encoding="ascii") as f:
        uptime = float(f.read().split()[0])
    return uptime - p.start_ticks / os.sysconf("SC_CLK_TCK")


def is_our_exec(p: Proc) -> bool:
    """A `runc exec` the shim runs for one of our execs (pid file `<bundle>/exec-<hex>.pid`)."""
    pid_file = _flag(p.argv, "--pid-file") or ""
    return "exec" in p.argv and os.path.basename(pid_file).startswith("exec-")


def kill_stale_execs(containerd_address: str, namespace: str, older_than: float,
                     proc_root: str = "/proc", container_ids: Collection[str] | None = None) -> list[int]:
    """Kill every `runc exec` of ours running longer than `older_than` seconds under our shims.

    The per-exec watchdog covers execs this process started; this sweep covers the rest,
    e.g. one left stuck by an earlier run of cri-runtime (the jam outlives a restart).
    `container_ids` limits it to those containers (runc's last argument): the server's own,
    never another runtime's on the same containerd namespace.
    """
    table = process_table(proc_root)
    killed: list[int] = []
    for shim in our_shims(table, containerd_address, namespace):
        for p in table:
            if p.ppid == shim.pid and is_our_exec(p) and age_seconds(p, proc_root) > older_than \
                    and (container_ids is None or (p.argv and p.argv[-1] in container_ids)):
                killed += kill_tree(table, p)
    if killed:
        COUNTERS.execs_killed += 1
        log.warning("killed stale runc exec processes", extra={"fields": {"pids": killed}})
    return killed


def kill_shim(containerd_address: str, namespace: str, task_ids: list[str]) -> list[int]:
    """Kill the shim serving `task_ids` with its whole process tree (containers included)."""
    table = process_table()
    shim = find_shim(table, containerd_address, namespace, task_ids)
    if shim is None:
        return []
    killed = kill_tree(table, shim)
    log.warning("killed unresponsive shim", extra={"fields": {"shim": shim.pid, "tasks": task_ids,
                                                              "pids": killed}})
    return killed
