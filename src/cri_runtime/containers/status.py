"""ContainerStatus: the CRI status (and verbose info) of one container."""

from __future__ import annotations

import functools
import signal

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.containers import status_info
from cri_runtime.containers.model import STATES, Container
from cri_runtime.containers.stop import signal_number
from cri_runtime.containers.store import ContainerStore
from cri_runtime.gojson import go_json_text


@functools.lru_cache(maxsize=64)
def _reported_stop_signal(image_stop_signal: str) -> api_pb2.Signal:
    """The CRI Signal for an image's StopSignal ("" → SIGTERM), cached: ContainerStatus is hot."""
    return _cri_signal(signal_number(image_stop_signal))


def _cri_signal(sig: int) -> api_pb2.Signal:
    try:
        name = signal.Signals(sig).name
    except ValueError:  # an image's StopSignal such as "99" names no signal
        return api_pb2.RUNTIME_DEFAULT
    if name not in api_pb2.Signal.keys():  # noqa: SIM118
        return api_pb2.RUNTIME_DEFAULT
    return api_pb2.Signal.Value(name)  # type: ignore[return-value]


class StatusOps(ContainerStore):
    """ContainerStatus: the CRI status (and verbose info) of one container."""

    def to_status(self, container: Container) -> api_pb2.ContainerStatus:
        md, cfg, st = container.metadata, container.config, container.status
        status = api_pb2.ContainerStatus(
            id=container.id, metadata=cfg.metadata, state=STATES[st.state], created_at=md.created_at,
            started_at=st.started_at, finished_at=st.finished_at, exit_code=st.exit_code,
            image=api_pb2.ImageSpec(image=md.image_name, annotations=dict(cfg.image.annotations)),
            image_ref=md.image_ref, image_id=md.image_id, reason=st.reason, message=st.message,
            labels=dict(cfg.labels), annotations=dict(cfg.annotations), mounts=list(cfg.mounts),
            log_path=md.log_path)
        status.resources.linux.CopyFrom(container.effective_resources)
        if md.user:
            status.user.linux.uid = int(md.user.get("uid", 0))
            status.user.linux.gid = int(md.user.get("gid", 0))
            status.user.linux.supplemental_groups.extend(int(g) for g in md.user.get("additionalGids") or ())
        if cfg.stop_signal != api_pb2.RUNTIME_DEFAULT:
            status.stop_signal = cfg.stop_signal
        else:  # the image's StopSignal, else SIGTERM (what StopContainer sends), as containerd reports
            status.stop_signal = _reported_stop_signal(md.stop_signal)
        return status

    async def status(self, id_or_prefix: str, verbose: bool) -> api_pb2.ContainerStatusResponse:
        container = self.index.get(id_or_prefix)
        resp = api_pb2.ContainerStatusResponse(status=self.to_status(container))
        if verbose:
            resp.info["info"] = await self._verbose_info(container)
        return resp

    async def _verbose_info(self, container: Container) -> str:
        """containerd's verbose keys, from the containerd record (its spec is what runc got)."""
        record = await self.records.get(container.id, f"get container {container.id}")
        if container.config_json is None:
            container.config_json = go_json_text(container.config)
        return status_info.verbose_info_json(
            sandbox_id=container.metadata.sandbox_id, pid=container.status.pid, removing=False,
            record=record, config_json=container.config_json,
            extra={"ioDir": container.metadata.io_dir, "imageVolumes": container.metadata.image_volumes})
