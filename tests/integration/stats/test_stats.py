"""Stats, metrics, events and Stream* RPCs against the real server on containerd/runc/CNI."""

from __future__ import annotations

import ipaddress
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from tests.pod_rig import PodRig

pytestmark = pytest.mark.integration

CORE = 1_000_000_000


class Pod:
    """One pod of the rig with helpers for its containers; removed on close."""

    def __init__(self, pod_rig: PodRig, tmp_path: Path, cgroup_parent: str = "") -> None:
        self.rt = pod_rig.server.runtime()
        self.rig = pod_rig
        name = f"stats-{uuid.uuid4().hex[:8]}"
        self.config = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace="statsns", uid=uuid.uuid4().hex),
            hostname=name, log_directory=str(tmp_path / "logs"), labels={"suite": "stats"})
        if cgroup_parent:
            self.config.linux.cgroup_parent = cgroup_parent
        pod_rig.server.images().PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=pod_rig.images.busybox.ref)), timeout=60)
        self.id = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=self.config),
                                        timeout=60).pod_sandbox_id

    def run(self, cmd: list[str], name: str, start: bool = True, **kwargs: Any) -> str:
        cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=name),
                                      image=api_pb2.ImageSpec(image=self.rig.images.busybox.ref),
                                      command=cmd, **kwargs)
        cid = str(self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.id, config=cfg, sandbox_config=self.config), timeout=60).container_id)
        if start:
            self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        return cid

    def container_stats(self, cid: str) -> api_pb2.ContainerStats:
        stats: api_pb2.ContainerStats = self.rt.ContainerStats(
            api_pb2.ContainerStatsRequest(container_id=cid), timeout=30).stats
        return stats

    def pod_stats(self) -> api_pb2.PodSandboxStats:
        stats: api_pb2.PodSandboxStats = self.rt.PodSandboxStats(
            api_pb2.PodSandboxStatsRequest(pod_sandbox_id=self.id), timeout=30).stats
        return stats

    def close(self) -> None:
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=self.id), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=self.id), timeout=60)


@pytest.fixture
def pod(pod_rig: PodRig, tmp_path: Path) -> Iterator[Pod]:
    p = Pod(pod_rig, tmp_path)
    yield p
    p.close()


def wait_until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_cpu_burner_reports_about_one_core(pod: Pod) -> None:
    burner = pod.run(["sh", "-c", "while :; do :; done"], "burner")
    idle = pod.run(["sleep", "3600"], "idle")
    first = pod.container_stats(burner)
    assert first.attributes.id == burner and first.attributes.metadata.name == "burner"
    assert first.cpu.timestamp > 0 and first.cpu.usage_core_nano_seconds.value > 0
    assert not first.cpu.HasField("usage_nano_cores"), "no rate from a single sample"
    pod.container_stats(idle)
    pod.pod_stats()
    time.sleep(3)
    second = pod.container_stats(burner)
    rate = second.cpu.usage_nano_cores.value
    assert 0.75 * CORE < rate < 1.1 * CORE, rate
    assert second.cpu.usage_core_nano_seconds.value > first.cpu.usage_core_nano_seconds.value
    assert pod.container_stats(idle).cpu.usage_nano_cores.value < 0.05 * CORE
    podstats = pod.pod_stats()
    assert 0.75 * CORE < podstats.linux.cpu.usage_nano_cores.value < 1.2 * CORE
    assert {c.attributes.id for c in podstats.linux.containers} == {burner, idle}
    # pause + burner shell + sleep, counted from the containers' and pause's pids cgroups
    assert podstats.linux.process.process_count.value >= 3
    # the writable layer is reported on the snapshotter's filesystem
    assert second.writable_layer.fs_id.mountpoint.endswith("io.containerd.snapshotter.v1.overlayfs")
    assert second.writable_layer.HasField("used_bytes") and second.writable_layer.HasField("inodes_used")


def test_memory_hog_working_set(pod: Pod) -> None:
    limit = 256 * 1024 * 1024
    hog = pod.run(["sh", "-c", "x=$(head -c 60000000 /dev/zero | tr '\\0' a); while :; do sleep 1; done"], "hog",
                  linux=api_pb2.LinuxContainerConfig(resources=api_pb2.LinuxContainerResources(
                      memory_limit_in_bytes=limit)))
    stats = wait_until(lambda: (s := pod.container_stats(hog)).memory.working_set_bytes.value > 55_000_000 and s,
                       timeout=20)
    mem = stats.memory
    assert mem.usage_bytes.value >= mem.working_set_bytes.value
    assert mem.rss_bytes.value > 50_000_000
    assert mem.available_bytes.value == limit - mem.working_set_bytes.value
    assert mem.page_faults.value > 0
    # The pod without a cgroup parent sums its containers and pause. The hog's memory
    # shrinks once its pipeline ends, so compare samples taken back to back once it settles.
    def pod_covers_container() -> bool:
        container = pod.container_stats(hog).memory.working_set_bytes.value
        return bool(pod.pod_stats().linux.memory.working_set_bytes.value >= container)
    assert wait_until(pod_covers_container, timeout=10)


