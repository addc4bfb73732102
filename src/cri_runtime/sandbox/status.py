"""PodSandboxStatus: the CRI status (and verbose info) of one pod."""

from __future__ import annotations

import json
from typing import Any

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containerd import objects
from cri_runtime.sandbox import status_info
from cri_runtime.sandbox.model import Sandbox
from cri_runtime.sandbox.store import SandboxStore


class StatusOps(SandboxStore):
    """PodSandboxStatus: the CRI status (and verbose info) of one pod."""

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
