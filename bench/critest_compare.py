"""Ratios of two critest ``-benchmark`` runs: ours / containerd's CRI, per operation.

critest writes one JSON file per benchmark (``-benchmarking-output-dir``); the
``../shared/conformance`` harness puts them under ``/var/tmp/critest-out/NAME/bench``.
Run the suite against containerd's CRI and then against ours (or the other way
round) and give both directories: the medians and their ratio are printed per
operation, in critest's order, so the table in the README comes from a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def medians(bench_dir: Path) -> dict[str, float]:
    """Median duration (ms) of every operation of every benchmark file in ``bench_dir``."""
    out: dict[str, float] = {}
    for path in sorted(bench_dir.glob("*.json")):
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "operationsNames" not in data:
            continue  # not a benchmark file (critest's report.json, say)
        points = data.get("datapoints") or []
        for i, op in enumerate(data.get("operationsNames") or []):
            values = [p["operationsDurationsNs"][i] / 1e6 for p in points
                      if len(p.get("operationsDurationsNs") or []) > i]
            if values:
                out[op] = statistics.median(values)
    return out


def resolve(arg: str) -> Path:
    """A run's directory (its ``bench`` below it), a directory of benchmark files, or a run name
    (``/var/tmp/critest-out/NAME/bench``)."""
    path = Path(arg)
    if (path / "bench").is_dir():
        return path / "bench"
    if path.is_dir():
        return path
    return Path("/var/tmp/critest-out") / arg / "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="containerd's CRI run (name or directory)")
    parser.add_argument("ours", help="cri-runtime's run (name or directory)")
    args = parser.parse_args()
    ref, ours = medians(resolve(args.reference)), medians(resolve(args.ours))
    print(f"{'operation':<18}{'containerd ms':>15}{'ours ms':>10}{'ratio':>8}")
    worst = 0.0
    for op, ref_ms in ref.items():
        if op not in ours:
            continue
        ratio = ours[op] / ref_ms if ref_ms else float("inf")
        worst = max(worst, ratio)
        print(f"{op:<18}{ref_ms:>15.2f}{ours[op]:>10.2f}{ratio:>8.2f}")
    print(f"{'worst ratio':<18}{'':>25}{worst:>8.2f}")


if __name__ == "__main__":
    main()
