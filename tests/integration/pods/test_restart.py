"""Killing cri-runtime (even -9) never stops a container or loses a log line."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import grpc
from google.protobuf import field_mask_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2, containers_pb2_grpc
from cri_protos.runtime.v1 import api_pb2
from cri_runtime.sandbox.model import METADATA_EXTENSION
from tests.pod_rig import PodRig
from tests.rig.containerd import PrivateContainerd
from tests.waiting import wait_until


def _lines(log: Path) -> int:
    try:
        return log.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _log_numbers(log: Path) -> list[int]:
    """The counter's numbers, in the order its log lines were written."""
    return [int(line.split(" ", 3)[3]) for line in log.read_text().splitlines()]


def _in_order(numbers: list[int]) -> bool:
    return bool(numbers) and numbers == list(range(1, len(numbers) + 1))


def _exited(pid: int) -> bool:
    """The process is gone or a zombie (its shim reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _pod(rt: object, log_dir: Path) -> tuple[str, api_pb2.PodSandboxConfig]:
    name = f"restart-{uuid.uuid4().hex[:6]}"
    cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="testns", uid=uuid.uuid4().hex),
        hostname=name, log_directory=str(log_dir))
    return rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id, cfg  # type: ignore[attr-defined]


def test_kill9_keeps_containers_and_every_log_line(own_pod_rig: PodRig, tmp_path: Path) -> None:
    server = own_pod_rig.server
    rt, images = server.runtime(), server.images()
    images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=own_pod_rig.images.busybox.ref)),
                     timeout=60)
    pod_id, pod_cfg = _pod(rt, tmp_path / "logs")
    cfg = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="counter"),
        image=api_pb2.ImageSpec(image=own_pod_rig.images.busybox.ref),
        command=["sh", "-c", "i=0; trap 'exit 0' TERM; while :; do i=$((i+1)); echo $i; usleep 10000; done"],
        log_path="counter.log")
    cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg,
                                                            sandbox_config=pod_cfg), timeout=60).container_id
    rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
    before = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid, verbose=True), timeout=10)
    log = tmp_path / "logs" / "counter.log"
    wait_until(lambda: _lines(log) >= 20, "the first log lines")

    server.kill(signal.SIGKILL)
    written = _lines(log)
    # the container keeps writing, and its relay logging, while no server runs
    wait_until(lambda: _lines(log) >= written + 80, "log lines written while the server is down")
    server.start()
    rt = server.runtime()

    pods = rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items
    assert [(p.id, p.state) for p in pods] == [(pod_id, api_pb2.SANDBOX_READY)]
    after = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid, verbose=True), timeout=10)
    assert after.status.state == api_pb2.CONTAINER_RUNNING
    assert after.status.started_at == before.status.started_at
    assert after.info["info"] == before.info["info"]  # same pid, same everything
    written = _lines(log)
    wait_until(lambda: _lines(log) >= written + 20, "log lines written after the restart")
    rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=10), timeout=60)
    st = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid), timeout=10).status
    assert st.state == api_pb2.CONTAINER_EXITED and st.exit_code == 0

    assert Path(st.log_path) == log
    # The relay may still be writing the last lines it read before the container stopped.
    wait_until(lambda: _in_order(_log_numbers(log)), "every log line once and in order", timeout=5)
    numbers = _log_numbers(log)
    assert len(numbers) > 100  # ~2 s at 10 ms a line
    assert numbers == list(range(1, len(numbers) + 1)), "a log line was lost or duplicated"

    rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert own_pod_rig.network.allocations() == []


def test_pause_exit_while_server_down_is_noticed(own_pod_rig: PodRig, tmp_path: Path) -> None:
    server = own_pod_rig.server
    rt = server.runtime()
    pod_id, _ = _pod(rt, tmp_path / "logs")
    info = rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True), timeout=10)
    import json
    import os

    pid = json.loads(info.info["info"])["pid"]
    server.kill(signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _exited(pid), "the pause process to exit")
    server.start()
    rt = server.runtime()
    st = rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=10).status
    assert st.state == api_pb2.SANDBOX_NOTREADY
    rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert own_pod_rig.network.allocations() == []


def test_container_created_before_a_restart_starts_after_it(own_pod_rig: PodRig, tmp_path: Path) -> None:
    """Its IO relay was spawned at create time by the previous server process."""
    server = own_pod_rig.server
    rt = server.runtime()
    server.images().PullImage(api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image=own_pod_rig.images.busybox.ref)), timeout=60)
    pod_id, pod_cfg = _pod(rt, tmp_path / "logs")
    cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="later"),
                                  image=api_pb2.ImageSpec(image=own_pod_rig.images.busybox.ref),
                                  command=["echo", "started after restart"], log_path="later.log")
    cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg,
                                                            sandbox_config=pod_cfg), timeout=60).container_id
    server.kill(signal.SIGKILL)  # CreateContainer answered: everything it made is on record
    server.start()
    rt = server.runtime()
    rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)

    def exited() -> api_pb2.ContainerStatus | None:
        st = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid), timeout=10).status
        return st if st.state == api_pb2.CONTAINER_EXITED else None

    st = wait_until(exited, "the container to exit")
    assert st.exit_code == 0
    assert Path(st.log_path).read_text().rstrip().endswith("stdout F started after restart")
    rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


def test_pod_ip_is_recorded_before_the_pod_is_ready(own_pod_rig: PodRig, tmp_path: Path) -> None:
    """CNI finishes after the pause container record is made; the IP still reaches that record."""
    server = own_pod_rig.server
    rt = server.runtime()
    pod_id, _ = _pod(rt, tmp_path / "logs")
    ip = rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=10).status.network.ip
    assert ip in own_pod_rig.network.allocations()
    server.kill(signal.SIGKILL)
    server.start()
    rt = server.runtime()
    st = rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=10).status
    assert (st.state, st.network.ip) == (api_pb2.SANDBOX_READY, ip)
    rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert own_pod_rig.network.allocations() == []


def test_running_pod_without_ip_on_record_gets_it_from_the_cni_cache(
        own_pod_rig: PodRig, containerd: PrivateContainerd, tmp_path: Path) -> None:
    """The IP is recorded while the pause task starts; a kill -9 in between is repaired at recovery."""
    server = own_pod_rig.server
    rt = server.runtime()
    pod_id, _ = _pod(rt, tmp_path / "logs")
    ip = rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=10).status.network.ip
    server.kill(signal.SIGKILL)
    # What a record looks like when the server died before the IP update landed.
    channel = grpc.insecure_channel(f"unix://{containerd.address}")
    try:
        stub = containers_pb2_grpc.ContainersStub(channel)
        md = (("containerd-namespace", "k8s.io"),)
        record = stub.Get(containers_pb2.GetContainerRequest(id=pod_id), metadata=md, timeout=10).container
        payload = json.loads(record.extensions[METADATA_EXTENSION].value)
        assert payload["data"]["ip"] == ip
        payload["data"].update(ip="", additional_ips=[])
        record.extensions[METADATA_EXTENSION].value = json.dumps(payload).encode()
        stub.Update(containers_pb2.UpdateContainerRequest(
            container=record, update_mask=field_mask_pb2.FieldMask(paths=[f"extensions.{METADATA_EXTENSION}"])),
            metadata=md, timeout=10)
        server.start()
        rt = server.runtime()
        st = rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=10).status
        assert (st.state, st.network.ip) == (api_pb2.SANDBOX_READY, ip)
        record = stub.Get(containers_pb2.GetContainerRequest(id=pod_id), metadata=md, timeout=10).container
        assert json.loads(record.extensions[METADATA_EXTENSION].value)["data"]["ip"] == ip
    finally:
        channel.close()
    rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert own_pod_rig.network.allocations() == []
