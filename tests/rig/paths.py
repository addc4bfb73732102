"""Per-session scratch directory and naming conventions shared by all rig parts.

Everything the rig creates (containerd root/state/socket, registry storage, CNI data,
server state) goes under one directory ``/run/crirt-<token>/`` so that

* unix socket paths stay short (108-byte limit),
* the leak check can attribute processes (cmdline), mounts (mount point) and files to *this*
  test session even when other sessions or a conformance run share the machine.

Tests that create host-global things (CNI networks, bridges) should name them with
:func:`test_network_name` / :func:`test_bridge_name` so the leak check finds them too.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path

#: Prefix of every session directory (``/run/crirt-<6 hex>``); also used in network names.
NAME_PREFIX = "crirt"

#: File in the session dir naming the pid of the process that created it.
OWNER_FILE = ".owner"

_session_dir: Path | None = None


def _base_dir() -> Path:
    """``/run`` when we may write there (root), else the ordinary temp dir."""
    run = Path("/run")
    if os.geteuid() == 0 and os.access(run, os.W_OK):
        return run
    return Path(tempfile.gettempdir())


def session_dir() -> Path:
    """The directory all rig objects of this process use; created on first use."""
    global _session_dir
    if _session_dir is None:
        base = _base_dir()
        for _ in range(100):
            candidate = base / f"{NAME_PREFIX}-{secrets.token_hex(3)}"
            try:
                candidate.mkdir(mode=0o755)
            except FileExistsError:
                continue
            # Who owns it: lets `python -m tests.rig.cleanup` tell a dead session's dir.
            (candidate / OWNER_FILE).write_text(f"{os.getpid()}\n")
            _session_dir = candidate
            # Rig objects used outside pytest (scripts) should not leave the dir behind.
            atexit.register(remove_session_dir)
            break
        else:  # pragma: no cover - 100 collisions of 24 random bits
            raise RuntimeError(f"cannot create a session directory under {base}")
    return _session_dir


def session_token() -> str:
    """The 6 hex chars identifying this session (part of every name the rig hands out)."""
    return session_dir().name.rsplit("-", 1)[1]


def make_dir(purpose: str) -> Path:
    """A fresh directory ``<session_dir>/<purpose>-XXXX``; the caller removes it."""
    path = Path(tempfile.mkdtemp(prefix=f"{purpose}-", dir=session_dir()))
    path.chmod(0o755)
    return path


def test_network_name(suffix: str = "net") -> str:
    """A CNI network name the leak check watches (host-local IPs under /var/lib/cni/networks)."""
    return f"{NAME_PREFIX}-{session_token()}-{suffix}"


def test_bridge_name(index: int = 0) -> str:
    """A Linux bridge name (<= 15 chars) the leak check watches."""
    return f"crb{session_token()}{index}"


def remove_tree(path: Path) -> None:
    """rm -rf that tolerates the path being gone already."""
    shutil.rmtree(path, ignore_errors=True)


def session_dir_if_created() -> Path | None:
    """The session directory, or None if nothing in this process asked for one yet."""
    return _session_dir


def remove_session_dir() -> bool:
    """Remove this process's session dir if nothing but the owner file is left in it."""
    global _session_dir
    if _session_dir is None:
        return True
    try:
        if any(name != OWNER_FILE for name in os.listdir(_session_dir)):
            return False
        (_session_dir / OWNER_FILE).unlink(missing_ok=True)
        _session_dir.rmdir()
    except OSError:
        return False
    _session_dir = None
    return True
