"""Fixtures for the CNI unit tests: a bin dir of fake plugins (no root, no real network)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.network.fakes import install_fake_plugins


@pytest.fixture
def fake_bin(tmp_path: Path) -> Callable[..., Path]:
    """`fake_bin("a", "b")` installs fake plugins a and b and returns the bin dir."""
    bin_dir = tmp_path / "bin"

    def install(*names: str) -> Path:
        install_fake_plugins(bin_dir, *names)
        return bin_dir

    return install
