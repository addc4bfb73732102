"""containerd failures keep their meaning: runc refusing a config is not our bug (INTERNAL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri_runtime import errors
from cri_runtime.containerd.errors import from_rpc_error
from cri_runtime.h2.status import RpcError, StatusCode


@pytest.mark.parametrize(
    ("code", "detail", "expected"),
    [
        (StatusCode.UNKNOWN, "failed to create shim task: OCI runtime create failed: runc create failed: "
         "unable to start container process: exec: \"/nope\": stat /nope: no such file or directory: unknown",
         errors.FailedPrecondition),
        (StatusCode.UNKNOWN, "runc did not terminate successfully: exit status 1: unable to set memory limit "
         "to 4096 (current usage: 249856, peak usage: 2519040)", errors.FailedPrecondition),
        (StatusCode.UNKNOWN, "OCI runtime exec failed: exec failed: unable to start container process: "
         "exec: \"x\": executable file not found in $PATH: unknown", errors.FailedPrecondition),
        (StatusCode.UNKNOWN, "context deadline exceeded", errors.DeadlineExceeded),
        (StatusCode.UNKNOWN, "ttrpc: closed: unknown", errors.Internal),
        (StatusCode.NOT_FOUND, "task x not found", errors.NotFound),
        (StatusCode.DEADLINE_EXCEEDED, "", errors.DeadlineExceeded),
    ],
)
def test_from_rpc_error(code: StatusCode, detail: str, expected: type[errors.CriError]) -> None:
    err = from_rpc_error(RpcError(code, detail), "create task of container c1")
    assert type(err) is expected
    assert err.message.startswith("create task of container c1: ")


def test_a_rootfs_mount_denied_under_an_untraversable_dir_names_that_dir(tmp_path: Path) -> None:
    closed = tmp_path / "state"
    (closed / "task" / "pod1" / "rootfs").mkdir(parents=True)
    closed.chmod(0o600)
    try:
        detail = (f"failed to create shim task: OCI runtime create failed: runc create failed: unable to start "
                  f"container process: error during container init: error preparing rootfs: mount "
                  f"{closed}/task/pod1/rootfs:{closed}/task/pod1/rootfs, flags: 0x5000: permission denied: unknown")
        err = from_rpc_error(RpcError(StatusCode.UNKNOWN, detail), "create pause task")
        assert isinstance(err, errors.FailedPrecondition)
        assert f"({closed} is mode 0600: a user-namespace pod's root cannot pass through it" in err.message
        closed.chmod(0o711)
        assert f"({closed} is mode" not in from_rpc_error(RpcError(StatusCode.UNKNOWN, detail), "x").message
    finally:
        closed.chmod(0o700)
