"""What the pod and container managers tell NRI, in their own terms; nothing at all when NRI is off.

Failure policy follows containerd's NRI integration: a plugin's error fails
RunPodSandbox, CreateContainer, StartContainer and the Update calls (the
plugin objected before the change was made), while Stop and Remove
notifications are only logged (the change has happened; failing the call
would only make kubelet retry it). Stop notifications are sent once per pod
and container, whether it stopped by request or by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cri_protos.nri.v1alpha1 import api_pb2 as api
from cri_protos.runtime.v1 import api_pb2 as cri
from cri_runtime import errors
from cri_runtime.containers.model import Container
from cri_runtime.sandbox.model import Sandbox

from . import convert
from .adaptation import NriHost, PodOf
from .apply import apply_adjustment
from .plugin import PluginError

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class CreateAdjusted:
    changed: bool
    cdi_devices: list[str]  # CDI devices plugins asked for: the runtime resolves and applies them


ApplyUpdates = Callable[[list[api.ContainerUpdate]], Awaitable[list[api.ContainerUpdate]]]


def _refused(exc: PluginError) -> errors.CriError:
    return errors.FailedPrecondition(str(exc))


class NriHooks:
    """The managers' view of NRI. `host` is None when NRI is disabled."""

    def __init__(self, host: NriHost | None, apply_updates: ApplyUpdates | None = None) -> None:
        """`apply_updates` applies the updates of other containers that a hook returned."""
        self.host = host
        self.apply_updates = apply_updates
        self._stopped: set[str] = set()  # pods and containers whose Stop notification went out

    @property
    def enabled(self) -> bool:
        return self.host is not None and bool(self.host.plugins)

    def published(self, object_id: str) -> None:
        if self.host is not None:
            self.host.published(object_id)

    # ---- pods

    async def run_pod(self, sandbox: Sandbox) -> None:
        if self.host is None:
            return
        try:
            await self.host.run_pod_sandbox(convert.pod(sandbox))
        except PluginError as exc:
            raise _refused(exc) from None

    async def stop_pod(self, sandbox: Sandbox) -> None:
        if self.host is None or sandbox.id in self._stopped:
            return
        self._stopped.add(sandbox.id)
        await self._notify("StopPodSandbox", self.host.stop_pod_sandbox(lambda: convert.pod(sandbox)))

    async def remove_pod(self, sandbox: Sandbox) -> None:
        self._stopped.discard(sandbox.id)
        if self.host is not None:
            await self._notify("RemovePodSandbox",
                               self.host.remove_pod_sandbox(sandbox.id, lambda: convert.pod(sandbox)))

    async def update_pod(self, sandbox: Sandbox, overhead: cri.LinuxContainerResources | None,
                         resources: cri.LinuxContainerResources | None) -> None:  # fmt: skip
        if self.host is None:
            return
        try:
            await self.host.update_pod_sandbox(convert.pod(sandbox), convert.resources(overhead) if overhead else None,
                                               convert.resources(resources) if resources else None)  # fmt: skip
        except PluginError as exc:
            raise _refused(exc) from None

    async def post_update_pod(self, sandbox: Sandbox) -> None:
        if self.host is not None:
            await self._notify("PostUpdatePodSandbox", self.host.post_update_pod_sandbox(lambda: convert.pod(sandbox)))

    # ---- containers

    async def create_container(self, sandbox: Sandbox, container: api.Container,
                               spec: dict[str, Any]) -> CreateAdjusted:  # fmt: skip
        """Lets plugins adjust `spec` in place; says whether it changed and which CDI devices they added."""
        if self.host is None:
            return CreateAdjusted(False, [])
        try:
            result = await self.host.create_container(convert.pod(sandbox), container)
        except PluginError as exc:
            raise _refused(exc) from None
        await self._apply_others(result.updates)
        if result.adjust.ByteSize() == 0:
            return CreateAdjusted(False, [])
        apply_adjustment(spec, result.adjust)
        return CreateAdjusted(True, [device.name for device in result.adjust.CDI_devices])

    async def post_create_container(self, sandbox: Sandbox | None, container: Container) -> None:
        if self.host is not None:
            await self._notify("PostCreateContainer", self.host.post_create_container(
                self._pod(sandbox, container), lambda: convert.container(container)))

    async def start_container(self, sandbox: Sandbox | None, container: Container) -> None:
        if self.host is None:
            return
        try:
            await self.host.start_container(self._pod(sandbox, container), lambda: convert.container(container))
        except PluginError as exc:
            raise _refused(exc) from None

    async def post_start_container(self, sandbox: Sandbox | None, container: Container) -> None:
        if self.host is not None:
            await self._notify("PostStartContainer", self.host.post_start_container(
                self._pod(sandbox, container), lambda: convert.container(container)))

    async def update_container(self, sandbox: Sandbox | None, container: Container,
                               resources: cri.LinuxContainerResources) -> cri.LinuxContainerResources:  # fmt: skip
        """The resources to apply, after every plugin's say."""
        if self.host is None:
            return resources
        try:
            result = await self.host.update_container(self._pod_message(sandbox, container),
                                                      convert.container(container), convert.resources(resources))
        except PluginError as exc:
            raise _refused(exc) from None
        await self._apply_others(result.updates)
        return convert.to_cri_resources(result.resources, resources)

    async def post_update_container(self, sandbox: Sandbox | None, container: Container) -> None:
        if self.host is not None:
            await self._notify("PostUpdateContainer", self.host.post_update_container(
                self._pod(sandbox, container), lambda: convert.container(container)))

    async def stop_container(self, sandbox: Sandbox | None, container: Container) -> None:
        if self.host is None or container.id in self._stopped:
            return
        self._stopped.add(container.id)
        try:
            updates = await self.host.stop_container(self._pod(sandbox, container),
                                                     lambda: convert.container(container))
        except PluginError as exc:
            log.warning("NRI StopContainer notification failed: %s", exc)
            return
        await self._apply_others(updates)

    async def remove_container(self, sandbox: Sandbox | None, container: Container) -> None:
        self._stopped.discard(container.id)
        if self.host is None:
            return
        await self._notify("RemoveContainer", self.host.remove_container(
            container.id, self._pod(sandbox, container), lambda: convert.container(container)))

    # ---- helpers

    @staticmethod
    def _pod(sandbox: Sandbox | None, container: Container) -> PodOf:
        """The container's pod, built when a plugin wants it (see `_pod_message`)."""
        return lambda: NriHooks._pod_message(sandbox, container)

    @staticmethod
    def _pod_message(sandbox: Sandbox | None, container: Container) -> api.PodSandbox:
        """The container's pod; only its ID once the pod record is gone (a removal racing the pod's)."""
        if sandbox is None:
            return api.PodSandbox(id=container.metadata.sandbox_id)
        return convert.pod(sandbox)

    async def _notify(self, event: str, call: Awaitable[None]) -> None:
        try:
            await call
        except PluginError as exc:
            log.warning("NRI %s notification failed: %s", event, exc)

    async def _apply_others(self, updates: list[api.ContainerUpdate]) -> None:
        if updates and self.apply_updates is not None:
            failed = await self.apply_updates(updates)
            for update in failed:
                if not update.ignore_failure:
                    log.warning("NRI: update of container %s requested by a plugin failed", update.container_id)
