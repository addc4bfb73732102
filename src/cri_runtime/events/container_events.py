"""Turn container manager lifecycle callbacks into CRI ContainerEventResponse messages.

Each event carries the pod's status and the statuses of all the pod's
containers as they are when the event happens, so kubelet's Evented PLEG can
update its cache without another round trip.
"""

from __future__ import annotations

import time

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.containers.model import Container
from cri_runtime.events.hub import EVENT_TYPES
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.sandbox.model import Sandbox


def build_event(kind: str, container: Container, containers: ContainerManager,
                sandboxes: SandboxManager) -> api_pb2.ContainerEventResponse:
    sandbox_id = container.metadata.sandbox_id
    event = api_pb2.ContainerEventResponse(container_id=container.id, container_event_type=EVENT_TYPES[kind],
                                           created_at=time.time_ns())
    sandbox = sandboxes.index.find(sandbox_id)
    if sandbox is not None:
        event.pod_sandbox_status.CopyFrom(sandboxes.to_status(sandbox))
    siblings = sorted((c for c in containers.index if c.metadata.sandbox_id == sandbox_id),
                      key=lambda c: c.metadata.created_at)
    event.containers_statuses.extend(containers.to_status(c) for c in siblings)
    return event


def build_sandbox_event(kind: str, sandbox: Sandbox, containers: ContainerManager,
                        sandboxes: SandboxManager) -> api_pb2.ContainerEventResponse:
    """An event about the pod sandbox itself (container_id is the sandbox ID, as containerd sends it)."""
    event = api_pb2.ContainerEventResponse(container_id=sandbox.id, container_event_type=EVENT_TYPES[kind],
                                           created_at=time.time_ns())
    event.pod_sandbox_status.CopyFrom(sandboxes.to_status(sandbox))
    siblings = sorted((c for c in containers.index if c.metadata.sandbox_id == sandbox.id),
                      key=lambda c: c.metadata.created_at)
    event.containers_statuses.extend(containers.to_status(c) for c in siblings)
    return event
