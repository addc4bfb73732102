"""Per-process facts cgroups do not count: threads, file descriptors, sockets, ulimits.

Read from the host's /proc for the PIDs containerd lists for a task (we run
in the host PID namespace), as cAdvisor does. Processes may exit while we
read; they are then skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessCounts:
    threads: int
    file_descriptors: int
    sockets: int


def _threads(proc: str, pid: int) -> int:
    try:
        with open(f"{proc}/{pid}/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def count_processes(pids: list[int], proc: str = "/proc") -> ProcessCounts:
    threads = fds = sockets = 0
    for pid in pids:
        threads += _threads(proc, pid)
        fd_dir = f"{proc}/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        fds += len(names)
        for name in names:
            try:
                if os.readlink(f"{fd_dir}/{name}").startswith("socket:"):
                    sockets += 1
            except OSError:
                continue
    return ProcessCounts(threads=threads, file_descriptors=fds, sockets=sockets)


# /proc/<pid>/limits rows cAdvisor reports, by its label value.
ULIMITS = {"Max open files": "max_open_files"}


def parse_limits(text: str) -> dict[str, int]:
    """Finite soft limits by cAdvisor name ("unlimited" is left out: the value is unsigned)."""
    out: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        for row, name in ULIMITS.items():
            if line.startswith(row):
                fields = line[len(row):].split()
                if fields and fields[0].isdigit():
                    out[name] = int(fields[0])
    return out


def soft_limits(pid: int, proc: str = "/proc") -> dict[str, int]:
    if pid <= 0:
        return {}
    try:
        with open(f"{proc}/{pid}/limits", encoding="utf-8") as f:
            return parse_limits(f.read())
    except OSError:
        return {}


@dataclass(frozen=True)
class FsInfo:
    """The filesystem holding writable layers: its device and capacity."""

    device: str
    capacity_bytes: int
    inodes_total: int
    inodes_free: int


def _device_of(path: str, mountinfo: str) -> str:
    """The mount source (e.g. /dev/vda1) of the filesystem holding `path`."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    want = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and len(fields) > 2 and fields[2] == want:
            rest = right.split()
            if len(rest) > 1:
                return rest[1]
    return ""


def fs_info(path: str, mountinfo_path: str = "/proc/self/mountinfo") -> FsInfo | None:
    try:
        vfs = os.statvfs(path)
        with open(mountinfo_path, encoding="utf-8") as f:
            mountinfo = f.read()
    except OSError:
        return None
    return FsInfo(device=_device_of(path, mountinfo) or path, capacity_bytes=vfs.f_blocks * vfs.f_frsize,
                  inodes_total=vfs.f_files, inodes_free=vfs.f_ffree)
