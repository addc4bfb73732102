"""Start-up self-check: may this node run pods in user namespaces?

It does, on a scratch directory of the state dir's filesystem, exactly what
a userns container's start does: a helper user namespace, an idmapped copy of a
"layer" (open_tree + mount_setattr), an overlay over that copy with an upper
dir owned by the mapped root, and a check that a root-owned file of the layer
shows up as owned by the mapped root. ``user_namespaces`` is reported in Status
only when all of it works; otherwise the failing step and errno are logged and
shown in Status(verbose).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

from ..containerd import mounts as ctd_mounts
from .idmap import IdmapError, detach, helper_userns, idmapped_mount
from .mappings import IdMap, PodUserns

log = logging.getLogger(__name__)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]

#: Under the server's state dir: the idmapped copies of layers and volumes while a task is created. Kept
#: apart from the containers' state dirs, so removing one can never recurse into a mounted layer or volume.
IDMAP_DIR = "idmap"
IDMAP = "idmapped mounts"
COPY = "chowned copy-up"

#: The mapping tried (kubelet's first range).
PROBE_USERNS = PodUserns(IdMap(0, 65536, 65536), IdMap(0, 65536, 65536))


@dataclass(frozen=True)
class UsernsSupport:
    supported: bool
    #: What was checked and how it went (the failing step with errno when unsupported).
    detail: str
    #: How rootfs and volumes are made usable inside ("idmapped mounts", or "" when unsupported).
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_result: UsernsSupport | None = None


def result() -> UsernsSupport:
    return _result if _result is not None else UsernsSupport(False, "the start-up self-check has not run")


def _mount_overlay(lower: str, upper: str, work: str, target: str) -> None:
    data = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
    if _libc.mount(b"overlay", target.encode(), b"overlay", 0, data) != 0:
        err = ctypes.get_errno()
        raise IdmapError(err, f"mount overlay over an idmapped lowerdir: {os.strerror(err)} (errno {err})")


def _idmap_probe(base: str) -> str | None:
    """Why idmapped overlay layers do not work on ``base`` (None: they do)."""
    dirs = {name: os.path.join(base, name) for name in ("lower", "idmapped", "upper", "work", "merged")}
    for d in dirs.values():
        os.mkdir(d)
    with open(os.path.join(dirs["lower"], "owned-by-root"), "w"):
        pass
    uid, gid = PROBE_USERNS.host_root
    os.chown(dirs["upper"], uid, gid)
    mounted: list[str] = []
    try:
        with helper_userns(PROBE_USERNS) as fd:
            idmapped_mount(dirs["lower"], dirs["idmapped"], fd)
            mounted.append(dirs["idmapped"])
        _mount_overlay(dirs["idmapped"], dirs["upper"], dirs["work"], dirs["merged"])
        mounted.append(dirs["merged"])
        st = os.stat(os.path.join(dirs["merged"], "owned-by-root"))
        if (st.st_uid, st.st_gid) != (uid, gid):
            return f"an idmapped layer shows uid/gid {st.st_uid}/{st.st_gid}, expected {uid}/{gid}"
    except IdmapError as exc:
        return f"idmapped mounts do not work on {os.path.dirname(base)}: {exc.strerror}"
    finally:
        for m in reversed(mounted):
            with contextlib.suppress(OSError):
                detach(m)
    return None


def _probe(base: str, mode: str) -> UsernsSupport:
    if not os.path.exists("/proc/self/ns/user"):
        return UsernsSupport(False, "the kernel has no user namespaces (/proc/self/ns/user missing)")
    if shutil.which("unshare") is None:
        return UsernsSupport(False, "unshare (util-linux) is not installed: no helper user namespace")
    try:
        with helper_userns(PROBE_USERNS):
            pass
    except OSError as exc:
        return UsernsSupport(False, f"cannot create a user namespace with a mapping: {exc}")
    kernel = os.uname().release
    if mode == "copy":
        return UsernsSupport(True, f"runtime.userns_rootfs = copy (kernel {kernel}): each container's snapshot "
                                   "is chowned into the pod's range; volumes are not remapped", method=COPY)
    problem = _idmap_probe(base)
    if problem is not None:
        return UsernsSupport(True, f"{problem}; falling back to a chowned copy-up of each container's snapshot "
                                   "(volumes are not remapped)", method=COPY)
    where = os.path.dirname(base)
    return UsernsSupport(True, f"idmapped overlay layers work on {where} (kernel {kernel}); "
                               "runc joins the pod's user namespace", method=IDMAP)


def detach_leftovers(server_state_dir: str) -> None:
    """Detach idmapped copies a killed predecessor left (none is in use before we serve)."""
    root = os.path.join(server_state_dir, IDMAP_DIR)
    if os.path.isdir(root):
        ctd_mounts.unmount_tree(root)
        shutil.rmtree(root, ignore_errors=True)


def self_check(parent: str, mode: str = "auto") -> UsernsSupport:
    """Run the check in a scratch dir under ``parent``; remember, log and return the result.

    ``mode`` is ``runtime.userns_rootfs``: "auto" or "copy" (skip idmapped mounts).
    """
    global _result
    detach_leftovers(parent)
    try:
        os.makedirs(parent, exist_ok=True)
        base = tempfile.mkdtemp(prefix=".userns-check-", dir=parent)
    except OSError as exc:
        _result = UsernsSupport(False, f"cannot make a scratch directory under {parent}: {exc.strerror}")
    else:
        try:
            _result = _probe(base, mode)
        except OSError as exc:
            _result = UsernsSupport(False, f"self-check failed: {exc}")
        finally:
            shutil.rmtree(base, ignore_errors=True)
    if _result.supported:
        log.info("user namespaces supported (%s): %s", _result.method, _result.detail)
    else:
        log.warning("user namespaces NOT supported (Status reports user_namespaces=false): %s", _result.detail)
    return _result
