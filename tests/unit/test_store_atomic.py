"""Atomically replaced state files: whole content or none, no temp files left, mode kept."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from cri_runtime.store import atomic


@pytest.mark.parametrize("durable", [False, True])
def test_write_replaces_the_whole_file_and_leaves_no_temp(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "status.json"
    atomic.write_bytes(path, b"old content that is longer", durable=durable)
    atomic.write_bytes(str(path), b"new", durable=durable)
    assert path.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["status.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_large_content_is_written_completely(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    atomic.write_bytes(tmp_path / "big", data, mode=0o640)
    assert (tmp_path / "big").read_bytes() == data
    assert stat.S_IMODE((tmp_path / "big").stat().st_mode) == 0o640


def test_failed_replace_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    target.mkdir()
    (target / "child").write_text("x")  # a non-empty directory cannot be replaced by a file
    with pytest.raises(OSError):
        atomic.write_bytes(target, b"data")
    assert sorted(os.listdir(tmp_path)) == ["dir"]


@dataclass
class Record(atomic.JsonRecord):
    state: str = "created"
    pid: int = 0


def test_json_record_round_trip_ignores_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    assert Record.load(path) is None
    Record(state="running", pid=7).save(path)
    assert Record.load(path) == Record(state="running", pid=7)
    atomic.write_json(path, {"state": "exited", "pid": 1, "newer_field": True})
    assert Record.load(path) == Record(state="exited", pid=1)
