"""Start-up checks of the shim, runc and CNI plugin dirs (node/binaries.py), against a PATH we build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cri_runtime import config
from cri_runtime.node import binaries


def _executable(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our PATH holds only this dir, and the system dirs are searched no more."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    monkeypatch.setattr(binaries, "SYSTEM_PATH", ())
    return directory


def _config(text: str = "") -> config.Config:
    return config.parse(text, "f.toml")


@pytest.mark.parametrize(("runtime_type", "shim"), [
    ("io.containerd.runc.v2", "containerd-shim-runc-v2"),
    ("io.containerd.kata.v2", "containerd-shim-kata-v2"),
    ("io.containerd.runsc.v1", "containerd-shim-runsc-v1"),
])
def test_shim_binary_names_follow_containerd(runtime_type: str, shim: str) -> None:
    assert binaries.shim_binary(runtime_type) == shim


def test_all_present_is_no_problem(bin_dir: Path, tmp_path: Path) -> None:
    _executable(bin_dir, "containerd-shim-runc-v2")
    _executable(bin_dir, "runc")
    cfg = _config(f"[network]\ncni_bin_dirs = ['{tmp_path}']\n")
    assert binaries.fatal_problems(cfg) == []
    assert binaries.warnings(cfg) == []


def test_missing_shim_of_the_default_handler_is_fatal(bin_dir: Path) -> None:
    _executable(bin_dir, "runc")
    assert binaries.fatal_problems(_config()) == [
        "runtime handler 'runc': shim containerd-shim-runc-v2 (for runtime.handlers.runc.runtime_type "
        "io.containerd.runc.v2) is not in PATH nor in "]


def test_missing_runc_names_the_config_key(bin_dir: Path) -> None:
    _executable(bin_dir, "containerd-shim-runc-v2")
    assert binaries.fatal_problems(_config()) == [
        "runtime handler 'runc': runc binary runc (runtime.handlers.runc.binary_name is empty) is not in PATH nor in "]
    missing = bin_dir / "no-such-runc"
    assert binaries.fatal_problems(_config(f"[runtime.handlers.runc]\nbinary_name = '{missing}'\n")) == [
        f"runtime handler 'runc': runc binary {missing} (runtime.handlers.runc.binary_name) is not an executable file"]


def test_a_binary_name_that_is_not_executable_is_missing(bin_dir: Path) -> None:
    _executable(bin_dir, "containerd-shim-runc-v2")
    plain = bin_dir / "runc-copy"
    plain.write_text("not executable")
    assert binaries.find(str(plain)) is None
    assert len(binaries.fatal_problems(_config(f"[runtime.handlers.runc]\nbinary_name = '{plain}'\n"))) == 1
    plain.chmod(0o755)
    assert binaries.fatal_problems(_config(f"[runtime.handlers.runc]\nbinary_name = '{plain}'\n")) == []


def test_other_handlers_and_cni_dirs_only_warn(bin_dir: Path, tmp_path: Path) -> None:
    _executable(bin_dir, "containerd-shim-runc-v2")
    _executable(bin_dir, "runc")
    cfg = _config("[runtime.handlers.kata]\nruntime_type = 'io.containerd.kata.v2'\n"
                  f"[network]\ncni_bin_dirs = ['{tmp_path}/none', '{tmp_path}/neither']\n")
    assert binaries.fatal_problems(cfg) == []
    found = binaries.warnings(cfg)
    assert found[0].startswith("runtime handler 'kata': shim containerd-shim-kata-v2 ")
    assert found[1] == (f"no CNI plugin directory exists yet (network.cni_bin_dirs: {tmp_path}/none, "
                        f"{tmp_path}/neither); pods that are not hostNetwork fail until plugins are installed")
    assert len(found) == 2


def test_system_dirs_are_searched_after_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """containerd's PATH may be wider than ours (Debian's runc is in /usr/sbin)."""
    system = tmp_path / "sbin"
    system.mkdir()
    runc = _executable(system, "runc")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(binaries, "SYSTEM_PATH", (str(system),))
    assert binaries.find("runc") == str(runc)
    assert os.path.isabs(binaries.find("runc") or "")
