"""The start-up self-check: what Status reports, and why, in each situation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cri_runtime.userns import support

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="user namespaces with mappings need root")


@pytest.fixture(autouse=True)
def _restore_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "_result", None)  # restored after each test


def test_no_unshare_means_unsupported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support.shutil, "which", lambda name: None)
    result = support.self_check(str(tmp_path))
    assert not result.supported and "unshare" in result.detail
    assert support.result() == result
    assert os.listdir(tmp_path) == []  # the scratch dir is gone


def test_unusable_state_dir_means_unsupported() -> None:
    result = support.self_check("/proc/no-such-dir/state")
    assert not result.supported and "cannot make a scratch directory" in result.detail


@needs_root
def test_idmapped_layers_or_copy(tmp_path: Path) -> None:
    result = support.self_check(str(tmp_path))
    assert result.supported
    assert result.method in (support.IDMAP, support.COPY)
    if result.method == support.COPY:  # idmapped mounts unusable here: the detail says why
        assert "falling back" in result.detail
    copy = support.self_check(str(tmp_path), "copy")
    assert copy.supported and copy.method == support.COPY and "userns_rootfs = copy" in copy.detail
    assert os.listdir(tmp_path) == []


@needs_root
def test_leftover_idmapped_copies_are_detached(tmp_path: Path) -> None:
    leftover = tmp_path / support.IDMAP_DIR / "containers-x" / "0"
    leftover.mkdir(parents=True)
    support.detach_leftovers(str(tmp_path))
    assert not (tmp_path / support.IDMAP_DIR).exists()