def test_pod_network_counters_after_ping(pod: Pod, pod_rig: PodRig) -> None:
    gateway = str(next(ipaddress.ip_network(pod_rig.network.subnet).hosts()))
    before = pod.pod_stats().linux.network
    assert before.default_interface.name == "eth0"
    assert before.timestamp > 0
    pinger = pod.run(["ping", "-c", "5", "-i", "0.2", "-s", "1000", gateway], "pinger")
    wait_until(lambda: pod.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=pinger),
                                              timeout=10).status.state == api_pb2.CONTAINER_EXITED)
    after = pod.pod_stats().linux.network
    tx = after.default_interface.tx_bytes.value - before.default_interface.tx_bytes.value
    rx = after.default_interface.rx_bytes.value - before.default_interface.rx_bytes.value
    assert tx >= 5 * 1000 and rx >= 5 * 1000, (tx, rx)
    assert [i.name for i in after.interfaces] == ["eth0"]
    assert after.default_interface.tx_errors.value == 0


def test_list_filters(pod: Pod, pod_rig: PodRig, tmp_path: Path) -> None:
    a = pod.run(["sleep", "3600"], "a", labels={"app": "a"})
    b = pod.run(["sleep", "3600"], "b", start=False, labels={"app": "b"})
    other = Pod(pod_rig, tmp_path / "other")
    try:
        c = other.run(["sleep", "3600"], "c", labels={"app": "a"})

        def ids(flt: api_pb2.ContainerStatsFilter | None) -> set[str]:
            req = api_pb2.ListContainerStatsRequest(filter=flt) if flt is not None else \
                api_pb2.ListContainerStatsRequest()
            return {s.attributes.id for s in pod.rt.ListContainerStats(req, timeout=30).stats}

        assert {a, b, c} <= ids(None)
        assert ids(api_pb2.ContainerStatsFilter(id=a[:12])) == {a}
        assert ids(api_pb2.ContainerStatsFilter(pod_sandbox_id=pod.id)) == {a, b}
        assert ids(api_pb2.ContainerStatsFilter(label_selector={"app": "a"})) == {a, c}
        assert ids(api_pb2.ContainerStatsFilter(pod_sandbox_id=other.id[:10], label_selector={"app": "a"})) == {c}
        assert ids(api_pb2.ContainerStatsFilter(id="feedfacefeed")) == set()
        created = next(s for s in pod.rt.ListContainerStats(api_pb2.ListContainerStatsRequest(
            filter=api_pb2.ContainerStatsFilter(id=b)), timeout=30).stats)
        assert not created.HasField("cpu"), "a created container has no task to measure"
        with pytest.raises(grpc.RpcError) as err:
            pod.container_stats("feedfacefeed")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

        pods = pod.rt.ListPodSandboxStats(api_pb2.ListPodSandboxStatsRequest(
            filter=api_pb2.PodSandboxStatsFilter(label_selector={"suite": "stats"})), timeout=30).stats
        assert {p.attributes.id for p in pods} >= {pod.id, other.id}
        one = pod.rt.ListPodSandboxStats(api_pb2.ListPodSandboxStatsRequest(
            filter=api_pb2.PodSandboxStatsFilter(id=other.id)), timeout=30).stats
        assert [p.attributes.id for p in one] == [other.id]
        assert [x.attributes.id for x in one[0].linux.containers] == [c]
    finally:
        other.close()


