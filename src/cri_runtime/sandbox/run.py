"""RunPodSandbox: steps that each acquire something, each undone if a later one fails.

The steps acquire a name, a netns, a CNI allocation, files, a shm mount, a
snapshot, a containerd container and a task. Each registers its undo; a
failure at any point, the caller's deadline included, runs the undos in
reverse (`rollback.run_or_undo`), so nothing leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.containerd.types.task import task_pb2 as task_types
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.completion import all_of, consume_exception
from cri_runtime.config import RuntimeHandlerConfig
from cri_runtime.containerd import objects
from cri_runtime.images.store import ImageRecord
from cri_runtime.network import netns
from cri_runtime.network.manager import Bandwidth, DNSConfig, NetworkStatus, PortMapping
from cri_runtime.oci import host_namespaces, sandbox_spec
from cri_runtime.oci.process import ImageConfig
from cri_runtime.rollback import Rollback, remove_dir, run_or_undo
from cri_runtime.sandbox import files
from cri_runtime.sandbox.model import (
    METADATA_EXTENSION,
    NOTREADY,
    READY,
    Sandbox,
    SandboxMetadata,
    SandboxStatus,
    sandbox_name,
)
from cri_runtime.sandbox.store import SandboxStore, _metadata_extension
from cri_runtime.userns import rootfs as userns_rootfs
from cri_runtime.userns import support as userns_support
from cri_runtime.userns.mappings import PodUserns, pod_userns

log = logging.getLogger(__name__)

INGRESS_BANDWIDTH = "kubernetes.io/ingress-bandwidth"
EGRESS_BANDWIDTH = "kubernetes.io/egress-bandwidth"


def parse_bandwidth(value: str) -> int:
    """Kubernetes quantity (e.g. 10M, 1Gi) in bits per second."""
    units = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
             "Ti": 2**40}
    text = value.strip()
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            try:
                return int(float(number) * units[suffix])
            except ValueError:
                break
    try:
        return int(float(text))
    except ValueError:
        raise errors.InvalidArgument(f"invalid bandwidth annotation value {value!r}") from None


def _port_mappings(cfg: api_pb2.PodSandboxConfig) -> list[PortMapping]:
    names = {api_pb2.TCP: "tcp", api_pb2.UDP: "udp", api_pb2.SCTP: "sctp"}
    return [PortMapping(host_port=p.host_port, container_port=p.container_port,
                        protocol=names.get(p.protocol, "tcp"), host_ip=p.host_ip)
            for p in cfg.port_mappings if p.host_port > 0]


def _bandwidth(cfg: api_pb2.PodSandboxConfig) -> Bandwidth | None:
    ingress = cfg.annotations.get(INGRESS_BANDWIDTH)
    egress = cfg.annotations.get(EGRESS_BANDWIDTH)
    if not ingress and not egress:
        return None
    return Bandwidth(ingress_rate=parse_bandwidth(ingress) if ingress else 0,
                     egress_rate=parse_bandwidth(egress) if egress else 0)


def _dns(cfg: api_pb2.PodSandboxConfig) -> DNSConfig | None:
    if not cfg.HasField("dns_config"):
        return None
    d = cfg.dns_config
    return DNSConfig(servers=tuple(d.servers), searches=tuple(d.searches), options=tuple(d.options))


@dataclass
class _PodRun:
    """One RunPodSandbox in flight: what it asks for, and what its steps have made so far for the next ones."""

    sandbox_id: str
    name: str
    request: api_pb2.RunPodSandboxRequest
    handler_name: str
    handler: RuntimeHandlerConfig
    undo: Rollback
    userns: PodUserns | None = None
    created_at: int = 0
    netns_path: str = ""
    network_setup: asyncio.Future[NetworkStatus] | None = None
    pod_dir: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_path: str = ""
    shm_path: str = ""
    # The containerd record as created (kept for verbose status, with the IPs once recorded).
    record: containers_pb2.Container | None = None

    @property
    def cfg(self) -> api_pb2.PodSandboxConfig:
        return self.request.config

    @property
    def host_network(self) -> bool:
        return host_namespaces.host_network(self.cfg)

    @property
    def host_ipc(self) -> bool:
        return host_namespaces.host_ipc(self.cfg)

    @property
    def netns_name(self) -> str:
        return f"cri-{self.sandbox_id[:16]}"


def _containerd_record(pod: _PodRun, image: ImageRecord, spec: dict[str, Any], metadata: SandboxMetadata,
                       runtime: containers_pb2.Container.Runtime, snapshotter: str) -> containers_pb2.Container:
    """The pause container's containerd record; it names its snapshot key before the snapshot exists."""
    cfg = pod.cfg
    return containers_pb2.Container(
        id=pod.sandbox_id,
        labels={objects.KIND_LABEL: objects.KIND_SANDBOX,
                f"{objects.LABEL_PREFIX}.pod.name": cfg.metadata.name,
                f"{objects.LABEL_PREFIX}.pod.namespace": cfg.metadata.namespace,
                f"{objects.LABEL_PREFIX}.pod.uid": cfg.metadata.uid},
        image=image.record_name,
        runtime=runtime, spec=objects.spec_any(spec), snapshotter=snapshotter, snapshot_key=pod.sandbox_id,
        extensions={METADATA_EXTENSION: _metadata_extension(metadata)})


