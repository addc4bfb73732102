"""How a failed exec start is answered: like a shell (127 / 126) when the command cannot run."""

from __future__ import annotations

import pytest

from cri_runtime import errors
from cri_runtime.containers.exec import not_runnable

_PREFIX = "start exec in container c1: OCI runtime exec failed: exec failed: unable to start container process: "


@pytest.mark.parametrize(
    ("message", "code", "stderr"),
    [
        (_PREFIX + 'exec: "/nope": stat /nope: no such file or directory: unknown', 127,
         'nope: exec: "/nope": stat /nope: no such file or directory'),
        (_PREFIX + 'exec: "nope": executable file not found in $PATH: unknown', 127, "executable file not found"),
        (_PREFIX + 'exec: "/etc/passwd": permission denied: unknown', 126, "permission denied"),
        (_PREFIX + "exec format error: unknown", 126, "exec format error"),
        (_PREFIX + "read init-p: connection reset by peer: unknown", None, None),
        ("start exec in container c1: ttrpc: closed: unknown", None, None),
    ],
)
def test_not_runnable(message: str, code: int | None, stderr: str | None) -> None:
    answer = not_runnable(errors.Internal(message), ["/nope"])
    if code is None:
        assert answer is None
    else:
        assert answer is not None and answer.exit_code == code
        assert stderr is not None and stderr in answer.message
        assert answer.message.startswith("/nope: ") and not answer.message.endswith("unknown")
