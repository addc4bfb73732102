"""Start-up benchmark of our crictl against upstream crictl, in the same run.

Times `crictl ps -a` and `crictl inspect ID` (the issue's goal: ≤ 0.10 s wall, median of 7,
warm cache) plus `crictl version`, `crictl images` and `crictl --help`, for our console script and, when
present, the upstream binary. Without -r it serves a small fake CRI endpoint itself (one pod,
one container), so the figures do not depend on a runtime's own speed. Runs alternate between
the binaries so machine noise hits both alike; one warm-up run each precedes the samples.
"Warm cache" includes compiled bytecode, as an installed package has: our packages are
compiled first, since with PYTHONDONTWRITEBYTECODE set (as on this machine) an editable
install would otherwise compile every module it imports on every run (~50 ms more).

    .venv/bin/python bench/crictl_startup.py            # fake endpoint, 7 runs
    .venv/bin/python bench/crictl_startup.py -r unix:///run/containerd/containerd.sock -n 30
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

#: Where a developer built upstream crictl; the tests read the same variable (tests/upstream.py).
UPSTREAM = os.environ.get("CRIRT_UPSTREAM_CRICTL", "/opt/cri-tools/bin/crictl")
CTR_ID = "c0ffee" + "1" * 58
GOAL_MS = 100.0


def default_ours() -> str:
    beside = Path(sys.executable).with_name("crictl")
    return str(beside) if beside.exists() else (shutil.which("crictl") or "crictl")


@contextlib.contextmanager
def fake_endpoint() -> Iterator[str]:
    """A CRI endpoint with one running container, served from this process."""
    import grpc

    from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc

    now = time.time_ns()
    container = api_pb2.Container(
        id=CTR_ID, pod_sandbox_id="feed" + "2" * 60, metadata=api_pb2.ContainerMetadata(name="web"),
        image=api_pb2.ImageSpec(image="busybox"), image_ref="sha256:" + "3" * 64,
        state=api_pb2.CONTAINER_RUNNING, created_at=now,
    )  # fmt: skip

    class Runtime(api_pb2_grpc.RuntimeServiceServicer):
        def Version(self, request: Any, context: Any) -> Any:
            return api_pb2.VersionResponse(version="0.1.0", runtime_name="bench", runtime_version="1",
                                           runtime_api_version="v1")  # fmt: skip

        def ListContainers(self, request: Any, context: Any) -> Any:
            return api_pb2.ListContainersResponse(containers=[container])

        def ContainerStatus(self, request: Any, context: Any) -> Any:
            status = api_pb2.ContainerStatus(
                id=CTR_ID, metadata=container.metadata, state=container.state, created_at=now, started_at=now,
                image=container.image, image_ref=container.image_ref, log_path="/dev/null",
            )  # fmt: skip
            return api_pb2.ContainerStatusResponse(status=status, info={"info": '{"pid": 1}'})

    class Images(api_pb2_grpc.ImageServiceServicer):
        def ImageFsInfo(self, request: Any, context: Any) -> Any:
            return api_pb2.ImageFsInfoResponse()

        def ImageStatus(self, request: Any, context: Any) -> Any:
            return api_pb2.ImageStatusResponse()

        def ListImages(self, request: Any, context: Any) -> Any:
            image = api_pb2.Image(id=container.image_ref, repo_tags=["docker.io/library/busybox:latest"], size=4 << 20)
            return api_pb2.ListImagesResponse(images=[image])

    with tempfile.TemporaryDirectory(prefix="crictl-bench-") as tmp:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        api_pb2_grpc.add_RuntimeServiceServicer_to_server(Runtime(), server)
        api_pb2_grpc.add_ImageServiceServicer_to_server(Images(), server)
        server.add_insecure_port(f"unix:{tmp}/cri.sock")
        server.start()
        try:
            yield f"unix://{tmp}/cri.sock"
        finally:
            server.stop(None).wait()


def compile_our_packages() -> None:
    """Write the .pyc files of the packages our crictl imports (without importing them)."""
    import compileall
    import importlib.util

    for package in ("crictl", "cri_runtime", "cri_protos"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                compileall.compile_dir(location, quiet=1)


def time_once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode().strip()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("-r", "--runtime-endpoint", help="CRI endpoint (default: a fake one served here)")
    parser.add_argument("-n", "--runs", type=int, default=7, help="runs per command and binary (default 7)")
    parser.add_argument("--ours", default=default_ours(), help="our crictl (default: the venv's console script)")
    parser.add_argument("--upstream", default=UPSTREAM, help=f"upstream crictl (default {UPSTREAM})")
    args = parser.parse_args()
    compile_our_packages()
    binaries = {"ours": args.ours}
    if os.access(args.upstream, os.X_OK):
        binaries["upstream"] = args.upstream
    with contextlib.ExitStack() as stack:
        endpoint = args.runtime_endpoint or stack.enter_context(fake_endpoint())
        config = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".yaml"))
        env = {**os.environ, "CONTAINER_RUNTIME_ENDPOINT": endpoint, "CRI_CONFIG_FILE": config.name}
        target = CTR_ID if not args.runtime_endpoint else ""
        commands = [("ps", "-a"), ("inspect", target) if target else ("inspect", "-a"), ("version",), ("images",),
                    ("--help",)]  # fmt: skip
        print(f"endpoint {endpoint}, {args.runs} runs each; medians in ms (goal for ps -a and inspect: "
              f"<= {GOAL_MS:.0f} ms)")  # fmt: skip
        print(f"{'command':<14}" + "".join(f"{name:>12}" for name in binaries) + ("     ratio" * (len(binaries) == 2)))
        for command in commands:
            samples: dict[str, list[float]] = {name: [] for name in binaries}
            for binary in binaries.values():
                time_once([binary, *command], env)
            for _ in range(args.runs):
                for name, binary in binaries.items():
                    samples[name].append(time_once([binary, *command], env))
            medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
            label = " ".join(command if command[0] != "inspect" or not target else ("inspect", "ID"))
            row = f"{label:<14}" + "".join(f"{medians[name]:>12.1f}" for name in binaries)
            if len(binaries) == 2:
                row += f"{medians['ours'] / medians['upstream']:>9.1f}x"
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
