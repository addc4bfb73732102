"""Start-up benchmark of our crictl against upstream crictl (run by hand).

Times `crictl ps`, `crictl version` and `crictl --help` over N runs each, for our console
script and, when present, the upstream binary, against one CRI endpoint; prints the median
wall time of each and the ratio ours/upstream. Runs alternate between the two binaries so
machine noise hits both alike.

    .venv/bin/python bench/crictl_startup.py -r unix:///run/containerd/containerd.sock -n 30
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

UPSTREAM = "/opt/cri-tools/bin/crictl"
COMMANDS = (("ps",), ("version",), ("--help",))


def default_ours() -> str:
    beside = Path(sys.executable).with_name("crictl")
    return str(beside) if beside.exists() else (shutil.which("crictl") or "crictl")


def time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode().strip()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-r", "--runtime-endpoint", required=True, help="CRI endpoint, e.g. unix:///path.sock")
    parser.add_argument("-n", "--runs", type=int, default=20, help="runs per command and binary (default 20)")
    parser.add_argument("--ours", default=default_ours(), help="our crictl (default: the venv's console script)")
    parser.add_argument("--upstream", default=UPSTREAM, help=f"upstream crictl (default {UPSTREAM})")
    args = parser.parse_args()
    binaries = {"ours": args.ours}
    if os.access(args.upstream, os.X_OK):
        binaries["upstream"] = args.upstream
    print(f"endpoint {args.runtime_endpoint}, {args.runs} runs each; medians in ms")
    header = f"{'command':<12}" + "".join(f"{name:>12}" for name in binaries)
    print(header + ("     ratio" if len(binaries) == 2 else ""))
    for command in COMMANDS:
        samples: dict[str, list[float]] = {name: [] for name in binaries}
        for binary in binaries.values():  # warm the page cache once
            time_once([binary, "-r", args.runtime_endpoint, *command])
        for _ in range(args.runs):
            for name, binary in binaries.items():
                samples[name].append(time_once([binary, "-r", args.runtime_endpoint, *command]))
        medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
        row = f"{' '.join(command):<12}" + "".join(f"{medians[name]:>12.1f}" for name in binaries)
        if len(binaries) == 2:
            row += f"{medians['ours'] / medians['upstream']:>10.1f}x"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
