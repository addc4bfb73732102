#!/usr/bin/env python3
"""Pull throughput: cri-runtime's ImageService vs containerd's own client (ctr).

Starts a private containerd (CRI plugin off) and a local docker-registry from the
test rig, pushes a multi-layer image of at least 200 MB (mostly incompressible
data, gzip layers), then alternates, for several rounds:

- ours: PullImage over gRPC on a unix socket to an in-process ImageService
  (same code path kubelet uses: registry → Content.Write → Diff.Apply);
- ctr:  ``ctr -n k8s.io images pull --plain-http`` (fetch + unpack).

Between pulls every image record is deleted synchronously, so containerd's GC
removes all content and snapshots and each pull starts cold. Prints MB/s per
pull, the medians and ours/ctr. Run as root:

    PYTHONPATH=src .venv/bin/python bench/pull_bench.py [--rounds 3] [--layers 4] [--mib-per-layer 56]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import grpc  # noqa: E402

from cri_protos.containerd.services.content.v1 import content_pb2  # noqa: E402
from cri_protos.containerd.services.images.v1 import images_pb2  # noqa: E402
from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2  # noqa: E402
from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc  # noqa: E402
from cri_runtime.config import ImageConfig  # noqa: E402
from cri_runtime.containerd.connection import Containerd  # noqa: E402
from cri_runtime.images.manager import ImageManager  # noqa: E402
from cri_runtime.services.images import ImageServicer  # noqa: E402
from tests.rig.containerd import PrivateContainerd  # noqa: E402
from tests.rig.oci import Image, LayerBuilder, busybox_image, push  # noqa: E402
from tests.rig.registry import LocalRegistry  # noqa: E402

SNAPSHOTTER = "overlayfs"


class OpenGate:
    async def wait_recovered(self) -> None:
        return None


def build_image(layers: int, mib_per_layer: int) -> Image:
    """busybox + `layers` layers of `mib_per_layer` MiB each (7/8 random, 1/8 text)."""
    extra = []
    for i in range(layers):
        lb = LayerBuilder()
        files = max(1, mib_per_layer // 8)
        for j in range(files):
            data = os.urandom(7 << 20) + (f"layer {i} file {j} " * 70000).encode()[: 1 << 20]
            lb.file(f"bench/l{i}/f{j}.bin", data)
        extra.append(lb)
    return busybox_image(extra_layers=extra)


async def clear(ctd: Containerd) -> None:
    """Delete every image record (sync GC), then check content and snapshots are gone."""
    resp = await ctd.call(ctd.images.List, images_pb2.ListImagesRequest(), "list")
    names = sorted((i.name for i in resp.images), key=lambda n: n.startswith("sha256:"))
    for i, name in enumerate(names):
        await ctd.call(ctd.images.Delete,
                       images_pb2.DeleteImageRequest(name=name, sync=i == len(names) - 1), "delete")
    left = []
    async for r in ctd.content.List(content_pb2.ListContentRequest(), metadata=ctd.metadata()):
        left += [i.digest for i in r.info]
    snaps = []
    async for r in ctd.snapshots.List(snapshots_pb2.ListSnapshotsRequest(snapshotter=SNAPSHOTTER),
                                      metadata=ctd.metadata()):
        snaps += [i.name for i in r.info]
    if left or snaps:
        # GC is asynchronous for whatever a sync delete did not cover: give it a moment.
        await asyncio.sleep(1.0)
    # Flush the previous round's dirty pages so they are not written back during the next.
    await asyncio.to_thread(os.sync)
    await asyncio.sleep(0.5)


async def pull_ours(stub: api_pb2_grpc.ImageServiceStub, ref: str) -> float:
    t = time.perf_counter()
    await stub.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)))
    return time.perf_counter() - t


def pull_ctr(ctrd: PrivateContainerd, ref: str) -> float:
    t = time.perf_counter()
    subprocess.run(["ctr", "--address", ctrd.address, "-n", "k8s.io", "images", "pull", "--plain-http",
                    "--snapshotter", SNAPSHOTTER, ref], check=True, capture_output=True, timeout=600)
    return time.perf_counter() - t


async def run(args: argparse.Namespace, ctrd: PrivateContainerd, ref: str, size: int) -> None:
    ctd = Containerd(ctrd.address, "k8s.io")
    await ctd.wait_ready(10)
    manager = ImageManager(ctd, ImageConfig(registry_config_path=str(ctrd.hosts_dir),
                                            max_concurrent_downloads=args.concurrency), SNAPSHOTTER)
    with tempfile.TemporaryDirectory(prefix="crirt-bench-") as d:
        sock = f"unix://{d}/cri.sock"
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 16 << 20)])
        api_pb2_grpc.add_ImageServiceServicer_to_server(ImageServicer(manager, OpenGate()), server)
        server.add_insecure_port(sock)
        await server.start()
        channel = grpc.aio.insecure_channel(sock)
        stub = api_pb2_grpc.ImageServiceStub(channel)
        ours: list[float] = []
        theirs: list[float] = []
        try:
            await clear(ctd)
            for rnd in range(1, args.rounds + 1):
                order = ["ours", "ctr"] if rnd % 2 else ["ctr", "ours"]
                for who in order:
                    if who == "ours":
                        secs = await pull_ours(stub, ref)
                        ours.append(secs)
                    else:
                        secs = await asyncio.to_thread(pull_ctr, ctrd, ref)
                        theirs.append(secs)
                    print(f"round {rnd} {who:5s} {secs:6.2f}s  {size / secs / 1e6:7.1f} MB/s", flush=True)
                    await clear(ctd)
        finally:
            await channel.close()
            await server.stop(None)
            await manager.close()
            await ctd.close()
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"image {size / 1e6:.1f} MB compressed, {args.rounds} rounds (median):")
    print(f"  cri-runtime PullImage : {size / mo / 1e6:7.1f} MB/s ({mo:.2f}s)")
    print(f"  ctr images pull       : {size / mt / 1e6:7.1f} MB/s ({mt:.2f}s)")
    print(f"  ratio ours/ctr (throughput): {mt / mo:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--mib-per-layer", type=int, default=56)
    ap.add_argument("--concurrency", type=int, default=3, help="max_concurrent_downloads for ours")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (private containerd)")
    print("building image …", flush=True)
    image = build_image(args.layers, args.mib_per_layer)
    size = image.size
    ctrd = PrivateContainerd(with_cri=False).start()
    reg = LocalRegistry().start()
    try:
        res = push(image, reg, "bench/big", "v1")
        print(f"pushed {res.ref}: {len(image.layers)} layers, {size / 1e6:.1f} MB", flush=True)
        asyncio.run(run(args, ctrd, res.ref, size))
    finally:
        reg.stop()
        problems = ctrd.stop()
        if problems:
            print("containerd cleanup:", "; ".join(problems), file=sys.stderr)


if __name__ == "__main__":
    main()
