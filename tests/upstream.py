"""Where the tests find upstream crictl (cri-tools), and what they use when it is not there.

Upstream crictl cannot be installed from a package registry: developers build it by hand, so
it exists on their machines and not on a fresh clone's CI machine. A test that skipped without
it would check nothing there. So every test reads the binary's place from here and, when it
is absent, does one of two things instead of skipping:

- a test that only uses upstream crictl as a CRI client of the server under test runs the same
  steps with our crictl (`interop_client`), which `tests/unit/crictl/test_golden.py` holds to
  upstream's recorded output;
- a test that compares our crictl's output with upstream's compares it with upstream's output
  recorded on a machine that had the binary (`tests/golden/crictl/live.py`).

`CRIRT_UPSTREAM_CRICTL=/nonexistent` simulates a fresh machine on a developer's one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

UPSTREAM_CRICTL = Path(os.environ.get("CRIRT_UPSTREAM_CRICTL", "/opt/cri-tools/bin/crictl"))
SRC = str(Path(__file__).resolve().parents[1] / "src")
# Our crictl as a subprocess; callers put SRC on PYTHONPATH so a checkout without `pip install -e` works.
OUR_CRICTL = [sys.executable, "-m", "crictl"]


def upstream_installed() -> bool:
    return UPSTREAM_CRICTL.exists()


def interop_client() -> list[str]:
    """Upstream crictl where installed (the real interop check), else ours, which speaks the same CLI."""
    return [str(UPSTREAM_CRICTL)] if upstream_installed() else list(OUR_CRICTL)


def client_params() -> list[object]:
    """`ours` always, `upstream` too where installed: parametrize tests that run the same steps with each.

    Without the binary there is no `upstream` case at all rather than a skipped one: running the
    steps a second time with ours would only repeat the `ours` case.
    """
    params: list[object] = [pytest.param(list(OUR_CRICTL), id="ours")]
    if upstream_installed():
        params.append(pytest.param([str(UPSTREAM_CRICTL)], id="upstream"))
    return params
