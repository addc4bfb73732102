#!/usr/bin/env python3
"""ImageService: cri-runtime vs containerd's built-in CRI on the same containerd, one run.

Run by hand, as root, from the repository root:

    .venv/bin/python bench/image_bench.py [--rounds 30]

It starts a private containerd with its CRI plugin on, a local registry with
the test images and cri-runtime on the same containerd, then drives both
endpoints with the same client code, in critest's benchmark order: PullImage
(of an absent image), ImageStatus, ListImages, PullImage again (the image is
present), RemoveImage; and ImageFsInfo. Rounds alternate between the two
endpoints (A B, B A, ...) so background load drifts over both alike. It
prints medians (ms) and the ratio ours/containerd (< 1.0 = we are faster).
Everything it starts is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench.lifecycle_bench import Endpoint, interleaved, print_ratios, stop_all, timed  # noqa: E402
from cri_protos.runtime.v1 import api_pb2  # noqa: E402
from tests.cri_server import CriServer  # noqa: E402
from tests.rig.containerd import PrivateContainerd  # noqa: E402
from tests.rig.images import push_standard_images  # noqa: E402
from tests.rig.registry import LocalRegistry  # noqa: E402


def image_round(ep: Endpoint, ref: str) -> dict[str, float]:
    spec = api_pb2.ImageSpec(image=ref)
    out: dict[str, float] = {}
    out["PullImage (absent)"] = timed(lambda: ep.img.PullImage(api_pb2.PullImageRequest(image=spec), timeout=120))[0]
    out["ImageStatus"] = timed(lambda: ep.img.ImageStatus(api_pb2.ImageStatusRequest(image=spec), timeout=30))[0]
    out["ListImages"] = timed(lambda: ep.img.ListImages(api_pb2.ListImagesRequest(), timeout=30))[0]
    out["PullImage (present)"] = timed(lambda: ep.img.PullImage(api_pb2.PullImageRequest(image=spec),
                                                                timeout=120))[0]
    out["RemoveImage"] = timed(lambda: ep.img.RemoveImage(api_pb2.RemoveImageRequest(image=spec), timeout=120))[0]
    out["ImageFsInfo"] = timed(lambda: ep.img.ImageFsInfo(api_pb2.ImageFsInfoRequest(), timeout=30))[0]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()

    registry = LocalRegistry().start()
    images = push_standard_images(registry)
    ctrd = PrivateContainerd(with_cri=True, sandbox_image=images.pause.ref)
    ctrd.add_registry_host(registry.host, f"http://{registry.host}")
    ctrd.start()
    server = CriServer(ctrd.address, hosts_dir=str(ctrd.hosts_dir), runc_root=str(ctrd.runc_root),
                       sandbox_image=images.pause.ref)
    server.config_path.write_text(server.config_path.read_text().replace('log_level = "debug"',
                                                                         'log_level = "warning"'))
    try:
        server.start()
        ours = Endpoint("ours", server.endpoint)
        theirs = Endpoint("containerd", f"unix://{ctrd.address}")
        ref = images.busybox_user.ref
        for ep in (ours, theirs):
            ep.img.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=images.pause.ref)), timeout=120)
            for _ in range(2):  # warm-up
                image_round(ep, ref)
        results = interleaved((theirs, ours), args.rounds, lambda ep: image_round(ep, ref))
        print_ratios(results, decimals=2)
    finally:
        stop_all(server, ctrd, registry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
