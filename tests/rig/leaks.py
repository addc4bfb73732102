"""Leak check: what did the test session leave behind on the host?

A :class:`Snapshot` records processes, mounts, network namespaces, network links and
host-local CNI IP allocations. :func:`find_leaks` compares the snapshot taken at session
start with one taken at the end (after every fixture is torn down) and lists everything
new that still exists.

Two scopes:

* ``session`` -- only what is provably this session's: anything naming the session dir
  (process cmdline or root, mount point or mount options), descendants of the pytest
  process, links and CNI networks named with the session token, leftovers inside the
  session dir. Safe while other runtimes (a conformance run, another test session) work
  on the same machine.
* ``global`` (default) -- additionally every new runtime-looking process (containerd,
  shims, runc, pause, docker-registry, cri-runtime), nsfs/overlay/shm mount, entry in
  /run/netns, veth/bridge link and host-local allocation, whoever made it. This is the
  strict check CI runs; select ``CRIRT_LEAK_SCOPE=session`` on a shared machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import paths, system

NETNS_DIRS = (Path("/run/netns"), Path("/var/run/netns"))
CNI_NETWORKS_DIR = Path("/var/lib/cni/networks")
#: Process names a CRI test stack starts (comm is cut to 15 chars by the kernel).
RUNTIME_COMMS = ("containerd", "containerd-shim", "runc", "pause", "docker-registry", "cri-runtime")
WATCHED_FSTYPES = ("nsfs", "overlay", "tmpfs", "proc", "mqueue", "sysfs", "cgroup", "cgroup2", "devpts")
SCOPE_ENV = "CRIRT_LEAK_SCOPE"
_SESSION_DIR_RE = re.compile(rf"/({re.escape(paths.NAME_PREFIX)}-[0-9a-f]{{6}})(?![0-9A-Za-z])")


@dataclass(frozen=True)
class Link:
    name: str
    kind: str  # veth, bridge, ... ("" for plain devices)
    master: str


@dataclass
class Snapshot:
    """Host state relevant to leaks at one moment."""

    processes: dict[tuple[int, int], system.ProcInfo] = field(default_factory=dict)
    mounts: dict[tuple[int, str], system.MountInfo] = field(default_factory=dict)
    netns: set[str] = field(default_factory=set)
    links: dict[str, Link] = field(default_factory=dict)
    cni_allocations: set[str] = field(default_factory=set)
    session_files: set[str] = field(default_factory=set)


def _netns_entries() -> set[str]:
    found = set()
    for d in NETNS_DIRS:
        try:
            found |= {str(d.resolve() / name) for name in os.listdir(d)}
        except OSError:
            continue
    return found


def _links() -> dict[str, Link]:
    try:
        out = subprocess.run(
            ["ip", "-j", "-d", "link", "show"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    links = {}
    for entry in json.loads(out or "[]"):
        kind = entry.get("linkinfo", {}).get("info_kind", "")
        links[entry["ifname"]] = Link(entry["ifname"], kind, entry.get("master", ""))
    return links


def _cni_allocations() -> set[str]:
    """host-local IPAM files (one per allocated IP) of every network."""
    found: set[str] = set()
    try:
        networks = list(CNI_NETWORKS_DIR.iterdir())
    except OSError:
        return found
    for net in networks:
        try:
            for f in net.iterdir():
                if f.name != "lock" and not f.name.startswith("last_reserved_ip"):
                    found.add(str(f))
        except OSError:
            continue
    return found


def take_snapshot() -> Snapshot:
    """Read the current host state (cheap: /proc, mountinfo, one ``ip`` call)."""
    return Snapshot(
        processes={p.key: p for p in system.list_processes().values()},
        mounts={(m.mount_id, m.mount_point): m for m in system.list_mounts()},
        netns=_netns_entries(),
        links=_links(),
        cni_allocations=_cni_allocations(),
        session_files=_session_files(),
    )


def _session_files() -> set[str]:
    """Entries of the session dir (each rig object owns one while it lives)."""
    sdir = paths.session_dir_if_created()
    try:
        return {str(sdir / name) for name in os.listdir(sdir) if name != paths.OWNER_FILE} if sdir else set()
    except OSError:
        return set()


def scope_from_env() -> str:
    scope = os.environ.get(SCOPE_ENV, "global")
    if scope not in ("global", "session"):
        raise ValueError(f"{SCOPE_ENV} must be 'global' or 'session', not {scope!r}")
    return scope


def find_leaks(
    before: Snapshot,
    after: Snapshot,
    *,
    session_dir: Path | None,
    scope: str = "global",
    self_pid: int | None = None,
) -> list[str]:
    """Human-readable descriptions of everything new in ``after`` (empty list: clean)."""
    self_pid = os.getpid() if self_pid is None else self_pid
    strict = scope == "global"
    sdir = str(session_dir) if session_dir else None
    own_name = session_dir.name if session_dir else None

    def foreign(text: str) -> bool:
        """Names another test session's rig dir: that session's business, even when strict."""
        return any(m.group(1) != own_name for m in _SESSION_DIR_RE.finditer(text))

    token = session_dir.name.rsplit("-", 1)[-1] if session_dir else None
    leaks: list[str] = []

    # processes ---------------------------------------------------------------
    procs = {p.pid: p for p in after.processes.values()}
    new = {p.pid for key, p in after.processes.items() if key not in before.processes and p.state != "Z"}
    owned = {pid for pid in new if sdir and (sdir in procs[pid].cmdline or sdir in procs[pid].root)}
    owned |= system.descendants(procs, owned | {self_pid})
    for pid in sorted(new - {self_pid}):
        p = procs[pid]
        if p.state == "Z":
            continue
        if pid in owned or (strict and p.comm.startswith(RUNTIME_COMMS) and not foreign(p.cmdline + p.root)):
            leaks.append(f"process {p.describe()}")

    # mounts ------------------------------------------------------------------
    for key, m in sorted(after.mounts.items()):
        if key in before.mounts:
            continue
        mine = sdir is not None and (
            system.is_under(m.mount_point, sdir) or sdir in m.super_options or sdir in m.source
        )
        netns_mount = any(system.is_under(m.mount_point, d) for d in NETNS_DIRS)
        where = f"{m.mount_point} {m.source} {m.super_options}"
        if mine or (strict and (netns_mount or m.fstype in WATCHED_FSTYPES) and not foreign(where)):
            leaks.append(f"mount {m.describe()}")

    # network namespaces, links, IPs ------------------------------------------
    if strict:
        leaks += [f"netns {n}" for n in sorted(after.netns - before.netns)]
    bridge_prefix = f"crb{token}" if token else None
    for name, link in sorted(after.links.items()):
        if name in before.links:
            continue
        mine = bridge_prefix is not None and (name.startswith(bridge_prefix) or link.master.startswith(bridge_prefix))
        if mine or (strict and link.kind in ("veth", "bridge")):
            leaks.append(f"link {name} (kind {link.kind or '-'}, master {link.master or '-'})")
    net_prefix = str(CNI_NETWORKS_DIR / f"{paths.NAME_PREFIX}-{token}") if token else None
    for alloc in sorted(after.cni_allocations - before.cni_allocations):
        if strict or (net_prefix is not None and alloc.startswith(net_prefix)):
            leaks.append(f"CNI IP allocation {alloc}")

    # files left in the session dir -------------------------------------------
    leaks += [f"file {f}" for f in sorted(after.session_files - before.session_files)]
    return leaks


class LeakChecker:
    """Start-of-session snapshot plus the end-of-session comparison."""

    def __init__(self, scope: str | None = None) -> None:
        self.scope = scope or scope_from_env()
        self.before = take_snapshot()

    def check(self) -> list[str]:
        """Leaks since construction; then removes the session dir if it is empty."""
        session_dir = paths.session_dir_if_created()
        leaks = find_leaks(self.before, take_snapshot(), session_dir=session_dir, scope=self.scope)
        # Fails if something leaked into it, which the list above already says.
        paths.remove_session_dir()
        return leaks
