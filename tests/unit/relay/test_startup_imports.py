"""The relay process starts fast: it must not import heavy modules (CreateContainer waits for it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cri_runtime.containers.relay import client

SRC = Path(client.__file__).resolve().parents[3]
#: Each of these would add milliseconds (or far more) to every container start.
FORBIDDEN = ("asyncio", "grpc", "google.protobuf", "cri_protos", "cri_runtime.errors", "enum", "selectors",
             "socket", "argparse", "getopt", "gettext", "re", "dataclasses", "pathlib", "typing", "logging")


@pytest.mark.parametrize("module", ["main", "zygote"])
def test_relay_process_imports_only_light_stdlib_modules(module: str) -> None:
    """Also the zygote: every relay it forks inherits its modules."""
    code = (f"import sys; from cri_runtime.containers.relay.{module} import main; loaded = sorted(sys.modules); "
            "import json; print(json.dumps(loaded))")  # json (and its re) only after the snapshot
    out = subprocess.run([sys.executable, "-S", "-c", code], check=True, capture_output=True, text=True,
                         env={"PYTHONPATH": str(SRC)}).stdout
    loaded = set(json.loads(out))
    assert "cri_runtime.containers.relay.engine" in loaded
    heavy = sorted(m for m in loaded if m in FORBIDDEN or m.split(".")[0] in ("asyncio", "grpc", "google"))
    assert heavy == []