class RunOps(SandboxStore):
    """RunPodSandbox: a sequence of steps that each acquire something and register its undo."""

    async def run(self, request: api_pb2.RunPodSandboxRequest) -> str:
        """RunPodSandbox; returns the new sandbox ID (the request has passed `validation.sandboxes`)."""
        cfg = request.config
        handler_name, handler = self.handler(request.runtime_handler)
        name = sandbox_name(cfg.metadata)
        sandbox_id = secrets.token_hex(32)
        host_network = cfg.linux.security_context.namespace_options.network == api_pb2.NODE
        if not host_network:
            cond = self.network.status()
            if not cond.ready:
                raise errors.FailedPrecondition(f"network is not ready: {cond.message}")
        self.names.reserve(name, sandbox_id)
        undo = Rollback(f"pod sandbox {sandbox_id}")
        undo.add_sync("name reservation", self.names.release, name)
        pod = _PodRun(sandbox_id, name, request, handler_name, handler, undo)
        return await run_or_undo(self._run_steps(pod), undo)

    async def _run_steps(self, pod: _PodRun) -> str:
        """The steps of RunPodSandbox, overlapped where they do not depend on each other.

        The pod's network (CNI ADD, tens of ms of plugin runs) only needs the
        netns to exist, and the pause container only needs the netns path:
        so CNI runs while the snapshot, containerd container and pause task
        are created. The task is started only once the network is up and the
        pod's IP is recorded, so a pod seen running (now or after a restart)
        always has its network.
        """
        self._check_userns(pod)
        pod.created_at = time.time_ns()
        image_lookup = self._look_up_pause_image()
        await self._set_up_network(pod)
        self._write_pod_files(pod)
        # The pod's state dir is made by the shm mount or the first status save; registered
        # before either, so a failure in between (the pause image cannot be had) removes it.
        # No status file yet: until the first save, recovery reads a missing one as NOTREADY.
        pod.undo.add_sync("state dir", remove_dir, str(self.state / pod.sandbox_id))
        self._mount_shm(pod)
        image = await image_lookup
        metadata = self._metadata(pod, image)  # its IPs are filled in once CNI is done
        spec = self._spec(pod, image)
        sandbox = Sandbox(metadata, SandboxStatus(state=NOTREADY), self.status_path(pod.sandbox_id))
        mounts = await self._create_record_and_snapshot(pod, image, spec, metadata)
        pause_pid = await self._create_pause_task(pod, mounts)
        await self._pin_userns_netns(pod, pause_pid)
        await self._start_pause_task(pod, metadata, pause_pid)
        return await self._publish(sandbox, pause_pid)

    @staticmethod
    def _check_userns(pod: _PodRun) -> None:
        """A pod in its own user namespace needs a node that supports them (the request's mappings are valid)."""
        pod.userns = pod_userns(pod.cfg.linux.security_context.namespace_options)
        if pod.userns is not None and not userns_support.result().supported:
            raise errors.FailedPrecondition(
                f"user namespaces are not supported on this node: {userns_support.result().detail}")

    def _look_up_pause_image(self) -> asyncio.Future[ImageRecord]:
        """The pause image, found (or pulled) while the network and pod files are made."""
        image_lookup = asyncio.ensure_future(self.ensure_image(self.config.image.sandbox_image))
        image_lookup.add_done_callback(consume_exception)
        return image_lookup

    async def _set_up_network(self, pod: _PodRun) -> None:
        """The pod's netns, and CNI ADD started in the background.

        With a user namespace runc makes the netns for the pause (owned by the
        pod's user namespace); it is pinned and CNI started once the pause
        task exists (`_pin_userns_netns`).
        """
        if pod.host_network:
            return
        pod.netns_path = netns.pin_path(self.netns_dir, pod.netns_name)
        if pod.userns is None:
            await self._create_netns(pod.netns_name, pod.undo)
            pod.network_setup = self._start_network_setup(pod.sandbox_id, pod.netns_path, pod.cfg, pod.undo)

    def _write_pod_files(self, pod: _PodRun) -> None:
        """hostname, hosts and resolv.conf, which every container of the pod mounts."""
        cfg = pod.cfg
        pod.pod_dir = str(self.root / pod.sandbox_id)
        pod.undo.add_sync("pod files", files.remove_pod_dir, pod.pod_dir)
        hostname = cfg.hostname or (os.uname().nodename if pod.host_network else "")
        dns = None
        if cfg.HasField("dns_config"):
            dns = (list(cfg.dns_config.servers), list(cfg.dns_config.searches), list(cfg.dns_config.options))
        pod.hostname_path, pod.hosts_path, pod.resolv_path = files.write_pod_files(
            pod.pod_dir, hostname=hostname, host_network=pod.host_network, dns=dns)

    def _mount_shm(self, pod: _PodRun) -> None:
        """The pod's /dev/shm, shared by its containers (none when it uses the host's IPC namespace)."""
        if pod.host_ipc:
            return
        pod.shm_path = str(self.state / pod.sandbox_id / "shm")
        pod.undo.add_sync("shm", files.unmount_shm, pod.shm_path)
        files.mount_shm(pod.shm_path)
        if pod.userns is not None:  # the pod's root owns its shm, not the host's
            os.chown(pod.shm_path, *pod.userns.host_root)

    @staticmethod
    def _metadata(pod: _PodRun, image: ImageRecord) -> SandboxMetadata:
        cfg = pod.cfg
        return SandboxMetadata(
            id=pod.sandbox_id, name=pod.name, config=cfg.SerializeToString(), runtime_handler=pod.handler_name,
            created_at=pod.created_at, netns_path=pod.netns_path, pod_dir=pod.pod_dir, shm_path=pod.shm_path,
            hostname_path=pod.hostname_path, hosts_path=pod.hosts_path, resolv_conf_path=pod.resolv_path,
            cgroup_parent=cfg.linux.cgroup_parent, image=image.id,
            requested_runtime_handler=pod.request.runtime_handler)

    def _spec(self, pod: _PodRun, image: ImageRecord) -> dict[str, Any]:
        """The pause container's OCI spec (with a user namespace runc makes the netns: no path to join)."""
        return sandbox_spec.build_sandbox_spec(
            pod.sandbox_id, pod.cfg, ImageConfig.from_json(image.config), options=self.node.spec_options(pod.handler),
            netns_path=pod.netns_path if pod.userns is None else "", shm_path=pod.shm_path,
            resolv_conf_path=pod.resolv_path)

    async def _create_record_and_snapshot(self, pod: _PodRun, image: ImageRecord, spec: dict[str, Any],
                                          metadata: SandboxMetadata) -> list[Any]:
        """The containerd record, then the snapshot it names; returns the snapshot's mounts.

        The record comes first: from the moment Prepare makes the snapshot,
        containerd's GC sees it referenced, so no lease (two more writes) is needed.
        """
        snapshotter, sandbox_id = self.config.containerd.snapshotter, pod.sandbox_id
        runtime = objects.runtime_of(pod.handler, self.config.runtime.cgroup_driver)
        record = pod.record = _containerd_record(pod, image, spec, metadata, runtime, snapshotter)
        with self.records.watching(sandbox_id) as watch:
            await objects.create_container(self.ctd, record, lease="")
            pod.undo.add("containerd container", lambda: objects.delete_container(self.ctd, sandbox_id))
            self.records.seed(record, watch)
        mounts = await objects.prepare_snapshot(self.ctd, snapshotter, sandbox_id, image.chain_id, lease="")
        pod.undo.add("snapshot", lambda: objects.remove_snapshot(self.ctd, snapshotter, sandbox_id))
        return mounts

    async def _create_pause_task(self, pod: _PodRun, mounts: list[Any]) -> int:
        """The pause task, created (not started); with a user namespace its rootfs is made usable for the pod's root.

        Returns the pause process's PID.
        """
        sandbox_id = pod.sandbox_id
        async with contextlib.nullcontext(mounts) if pod.userns is None else \
                userns_rootfs.prepared(mounts, pod.userns, self.state / sandbox_id) as mounts:
            created = await self.ctd.call(
                self.ctd.tasks.Create, tasks_pb2.CreateTaskRequest(container_id=sandbox_id, rootfs=mounts),
                f"create pause task of pod {sandbox_id}")
        pod.undo.add("task", lambda: self._kill_and_delete_task(sandbox_id))
        return int(created.pid)

    async def _pin_userns_netns(self, pod: _PodRun, pause_pid: int) -> None:
        """With a user namespace: pin the netns runc made for the pause, then start CNI ADD in it."""
        if pod.userns is None or not pod.netns_path:
            return
        netns_path = pod.netns_path
        pod.undo.add("netns", lambda: netns.remove(netns_path))
        await netns.pin_existing(self.netns_dir, pod.netns_name, f"/proc/{pause_pid}/ns/net", loopback_up=True)
        pod.network_setup = self._start_network_setup(pod.sandbox_id, netns_path, pod.cfg, pod.undo)

    async def _start_pause_task(self, pod: _PodRun, metadata: SandboxMetadata, pause_pid: int) -> None:
        """Start the pause task while CNI finishes; the pod's IPs are recorded as it starts.

        The task's state is known once it started (running, as the status of a new pod shows it):
        kept for verbose status, until an event says otherwise.
        """
        starting = self._start_task(pod.sandbox_id, pause_pid)
        if pod.network_setup is None:
            await starting
            return
        network_status = await pod.network_setup
        metadata.ip = network_status.ip
        metadata.additional_ips = list(network_status.additional_ips)
        # The IPs are recorded while the task starts; if we die before the record is written,
        # recovery takes them from the CNI cache (see _recover_one).
        await all_of(starting, self._record_metadata(metadata, pod.record))

    async def _start_task(self, sandbox_id: str, pause_pid: int) -> None:
        with self.task_states.watching(sandbox_id) as watch:
            await self.ctd.call(self.ctd.tasks.Start, tasks_pb2.StartRequest(container_id=sandbox_id),
                                f"start pause task of pod {sandbox_id}")
            self.task_states.keep(sandbox_id, objects.TaskState(pid=pause_pid, status=task_types.RUNNING,
                                                                exit_status=0, exited_at_ns=0), watch)

    async def _publish(self, sandbox: Sandbox, pause_pid: int) -> str:
        """Mark the pod ready, let NRI plugins see it, then list it and tell the event listeners."""
        sandbox.status.state = READY
        sandbox.status.pid = pause_pid
        sandbox.save_status()
        # NRI plugins see the pod before anyone else may (List, Status, CreateContainer); an
        # objection undoes the whole run.
        await self.nri.run_pod(sandbox)
        self.index.add(sandbox.id, sandbox)
        self.nri.published(sandbox.id)
        log.info("pod sandbox ready",
                 extra={"fields": {"id": sandbox.id, "name": sandbox.metadata.name, "ip": sandbox.metadata.ip}})
        await self._emit("created", sandbox)
        await self._emit("started", sandbox)
        return sandbox.id

    async def _create_netns(self, netns_name: str, undo: Rollback) -> None:
        """The pod's network namespace; its undo waits for a creation still running in its thread."""
        # lo comes up with the namespace, so CNI runs no loopback plugin (see _start_network_setup).
        creating = asyncio.ensure_future(netns.create(self.netns_dir, netns_name, loopback_up=True))

        async def remove_netns() -> None:
            await asyncio.wait([creating])
            if not creating.cancelled() and creating.exception() is None:
                await netns.remove(creating.result())

        undo.add("netns", remove_netns)
        await asyncio.wait([creating])
        creating.result()

    def _start_network_setup(self, sandbox_id: str, netns_path: str, cfg: api_pb2.PodSandboxConfig,
                             undo: Rollback) -> asyncio.Future[NetworkStatus]:
        """CNI ADD in the background; its undo waits for it, then tears down whatever it did."""
        setup = asyncio.ensure_future(self.network.setup(
            sandbox_id, netns_path, pod_name=cfg.metadata.name, pod_namespace=cfg.metadata.namespace,
            pod_uid=cfg.metadata.uid, port_mappings=_port_mappings(cfg),
            bandwidth=_bandwidth(cfg), dns=_dns(cfg), cgroup_parent=cfg.linux.cgroup_parent,
            annotations=dict(cfg.annotations), loopback_plugin=False))
        setup.add_done_callback(consume_exception)

        async def teardown() -> None:
            await asyncio.wait([setup])
            await self.network.teardown(sandbox_id, netns_path)

        undo.add("CNI", teardown)
        return setup
