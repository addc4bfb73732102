"""NRI on the real runtime: a plugin (tests/nri_plugin.py, over the server's real NRI socket) sees
every pod and container event in order, and its adjustments and updates reach the container."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message

from cri_protos.nri.v1alpha1 import api_pb2 as nri
from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CriServer
from tests.nri_plugin import TestPlugin
from tests.pod_rig import PodRig
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.rig.network import TestNetwork

T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Blocking CRI calls run in a thread: the plugin answering them shares this event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Node:
    def __init__(self, rig: PodRig) -> None:
        self.rig = rig
        self.rt = rig.server.runtime()
        self.busybox = rig.images.busybox.ref
        name = f"nri-{uuid.uuid4().hex[:8]}"
        self.pod_config = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
            name=name, namespace="nri-ns", uid=uuid.uuid4().hex), hostname=name)

    async def plugin(self, **kwargs: Any) -> TestPlugin:
        await wait_for(lambda: os.path.exists(self.rig.server.nri_socket), what="the NRI socket")
        plugin = TestPlugin(self.rig.server.nri_socket, **kwargs)
        await plugin.start()
        await asyncio.wait_for(plugin.synchronized.wait(), 10)
        return plugin

    async def run_pod(self) -> str:
        await call(self.rig.server.images().PullImage, api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=self.busybox)), timeout=60)
        response = await call(self.rt.RunPodSandbox, api_pb2.RunPodSandboxRequest(config=self.pod_config), timeout=60)
        return str(response.pod_sandbox_id)

    async def create(self, pod_id: str, cmd: list[str], name: str = "app") -> str:
        cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=name),
                                      image=api_pb2.ImageSpec(image=self.busybox), command=cmd,
                                      envs=[api_pb2.KeyValue(key="FROM_CRI", value=b"1")])
        response = await call(self.rt.CreateContainer, api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=cfg, sandbox_config=self.pod_config), timeout=60)
        return str(response.container_id)

    async def exec(self, cid: str, *cmd: str) -> str:
        response = await call(self.rt.ExecSync, api_pb2.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=10),
                              timeout=20)
        assert response.exit_code == 0, response.stderr
        return bytes(response.stdout).decode()

    async def remove_pod(self, pod_id: str) -> None:
        await call(self.rt.StopPodSandbox, api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        await call(self.rt.RemovePodSandbox, api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)

    def listed(self) -> list[str]:
        return [c.id for c in self.rt.ListContainers(api_pb2.ListContainersRequest(), timeout=10).containers]


@pytest.fixture
async def node(own_pod_rig: PodRig) -> AsyncIterator[Node]:
    yield Node(own_pod_rig)


def events(plugin: TestPlugin) -> list[str]:
    return [m for m in plugin.methods() if m not in ("Configure", "Synchronize")]


async def test_every_lifecycle_event_arrives_in_order_with_metadata(node: Node) -> None:
    plugin = await node.plugin()
    pod_id = await node.run_pod()
    cid = await node.create(pod_id, ["sleep", "600"])
    await call(node.rt.StartContainer, api_pb2.StartContainerRequest(container_id=cid), timeout=30)
    await call(node.rt.StopContainer, api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
    await call(node.rt.RemoveContainer, api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)
    await node.remove_pod(pod_id)
    await wait_for(lambda: events(plugin)[-1:] == ["RemovePodSandbox"], what="RemovePodSandbox")
    assert events(plugin) == [
        "RunPodSandbox", "CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer",
        "StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox"]
    by_method: dict[str, Message] = dict(plugin.calls)
    run = by_method["RunPodSandbox"]
    assert isinstance(run, nri.RunPodSandboxRequest)
    md = node.pod_config.metadata
    assert (run.pod.id, run.pod.name, run.pod.namespace, run.pod.uid) == (pod_id, md.name, md.namespace, md.uid)
    assert run.pod.pid > 0 and run.pod.ips
    create = by_method["CreateContainer"]
    assert isinstance(create, nri.CreateContainerRequest)
    assert (create.container.id, create.container.name, create.container.pod_sandbox_id) == (cid, "app", pod_id)
    assert list(create.container.args) == ["sleep", "600"] and "FROM_CRI=1" in create.container.env
    start = by_method["PostStartContainer"]
    assert isinstance(start, nri.PostStartContainerRequest) and start.container.pid > 0
    stop = by_method["StopContainer"]
    assert isinstance(stop, nri.StopContainerRequest) and stop.container.state == nri.CONTAINER_STOPPED
    plugin.close()


async def test_adjustments_reach_the_container_env_mount_and_memory_limit(node: Node, tmp_path: Path) -> None:
    shared = tmp_path / "from-plugin"
    shared.mkdir()
    (shared / "hello").write_text("mounted by NRI\n")

    async def adjust(_request: Message) -> nri.CreateContainerResponse:
        adj = nri.ContainerAdjustment(env=[nri.KeyValue(key="NRI_SAYS", value="hi"), nri.KeyValue(key="-FROM_CRI")],
                                      mounts=[nri.Mount(destination="/nri", type="bind", source=str(shared),
                                                        options=["rbind", "ro"])])
        adj.linux.resources.memory.limit.value = 96 << 20
        return nri.CreateContainerResponse(adjust=adj)

    plugin = await node.plugin(handlers={"CreateContainer": adjust})
    pod_id = await node.run_pod()
    try:
        cid = await node.create(pod_id, ["sleep", "600"])
        await call(node.rt.StartContainer, api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        env = (await node.exec(cid, "env")).splitlines()
        assert "NRI_SAYS=hi" in env and not any(e.startswith("FROM_CRI=") for e in env)
        assert await node.exec(cid, "cat", "/nri/hello") == "mounted by NRI\n"
        assert int(await node.exec(cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")) == 96 << 20
        status = await call(node.rt.ContainerStatus, api_pb2.ContainerStatusRequest(container_id=cid), timeout=10)
        assert status.status.resources.linux.memory_limit_in_bytes == 96 << 20  # the spec runc got

        # an unsolicited update from the plugin reaches the cgroup too
        update = nri.ContainerUpdate(container_id=cid)
        update.linux.resources.cpu.shares.value = 768
        response = await plugin.update_containers([update])
        assert not response.failed
        assert int(await node.exec(cid, "cat", "/sys/fs/cgroup/cpu/cpu.shares")) == 768
    finally:
        await node.remove_pod(pod_id)
        plugin.close()


async def test_a_failing_create_hook_fails_the_call_leaks_nothing_and_a_retry_works(node: Node) -> None:
    refusals = [True]
    in_hook = asyncio.Event()
    release = asyncio.Event()

    async def create(_request: Message) -> None:
        in_hook.set()
        await release.wait()
        if refusals and refusals.pop():
            raise RuntimeError("this node has no room for it")

    plugin = await node.plugin(handlers={"CreateContainer": create}, events=("CreateContainer",))
    pod_id = await node.run_pod()
    try:
        before = await call(node.listed)
        attempt = asyncio.ensure_future(node.create(pod_id, ["sleep", "600"]))
        await asyncio.wait_for(in_hook.wait(), 15)
        assert await call(node.listed) == before  # not visible while its hook runs
        release.set()
        with pytest.raises(grpc.RpcError) as refused:
            await attempt
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "this node has no room for it" in (refused.value.details() or "")
        assert await call(node.listed) == before
        cid = await node.create(pod_id, ["sleep", "600"])  # same name: nothing of the first attempt is left
        assert cid in await call(node.listed)
    finally:
        await node.remove_pod(pod_id)
        plugin.close()


async def test_a_container_that_exits_by_itself_is_reported_stopped_once(node: Node) -> None:
    plugin = await node.plugin(events=("StopContainer", "RemoveContainer"))
    pod_id = await node.run_pod()
    try:
        cid = await node.create(pod_id, ["sh", "-c", "exit 3"])
        await call(node.rt.StartContainer, api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        await wait_for(lambda: "StopContainer" in events(plugin), what="StopContainer")
        await call(node.rt.StopContainer, api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
        await call(node.rt.RemoveContainer, api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)
        await wait_for(lambda: "RemoveContainer" in events(plugin), what="RemoveContainer")
        assert events(plugin) == ["StopContainer", "RemoveContainer"]
        stop = plugin.calls[2][1]
        assert isinstance(stop, nri.StopContainerRequest) and stop.container.exit_code == 3
    finally:
        await node.remove_pod(pod_id)
        plugin.close()


async def test_a_late_plugin_is_synchronized_with_existing_pods_and_containers(node: Node) -> None:
    pod_id = await node.run_pod()
    try:
        cid = await node.create(pod_id, ["sleep", "600"])
        plugin = await node.plugin()
        sync = plugin.calls[1][1]
        assert isinstance(sync, nri.SynchronizeRequest)
        assert pod_id in [p.id for p in sync.pods] and cid in [c.id for c in sync.containers]
        plugin.close()
    finally:
        await node.remove_pod(pod_id)


async def test_resource_updates_of_pods_and_containers_pass_through_plugins(node: Node) -> None:
    async def halve(request: Message) -> nri.UpdateContainerResponse:
        assert isinstance(request, nri.UpdateContainerRequest)
        update = nri.ContainerUpdate(container_id=request.container.id)
        update.linux.resources.cpu.shares.value = request.linux_resources.cpu.shares.value // 2
        return nri.UpdateContainerResponse(update=[update])

    plugin = await node.plugin(handlers={"UpdateContainer": halve},
                               events=("UpdatePodSandbox", "PostUpdatePodSandbox", "UpdateContainer",
                                       "PostUpdateContainer"))
    pod_id = await node.run_pod()
    try:
        cid = await node.create(pod_id, ["sleep", "600"])
        await call(node.rt.StartContainer, api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        await call(node.rt.UpdateContainerResources, api_pb2.UpdateContainerResourcesRequest(
            container_id=cid, linux=api_pb2.LinuxContainerResources(cpu_shares=1024)), timeout=30)
        assert int(await node.exec(cid, "cat", "/sys/fs/cgroup/cpu/cpu.shares")) == 512  # the plugin's say
        await call(node.rt.UpdatePodSandboxResources, api_pb2.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod_id, resources=api_pb2.LinuxContainerResources(cpu_shares=2048)), timeout=30)
        await wait_for(lambda: events(plugin)[-1:] == ["PostUpdatePodSandbox"], what="PostUpdatePodSandbox")
        assert events(plugin) == ["UpdateContainer", "PostUpdateContainer", "UpdatePodSandbox",
                                  "PostUpdatePodSandbox"]
        pod_update = plugin.calls[4][1]
        assert isinstance(pod_update, nri.UpdatePodSandboxRequest)
        assert pod_update.linux_resources.cpu.shares.value == 2048
    finally:
        await node.remove_pod(pod_id)
        plugin.close()


@pytest.fixture
async def cdi_node(containerd: PrivateContainerd, test_images: TestImages, tmp_path: Path) -> AsyncIterator[Node]:
    """A server of its own that reads CDI specs from a temp dir (standing in for /etc/cdi)."""
    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    (spec_dir / "nri-test.yaml").write_text(
        'cdiVersion: "0.6.0"\nkind: nri.test/gadget\ndevices:\n'
        '  - name: one\n    containerEdits:\n      env: ["GADGET=one"]\n')
    server = CriServer(containerd.address, hosts_dir=str(containerd.hosts_dir), runc_root=str(containerd.runc_root),
                       sandbox_image=test_images.pause.ref,
                       extra_toml=f'[runtime]\ncdi_spec_dirs = ["{spec_dir}"]\n')
    network = TestNetwork(server.cni_conf_dir, index=2)
    try:
        server.start()
        yield Node(PodRig(server, network, test_images))
    finally:
        server.cleanup()
        network.close()


async def test_cdi_devices_added_by_a_plugin_are_resolved_from_the_nodes_specs(cdi_node: Node) -> None:
    async def add_gadget(_request: Message) -> nri.CreateContainerResponse:
        return nri.CreateContainerResponse(adjust=nri.ContainerAdjustment(
            CDI_devices=[nri.CDIDevice(name="nri.test/gadget=one")]))

    plugin = await cdi_node.plugin(handlers={"CreateContainer": add_gadget}, events=("CreateContainer",))
    pod_id = await cdi_node.run_pod()
    try:
        cid = await cdi_node.create(pod_id, ["sleep", "600"])
        await call(cdi_node.rt.StartContainer, api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        assert "GADGET=one" in (await cdi_node.exec(cid, "env")).splitlines()
    finally:
        await cdi_node.remove_pod(pod_id)
        plugin.close()
