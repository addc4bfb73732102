"""Pod sandbox lifecycle: run, stop, remove, status, list, recovery.

RunPodSandbox is a sequence of steps that each acquire something (a name, a
netns, a CNI allocation, files, a shm mount, a snapshot, a containerd
container, a task). Each step registers its undo; a failure at any point —
including the caller's deadline passing — runs the undos in reverse, shielded
from cancellation, so nothing leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2, field_mask_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors, protowire
from cri_runtime.completion import all_of, consume_exception
from cri_runtime.config import Config, RuntimeHandlerConfig
from cri_runtime.containerd import objects
from cri_runtime.containerd.connection import Containerd
from cri_runtime.images.store import ImageRecord
from cri_runtime.network import netns
from cri_runtime.network.manager import Bandwidth, DNSConfig, NetworkStatus, PodNetworkManager, PortMapping
from cri_runtime.node.facts import NodeFacts
from cri_runtime.nri.hooks import NriHooks
from cri_runtime.oci import sandbox_spec
from cri_runtime.oci.process import ImageConfig
from cri_runtime.rollback import Rollback, remove_dir, run_or_undo
from cri_runtime.sandbox import files, status_info
from cri_runtime.sandbox.model import (
    METADATA_EXTENSION,
    METADATA_TYPE,
    METADATA_VERSION,
    NOTREADY,
    READY,
    Sandbox,
    SandboxMetadata,
    SandboxStatus,
    sandbox_name,
)
from cri_runtime.store.index import IdIndex, NameRegistry
from cri_runtime.userns import rootfs as userns_rootfs
from cri_runtime.userns import support as userns_support
from cri_runtime.userns.mappings import pod_userns

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
INGRESS_BANDWIDTH = "kubernetes.io/ingress-bandwidth"
EGRESS_BANDWIDTH = "kubernetes.io/egress-bandwidth"

ContainersHook = Callable[[str], Awaitable[None]]
SandboxListener = Callable[[str, Sandbox], Awaitable[None]]


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


class SandboxManager:
    """All pod sandboxes of this runtime."""

    def __init__(self, config: Config, ctd: Containerd, network: PodNetworkManager,
                 ensure_image: Callable[[str], Awaitable[ImageRecord]], node: NodeFacts,
                 nri: NriHooks | None = None, *, stop_containers: ContainersHook | None = None,
                 remove_containers: ContainersHook | None = None, on_event: SandboxListener | None = None) -> None:
        """`stop_containers` / `remove_containers` stop / remove every container of a pod (the container
        manager, built after this one); `on_event` hears ("created"|"started"|"stopped"|"deleted", sandbox)."""
        self.config = config
        self.nri = nri or NriHooks(None)
        self.ctd = ctd
        self.network = network
        self.ensure_image = ensure_image
        self.index: IdIndex[Sandbox] = IdIndex("pod sandbox")
        self.names = NameRegistry("pod sandbox")
        self.root = Path(config.server.root_dir) / "sandboxes"
        self.state = Path(config.server.state_dir) / "sandboxes"
        self.netns_dir = str(Path(config.server.state_dir) / "netns")
        self.stop_containers = stop_containers
        self.remove_containers = remove_containers
        self.on_event = on_event
        self.node = node

    # ----------------------------------------------------------------- helpers

    def handler(self, name: str) -> tuple[str, RuntimeHandlerConfig]:
        name = name or self.config.runtime.default_handler
        handler = self.config.runtime.handlers.get(name)
        if handler is None:
            raise errors.InvalidArgument(
                f"unknown runtime handler {name!r} (configured: {', '.join(sorted(self.config.runtime.handlers))})")
        return name, handler

    async def _emit(self, kind: str, sandbox: Sandbox) -> None:
        if self.on_event is not None:
            try:
                await self.on_event(kind, sandbox)
            except Exception:
                log.exception("pod sandbox event listener failed")

    def get(self, id_or_prefix: str) -> Sandbox:
        return self.index.get(id_or_prefix)

    def status_path(self, sandbox_id: str) -> Path:
        return self.state / sandbox_id / "status.json"

    # --------------------------------------------------------------------- run

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
        return await run_or_undo(self._run_steps(sandbox_id, name, request, handler_name, handler, undo), undo)

    async def _run_steps(self, sandbox_id: str, name: str, request: api_pb2.RunPodSandboxRequest,
                         handler_name: str, handler: RuntimeHandlerConfig, undo: Rollback) -> str:
        """The steps of RunPodSandbox, overlapped where they do not depend on each other.

        The pod's network (CNI ADD, tens of ms of plugin runs) only needs the
        netns to exist, and the pause container only needs the netns path:
        so CNI runs while the snapshot, containerd container and pause task
        are created. The task is started only once the network is up and the
        pod's IP is recorded, so a pod seen running (now or after a restart)
        always has its network.
        """
        cfg = request.config
        ns_opts = cfg.linux.security_context.namespace_options
        userns = pod_userns(ns_opts)  # validated before anything is made
        if userns is not None and not userns_support.result().supported:
            raise errors.FailedPrecondition(
                f"user namespaces are not supported on this node: {userns_support.result().detail}")
        host_network = ns_opts.network == api_pb2.NODE
        host_ipc = ns_opts.ipc == api_pb2.NODE
        created_at = time.time_ns()

        image_lookup = asyncio.ensure_future(self.ensure_image(self.config.image.sandbox_image))
        image_lookup.add_done_callback(consume_exception)
        netns_path = ""
        network_setup: asyncio.Future[NetworkStatus] | None = None
        netns_name = f"cri-{sandbox_id[:16]}"
        if not host_network:
            netns_path = netns.pin_path(self.netns_dir, netns_name)
            if userns is None:  # else runc makes it for the pause (owned by the pod's userns), pinned below
                await self._create_netns(netns_name, undo)
                network_setup = self._start_network_setup(sandbox_id, netns_path, cfg, undo)

        pod_dir = str(self.root / sandbox_id)
        undo.add_sync("pod files", files.remove_pod_dir, pod_dir)
        hostname = cfg.hostname or (os.uname().nodename if host_network else "")
        dns = None
        if cfg.HasField("dns_config"):
            dns = (list(cfg.dns_config.servers), list(cfg.dns_config.searches), list(cfg.dns_config.options))
        hostname_path, hosts_path, resolv_path = files.write_pod_files(
            pod_dir, hostname=hostname, host_network=host_network, dns=dns)
        shm_path = ""
        if not host_ipc:
            shm_path = str(self.state / sandbox_id / "shm")
            undo.add_sync("shm", files.unmount_shm, shm_path)
            files.mount_shm(shm_path)
            if userns is not None:  # the pod's root owns its shm, not the host's
                os.chown(shm_path, *userns.host_root)

        image = await image_lookup
        # The IPs are filled in once CNI is done (see below).
        metadata = SandboxMetadata(
            id=sandbox_id, name=name, config=cfg.SerializeToString(), runtime_handler=handler_name,
            created_at=created_at, netns_path=netns_path, pod_dir=pod_dir, shm_path=shm_path,
            hostname_path=hostname_path, hosts_path=hosts_path, resolv_conf_path=resolv_path,
            cgroup_parent=cfg.linux.cgroup_parent, image=image.id,
            requested_runtime_handler=request.runtime_handler)

        spec = sandbox_spec.build_sandbox_spec(
            sandbox_id, cfg, ImageConfig.from_json(image.config), options=self.node.spec_options(handler),
            netns_path=netns_path if userns is None else "", shm_path=shm_path, resolv_conf_path=resolv_path)

        snapshotter = self.config.containerd.snapshotter
        status = SandboxStatus(state=NOTREADY)
        sandbox = Sandbox(metadata, status, self.status_path(sandbox_id))
        # No status file yet: until the first save, recovery reads a missing one as NOTREADY.
        undo.add_sync("status dir", remove_dir, str(self.state / sandbox_id))

        # The record comes first and names its snapshot key: from the moment Prepare makes the
        # snapshot, containerd's GC sees it referenced, so no lease (two more writes) is needed.
        container = containers_pb2.Container(
            id=sandbox_id,
            labels={objects.KIND_LABEL: objects.KIND_SANDBOX,
                    f"{objects.LABEL_PREFIX}.pod.name": cfg.metadata.name,
                    f"{objects.LABEL_PREFIX}.pod.namespace": cfg.metadata.namespace,
                    f"{objects.LABEL_PREFIX}.pod.uid": cfg.metadata.uid},
            image=image.names[0] if image.names else image.id,
            runtime=objects.runtime_of(handler, self.config.runtime.cgroup_driver),
            spec=objects.spec_any(spec), snapshotter=snapshotter, snapshot_key=sandbox_id,
            extensions={METADATA_EXTENSION: _metadata_extension(metadata)})
        await objects.create_container(self.ctd, container, lease="")
        undo.add("containerd container", lambda: objects.delete_container(self.ctd, sandbox_id))
        mounts = await objects.prepare_snapshot(self.ctd, snapshotter, sandbox_id, image.chain_id, lease="")
        undo.add("snapshot", lambda: objects.remove_snapshot(self.ctd, snapshotter, sandbox_id))
        async with contextlib.nullcontext(mounts) if userns is None else \
                userns_rootfs.prepared(mounts, userns, self.state / sandbox_id) as mounts:
            created = await self.ctd.call(
                self.ctd.tasks.Create, tasks_pb2.CreateTaskRequest(container_id=sandbox_id, rootfs=mounts),
                f"create pause task of pod {sandbox_id}")
        undo.add("task", lambda: self._kill_and_delete_task(sandbox_id))
        if userns is not None and netns_path:
            undo.add("netns", lambda: netns.remove(netns_path))
            await netns.pin_existing(self.netns_dir, netns_name, f"/proc/{created.pid}/ns/net", loopback_up=True)
            network_setup = self._start_network_setup(sandbox_id, netns_path, cfg, undo)

        starting = self.ctd.call(self.ctd.tasks.Start, tasks_pb2.StartRequest(container_id=sandbox_id),
                                 f"start pause task of pod {sandbox_id}")
        if network_setup is None:
            await starting
        else:
            network_status = await network_setup
            metadata.ip = network_status.ip
            metadata.additional_ips = list(network_status.additional_ips)
            # The IPs are recorded while the task starts; if we die before the record is written,
            # recovery takes them from the CNI cache (see _recover_one).
            await all_of(starting, self._record_metadata(metadata))
        status.state = READY
        status.pid = created.pid
        sandbox.save_status()
        # NRI plugins see the pod before anyone else may (List, Status, CreateContainer); an
        # objection undoes the whole run.
        await self.nri.run_pod(sandbox)
        self.index.add(sandbox_id, sandbox)
        self.nri.published(sandbox_id)
        log.info("pod sandbox ready", extra={"fields": {"id": sandbox_id, "name": name, "ip": metadata.ip}})
        await self._emit("created", sandbox)
        await self._emit("started", sandbox)
        return sandbox_id

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

    async def _record_metadata(self, metadata: SandboxMetadata) -> None:
        """Rewrite the metadata extension of the sandbox's containerd record (after CNI gave its IPs)."""
        record = containers_pb2.Container(id=metadata.id,
                                          extensions={METADATA_EXTENSION: _metadata_extension(metadata)})
        mask = field_mask_pb2.FieldMask(paths=[f"extensions.{METADATA_EXTENSION}"])
        await self.ctd.call(self.ctd.containers.Update,
                            containers_pb2.UpdateContainerRequest(container=record, update_mask=mask),
                            f"record network of pod {metadata.id}")

    async def _kill_and_delete_task(self, sandbox_id: str) -> None:
        """SIGKILL the pause task and delete it; a shim that does not answer is killed instead."""
        try:
            await objects.kill_task(self.ctd, sandbox_id, signal.SIGKILL, all_processes=True)
            await objects.wait_task(self.ctd, sandbox_id, timeout=STOP_TIMEOUT)
            await objects.delete_task(self.ctd, sandbox_id)
        except errors.DeadlineExceeded as exc:
            log.warning("shim of pod sandbox does not answer; killing it with its process tree",
                        extra={"fields": {"id": sandbox_id, "reason": exc.message}})
            await objects.reap_unresponsive_task(self.ctd, sandbox_id, [sandbox_id])

    # -------------------------------------------------------------------- stop

    async def stop(self, id_or_prefix: str) -> None:
        """StopPodSandbox: idempotent; an unknown ID is success."""
        try:
            sandbox = self.index.get(id_or_prefix)
        except errors.NotFound:
            return
        if self.stop_containers is not None:
            await self.stop_containers(sandbox.id)
        # Workloads stopped, infrastructure still up and the pod still listed: as NRI's contract says.
        await self.nri.stop_pod(sandbox)
        async with sandbox.lock:
            was_ready = sandbox.ready
            await self._stop_locked(sandbox)
        if was_ready:
            await self._emit("stopped", sandbox)

    async def _stop_locked(self, sandbox: Sandbox) -> None:
        md = sandbox.metadata
        if not sandbox.task_gone:
            await self._kill_and_delete_task(sandbox.id)
            sandbox.task_gone = True
        if sandbox.status.state != NOTREADY or not sandbox.status.exited_at:
            sandbox.status.exited_at = time.time_ns()
            sandbox.status.state = NOTREADY
            sandbox.save_status()
        if md.netns_path and not sandbox.status.network_torn_down:
            await self.network.teardown(sandbox.id, md.netns_path)
            await netns.remove(md.netns_path)
            sandbox.status.network_torn_down = True
            sandbox.save_status()
        files.unmount_shm(md.shm_path)

    # ------------------------------------------------------------------ remove

    async def remove(self, id_or_prefix: str) -> None:
        """RemovePodSandbox: removes containers, sandbox and files; unknown is success."""
        try:
            sandbox = self.index.get(id_or_prefix)
        except errors.NotFound:
            return
        if self.remove_containers is not None:
            await self.remove_containers(sandbox.id)
        async with sandbox.lock:
            await self._stop_locked(sandbox)
            md = sandbox.metadata
            await objects.delete_container(self.ctd, sandbox.id)
            await objects.remove_snapshot(self.ctd, self.config.containerd.snapshotter, sandbox.id)
            files.remove_pod_dir(md.pod_dir)
            remove_dir(str(self.state / sandbox.id))
            self.index.remove(sandbox.id)
            self.names.release_id(sandbox.id)
        log.info("pod sandbox removed", extra={"fields": {"id": sandbox.id}})
        await self.nri.remove_pod(sandbox)
        await self._emit("deleted", sandbox)

    # ------------------------------------------------------------ status, list

    async def status(self, id_or_prefix: str, verbose: bool) -> api_pb2.PodSandboxStatusResponse:
        sandbox = self.index.get(id_or_prefix)
        resp = api_pb2.PodSandboxStatusResponse(status=self.to_status(sandbox))
        if verbose:
            resp.info["info"] = json.dumps(await self._verbose_info(sandbox))
        return resp

    def to_status(self, sandbox: Sandbox) -> api_pb2.PodSandboxStatus:
        md, cfg = sandbox.metadata, sandbox.config
        ns = cfg.linux.security_context.namespace_options
        status = api_pb2.PodSandboxStatus(
            id=sandbox.id, metadata=cfg.metadata,
            state=api_pb2.SANDBOX_READY if sandbox.ready else api_pb2.SANDBOX_NOTREADY,
            created_at=md.created_at,
            labels=dict(cfg.labels), annotations=dict(cfg.annotations),
            runtime_handler=md.reported_runtime_handler,
            linux=api_pb2.LinuxPodSandboxStatus(namespaces=api_pb2.Namespace(options=api_pb2.NamespaceOption(
                network=ns.network, pid=ns.pid, ipc=ns.ipc, target_id=ns.target_id,
                userns_options=ns.userns_options if ns.HasField("userns_options") else None))))
        if md.ip and not sandbox.host_network:
            status.network.ip = md.ip
            status.network.additional_ips.extend(api_pb2.PodIP(ip=ip) for ip in md.additional_ips)
        return status

    async def _verbose_info(self, sandbox: Sandbox) -> dict[str, Any]:
        """containerd's verbose keys, from the containerd record and task, plus ours."""
        try:
            record: containers_pb2.Container | None = (await self.ctd.call(
                self.ctd.containers.Get, containers_pb2.GetContainerRequest(id=sandbox.id),
                f"get pod sandbox {sandbox.id}")).container
        except errors.NotFound:
            record = None
        task = None if sandbox.task_gone else await objects.task_state(self.ctd, sandbox.id)
        cni = self.network.cached_status(sandbox.id) if sandbox.metadata.netns_path else None
        return status_info.verbose_info(sandbox, record=record, task=task,
                                        cni_raw=cni.results if cni is not None else None)

    def _listed(self, flt: api_pb2.PodSandboxFilter | None) -> list[Sandbox]:
        """The sandboxes `flt` selects, oldest first."""
        candidates: list[Sandbox]
        if flt is not None and flt.id:
            found = self._find_quietly(flt.id)
            candidates = [found] if found is not None else []
        else:
            candidates = list(self.index)
        if flt is not None:
            want_state = flt.state.state if flt.HasField("state") else None
            selector = dict(flt.label_selector)
            candidates = [
                sb for sb in candidates
                if (want_state is None or _list_state(sb) == want_state)
                and all(sb.config.labels.get(k) == v for k, v in selector.items())]
        candidates.sort(key=lambda sb: sb.metadata.created_at)
        return candidates

    def list(self, flt: api_pb2.PodSandboxFilter | None) -> list[api_pb2.PodSandbox]:
        return [_list_entry(sb)[0] for sb in self._listed(flt)]

    def list_encoded(self, flt: api_pb2.PodSandboxFilter | None) -> bytes:
        """The ListPodSandboxResponse bytes, joined from each sandbox's cached entry."""
        return b"".join(_list_entry(sb)[1] for sb in self._listed(flt))

    def _find_quietly(self, id_or_prefix: str) -> Sandbox | None:
        try:
            return self.index.get(id_or_prefix)
        except errors.CriError:
            return None

    # ---------------------------------------------------------------- recovery

    async def recover(self, per_object_timeout: float) -> None:
        """Rebuild the index from containerd records and status files."""
        await objects.recover_each(self.ctd, objects.KIND_SANDBOX, self._recover_one, per_object_timeout)

    async def _recover_one(self, record: containers_pb2.Container) -> None:
        version, data = objects.read_json_extension(record, METADATA_EXTENSION, METADATA_TYPE)
        md = SandboxMetadata.from_json(version, data)
        status_path = self.status_path(md.id)
        status = SandboxStatus.load(status_path) or SandboxStatus(state=NOTREADY)
        sandbox = Sandbox(md, status, status_path)
        task = await objects.task_state(self.ctd, md.id)
        sandbox.task_gone = task is None
        if task is not None and task.running:
            status.state, status.pid = READY, task.pid
            if md.netns_path and not md.ip:
                await self._recover_ips(md)
        else:
            if status.state == READY:
                status.exited_at = task.exited_at_ns if task is not None and task.exited_at_ns else time.time_ns()
            status.state = NOTREADY
            if task is not None and task.stopped:  # the pause exited while we were away: let its shim go
                await objects.delete_task(self.ctd, md.id)
                sandbox.task_gone = True
        sandbox.save_status()
        self.index.add(md.id, sandbox)
        self.names.reserve(md.name, md.id)
        log.info("recovered pod sandbox", extra={"fields": {"id": md.id, "state": status.state}})

    async def _recover_ips(self, md: SandboxMetadata) -> None:
        """A pod started while its IPs were being recorded when we died: take them from the CNI cache."""
        cached = self.network.cached_status(md.id)
        if cached is None:
            log.warning("running pod sandbox %s has no IP on record nor in the CNI cache", md.id)
            return
        md.ip, md.additional_ips = cached.ip, list(cached.additional_ips)
        await self._record_metadata(md)

    async def on_task_exit(self, sandbox_id: str, exited_at_ns: int) -> None:
        """The pause process died: the pod is no longer ready, and its task is deleted at once.

        Deleting the exited pause task (as containerd's CRI does) lets a shim with no live
        task left exit now instead of lingering until RemovePodSandbox.
        """
        sandbox = self.index.find(sandbox_id)
        if sandbox is None:
            return
        async with sandbox.lock:
            stopped = False
            if sandbox.status.state == READY:
                sandbox.status.state = NOTREADY
                sandbox.status.exited_at = exited_at_ns or time.time_ns()
                sandbox.save_status()
                stopped = True
                log.info("pause task exited; pod sandbox not ready", extra={"fields": {"id": sandbox_id}})
            if not sandbox.task_gone:
                try:
                    await objects.delete_task(self.ctd, sandbox_id)
                    sandbox.task_gone = True
                except errors.CriError as exc:  # StopPodSandbox deletes it later
                    log.warning("could not delete exited pause task of pod %s: %s", sandbox_id, exc.message)
            if stopped:
                await self._emit("stopped", sandbox)

    async def resync(self) -> None:
        """After (re)subscribing to events: catch pause exits we may have missed."""
        for sandbox in self.index:
            if not sandbox.ready:
                continue
            task = await objects.task_state(self.ctd, sandbox.id)
            if task is None or not task.running:
                await self.on_task_exit(sandbox.id, task.exited_at_ns if task else 0)


def _metadata_extension(metadata: SandboxMetadata) -> any_pb2.Any:
    return objects.json_extension(METADATA_TYPE, METADATA_VERSION, metadata.to_json())


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


def _list_state(sandbox: Sandbox) -> api_pb2.PodSandboxState:
    return api_pb2.SANDBOX_READY if sandbox.ready else api_pb2.SANDBOX_NOTREADY


def _list_entry(sandbox: Sandbox) -> tuple[api_pb2.PodSandbox, bytes]:
    """The sandbox's list entry and its encoding as ListPodSandboxResponse.items.

    Only the state ever changes, so both are built once per state; kubelet
    lists every second.
    """
    state = _list_state(sandbox)
    cached = sandbox.list_entry
    if cached is not None and cached[0].state == state:
        return cached
    cfg = sandbox.config
    item = api_pb2.PodSandbox(
        id=sandbox.id, metadata=cfg.metadata, state=state, created_at=sandbox.metadata.created_at,
        labels=dict(cfg.labels), annotations=dict(cfg.annotations),
        runtime_handler=sandbox.metadata.reported_runtime_handler)
    sandbox.list_entry = (item, protowire.message_field(1, item))
    return sandbox.list_entry
