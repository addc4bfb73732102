"""Upstream crictl's output in the live integration tests, recorded for machines without the binary.

`upstream.json` (beside this file) holds upstream's output against an empty CRI; the
integration tests compare ours with upstream against containerd's built-in CRI, with pods,
containers and images whose IDs, times, paths and addresses change from run to run. Those
comparisons run live wherever upstream crictl is installed. Run once with

    CRIRT_RECORD_UPSTREAM=1 pytest tests/integration/crictl/<file>.py

and each comparison also stores upstream's output, scrubbed of what changes between runs (see
`Scrubber`), under `live/<name>.json`, with the command that produced it. Where upstream is
not installed the tests compare our scrubbed output with that recording instead of skipping.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.upstream import UPSTREAM_CRICTL, upstream_installed

LIVE_DIR = Path(__file__).with_name("live")
RECORD = os.environ.get("CRIRT_RECORD_UPSTREAM") == "1"

# What differs between two runs of the same steps, whoever prints it.
# go-units' HumanDuration: "1 second" is singular; weeks, months and years follow days.
_AGE = re.compile(r"\b(?:\d+ (?:seconds?|minutes|hours|days|weeks|months|years)|About an? (?:minute|hour)"
                  r"|Less than a second) ago\b")
_RFC3339 = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
_GO_TIME = re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [+-]\d{4} [A-Z]+\b")  # Go's time.String()
_UNIX_NANOS = re.compile(r"\b1\d{18}\b")
_PID = re.compile(r'("pid"|\bpid):( ?"?)\d+')
_MAC = re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b")
# Digests left after the named ones (layer diff IDs, chain IDs) follow the content of Debian's busybox.
_HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
_VETH = re.compile(r"\bveth[0-9a-f]{8}\b")  # the CNI bridge plugin's random host-side name
_NETNS = re.compile(r"cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LOGRUS_TIME = re.compile(r'time="[^"]*"')
_KLOG = re.compile(r"^([EWI])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ ", re.M)  # klog's date, time and thread id
# Where upstream looks for its fallback config: beside its own executable.
_NEXT_CONFIG = re.compile(r'trying next: \\"[^"\\]*/crictl.yaml\\"')
# tabwriter pads columns to the widest cell: an age one character longer moves every column.
_PADDING = re.compile(r"(?<=\S) {2,}(?=\S)")


@dataclass
class Scrubber:
    """Replaces this run's values (IDs, paths, addresses) and the times and ages in crictl's output.

    `values` maps a value of this run to its placeholder; longer values are replaced first so
    a full ID is not half-replaced by its 13-character truncation. A value of digits only
    (a PID, a size) is replaced only as a whole number, unless it was added as `embedded`
    (the session token inside names, which is all digits in some sessions).
    """

    values: dict[str, str] = field(default_factory=dict)
    embedded: set[str] = field(default_factory=set)

    def add(self, value: str, placeholder: str, *, truncated: bool = False, embedded: bool = False) -> None:
        if value:
            self.values[value] = placeholder
            if truncated:
                self.values[value[:13]] = placeholder[:-1] + "-13>"
            if embedded:
                self.embedded.add(value)

    def __call__(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            if value.isdigit() and value not in self.embedded:  # a PID: not the same digits inside a longer number
                text = re.sub(rf"\b{value}\b", self.values[value], text)
            else:
                text = text.replace(value, self.values[value])
        text = _AGE.sub("<AGE>", text)
        text = _RFC3339.sub("<TIME>", text)
        text = _GO_TIME.sub("<TIME>", text)
        text = _MAC.sub("<MAC>", text)
        text = _VETH.sub("veth<ID>", text)
        text = _HEX64.sub("<HEX64>", text)
        text = _UNIX_NANOS.sub("<NANOS>", text)
        text = _PID.sub(r"\1:\2<PID>", text)
        text = _NETNS.sub("cni-<UUID>", text)
        text = _LOGRUS_TIME.sub('time="<TIME>"', text)
        text = _KLOG.sub(r"\1<KLOG> ", text)
        text = _NEXT_CONFIG.sub(r'trying next: \\"<EXEDIR>/crictl.yaml\\"', text)
        return _PADDING.sub("  ", text)


class Recording:
    """One file of upstream outputs, by a key naming the comparison (its command template)."""

    def __init__(self, name: str) -> None:
        self.path = LIVE_DIR / f"{name}.json"
        self.name = name
        self._cases: dict[str, Any] = json.loads(self.path.read_text())["cases"] if self.path.exists() else {}
        self._recorded_now: set[str] = set()

    @property
    def live(self) -> bool:
        """True where upstream runs live; else the recording stands in for it."""
        return upstream_installed()

    def value(self, key: str, command: list[str], produce: Callable[[], Any], scrub: Callable[[Any], Any]) -> Any:
        """Upstream's result for `key`: `produce()` where upstream is installed (stored scrubbed
        when recording), else the recorded one, already scrubbed."""
        if self.live:
            result = produce()
            if RECORD and key not in self._recorded_now:
                self._store(key, command, scrub(result))
            return result
        entry = self._cases.get(key)
        assert entry is not None, (
            f"no recording of upstream crictl for {key!r} in {self.path}: run the test once with "
            f"CRIRT_RECORD_UPSTREAM=1 where upstream crictl is installed"
        )
        return entry["result"]

    def process(self, key: str, command: list[str], run: Callable[[], subprocess.CompletedProcess[str]],
                scrub: Callable[[str], str]) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """`value` for one crictl run: returns upstream's raw run live, the scrubbed recording otherwise."""

        def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
            return {"rc": done.returncode, "stdout": scrub(done.stdout), "stderr": scrub(done.stderr)}

        result = self.value(key, command, run, as_json)
        if isinstance(result, subprocess.CompletedProcess):
            return result
        return subprocess.CompletedProcess(command, result["rc"], result["stdout"], result["stderr"])

    def _store(self, key: str, command: list[str], result: Any) -> None:
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        version = subprocess.run([str(UPSTREAM_CRICTL), "--version"], capture_output=True, text=True,
                                 check=False).stdout.strip()  # fmt: skip
        data.update({
            "binary": str(UPSTREAM_CRICTL), "version": version,
            "note": "generated by CRIRT_RECORD_UPSTREAM=1 pytest (tests/golden/crictl/live.py); do not edit by hand",
        })  # fmt: skip
        cases = data.setdefault("cases", {})
        cases[key] = {"command": command, "result": result}
        data["cases"] = dict(sorted(cases.items()))
        LIVE_DIR.mkdir(exist_ok=True)
        self.path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        self._cases[key] = cases[key]
        self._recorded_now.add(key)
