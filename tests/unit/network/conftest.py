"""Fixtures for the CNI unit tests: a bin dir of fake plugins (no root, no real network)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

FAKE_PLUGIN = Path(__file__).resolve().parent / "fake_plugin.py"


def install_fake_plugins(bin_dir: Path, *names: str) -> None:
    """Install the fake plugin under each type name (a copy with this interpreter's shebang)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    source = FAKE_PLUGIN.read_text()
    for name in names:
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{source}")
        path.chmod(0o755)


@pytest.fixture
def fake_bin(tmp_path: Path) -> Callable[..., Path]:
    """`fake_bin("a", "b")` installs fake plugins a and b and returns the bin dir."""
    bin_dir = tmp_path / "bin"

    def install(*names: str) -> Path:
        install_fake_plugins(bin_dir, *names)
        return bin_dir

    return install
