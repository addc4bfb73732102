#!/usr/bin/env python3
"""Pod and container lifecycle: cri-runtime vs containerd's built-in CRI, one run.

Run by hand, as root, from the repository root:

    .venv/bin/python bench/lifecycle_bench.py [--rounds 15] [--containers 100] [--parallel 10]

It starts a private containerd with its CRI plugin on, a local registry with
the test images, a host-only CNI network, and cri-runtime on the same
containerd; then drives both endpoints with the same gRPC client code:
RunPodSandbox, CreateContainer, StartContainer, StopContainer,
RemoveContainer, StopPodSandbox+RemovePodSandbox; ListContainers and
ContainerStatus with N containers present; N pods started in parallel.
It prints medians (ms) and the ratio ours/containerd (< 1.0 = we are faster).
Everything it starts is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


class Endpoint:
    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.channel = grpc.insecure_channel(address)
        self.rt = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.img = api_pb2_grpc.ImageServiceStub(self.channel)


def pod_config(tag: str) -> api_pb2.PodSandboxConfig:
    name = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="bench", uid=uuid.uuid4().hex),
        hostname=name, log_directory=f"/tmp/crirt-bench/{name}")


def container_config(image: str, name: str = "c") -> api_pb2.ContainerConfig:
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name), image=api_pb2.ImageSpec(image=image),
        command=["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"], log_path=f"{name}.log")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def lifecycle(ep: Endpoint, image: str, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in ("run pod", "create", "start", "stop", "remove",
                                                   "stop+remove pod")}
    for _ in range(rounds):
        cfg = pod_config(ep.name)
        ms, resp = timed(lambda: ep.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=120))
        out["run pod"].append(ms)
        pod = resp.pod_sandbox_id
        ms, resp = timed(lambda: ep.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod, config=container_config(image), sandbox_config=cfg), timeout=120))
        out["create"].append(ms)
        cid = resp.container_id
        out["start"].append(timed(lambda: ep.rt.StartContainer(
            api_pb2.StartContainerRequest(container_id=cid), timeout=120))[0])
        out["stop"].append(timed(lambda: ep.rt.StopContainer(
            api_pb2.StopContainerRequest(container_id=cid, timeout=10), timeout=120))[0])
        out["remove"].append(timed(lambda: ep.rt.RemoveContainer(
            api_pb2.RemoveContainerRequest(container_id=cid), timeout=120))[0])

        def teardown() -> None:
            ep.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
            ep.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        out["stop+remove pod"].append(timed(teardown)[0])
    return out


def with_many_containers(ep: Endpoint, image: str, count: int, rounds: int) -> dict[str, list[float]]:
    cfg = pod_config(ep.name)
    pod = ep.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
    ids = []
    try:
        for i in range(count):
            ids.append(ep.rt.CreateContainer(api_pb2.CreateContainerRequest(
                pod_sandbox_id=pod, config=container_config(image, f"c{i}"), sandbox_config=cfg),
                timeout=120).container_id)
        out: dict[str, list[float]] = {f"list ({count} containers)": [], "status": []}
        for i in range(rounds):
            out[f"list ({count} containers)"].append(timed(lambda: ep.rt.ListContainers(
                api_pb2.ListContainersRequest(), timeout=60))[0])
            cid = ids[i % len(ids)]
            out["status"].append(timed(lambda: ep.rt.ContainerStatus(
                api_pb2.ContainerStatusRequest(container_id=cid), timeout=60))[0])
        return out
    finally:
        ep.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=300)
        ep.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=300)


def parallel_pods(ep: Endpoint, n: int, rounds: int) -> dict[str, list[float]]:
    key = f"{n} pods in parallel"
    out: dict[str, list[float]] = {key: []}
    for _ in range(rounds):
        cfgs = [pod_config(ep.name) for _ in range(n)]
        with ThreadPoolExecutor(n) as pool:
            ms, ids = timed(lambda: list(pool.map(
                lambda c: ep.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=c), timeout=300).pod_sandbox_id,
                cfgs)))
            out[key].append(ms)

            def remove(pod: str) -> None:
                ep.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=300)
                ep.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=300)
            list(pool.map(remove, ids))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--network-index", type=int, default=9,
                    help="host-only test network index (1-99); distinct per concurrent run")
    args = ap.parse_args()

    registry = LocalRegistry().start()
    images = push_standard_images(registry)
    ctrd = PrivateContainerd(with_cri=True, sandbox_image=images.pause.ref)
    ctrd.add_registry_host(registry.host, f"http://{registry.host}")
    ctrd.start()
    network = TestNetwork(Path(ctrd.cni_conf_dir), index=args.network_index)
    server = CriServer(ctrd.address, hosts_dir=str(ctrd.hosts_dir), runc_root=str(ctrd.runc_root),
                       sandbox_image=images.pause.ref,
                       extra_toml="")
    server.config_path.write_text(server.config_path.read_text().replace(
        f'cni_conf_dir = "{server.cni_conf_dir}"', f'cni_conf_dir = "{ctrd.cni_conf_dir}"').replace(
        'log_level = "debug"', 'log_level = "warning"'))
    try:
        server.start()
        ours = Endpoint("ours", server.endpoint)
        theirs = Endpoint("containerd", f"unix://{ctrd.address}")
        for ep in (ours, theirs):
            for ref in (images.busybox.ref, images.pause.ref):
                ep.img.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)), timeout=120)
            lifecycle(ep, images.busybox.ref, 2)  # warm-up
        results: dict[str, dict[str, list[float]]] = {"ours": {}, "containerd": {}}
        for ep in (theirs, ours):
            results[ep.name].update(lifecycle(ep, images.busybox.ref, args.rounds))
        for ep in (theirs, ours):
            results[ep.name].update(with_many_containers(ep, images.busybox.ref, args.containers, args.rounds * 2))
        for ep in (theirs, ours):
            results[ep.name].update(parallel_pods(ep, args.parallel, max(3, args.rounds // 3)))
        print(f"{'operation':28} {'cri-runtime ms':>15} {'containerd ms':>15} {'ratio':>7}")
        for op in results["ours"]:
            a = statistics.median(results["ours"][op])
            b = statistics.median(results["containerd"][op])
            print(f"{op:28} {a:15.1f} {b:15.1f} {a / b:7.2f}")
    finally:
        server.cleanup()
        problems = ctrd.stop()
        network.close()
        registry.stop()
        if problems:
            print("cleanup problems:", problems, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
