"""Helpers shared by the node-tool tests: run `cri-runtime ctr|tree|doctor`, make pods and containers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CriServer

CRI_RUNTIME = str(Path(sys.executable).with_name("cri-runtime"))


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`cri-runtime ARGS…` as an operator runs it."""
    result = subprocess.run([CRI_RUNTIME, *args], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, f"cri-runtime {' '.join(args)}: {result.returncode}\n{result.stderr}"
    return result


def ctr(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Debian's ctr against the rig's containerd."""
    result = subprocess.run(["ctr", "-a", address, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"ctr {' '.join(args)}: {result.stderr}"
    return result


def doctor(server: CriServer, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("doctor", "--config", str(server.config_path), "-o", "json", *args, check=False)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def kinds(report: dict[str, Any]) -> set[str]:
    return {f["kind"] for f in report["findings"]}


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pod_config(prefix: str, log_dir: Path | None = None) -> api_pb2.PodSandboxConfig:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="nodetools", uid=uuid.uuid4().hex),
        hostname=name)
    if log_dir is not None:
        cfg.log_directory = str(log_dir)
    return cfg


def run_pod(rt: Any, cfg: api_pb2.PodSandboxConfig) -> str:
    return str(rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id)


def run_container(rt: Any, pod_id: str, pod_cfg: api_pb2.PodSandboxConfig, image: str, name: str = "sleeper",
                  command: tuple[str, ...] = ("sleep", "3600"), pid_namespace: int = api_pb2.POD) -> str:
    cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=name),
                                  image=api_pb2.ImageSpec(image=image), command=list(command),
                                  log_path=f"{name}.log")
    cfg.linux.security_context.namespace_options.pid = pid_namespace  # type: ignore[assignment]
    cid = str(rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg,
                                                                sandbox_config=pod_cfg), timeout=60).container_id)
    rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
    return cid


def remove_pod(rt: Any, pod_id: str) -> None:
    rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


def pull(server: CriServer, ref: str) -> None:
    server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)), timeout=120)