def test_stream_rpcs_return_the_list_results(pod: Pod) -> None:
    ids = {pod.run(["sleep", "3600"], f"s{i}") for i in range(3)}
    flt = api_pb2.ContainerStatsFilter(pod_sandbox_id=pod.id)
    batches = list(pod.rt.StreamContainerStats(api_pb2.StreamContainerStatsRequest(filter=flt), timeout=30))
    assert all(len(b.container_stats) > 0 for b in batches)
    assert sorted(s.attributes.id for b in batches for s in b.container_stats) == sorted(ids)
    batches_c = list(pod.rt.StreamContainers(api_pb2.StreamContainersRequest(
        filter=api_pb2.ContainerFilter(pod_sandbox_id=pod.id)), timeout=30))
    assert sorted(c.id for b in batches_c for c in b.containers) == sorted(ids)
    listed = pod.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=30).items
    streamed = [p for b in pod.rt.StreamPodSandboxes(api_pb2.StreamPodSandboxesRequest(), timeout=30)
                for p in b.pod_sandboxes]
    assert [p.id for p in streamed] == [p.id for p in listed]
    pstats = [s for b in pod.rt.StreamPodSandboxStats(api_pb2.StreamPodSandboxStatsRequest(
        filter=api_pb2.PodSandboxStatsFilter(id=pod.id)), timeout=30) for s in b.pod_sandbox_stats]
    assert [s.attributes.id for s in pstats] == [pod.id]
    none = list(pod.rt.StreamContainers(api_pb2.StreamContainersRequest(
        filter=api_pb2.ContainerFilter(id="feedfacefeed")), timeout=30))
    assert none == [], "an empty result is a stream without messages"
    metrics = [m for b in pod.rt.StreamPodSandboxMetrics(api_pb2.StreamPodSandboxMetricsRequest(), timeout=30)
               for m in b.pod_sandbox_metrics]
    assert pod.id in {m.pod_sandbox_id for m in metrics}


def test_pod_sandbox_metrics_match_descriptors(pod: Pod) -> None:
    cid = pod.run(["sleep", "3600"], "metered", linux=api_pb2.LinuxContainerConfig(
        resources=api_pb2.LinuxContainerResources(cpu_period=100000, cpu_quota=20000, cpu_shares=1024,
                                                  memory_limit_in_bytes=64 * 1024 * 1024)))
    descs = {d.name: d for d in pod.rt.ListMetricDescriptors(api_pb2.ListMetricDescriptorsRequest(),
                                                              timeout=30).descriptors}
    assert all(d.help and d.label_keys for d in descs.values())
    pm = next(m for m in pod.rt.ListPodSandboxMetrics(api_pb2.ListPodSandboxMetricsRequest(), timeout=30).pod_metrics
              if m.pod_sandbox_id == pod.id)
    metrics = list(pm.metrics) + [m for c in pm.container_metrics for m in c.metrics]
    for m in metrics:
        assert m.name in descs and len(m.label_values) == len(descs[m.name].label_keys), m
    by_name: dict[str, list[api_pb2.Metric]] = {}
    for m in metrics:
        by_name.setdefault(m.name, []).append(m)
    rx = by_name["container_network_receive_bytes_total"][0]
    assert rx.label_values == [pod.config.metadata.name, "statsns", "", pod.id, "", "eth0"]
    [limit] = by_name["container_spec_memory_limit_bytes"]
    assert limit.value.value == 64 * 1024 * 1024
    assert limit.label_values[:4] == [pod.config.metadata.name, "statsns", "metered", cid]
    assert by_name["container_spec_cpu_quota"][0].value.value == 20000
    assert by_name["container_processes"][0].value.value == 1
    assert by_name["container_threads"][0].value.value == 1
    assert by_name["container_file_descriptors"][0].value.value >= 3
    for name in ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_fs_usage_bytes",
                 "container_fs_limit_bytes", "container_start_time_seconds", "container_ulimits_soft",
                 "container_oom_events_total", "container_memory_failures_total", "container_threads_max"):
        assert name in by_name, name


class EventReader:
    """One GetContainerEvents subscriber reading in a thread."""

    def __init__(self, rt: Any) -> None:
        self.call = rt.GetContainerEvents(api_pb2.GetEventsRequest())
        self.call.initial_metadata()  # the server sends it once the subscription exists
        self.events: list[api_pb2.ContainerEventResponse] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for event in self.call:
                self.events.append(event)
        except grpc.RpcError:
            pass

    def of(self, cid: str) -> list[tuple[int, api_pb2.ContainerEventResponse]]:
        return [(e.container_event_type, e) for e in self.events if e.container_id == cid]

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=10)


