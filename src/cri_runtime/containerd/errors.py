"""Turn containerd's gRPC failures into domain errors.

containerd reports most conditions with a precise status code (NotFound for a
missing container, AlreadyExists for a taken ID, FailedPrecondition for a task
in the wrong state). Business code branches on those, so the code must survive
the hop; the message is prefixed so an operator sees where it came from.
"""

from __future__ import annotations

import os
import re
import stat

from cri_runtime import errors
from cri_runtime.grpc_client.status import RpcError, StatusCode

_BY_CODE: dict[StatusCode, type[errors.CriError]] = {
    StatusCode.NOT_FOUND: errors.NotFound,
    StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    StatusCode.UNAVAILABLE: errors.Unavailable,
    StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
    StatusCode.UNIMPLEMENTED: errors.Unimplemented,
    StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    StatusCode.ABORTED: errors.Aborted,
    StatusCode.DATA_LOSS: errors.DataLoss,
    StatusCode.CANCELLED: errors.DeadlineExceeded,
}

# How containerd passes on runc refusing a container's or exec's configuration (as UNKNOWN):
# a command missing from the image, a working dir that is a file, a memory limit below the
# current usage, a cpuset naming CPUs the node lacks, `unified` on cgroup v1, a sysctl value
# the kernel rejects. The request is well-formed but cannot run here: FailedPrecondition with
# runc's reason, not INTERNAL (which says "our bug").
RUNC_REFUSALS = ("OCI runtime create failed", "OCI runtime exec failed", "OCI runtime start failed",
                 "runc did not terminate successfully")


def from_rpc_error(exc: RpcError, action: str) -> errors.CriError:
    """Map a containerd RPC failure to the domain error of the same meaning."""
    code = exc.code()
    cls = _BY_CODE.get(code, errors.Internal)
    detail = exc.details() or code.name.lower()
    if code == StatusCode.UNKNOWN and "context deadline exceeded" in detail:
        # containerd passes a deadline hit inside the shim through as UNKNOWN.
        cls = errors.DeadlineExceeded
    elif code == StatusCode.UNKNOWN and any(r in detail for r in RUNC_REFUSALS):
        cls = errors.FailedPrecondition
        detail += _untraversable_hint(detail)
    if cls is errors.Unavailable:
        return cls(f"containerd is unavailable ({action}): {detail}")
    return cls(f"{action}: {detail}")


_ROOTFS_DENIED = re.compile(r"error preparing rootfs: mount (/\S+?):\S* .*permission denied")


def _untraversable_hint(detail: str) -> str:
    """Name the directory a user-namespace pod's root cannot pass through, when that is why runc failed.

    runc mounts the bundle's rootfs from inside the pod's user namespace, where the pod's root is
    "others" to host-owned directories: containerd's state dir must be traversable (it creates it
    0711; created as a socket's parent it can end up 0600, as on the critest harness here).
    """
    match = _ROOTFS_DENIED.search(detail)
    if match is None:
        return ""
    path = match.group(1)
    while path not in ("/", ""):
        path = os.path.dirname(path)
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if not mode & stat.S_IXOTH:
            return (f" ({path} is mode {stat.S_IMODE(mode):04o}: a user-namespace pod's root cannot pass through "
                    f"it; containerd's state dir needs execute for others, 0711 as containerd creates it)")
    return ""
