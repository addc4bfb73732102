"""Small /proc and mount helpers the rig uses to find and clean up what it started.

Reading /proc directly (instead of ``ps``) keeps the leak check exact: a process is
identified by (pid, start time), so a recycled pid is never mistaken for an old one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_MNT_DETACH = 2


@dataclass(frozen=True)
class ProcInfo:
    """One process as seen in /proc at snapshot time."""

    pid: int
    ppid: int
    start_time: int  # clock ticks since boot: (pid, start_time) is unique
    comm: str
    cmdline: str
    #: "/" in our mount namespace; in another one (a container) a description of its "/"
    #: mount: fstype, source, options (overlay lowerdir/upperdir name the snapshot dirs).
    root: str
    state: str = "R"  # Z = zombie

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start_time)

    def describe(self) -> str:
        return f"pid {self.pid} ({self.comm}) ppid {self.ppid}: {self.cmdline[:200]}"


def _read_proc(pid: int) -> ProcInfo | None:
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"{base}/cmdline", "rb") as f:
            raw_cmd = f.read()
    except OSError:
        return None
    # comm is in parentheses and may itself contain ") "; split at the last one.
    lpar, rpar = stat.index("("), stat.rindex(")")
    comm = stat[lpar + 1 : rpar]
    fields = stat[rpar + 2 :].split()
    state, ppid, start_time = fields[0], int(fields[1]), int(fields[19])
    root = _root_mount(pid)
    cmdline = raw_cmd.replace(b"\0", b" ").decode(errors="replace").strip()
    return ProcInfo(pid, ppid, start_time, comm, cmdline, root, state)


def _mount_ns(pid: int | str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return ""


_OWN_MNT_NS = _mount_ns("self")


def _root_mount(pid: int) -> str:
    """Describe the "/" mount of a process in a foreign mount namespace ("/" otherwise).

    ``/proc/PID/root`` reads as "/" after pivot_root, but the mount table of the process
    still shows where its root came from (the overlay snapshot paths on the host).
    """
    ns = _mount_ns(pid)
    if not ns or ns == _OWN_MNT_NS:
        return "/"
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        if len(fields) > 4 and fields[4] == "/":
            return f"{post} root={fields[3]}"
    return ""


def list_processes() -> dict[int, ProcInfo]:
    """All processes (threads excluded) by pid."""
    procs: dict[int, ProcInfo] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _read_proc(int(name))
            if info is not None:
                procs[info.pid] = info
    return procs


def descendants(procs: dict[int, ProcInfo], roots: Iterable[int]) -> set[int]:
    """pids of every process below ``roots`` (roots excluded)."""
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def kill_and_reap(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL ``pids`` and wait until they are gone; returns pids still alive after timeout.

    Processes that are not our children cannot be waited for, so we poll /proc until the
    pid disappears or becomes a zombie of someone else (then it holds no resources).
    """
    pending = set(pids)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    pending.discard(pid)
                    continue
            except ChildProcessError:
                pass
            if not _alive(pid):
                pending.discard(pid)
        if pending:
            time.sleep(0.05)
    return sorted(pending)


def _alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/self/mountinfo (the fields the rig cares about)."""

    mount_id: int
    mount_point: str
    fstype: str
    source: str
    super_options: str

    def describe(self) -> str:
        return f"{self.fstype} on {self.mount_point} (source {self.source})"


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def list_mounts() -> list[MountInfo]:
    """Mounts of our own mount namespace."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            fstype, source, super_opts = ([*post.split(), "", "", ""])[:3]
            mounts.append(MountInfo(int(fields[0]), _unescape(fields[4]), fstype, source, super_opts))
    return mounts


def is_under(path: str, directory: Path | str) -> bool:
    d = str(directory).rstrip("/")
    return path == d or path.startswith(d + "/")


def unmount_under(directory: Path) -> list[str]:
    """Lazily unmount every mount at or below ``directory``, deepest first.

    Returns the mount points that could not be unmounted.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    failed: list[str] = []
    # Repeat: a mount point may be stacked several times.
    for _ in range(10):
        targets = sorted(
            {m.mount_point for m in list_mounts() if is_under(m.mount_point, directory)},
            key=lambda p: p.count("/"),
            reverse=True,
        )
        if not targets:
            return []
        failed = []
        for target in targets:
            if libc.umount2(target.encode(), _MNT_DETACH) != 0:
                failed.append(f"{target}: {os.strerror(ctypes.get_errno())}")
    return failed


def cgroup_paths(pid: int) -> list[Path]:
    """The cgroup v1/v2 directories ``pid`` belongs to (to remove them once it is dead)."""
    paths: list[Path] = []
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if rel in ("", "/"):
            continue
        if controllers == "":
            base = Path("/sys/fs/cgroup/unified")
            if not base.is_dir():
                base = Path("/sys/fs/cgroup")
        else:
            name = controllers.replace("name=", "")
            base = Path("/sys/fs/cgroup") / name
        paths.append(base / rel.lstrip("/"))
    return paths


def remove_cgroups(paths: Iterable[Path]) -> None:
    """rmdir the given cgroup directories (and their now-empty children) if possible."""
    for path in paths:
        if not path.is_dir():
            continue
        for sub in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    sub.rmdir()
        with contextlib.suppress(OSError):
            path.rmdir()