def test_events_reach_two_subscribers_in_order(pod: Pod) -> None:
    readers = [EventReader(pod.rt), EventReader(pod.rt)]
    try:
        cid = pod.run(["sh", "-c", "sleep 1; exit 3"], "evented")
        wait_until(lambda: all(len(r.of(cid)) >= 3 for r in readers))
        pod.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)
        wait_until(lambda: all(len(r.of(cid)) >= 4 for r in readers))
        for r in readers:
            kinds = [k for k, _ in r.of(cid)]
            assert kinds == [api_pb2.CONTAINER_CREATED_EVENT, api_pb2.CONTAINER_STARTED_EVENT,
                             api_pb2.CONTAINER_STOPPED_EVENT, api_pb2.CONTAINER_DELETED_EVENT]
            events = [e for _, e in r.of(cid)]
            assert all(e.pod_sandbox_status.id == pod.id and e.created_at > 0 for e in events)
            assert [c.state for e in events[:3] for c in e.containers_statuses if c.id == cid] == [
                api_pb2.CONTAINER_CREATED, api_pb2.CONTAINER_RUNNING, api_pb2.CONTAINER_EXITED]
            stopped = events[2].containers_statuses[0]
            assert stopped.exit_code == 3
            assert not [c for c in events[3].containers_statuses if c.id == cid], "deleted is gone"
    finally:
        for r in readers:
            r.close()


def test_pod_sandbox_lifecycle_events(pod_rig: PodRig, tmp_path: Path) -> None:
    reader = EventReader(pod_rig.server.runtime())
    try:
        p = Pod(pod_rig, tmp_path)
        p.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
        p.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
        wait_until(lambda: len(reader.of(p.id)) >= 4)
        assert [k for k, _ in reader.of(p.id)] == [
            api_pb2.CONTAINER_CREATED_EVENT, api_pb2.CONTAINER_STARTED_EVENT,
            api_pb2.CONTAINER_STOPPED_EVENT, api_pb2.CONTAINER_DELETED_EVENT]
        states = [e.pod_sandbox_status.state for _, e in reader.of(p.id)]
        assert states == [api_pb2.SANDBOX_READY, api_pb2.SANDBOX_READY, api_pb2.SANDBOX_NOTREADY,
                          api_pb2.SANDBOX_NOTREADY]
    finally:
        reader.close()


def _cgroup_dirs(parent: str) -> list[Path]:
    return [Path("/sys/fs/cgroup") / ctrl / parent.lstrip("/") for ctrl in os.listdir("/sys/fs/cgroup")
            if (Path("/sys/fs/cgroup") / ctrl / parent.lstrip("/")).is_dir()]


def test_pod_cgroup_stats_and_update_resources(pod_rig: PodRig, tmp_path: Path) -> None:
    parent = f"/crirt-stats-{uuid.uuid4().hex[:8]}"
    p = Pod(pod_rig, tmp_path, cgroup_parent=parent)
    try:
        cid = p.run(["sh", "-c", "while :; do :; done"], "burner")
        p.pod_stats()
        time.sleep(2)
        stats = p.pod_stats()
        assert 0.7 * CORE < stats.linux.cpu.usage_nano_cores.value < 1.2 * CORE
        assert stats.linux.process.process_count.value >= 2  # pause + burner
        mem_dir = Path("/sys/fs/cgroup/memory") / parent.lstrip("/")
        assert stats.linux.memory.usage_bytes.value == pytest.approx(
            int((mem_dir / "memory.usage_in_bytes").read_text()), rel=0.5)
        p.rt.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=p.id,
            overhead=api_pb2.LinuxContainerResources(memory_limit_in_bytes=16 * 1024 * 1024),
            resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=256 * 1024 * 1024, cpu_shares=512,
                                                      cpu_period=100000, cpu_quota=150000)), timeout=30)
        assert int((mem_dir / "memory.limit_in_bytes").read_text()) == 272 * 1024 * 1024
        cpu_dir = Path("/sys/fs/cgroup/cpu") / parent.lstrip("/")
        assert (cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "150000"
        assert (cpu_dir / "cpu.shares").read_text().strip() == "512"
        assert p.container_stats(cid).cpu.usage_core_nano_seconds.value > 0
        with pytest.raises(grpc.RpcError) as err:
            p.rt.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(pod_sandbox_id="feedfacefeed"),
                                           timeout=30)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        p.close()
        for d in sorted(_cgroup_dirs(parent), key=lambda x: len(str(x)), reverse=True):
            for sub in sorted((x for x in d.rglob("*") if x.is_dir()), key=lambda x: len(str(x)), reverse=True):
                sub.rmdir()
            d.rmdir()


def test_checkpoint_is_unimplemented_with_a_reason(pod: Pod) -> None:
    cid = pod.run(["sleep", "3600"], "ckpt")
    with pytest.raises(grpc.RpcError) as err:
        pod.rt.CheckpointContainer(api_pb2.CheckpointContainerRequest(container_id=cid, location="/tmp/x.tar"),
                                   timeout=60)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "criu" in (err.value.details() or "").lower() or "checkpoint" in (err.value.details() or "")
