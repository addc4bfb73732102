"""SocketGuard: one server per socket path; stale sockets replaced safely."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from cri_runtime.server import SocketGuard, StartupError


def test_creates_missing_directory_and_locks(tmp_path: Path) -> None:
    path = tmp_path / "run" / "cri.sock"
    guard = SocketGuard(str(path))
    guard.acquire()
    try:
        assert path.parent.is_dir()
        with pytest.raises(StartupError, match="another cri-runtime is already serving"):
            SocketGuard(str(path)).acquire()
    finally:
        guard.release()
    second = SocketGuard(str(path))
    second.acquire()
    second.release()


def test_missing_grandparent_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="does not exist"):
        SocketGuard(str(tmp_path / "a" / "b" / "cri.sock")).acquire()


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "cri.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # bound, never listening: what a killed server leaves
    guard = SocketGuard(str(path))
    guard.acquire()
    assert not path.exists()
    guard.release()


def test_live_socket_of_another_program_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "cri.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(StartupError, match="already listening"):
            SocketGuard(str(path)).acquire()
        assert path.exists()


def test_regular_file_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "cri.sock"
    path.write_text("precious")
    with pytest.raises(StartupError, match="is not a socket"):
        SocketGuard(str(path)).acquire()
    assert path.read_text() == "precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses directory permissions")
def test_unwritable_directory(tmp_path: Path) -> None:
    d = tmp_path / "ro"
    d.mkdir(mode=0o500)
    with pytest.raises(StartupError, match="not writable"):
        SocketGuard(str(d / "cri.sock")).acquire()
