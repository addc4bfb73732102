"""Verbose ContainerStatus and PodSandboxStatus from kept copies of containerd's state: never stale after a change.

The server keeps each record it created or read (containerd/cached_state.py) and drops it
on our own writes and on containerd's /containers/update and /containers/delete
events (the event of an update of our own, expected, keeps the copy); these tests make
each kind of change on real containerd and look.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import field_mask_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2, containers_pb2_grpc
from cri_protos.containerd.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from cri_protos.runtime.v1 import api_pb2
from tests.integration.containers.test_container_lifecycle import Rig
from tests.pod_rig import PodRig
from tests.rig.containerd import PrivateContainerd
from tests.waiting import wait_until

NS = (("containerd-namespace", "k8s.io"),)


@pytest.fixture
def rig(pod_rig: PodRig, tmp_path) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    r = Rig(pod_rig, tmp_path)
    yield r
    r.close()


def runtime_spec(rig: Rig, cid: str) -> dict:  # type: ignore[type-arg]
    resp = rig.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid, verbose=True), timeout=10)
    return json.loads(resp.info["info"])["runtimeSpec"]  # type: ignore[no-any-return]


def annotate_as_another_client(containerd: PrivateContainerd, record_id: str) -> None:
    """Add an annotation to the spec of a containerd record, as `ctr` would: not through us."""
    channel = grpc.insecure_channel(f"unix://{containerd.address}")
    try:
        stub = containers_pb2_grpc.ContainersStub(channel)
        record = stub.Get(containers_pb2.GetContainerRequest(id=record_id), metadata=NS, timeout=10).container
        spec = json.loads(record.spec.value)
        spec.setdefault("annotations", {})["example.com/changed-by"] = "ctr"
        record.spec.value = json.dumps(spec).encode()
        stub.Update(containers_pb2.UpdateContainerRequest(
            container=record, update_mask=field_mask_pb2.FieldMask(paths=["spec"])), metadata=NS, timeout=10)
    finally:
        channel.close()


def test_verbose_status_follows_our_update_and_another_clients(rig: Rig, containerd: PrivateContainerd) -> None:
    cid = rig.create(["sleep", "3600"])
    rig.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
    assert runtime_spec(rig, cid)["process"]["args"] == ["sleep", "3600"]

    # Our own write (UpdateContainerResources stores the new spec): seen by the very next call.
    rig.rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=api_pb2.LinuxContainerResources(cpu_shares=512)), timeout=30)
    assert runtime_spec(rig, cid)["linux"]["resources"]["cpu"]["shares"] == 512

    # Another client changes the record behind our back: containerd's update event drops our copy.
    annotate_as_another_client(containerd, cid)
    wait_until(lambda: runtime_spec(rig, cid).get("annotations", {}).get("example.com/changed-by") == "ctr",
               "the verbose status shows the record as the other client left it")
    assert runtime_spec(rig, cid)["linux"]["resources"]["cpu"]["shares"] == 512


def process_status(rig: Rig) -> str:
    resp = rig.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=rig.pod_id, verbose=True),
                                   timeout=10)
    return str(json.loads(resp.info["info"])["processStatus"])


def test_pod_process_status_follows_another_client_pausing_and_resuming_it(
        rig: Rig, containerd: PrivateContainerd) -> None:
    assert process_status(rig) == "running"
    channel = grpc.insecure_channel(f"unix://{containerd.address}")
    try:
        tasks = tasks_pb2_grpc.TasksStub(channel)
        tasks.Pause(tasks_pb2.PauseTaskRequest(container_id=rig.pod_id), metadata=NS, timeout=10)
        wait_until(lambda: process_status(rig) == "paused", "verbose status shows the pause task paused")
        tasks.Resume(tasks_pb2.ResumeTaskRequest(container_id=rig.pod_id), metadata=NS, timeout=10)
        wait_until(lambda: process_status(rig) == "running", "verbose status shows it running again")
    finally:
        channel.close()


def pod_annotations(rig: Rig) -> dict[str, str]:
    resp = rig.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=rig.pod_id, verbose=True),
                                   timeout=10)
    return json.loads(resp.info["info"])["runtimeSpec"].get("annotations", {})  # type: ignore[no-any-return]


def test_pod_record_after_our_ip_update_still_follows_another_clients_change(
        rig: Rig, containerd: PrivateContainerd) -> None:
    # RunPodSandbox updated the record with the pod's IPs; that update's event was ours and
    # kept the copy. A later change by someone else must still show.
    assert "example.com/changed-by" not in pod_annotations(rig)
    annotate_as_another_client(containerd, rig.pod_id)
    wait_until(lambda: pod_annotations(rig).get("example.com/changed-by") == "ctr",
               "the pod's verbose status shows the record as the other client left it")
