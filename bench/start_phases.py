#!/usr/bin/env python3
"""Where a container start's time goes, seen from outside: runc's processes, timed by the kernel.

critest's StartContainer is `Tasks.Create` (the shim runs `runc create`, which
runs `runc init`) then `Tasks.Start` (`runc start`). Which CRI server drives
containerd does not change what runc does, so timing runc's processes from
the kernel's scheduler events compares both runtimes on equal terms, with no
wrapper on the shim's PATH and nothing in either server. Record the events
around a benchmark run, once per runtime:

    perf record -e sched:sched_process_exec -e sched:sched_process_exit \\
        -e sched:sched_process_fork -a -o ours.data -- critest -benchmark ...
    perf script -i ours.data -F comm,pid,tid,time,event,trace > ours.txt
    python3 bench/start_phases.py ours.txt containerd.txt

For every pod shim (the process that runs a pod's `runc` commands) the first
`runc create` is the pause container's and the second the container's; a
`runc create` is told from the other runc commands by the `runc init` it
forks. Printed per file, medians in ms:

- `runc create` of the pause and of the container, and the container's
  `runc start`;
- the gap between the container's `runc create` ending and its `runc start`
  beginning (the CRI server's part between `Tasks.Create` and `Tasks.Start`);
- what else ran meanwhile: how long other commands (by name: the CNI
  plugins, other pods' runc, the shim's `start` and `delete`; not daemons)
  overlapped the container's `runc create`, on average.

This reads critest-style workloads (one container per pod). Pure parsing,
no dependencies: it runs wherever the text file is.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence

_LINE = re.compile(r"\s*(?P<comm>.+?)\s+(?P<pid>\d+)/(?P<tid>\d+)\s+(?P<ts>[\d.]+):\s+"
                   r"sched:(?P<event>sched_process_\w+):\s+(?P<rest>.*)")
_FIELD = re.compile(r"(\w+)=(\S+)")

#: Process names reported as "what else ran" (others are summed as "other").
NEIGHBOURS = ("runc", "bridge", "host-local", "portmap", "loopback", "containerd-shim-runc-v2")
#: Only commands count as neighbours: a daemon (a pod's shim, its pause) is alive, mostly asleep, throughout.
COMMAND_MS = 100.0


@dataclasses.dataclass
class Proc:
    """One exec'd program: its PID, name, parent, and when it ran (ms)."""

    pid: int
    name: str
    parent: int
    start: float
    end: float | None = None
    children_exec: bool = False  # forked a child that exec'd (runc create's runc init)


@dataclasses.dataclass
class Start:
    """One container's start, as runc saw it (ms)."""

    pause_create: float
    create: float
    gap: float
    start: float
    overlap: dict[str, float]


def parse(lines: Iterable[str]) -> list[Proc]:
    """The programs exec'd during the recording, in exec order; forks and exits joined in."""
    parent: dict[int, int] = {}
    procs: dict[int, Proc] = {}
    order: list[Proc] = []
    for line in lines:
        m = _LINE.match(line)
        if m is None:
            continue
        fields = dict(_FIELD.findall(m["rest"]))
        ts = float(m["ts"]) * 1000
        event = m["event"]
        if event == "sched_process_fork":
            parent[int(fields["child_pid"])] = int(m["pid"])
        elif event == "sched_process_exec":
            pid = int(fields.get("pid", m["pid"]))
            proc = Proc(pid, fields["filename"].rsplit("/", 1)[-1], parent.get(pid, 0), ts)
            if proc.parent in procs:
                procs[proc.parent].children_exec = True
            procs[pid] = proc
            order.append(proc)
        elif event == "sched_process_exit":
            proc = procs.get(int(fields.get("pid", m["pid"])))
            if proc is not None and proc.end is None:
                proc.end = ts
    return [p for p in order if p.end is not None]


def _overlap(a: Proc, b: Proc) -> float:
    assert a.end is not None and b.end is not None
    return max(0.0, min(a.end, b.end) - max(a.start, b.start))


def container_starts(procs: Sequence[Proc]) -> list[Start]:
    """Each pod's container start: its pod shim's second `runc create` and the runc command after it."""
    by_shim: dict[int, list[Proc]] = defaultdict(list)
    for p in procs:
        if p.name == "runc":
            by_shim[p.parent].append(p)
    starts = []
    for runs in by_shim.values():
        creates = [i for i, p in enumerate(runs) if p.children_exec]
        if len(creates) < 2 or creates[1] + 1 >= len(runs):
            continue
        pause, create, start = runs[creates[0]], runs[creates[1]], runs[creates[1] + 1]
        assert pause.end is not None and create.end is not None and start.end is not None
        overlap: dict[str, float] = defaultdict(float)
        for other in procs:
            assert other.end is not None
            if (other.parent == create.parent and other.name == "runc") or other.end - other.start > COMMAND_MS:
                continue  # the pod's own runc commands, or a daemon
            shared = _overlap(create, other)
            if shared > 0:
                overlap[other.name if other.name in NEIGHBOURS else "other"] += shared
        starts.append(Start(pause.end - pause.start, create.end - create.start,
                            start.start - create.end, start.end - start.start, dict(overlap)))
    return starts


def summary(starts: Sequence[Start]) -> dict[str, float]:
    """Medians of the phases; mean overlap per neighbour (most starts overlap nothing of a kind)."""
    if not starts:
        return {}
    out = {
        "pause runc create": statistics.median(s.pause_create for s in starts),
        "runc create": statistics.median(s.create for s in starts),
        "gap create -> start": statistics.median(s.gap for s in starts),
        "runc start": statistics.median(s.start for s in starts),
    }
    names = sorted({n for s in starts for n in s.overlap})
    for name in names:
        out[f"overlap {name} (mean)"] = statistics.fmean(s.overlap.get(name, 0.0) for s in starts)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="`perf script` output, one file per runtime")
    args = parser.parse_args(argv)
    results = {}
    for path in args.files:
        with open(path) as f:
            starts = container_starts(parse(f))
        results[path] = (len(starts), summary(starts))
    keys = list(dict.fromkeys(k for _, s in results.values() for k in s))
    width = max((len(k) for k in keys), default=10)
    print(f"{'ms':{width}s} " + " ".join(f"{p[-24:]:>24s}" for p in results))
    print(f"{'container starts':{width}s} " + " ".join(f"{n:>24d}" for n, _ in results.values()))
    for key in keys:
        print(f"{key:{width}s} " + " ".join(f"{s.get(key, 0.0):>24.2f}" for _, s in results.values()))
    return 0 if all(n for n, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
