#!/usr/bin/env python3
"""Pod density: cri-runtime vs containerd's built-in CRI on the same containerd.

Run by hand, as root, from the repository root:

    .venv/bin/python bench/density_bench.py                 # 20 pods, 2 rounds: a few minutes
    .venv/bin/python bench/density_bench.py --pods 100      # the full run: 100 pods, 200 containers

Each round brings `--pods` pods up, each with 2 containers (create + start),
in waves of `--wave` pods started in parallel (one thread per pod), then lists
and stats the containers, then stops and removes every pod. Rounds alternate
between the two endpoints (A B, B A, ...) as `lifecycle_bench.py` does. It
prints medians and the ratio ours/containerd (< 1.0 = we use less):

- wall time per wave;
- p50/p99 RunPodSandbox, CreateContainer and StartContainer latency under
  that concurrency;
- memory: our server's RSS with every pod up (alone, and with the PSS of its
  per-container log relays, which share most of their pages), against the
  growth of containerd's own RSS over the same pods when containerd's CRI
  serves them (its CRI plugin lives in containerd);
- CPU seconds per pod lifecycle (up and down), from /proc: our server (and its
  relays) against containerd's own CPU when its CRI serves the pods; what
  containerd spends serving our server is printed too;
- ListContainers and ListContainerStats latency with every container up.

Everything it starts (private containerd with its CRI plugin, local registry,
host-only CNI network, our server) is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench.lifecycle_bench import Endpoint, container_config, pod_config, stop_all  # noqa: E402
from cri_protos.runtime.v1 import api_pb2  # noqa: E402
from tests.cri_server import CriServer  # noqa: E402
from tests.rig.containerd import PrivateContainerd  # noqa: E402
from tests.rig.images import push_standard_images  # noqa: E402
from tests.rig.network import TestNetwork  # noqa: E402
from tests.rig.registry import LocalRegistry  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- /proc -------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`, plus those of its reaped children (cutime + cstime)."""
    f = _stat_fields(pid)
    return sum(int(x) for x in f[11:15]) / CLK_TCK


def rss_bytes(pid: int) -> float:
    return float(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE)


def pss_bytes(pid: int) -> float:
    """Proportional set size: shared pages split among the processes sharing them."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return float(int(line.split()[1]) * 1024)
    return 0.0


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, command line) of every process."""
    out: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry)] = (ppid, cmd)
    return out


def helper_pids(server_pid: int, marker: str) -> list[int]:
    """Our server's helper processes: its descendants, and detached relays naming its dirs."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(children.get(server_pid, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    found |= {pid for pid, (_, cmd) in procs.items() if marker in cmd and "cri_runtime" in cmd}
    found.discard(server_pid)
    return sorted(found)


def _sum(fn: Callable[[int], float], pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):  # exited meanwhile
            total += fn(pid)
    return total


# -- one round ------------------------------------------------------------------------


@dataclass
class Round:
    wave_s: list[float] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    lists: dict[str, list[float]] = field(default_factory=dict)

    def took(self, op: str, ms: float) -> None:
        self.latency.setdefault(op, []).append(ms)


class Meter:
    """What one endpoint costs, read from /proc: the process serving CRI, and containerd."""

    def __init__(self, containerd_pid: int, server_pid: int | None, marker: str) -> None:
        self.containerd_pid, self.server_pid, self.marker = containerd_pid, server_pid, marker

    def sample(self) -> dict[str, float]:
        out = {"containerd rss": rss_bytes(self.containerd_pid),
               "containerd cpu": cpu_seconds(self.containerd_pid)}
        if self.server_pid is not None:
            helpers = helper_pids(self.server_pid, self.marker)
            out["server rss"] = rss_bytes(self.server_pid)
            out["server cpu"] = cpu_seconds(self.server_pid)
            out["relays rss"] = _sum(pss_bytes, helpers)  # PSS: the relays share most pages
            out["relays cpu"] = _sum(cpu_seconds, helpers)
            out["relays"] = float(len(helpers))
        return out


def timed_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def pod_up(ep: Endpoint, image: str, rnd: Round) -> str:
    """RunPodSandbox, then 2 containers created and started (one pod's worth of kubelet work)."""
    cfg = pod_config(ep.name)
    ms, resp = timed_ms(lambda: ep.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=300))
    rnd.took("RunPodSandbox", ms)
    pod = resp.pod_sandbox_id
    for name in ("app", "sidecar"):
        ms, resp = timed_ms(lambda: ep.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod, config=container_config(image, name), sandbox_config=cfg), timeout=300))
        rnd.took("CreateContainer", ms)
        cid = resp.container_id
        ms, _ = timed_ms(lambda: ep.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid),
                                                      timeout=300))
        rnd.took("StartContainer", ms)
    return str(pod)


