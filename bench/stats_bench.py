#!/usr/bin/env python3
"""ListContainerStats latency with N running containers: cri-runtime vs containerd's built-in CRI.

Starts one private containerd WITH its CRI plugin, a local registry with the
rig's busybox and pause images, and cri-runtime on the same containerd (our
objects carry io.cri-runtime labels, so the two CRI servers never adopt each
other's). For each endpoint in turn: one pod (host-only CNI network) with N
`sleep` containers, a few warm-up calls (the first call has no CPU rate and
fills the writable-layer cache on both sides), then `--calls` timed
ListContainerStats calls without a filter; then everything is removed.
Prints min/median/p90 per endpoint and ours/containerd. Run as root:

    PYTHONPATH=src .venv/bin/python bench/stats_bench.py [--containers 100] [--calls 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import grpc  # noqa: E402

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc  # noqa: E402
from tests.cri_server import CriServer  # noqa: E402
from tests.rig.containerd import PrivateContainerd  # noqa: E402
from tests.rig.images import push_standard_images  # noqa: E402
from tests.rig.network import TestNetwork  # noqa: E402
from tests.rig.registry import LocalRegistry  # noqa: E402


def run_workload(name: str, endpoint: str, busybox: str, containers: int, calls: int) -> list[float]:
    channel = grpc.insecure_channel(endpoint, options=[("grpc.max_receive_message_length", 16 << 20)])
    rt = api_pb2_grpc.RuntimeServiceStub(channel)
    images = api_pb2_grpc.ImageServiceStub(channel)
    images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=busybox)), timeout=120)
    pod_cfg = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
        name=f"bench-{uuid.uuid4().hex[:6]}", namespace="bench", uid=uuid.uuid4().hex))
    pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod_cfg), timeout=120).pod_sandbox_id
    try:
        started = time.monotonic()
        for i in range(containers):
            cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=f"c{i}"),
                                          image=api_pb2.ImageSpec(image=busybox), command=["sleep", "86400"])
            cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                    sandbox_config=pod_cfg), timeout=120).container_id
            rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=120)
        print(f"{name}: {containers} containers running after {time.monotonic() - started:.1f}s", flush=True)
        for _ in range(3):
            warm = rt.ListContainerStats(api_pb2.ListContainerStatsRequest(), timeout=120).stats
        assert len(warm) == containers, (name, len(warm))
        time.sleep(1.0)
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            stats = rt.ListContainerStats(api_pb2.ListContainerStatsRequest(), timeout=120).stats
            samples.append(time.perf_counter() - t0)
            assert len(stats) == containers
        with_rate = sum(1 for s in stats if s.cpu.HasField("usage_nano_cores"))
        print(f"{name}: last reply has usage_nano_cores for {with_rate}/{containers} containers", flush=True)
        return samples
    finally:
        rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=600)
        rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=600)
        channel.close()


def describe(name: str, samples: list[float]) -> float:
    ms = sorted(s * 1000 for s in samples)
    median = statistics.median(ms)
    p90 = ms[int(0.9 * (len(ms) - 1))]
    print(f"{name:>12}: min {ms[0]:8.1f} ms   median {median:8.1f} ms   p90 {p90:8.1f} ms   (n={len(ms)})")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()

    registry = LocalRegistry().start()
    ctrd: PrivateContainerd | None = None
    ours: CriServer | None = None
    networks: list[TestNetwork] = []
    try:
        imgs = push_standard_images(registry)
        ctrd = PrivateContainerd(with_cri=True, sandbox_image=imgs.pause.ref)
        ctrd.add_registry_host(registry.host, "http://" + registry.host)
        ctrd.start()
        networks.append(TestNetwork(ctrd.cni_conf_dir, 5))
        ours = CriServer(ctrd.address, hosts_dir=str(ctrd.hosts_dir), runc_root=str(ctrd.runc_root),
                         sandbox_image=imgs.pause.ref)
        networks.append(TestNetwork(ours.cni_conf_dir, 6))
        ours.start()
        results: dict[str, list[float]] = {}
        results["cri-runtime"] = run_workload("cri-runtime", ours.endpoint, imgs.busybox.ref, args.containers,
                                              args.calls)
        results["containerd"] = run_workload("containerd", "unix://" + ctrd.address, imgs.busybox.ref,
                                             args.containers, args.calls)
        print(f"\nListContainerStats, {args.containers} running containers, no filter:")
        ours_median = describe("cri-runtime", results["cri-runtime"])
        theirs = describe("containerd", results["containerd"])
        print(f"{'ratio':>12}: ours/containerd median = {ours_median / theirs:.2f}")
        return 0
    finally:
        if ours is not None:
            ours.cleanup()
        for n in networks:
            n.close()
        if ctrd is not None:
            problems: Any = ctrd.stop()
            if problems:
                print("containerd cleanup:", problems, file=sys.stderr)
        registry.stop()


if __name__ == "__main__":
    sys.exit(main())
