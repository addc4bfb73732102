"""A test RpcServer per test, on its own loop in a thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .server_thread import ServerThread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    srv = ServerThread(tmp_path / "rpc.sock").start()
    try:
        yield srv
    finally:
        srv.stop()
