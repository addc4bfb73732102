"""An image's StopSignal of any shape maps to a signal, never to an exception (INTERNAL)."""

from __future__ import annotations

import signal

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.containers.status import _cri_signal
from cri_runtime.containers.stop import signal_number


@pytest.mark.parametrize(("name", "number"), [
    ("", signal.SIGTERM), ("SIGKILL", signal.SIGKILL), ("int", signal.SIGINT), ("9", 9), ("99", signal.SIGTERM),
    ("0", signal.SIGTERM), ("²", signal.SIGTERM), ("SIGNOPE", signal.SIGTERM), ("SIGRTMIN+3", signal.SIGTERM),
])  # fmt: skip
def test_signal_number(name: str, number: int) -> None:
    assert signal_number(name) == number


def test_cri_signal_of_an_unknown_number_is_runtime_default() -> None:
    assert _cri_signal(99) == api_pb2.RUNTIME_DEFAULT
    assert _cri_signal(int(signal.SIGKILL)) == api_pb2.SIGKILL
