#!/usr/bin/env python3
"""Pod and container lifecycle: cri-runtime vs containerd's built-in CRI, one run.

Run by hand, as root, from the repository root:

    .venv/bin/python bench/lifecycle_bench.py [--rounds 25] [--containers 100] [--parallel 10]

It starts a private containerd with its CRI plugin on, a local registry with
the test images, a host-only CNI network, and cri-runtime on the same
containerd; then drives both endpoints with the same gRPC client code:
RunPodSandbox, CreateContainer, StartContainer, StopContainer,
RemoveContainer, StopPodSandbox+RemovePodSandbox; ListContainers and
ContainerStatus with N containers present; N pods started in parallel.
Rounds alternate between the two endpoints (A B, B A, ...) so background load
drifts over both alike. It prints medians (ms) and the ratio ours/containerd
(< 1.0 = we are faster).
Everything it starts is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import statistics
import sys
import tempfile
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


# The pods' log directories: made by the runtimes, removed with them at exit (kubelet's job on a node).
LOG_ROOT = tempfile.mkdtemp(prefix="crirt-bench-logs-")
atexit.register(shutil.rmtree, LOG_ROOT, True)


def pod_config(tag: str) -> api_pb2.PodSandboxConfig:
    name = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="bench", uid=uuid.uuid4().hex),
        hostname=name, log_directory=f"{LOG_ROOT}/{name}")


def container_config(image: str, name: str = "c") -> api_pb2.ContainerConfig:
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name), image=api_pb2.ImageSpec(image=image),
        command=["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"], log_path=f"{name}.log")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def lifecycle_round(ep: Endpoint, image: str) -> dict[str, float]:
    """One pod through its whole life: run, create, start, stop, remove, stop+remove pod."""
    out: dict[str, float] = {}
    cfg = pod_config(ep.name)
    out["run pod"], resp = timed(lambda: ep.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=120))
    pod = resp.pod_sandbox_id
    out["create"], resp = timed(lambda: ep.rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod, config=container_config(image), sandbox_config=cfg), timeout=120))
    cid = resp.container_id
    out["start"] = timed(lambda: ep.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=120))[0]
    out["stop"] = timed(lambda: ep.rt.StopContainer(
        api_pb2.StopContainerRequest(container_id=cid, timeout=10), timeout=120))[0]
    out["remove"] = timed(lambda: ep.rt.RemoveContainer(
        api_pb2.RemoveContainerRequest(container_id=cid), timeout=120))[0]

    def teardown() -> None:
        ep.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        ep.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    out["stop+remove pod"] = timed(teardown)[0]
    return out


def print_ratios(results: dict[str, dict[str, list[float]]], decimals: int = 1) -> None:
    """Medians of both endpoints per operation (ours first) and their ratio."""
    print(f"{'operation':28} {'cri-runtime ms':>15} {'containerd ms':>15} {'ratio':>7}")
    for op in results["ours"]:
        a = statistics.median(results["ours"][op])
        b = statistics.median(results["containerd"][op])
        print(f"{op:28} {a:15.{decimals}f} {b:15.{decimals}f} {a / b:7.2f}")


def stop_all(server: Any, ctrd: Any, registry: Any, network: Any = None) -> None:
    """Stop what a benchmark started, reporting what containerd's cleanup found left over."""
    server.cleanup()
    problems = ctrd.stop()
    if network is not None:
        network.close()
    registry.stop()
    if problems:
        print("cleanup problems:", problems, file=sys.stderr)


def interleaved(endpoints: tuple[Endpoint, Endpoint], rounds: int,
                one_round: Callable[[Endpoint], dict[str, float]]) -> dict[str, dict[str, list[float]]]:
    """Rounds alternate between the endpoints (A B, B A, ...) so load drift hits both alike."""
    results: dict[str, dict[str, list[float]]] = {ep.name: {} for ep in endpoints}
    for i in range(rounds):
        for ep in (endpoints if i % 2 == 0 else endpoints[::-1]):
            for op, ms in one_round(ep).items():
                results[ep.name].setdefault(op, []).append(ms)
    return results


class ManyContainers:
    """A pod with `count` created containers on one endpoint, for list and status timings."""

    def __init__(self, ep: Endpoint, image: str, count: int) -> None:
        self.ep, self.count = ep, count
        cfg = pod_config(ep.name)
        self.pod = ep.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
        self.ids: list[str] = []
        for i in range(count):
            self.ids.append(ep.rt.CreateContainer(api_pb2.CreateContainerRequest(
                pod_sandbox_id=self.pod, config=container_config(image, f"c{i}"), sandbox_config=cfg),
                timeout=120).container_id)
        self.n = 0

    def round(self) -> dict[str, float]:
        self.n += 1
        cid = self.ids[self.n % len(self.ids)]
        return {
            f"list ({self.count} containers)": timed(lambda: self.ep.rt.ListContainers(
                api_pb2.ListContainersRequest(), timeout=60))[0],
            "status": timed(lambda: self.ep.rt.ContainerStatus(
                api_pb2.ContainerStatusRequest(container_id=cid), timeout=60))[0],
        }

    def close(self) -> None:
        self.ep.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=self.pod), timeout=300)
        self.ep.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=self.pod), timeout=300)


def parallel_round(ep: Endpoint, n: int) -> dict[str, float]:
    cfgs = [pod_config(ep.name) for _ in range(n)]
    with ThreadPoolExecutor(n) as pool:
        ms, ids = timed(lambda: list(pool.map(
            lambda c: ep.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=c), timeout=300).pod_sandbox_id,
            cfgs)))

        def remove(pod: str) -> None:
            ep.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=300)
            ep.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=300)
        list(pool.map(remove, ids))
    return {f"{n} pods in parallel": ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--list-rounds", type=int, default=300,
                    help="list and status calls per endpoint (sub-millisecond, so many)")
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
            for _ in range(2):  # warm-up
                lifecycle_round(ep, images.busybox.ref)
        pair = (theirs, ours)
        results = interleaved(pair, args.rounds, lambda ep: lifecycle_round(ep, images.busybox.ref))
        many = {ep.name: ManyContainers(ep, images.busybox.ref, args.containers) for ep in pair}
        try:
            for name, ops in interleaved(pair, args.list_rounds, lambda ep: many[ep.name].round()).items():
                results[name].update(ops)
        finally:
            for m in many.values():
                m.close()
        for name, ops in interleaved(pair, max(8, args.rounds // 3),
                                     lambda ep: parallel_round(ep, args.parallel)).items():
            results[name].update(ops)
        print_ratios(results)
    finally:
        stop_all(server, ctrd, registry, network)
    return 0


if __name__ == "__main__":
    sys.exit(main())
