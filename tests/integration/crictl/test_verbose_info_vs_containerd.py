"""Verbose info side by side: the same requests to containerd's built-in CRI and to ours.

Every key containerd's verbose info has (ContainerStatus, PodSandboxStatus, Status)
must be in ours with a value of the same JSON type, recursively for the CRI config,
so a tool or template written against `crictl inspect`/`inspectp`/`info` output of
containerd reads ours unchanged (crictl puts these documents under `info` as parsed
JSON: cri-tools cmd/crictl/util.go outputStatusData). The reference is whatever
containerd runs here (1.6.20 on CI), not a recorded copy, so it stays honest when
containerd changes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc
from tests.integration.crictl.conftest import LiveCri
from tests.pod_rig import PodRig


class Side:
    """One CRI endpoint with a running pod and container."""

    def __init__(self, endpoint: str, image: str, log_dir: Path) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.rt = api_pb2_grpc.RuntimeServiceStub(self.channel)
        api_pb2_grpc.ImageServiceStub(self.channel).PullImage(
            api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)), timeout=60)
        name = f"shape-{uuid.uuid4().hex[:8]}"
        self.pod_config = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace="shape", uid=uuid.uuid4().hex),
            hostname=name, log_directory=str(log_dir / name), labels={"app": "shape"})
        self.pod_id = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=self.pod_config),
                                            timeout=60).pod_sandbox_id
        cfg = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="c"), image=api_pb2.ImageSpec(image=image),
            command=["sleep", "60"], log_path="c.log", labels={"tier": "t"},
            envs=[api_pb2.KeyValue(key="A", value=b"1")],
            linux=api_pb2.LinuxContainerConfig(
                resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=64 << 20)))
        self.container_id = self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod_id, config=cfg, sandbox_config=self.pod_config), timeout=60).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=self.container_id), timeout=30)

    def container_info(self) -> dict[str, Any]:
        resp = self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=self.container_id,
                                                                      verbose=True), timeout=10)
        return dict(json.loads(resp.info["info"]))

    def pod_info(self) -> dict[str, Any]:
        resp = self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=self.pod_id, verbose=True),
                                        timeout=10)
        return dict(json.loads(resp.info["info"]))

    def status_config(self) -> dict[str, Any]:
        resp = self.rt.Status(api_pb2.StatusRequest(verbose=True), timeout=10)
        return dict(json.loads(resp.info["config"]))

    def close(self) -> None:
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=self.pod_id), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=self.pod_id), timeout=60)
        self.channel.close()


@pytest.fixture(scope="module")
def sides(live_cri: LiveCri, pod_rig: PodRig) -> Iterator[tuple[Side, Side]]:
    image = live_cri.images.busybox.ref
    theirs = Side(live_cri.endpoint, image, live_cri.log_dir)
    try:
        ours = Side(pod_rig.server.endpoint, image, live_cri.log_dir)
        try:
            yield theirs, ours
        finally:
            ours.close()
    finally:
        theirs.close()


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def missing_or_different(theirs: Any, ours: Any, path: str = "") -> list[str]:
    """Where `ours` lacks a key of `theirs` or holds another JSON type (recursing into objects)."""
    problems: list[str] = []
    if not isinstance(theirs, dict):
        if theirs is not None and ours is not None and json_type(theirs) != json_type(ours):
            problems.append(f"{path}: {json_type(theirs)} there, {json_type(ours)} here")
        return problems
    if not isinstance(ours, dict):
        return [f"{path}: object there, {json_type(ours)} here"]
    for key, value in theirs.items():
        if key not in ours:
            problems.append(f"{path}.{key}: missing")
        else:
            problems += missing_or_different(value, ours[key], f"{path}.{key}")
    return problems


def test_container_info_has_every_key_of_containerds(sides: tuple[Side, Side]) -> None:
    theirs, ours = (side.container_info() for side in sides)
    top = {k: v for k, v in theirs.items() if k not in ("config", "runtimeSpec")}
    assert missing_or_different(top, ours) == []
    # The CRI config in Go's encoding/json shape: same keys, same types, all the way down.
    assert missing_or_different(theirs["config"], ours["config"], "config") == []
    assert ours["config"]["envs"] == theirs["config"]["envs"]
    assert ours["config"]["linux"]["resources"] == theirs["config"]["linux"]["resources"]
    assert isinstance(ours["runtimeSpec"], dict) and ours["runtimeSpec"]["process"]["args"] == ["sleep", "60"]


def test_pod_info_has_every_key_of_containerds(sides: tuple[Side, Side]) -> None:
    theirs, ours = (side.pod_info() for side in sides)
    top = {k: v for k, v in theirs.items() if k not in ("config", "runtimeSpec", "cniResult", "sandboxMetadata")}
    assert missing_or_different(top, ours) == []
    assert missing_or_different(theirs["config"], ours["config"], "config") == []
    assert ours["processStatus"] == theirs["processStatus"] == "running"
    assert ours["netNamespaceClosed"] is theirs["netNamespaceClosed"] is False
    # go-cni's Result: the same top-level shape and per-interface fields.
    if theirs.get("cniResult"):
        assert set(ours["cniResult"]) == set(theirs["cniResult"])
        their_if = next(iter(theirs["cniResult"]["Interfaces"].values()))
        our_if = ours["cniResult"]["Interfaces"]["eth0"]
        assert set(our_if) == set(their_if)


def test_status_config_has_the_keys_tools_read(sides: tuple[Side, Side]) -> None:
    theirs, ours = (side.status_config() for side in sides)
    for key in ("stateDir", "rootDir", "containerdEndpoint", "maxContainerLogSize", "sandboxImage",
                "streamServerAddress", "streamServerPort", "enableTLSStreaming", "restrictOOMScoreAdj"):
        assert key in theirs, key  # still containerd's key: keep the list honest
        assert json_type(ours[key]) == json_type(theirs[key]), key
    for key in ("binDir", "confDir", "confTemplate", "maxConfNum"):
        assert key in theirs["cni"] and json_type(ours["cni"][key]) == json_type(theirs["cni"][key]), key
    for key in ("snapshotter", "defaultRuntimeName", "runtimes"):
        assert key in theirs["containerd"] and json_type(ours["containerd"][key]) == json_type(
            theirs["containerd"][key]), key


@pytest.mark.parametrize("handler", ["", "runc"])
def test_runtime_handler_and_slashed_names_as_on_containerd(live_cri: LiveCri, pod_rig: PodRig,
                                                            handler: str) -> None:
    """Both accept a pod name with '/' and echo the handler as requested ("" stays "")."""
    seen = []
    for endpoint in (live_cri.endpoint, pod_rig.server.endpoint):
        channel = grpc.insecure_channel(endpoint)
        rt = api_pb2_grpc.RuntimeServiceStub(channel)
        cfg = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
            name=f"team/{uuid.uuid4().hex[:6]}", namespace="shape", uid=uuid.uuid4().hex))
        cfg.linux.security_context.namespace_options.network = api_pb2.NODE
        pod_id = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                                  timeout=60).pod_sandbox_id
        try:
            st = rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=10).status
            (listed,) = rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(
                filter=api_pb2.PodSandboxFilter(id=pod_id)), timeout=10).items
            seen.append((st.metadata.name == cfg.metadata.name, st.runtime_handler, listed.runtime_handler))
        finally:
            rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
            rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
            channel.close()
    theirs, ours = seen
    assert ours == theirs == (True, handler, handler)
