"""Put IO relays in a cgroup of their own (cgroupfs), apart from the server's.

A relay outlives the server by design; in the server's cgroup it would count
against the service's TasksMax and memory limit, and a `systemctl restart`
with another KillMode would kill it. CRI-O gives conmon its own scope for the
same reason. The zygote is moved once, right after it starts, so every relay
it forks is born in the relay cgroup; a relay spawned directly is moved
after it starts. Every mounted hierarchy (v1 controllers, the named systemd
one and the unified v2 tree of a hybrid host) gets the same path. A cpuset
cgroup starts with no CPUs or memory nodes, so new levels copy their
parent's, as runc does.

Failure to move (read-only cgroupfs, no permission) is logged once and
otherwise harmless: the relay works wherever it runs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_warned: set[str] = set()


def hierarchies(mountinfo: str = "/proc/self/mountinfo") -> list[Path]:
    """Mount points of every cgroup (v1) and cgroup2 filesystem."""
    points: list[Path] = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            try:
                fstype = fields[fields.index("-") + 1]
            except (ValueError, IndexError):
                continue
            if fstype in ("cgroup", "cgroup2"):
                points.append(Path(fields[4]))
    return points


def _make(mount: Path, path: str) -> Path:
    """mkdir -p `path` under `mount`; new cpuset levels inherit cpus and mems."""
    current = mount
    for part in [p for p in path.split("/") if p]:
        parent, current = current, current / part
        if current.is_dir():
            continue
        try:
            current.mkdir()
        except FileExistsError:
            continue
        for knob in ("cpuset.cpus", "cpuset.mems"):
            source = parent / knob
            if source.exists() and (current / knob).exists():
                (current / knob).write_text(source.read_text().strip() or "\n")
    return current


def place(pid: int, path: str) -> list[str]:
    """Move `pid` into cgroup `path` of every hierarchy; the problems, if any (also logged once)."""
    if not path:
        return []
    problems: list[str] = []
    for mount in hierarchies():
        try:
            target = _make(mount, path)
            with open(target / "cgroup.procs", "w") as f:
                f.write(str(pid))
        except OSError as exc:
            problems.append(f"{mount}{path}: {exc.strerror or exc}")
    for problem in problems:
        if problem not in _warned:
            _warned.add(problem)
            log.warning("cannot move relays into their cgroup; they stay in the server's: %s", problem)
    return problems


def current(pid: int | str = "self") -> dict[str, str]:
    """/proc/PID/cgroup as {controllers: path} (tests and diagnostics)."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, cg = line.rstrip("\n").split(":", 2)
            out[controllers] = cg
    return out


def remove(path: str) -> None:
    """rmdir `path` (deepest first) in every hierarchy where it is empty; for tests and tidy-ups."""
    parts = [p for p in path.split("/") if p]
    for mount in hierarchies():
        for depth in range(len(parts), 0, -1):
            try:
                os.rmdir(mount.joinpath(*parts[:depth]))
            except OSError:
                break