def pod_down(ep: Endpoint, pod: str) -> None:
    ep.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=300)
    ep.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=300)


def density_round(ep: Endpoint, meter: Meter, image: str, pods: int, wave: int, list_calls: int) -> Round:
    rnd = Round()
    before = meter.sample()
    ids: list[str] = []
    with ThreadPoolExecutor(wave) as pool:
        for first in range(0, pods, wave):
            n = min(wave, pods - first)
            start = time.perf_counter()
            ids.extend(pool.map(lambda _: pod_up(ep, image, rnd), range(n)))
            rnd.wave_s.append(time.perf_counter() - start)
        peak = meter.sample()
        for _ in range(list_calls):
            for op, call in (
                    ("ListContainers", lambda: ep.rt.ListContainers(api_pb2.ListContainersRequest(), timeout=60)),
                    ("ListContainerStats", lambda: ep.rt.ListContainerStats(
                        api_pb2.ListContainerStatsRequest(), timeout=60))):
                rnd.lists.setdefault(op, []).append(timed_ms(call)[0])
        list(pool.map(lambda p: pod_down(ep, p), ids))
    after = meter.sample()
    rnd.rss = {k: peak[k] for k in peak if k.endswith("rss")}
    rnd.rss["containerd rss growth"] = peak["containerd rss"] - before["containerd rss"]
    if "server rss" in peak:
        rnd.rss["server rss growth"] = peak["server rss"] - before["server rss"]
        rnd.rss["relays"] = peak["relays"]
    rnd.cpu = {k: (after[k] - before[k]) / pods for k in after if k.endswith("cpu")}
    return rnd


# -- report ---------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(label: str, ours: float, theirs: float, unit: str) -> None:
    ratio = ours / theirs if theirs else float("nan")
    print(f"{label:52} {ours:12.2f} {theirs:12.2f} {unit:4} {ratio:7.2f}")


