"""Remove what dead test sessions left behind: ``python -m tests.rig.cleanup [--dry-run]``.

A test run killed hard (SIGKILL, OOM, a lost terminal) never runs its teardown, so its
containerd shims, containers, mounts and ``/run/crirt-*`` directory stay. A session dir
whose owner process (pid in ``.owner``) is gone is dead: every process naming it (command
line or container root mount) is killed with its descendants, everything mounted below it
is unmounted and the directory removed. Its test bridges (``crb<token><n>``) and their
FORWARD drop rules go too, as do bridges of sessions whose dir is already gone.
Live sessions are never touched.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
from pathlib import Path

from . import paths, system

_DIR_RE = re.compile(rf"^{re.escape(paths.NAME_PREFIX)}-[0-9a-f]{{6}}$")
_BRIDGE_RE = re.compile(r"^crb([0-9a-f]{6})\d+$")


def _owner_alive(session: Path) -> bool:
    try:
        pid = int((session / paths.OWNER_FILE).read_text().strip())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


def dead_sessions(base: Path = Path("/run")) -> list[Path]:
    """Session dirs under ``base`` whose creating process no longer exists."""
    try:
        names = os.listdir(base)
    except OSError:
        return []
    return sorted(base / n for n in names if _DIR_RE.match(n) and not _owner_alive(base / n))


def clean_session(session: Path, dry_run: bool = False) -> list[str]:
    """Kill, unmount and remove everything of one dead session; returns what it did."""
    text = str(session)
    procs = system.list_processes()
    named = {p.pid for p in procs.values() if p.pid != os.getpid() and (text in p.cmdline or text in p.root)}
    victims = named | system.descendants(procs, named)
    mounts = [m.mount_point for m in system.list_mounts() if system.is_under(m.mount_point, session)]
    done = [f"kill {procs[pid].describe()}" for pid in sorted(victims)]
    done += [f"unmount {m}" for m in mounts] + [f"remove {session}"]
    if not dry_run:
        cgroups = [cg for pid in victims for cg in system.cgroup_paths(pid)]
        system.kill_and_reap(victims)
        system.remove_cgroups(cgroups)
        system.unmount_under(session)
        shutil.rmtree(session, ignore_errors=True)
    return done


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def stale_bridges(base: Path = Path("/run")) -> list[str]:
    """Test bridges whose session is dead or gone."""
    names = [line.split(":")[1].strip().split("@")[0] for line in _run("ip", "-o", "link", "show").splitlines()
             if line.count(":") >= 2]
    stale = []
    for name in names:
        match = _BRIDGE_RE.match(name)
        if match is None:
            continue
        session = base / f"{paths.NAME_PREFIX}-{match.group(1)}"
        if not session.exists() or not _owner_alive(session):
            stale.append(name)
    return sorted(stale)


def remove_bridge(bridge: str, dry_run: bool = False) -> list[str]:
    """Delete the bridge and the FORWARD rules naming it; returns what it did."""
    rules = [line.split()[1:] for line in _run("iptables", "-S", "FORWARD").splitlines()
             if line.startswith("-A FORWARD") and bridge in line.split()]
    done = [f"iptables -D {' '.join(rule)}" for rule in rules] + [f"ip link del {bridge}"]
    if not dry_run:
        for rule in rules:
            _run("iptables", "-D", *rule)
        _run("ip", "link", "del", bridge)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dry-run", action="store_true", help="only print what would be done")
    args = parser.parse_args()
    for session in dead_sessions():
        for action in clean_session(session, dry_run=args.dry_run):
            print(action)
    for bridge in stale_bridges():
        for action in remove_bridge(bridge, dry_run=args.dry_run):
            print(action)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
