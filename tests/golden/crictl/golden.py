"""Run a golden case through a crictl binary and normalise what it printed.

Shared by `record.py` (upstream) and the tests (ours, and upstream live where installed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.golden.crictl.cases import CASES, ENDPOINT, Case

GOLDEN_FILE = Path(__file__).with_name("upstream.json")
# Where ours differs on purpose, both outputs are rewritten the same way before comparing:
# the version string (upstream's build says "unknown" or its tag, ours is ours), and our own
# socket, which our default endpoint list tries first.
_VERSION = re.compile(r"^(VERSION:\n   ).*$", re.M)
OUR_SOCKET = "unix:///run/cri-runtime/cri-runtime.sock "
# The fallback config beside the executable: upstream's and ours live in different places.
_NEXT_CONFIG = re.compile(r'trying next: \\"[^"\\]*/crictl.yaml\\"')
_TIME = re.compile(r'time="[^"]*"')
_KLOG = re.compile(r"^([EWI])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ", re.M)


@dataclass
class Result:
    argv: list[str]
    stdout: str
    stderr: str
    rc: int
    config_after: str | None

    def as_json(self) -> dict[str, Any]:
        return {"argv": self.argv, "stdout": self.stdout, "stderr": self.stderr, "rc": self.rc,
                "config_after": self.config_after}  # fmt: skip


def run_case(binary: list[str], case: Case, endpoint: str, timeout: float = 30) -> Result:
    """Run `case` with `endpoint` (the empty CRI) unless the case names its own."""
    with tempfile.TemporaryDirectory(prefix="crictl-golden-") as tmp:
        config = Path(tmp) / "crictl.yaml"
        if case.config is not None:
            config.write_text(case.config)
        argv = [a.replace("{config}", str(config)) for a in case.args]
        run_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tmp,
            "CRI_CONFIG_FILE": str(config),
            "CONTAINER_RUNTIME_ENDPOINT": ENDPOINT if case.unreachable else endpoint,
        }
        proc = subprocess.run([*binary, *argv], env=run_env, capture_output=True, text=True, cwd="/",
                              input=case.stdin, timeout=timeout, check=False)  # fmt: skip
        after = config.read_text() if config.exists() else None

        def norm(text: str) -> str:
            text = _KLOG.sub(r"\1<KLOG>] ", _TIME.sub('time="<TIME>"', text)).replace(tmp, "<DIR>")
            text = _VERSION.sub(r"\1<VERSION>", text).replace(OUR_SOCKET, "")
            text = _NEXT_CONFIG.sub(r'trying next: \\"<EXEDIR>/crictl.yaml\\"', text)
            return text.replace(endpoint.removeprefix("unix://"), "<CRI>")

        return Result([a.replace(tmp, "<DIR>") for a in argv], norm(proc.stdout), norm(proc.stderr),
                      proc.returncode, None if after is None else norm(after))  # fmt: skip


@cache
def recorded() -> dict[str, Any]:
    data = json.loads(GOLDEN_FILE.read_text())
    assert isinstance(data, dict)
    return data


def expected(case: Case) -> Result:
    entry = recorded()["cases"][case.name]
    return Result(entry["argv"], entry["stdout"], entry["stderr"], entry["rc"], entry["config_after"])


def cases_by_name() -> dict[str, Case]:
    return {case.name: case for case in CASES}
