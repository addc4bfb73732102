"""A snapshot of the kernel's process table from /proc: pids, parents, command lines, cgroups, netns.

Read once per command so every view is consistent; a process that exits
while we read is simply absent. psutil would add a dependency for the five
fields we need, all one file read each.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field


@dataclass
class Proc:
    pid: int
    ppid: int
    comm: str
    argv: list[str]
    cgroup: str  # the v1 "pids" (else memory, else unified) cgroup path
    netns: int  # inode of /proc/PID/ns/net, 0 when unreadable
    children: list[int] = field(default_factory=list)

    @property
    def cmd(self) -> str:
        return " ".join(self.argv) if self.argv else f"[{self.comm}]"

    def flag(self, name: str) -> str:
        """The value after `name` on the command line (`-id X` style), or ""."""
        for i, arg in enumerate(self.argv[:-1]):
            if arg == name:
                return self.argv[i + 1]
        return ""


def _cgroup(pid: int) -> str:
    by_controller: dict[str, str] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                for controller in parts[1].split(",") or [""]:
                    by_controller[controller] = parts[2]
    for name in ("pids", "memory", ""):
        if name in by_controller:
            return by_controller[name]
    return ""


def read_proc(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    # comm may contain spaces and parentheses: it ends at the last ")".
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    ppid = int(stat[stat.rindex(")") + 2:].split()[1])
    try:
        netns = os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        netns = 0
    return Proc(pid=pid, ppid=ppid, comm=comm, argv=argv, cgroup=_cgroup(pid), netns=netns)


class ProcTable:
    """All processes, with children lists."""

    def __init__(self, procs: dict[int, Proc]) -> None:
        self.procs = procs
        for p in procs.values():
            parent = procs.get(p.ppid)
            if parent is not None:
                parent.children.append(p.pid)
        for p in procs.values():
            p.children.sort()

    @classmethod
    def read(cls) -> ProcTable:
        procs: dict[int, Proc] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                p = read_proc(int(name))
                if p is not None:
                    procs[p.pid] = p
        return cls(procs)

    def get(self, pid: int) -> Proc | None:
        return self.procs.get(pid)

    def descendants(self, pid: int) -> list[int]:
        out: list[int] = []
        stack = list(self.procs[pid].children) if pid in self.procs else []
        while stack:
            child = stack.pop()
            out.append(child)
            stack.extend(self.procs[child].children if child in self.procs else [])
        return out

    def shims(self, address: str, namespace: str | None = None) -> list[Proc]:
        """containerd-shim-runc-v2 processes serving tasks of the containerd at `address`."""
        found = []
        for p in self.procs.values():
            if not p.argv or not os.path.basename(p.argv[0]).startswith("containerd-shim"):
                continue
            if p.flag("-address") != address or (namespace is not None and p.flag("-namespace") != namespace):
                continue
            found.append(p)
        return sorted(found, key=lambda p: p.pid)


def age_of(pid: int) -> float | None:
    """Seconds since the process started (from /proc/PID/stat starttime), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError):
        return None
    start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def listening_socket_inode(path: str) -> int:
    """The inode of the unix socket listening at `path` (from /proc/net/unix), 0 if none."""
    with contextlib.suppress(OSError), open("/proc/net/unix") as f:
        next(f, None)
        for line in f:
            parts = line.split()
            # Num RefCount Protocol Flags Type St Inode Path; flags 00010000 = listening
            if len(parts) >= 8 and parts[7] == path and parts[3] == "00010000":
                return int(parts[6])
    return 0


def socket_owner(table: ProcTable, path: str) -> Proc | None:
    """The process holding the listening socket at `path` (containerd for its address)."""
    inode = listening_socket_inode(path)
    if not inode:
        return None
    target = f"socket:[{inode}]"
    candidates = [p for p in table.procs.values() if p.comm.startswith("containerd") and "shim" not in p.comm]
    candidates += [p for p in table.procs.values() if p not in candidates]
    for p in candidates:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{p.pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{p.pid}/fd/{fd}") == target:
                        return p
    return None


def holds_file(pid: int, path: str) -> bool:
    """True when `pid` has `path` open."""
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    return True
    return False


def open_files() -> dict[str, int]:
    """Every path some process has open, with one pid holding it."""
    found: dict[str, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{name}/fd"):
                with contextlib.suppress(OSError):
                    found.setdefault(os.readlink(f"/proc/{name}/fd/{fd}"), int(name))
    return found


def mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, source) of every mount in our mount namespace."""
    out: list[tuple[str, str, str]] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) >= 5 and len(rest) >= 2:
                point = fields[4].encode().decode("unicode_escape")
                out.append((point, rest[0], rest[1]))
    return out
