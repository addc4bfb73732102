"""Installing the fake CNI plugin (fake_plugin.py) under chosen type names; shared with integration tests."""

from __future__ import annotations

import sys
from pathlib import Path

FAKE_PLUGIN = Path(__file__).resolve().parent / "fake_plugin.py"


def install_fake_plugins(bin_dir: Path, *names: str) -> None:
    """Install the fake plugin under each type name (a copy with this interpreter's shebang)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    source = FAKE_PLUGIN.read_text()
    for name in names:
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{source}")
        path.chmod(0o755)
