"""PodSandboxStatus: the CRI status (and verbose info) of one pod."""

from __future__ import annotations

import asyncio
from typing import Any

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containerd.cached_state import Record
from cri_runtime.gojson import go_json_text
from cri_runtime.sandbox import status_info
from cri_runtime.sandbox.model import Sandbox
from cri_runtime.sandbox.store import SandboxStore


class StatusOps(SandboxStore):
    """PodSandboxStatus: the CRI status (and verbose info) of one pod."""

    async def status(self, id_or_prefix: str, verbose: bool) -> api_pb2.PodSandboxStatusResponse:
        sandbox = self.index.get(id_or_prefix)
        resp = api_pb2.PodSandboxStatusResponse(status=self.to_status(sandbox))
        if verbose:
            resp.info["info"] = await self._verbose_info(sandbox)
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

    async def _verbose_info(self, sandbox: Sandbox) -> str:
        """containerd's verbose keys, from the containerd record and task, plus ours."""
        task_state = self.task_states.get(sandbox.id, f"get task of pod {sandbox.id}") \
            if not sandbox.task_gone else _none()
        if self.task_states.has(sandbox.id) or sandbox.task_gone:
            record, task = await self._record(sandbox.id), await task_state  # no round trip for the task
        else:  # both from containerd: asked together
            record, task = await asyncio.gather(self._record(sandbox.id), task_state)
        if sandbox.config_json is None:
            sandbox.config_json = go_json_text(sandbox.config)
        return status_info.verbose_info_json(sandbox, record=record, task=task, cni=self._cni(sandbox),
                                             config=sandbox.config_json)

    def _cni(self, sandbox: Sandbox) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The pod's CNI results (raw, go-cni shaped); none once the network is torn down."""
        if not sandbox.metadata.netns_path or sandbox.status.network_torn_down:
            return None, None
        if sandbox.verbose_cni is None:
            cached = self.network.cached_status(sandbox.id)
            raw = dict(cached.results) if cached is not None and cached.results else None
            sandbox.verbose_cni = (raw, status_info.go_cni_result(raw or {}))
        return sandbox.verbose_cni

    async def _record(self, sandbox_id: str) -> Record | None:
        try:
            return await self.records.get(sandbox_id, f"get pod sandbox {sandbox_id}")
        except errors.NotFound:
            return None


async def _none() -> None:
    return None