def report(results: dict[str, list[Round]], pods: int) -> None:
    ours, theirs = results["ours"], results["containerd"]

    def all_of(rounds: list[Round], pick: Callable[[Round], list[float]]) -> list[float]:
        return [v for r in rounds for v in pick(r)]

    def med(rounds: list[Round], pick: Callable[[Round], float]) -> float:
        return statistics.median([pick(r) for r in rounds])

    print(f"\n{pods} pods x 2 containers per round, {len(ours)} rounds per endpoint; medians; "
          "ratio = cri-runtime / containerd's CRI (< 1: we are faster / use less)")
    print(f"{'':52} {'cri-runtime':>12} {'containerd':>12} {'':4} {'ratio':>7}")
    row("wall time per wave", statistics.median(all_of(ours, lambda r: r.wave_s)),
        statistics.median(all_of(theirs, lambda r: r.wave_s)), "s")
    for op in ("RunPodSandbox", "CreateContainer", "StartContainer"):
        a, b = all_of(ours, lambda r: r.latency[op]), all_of(theirs, lambda r: r.latency[op])
        row(f"{op} p50", pct(a, 0.5), pct(b, 0.5), "ms")
        row(f"{op} p99", pct(a, 0.99), pct(b, 0.99), "ms")
    for op in ("ListContainers", "ListContainerStats"):
        row(f"{op} with {2 * pods} containers", statistics.median(all_of(ours, lambda r: r.lists[op])),
            statistics.median(all_of(theirs, lambda r: r.lists[op])), "ms")
    mib = 1024 * 1024
    ctd_growth = med(theirs, lambda r: r.rss["containerd rss growth"]) / mib
    row("RSS: our server vs containerd's growth", med(ours, lambda r: r.rss["server rss"]) / mib, ctd_growth, "MiB")
    row("RSS: our server + relays (PSS) vs containerd's growth",
        med(ours, lambda r: r.rss["server rss"] + r.rss["relays rss"]) / mib, ctd_growth, "MiB")
    row("RSS growth: our server vs containerd's", med(ours, lambda r: r.rss["server rss growth"]) / mib,
        ctd_growth, "MiB")
    ctd_cpu = med(theirs, lambda r: r.cpu["containerd cpu"])
    row("CPU per pod lifecycle: our server", med(ours, lambda r: r.cpu["server cpu"]), ctd_cpu, "s")
    row("CPU per pod lifecycle: our server + relays",
        med(ours, lambda r: r.cpu["server cpu"] + r.cpu["relays cpu"]), ctd_cpu, "s")
    print(f"  (containerd's own CPU per pod while serving our server: "
          f"{med(ours, lambda r: r.cpu['containerd cpu']):.3f} s; its RSS growth meanwhile: "
          f"{med(ours, lambda r: r.rss['containerd rss growth']) / mib:.1f} MiB; "
          f"relays per round: {med(ours, lambda r: r.rss['relays']):.0f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=20, help="pods per round (the full run: 100)")
    ap.add_argument("--wave", type=int, default=10, help="pods started in parallel")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per endpoint (alternating)")
    ap.add_argument("--list-calls", type=int, default=50, help="ListContainers/ListContainerStats calls at peak")
    ap.add_argument("--network-index", type=int, default=8,
                    help="host-only test network index (1-99); distinct per concurrent run")
    args = ap.parse_args()

    registry = LocalRegistry().start()
    images = push_standard_images(registry)
    ctrd = PrivateContainerd(with_cri=True, sandbox_image=images.pause.ref)
    ctrd.add_registry_host(registry.host, f"http://{registry.host}")
    ctrd.start()
    network = TestNetwork(Path(ctrd.cni_conf_dir), index=args.network_index)
    server = CriServer(ctrd.address, hosts_dir=str(ctrd.hosts_dir), runc_root=str(ctrd.runc_root),
                       sandbox_image=images.pause.ref)
    server.config_path.write_text(server.config_path.read_text().replace(
        f'cni_conf_dir = "{server.cni_conf_dir}"', f'cni_conf_dir = "{ctrd.cni_conf_dir}"').replace(
        'log_level = "debug"', 'log_level = "warning"'))
    try:
        server.start()
        assert server.proc is not None and ctrd.pid is not None
        ours = Endpoint("ours", server.endpoint)
        theirs = Endpoint("containerd", f"unix://{ctrd.address}")
        meters = {"ours": Meter(ctrd.pid, server.proc.pid, str(server.dir)),
                  "containerd": Meter(ctrd.pid, None, "")}
        for ep in (ours, theirs):
            for ref in (images.busybox.ref, images.pause.ref):
                ep.img.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)), timeout=120)
            density_round(ep, meters[ep.name], images.busybox.ref, min(args.wave, args.pods), args.wave, 1)  # warm-up
        results: dict[str, list[Round]] = {"ours": [], "containerd": []}
        pair = (theirs, ours)
        for i in range(args.rounds):
            for ep in (pair if i % 2 == 0 else pair[::-1]):
                rnd = density_round(ep, meters[ep.name], images.busybox.ref, args.pods, args.wave, args.list_calls)
                results[ep.name].append(rnd)
                print(f"round {i + 1} {ep.name:10}: waves {', '.join(f'{s:.2f}' for s in rnd.wave_s)} s",
                      flush=True)
        report(results, args.pods)
    finally:
        stop_all(server, ctrd, registry, network)
    return 0


if __name__ == "__main__":
    sys.exit(main())
