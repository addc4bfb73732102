"""The one validation layer: every CRI request is checked here before any work starts.

`check(request)` is the first statement of every RuntimeService handler that
takes caller input beyond an ID lookup. One module per request family:

* `containers` -- Create/Start/Stop/Remove/UpdateContainerResources, ExecSync, Exec
* `sandboxes`  -- RunPodSandbox (sysctls included), UpdatePodSandboxResources
* `resources`  -- ranges of LinuxContainerResources, shared by both families
* `process`    -- argv and environment size limits (measured on runc 1.1.5)
* `common`     -- enums, absolute paths, required IDs

Each failure is InvalidArgument naming the field (and the limit, for sizes),
so the caller's mistakes never surface as INTERNAL from deep inside runc.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.validation import containers, sandboxes

_VALIDATORS: dict[type[Any], Callable[[Any], None]] = {
    api_pb2.RunPodSandboxRequest: sandboxes.run_pod_sandbox,
    api_pb2.UpdatePodSandboxResourcesRequest: sandboxes.update_pod_sandbox_resources,
    api_pb2.CreateContainerRequest: containers.create_container,
    api_pb2.StartContainerRequest: containers.start_container,
    api_pb2.StopContainerRequest: containers.stop_container,
    api_pb2.RemoveContainerRequest: containers.remove_container,
    api_pb2.UpdateContainerResourcesRequest: containers.update_container_resources,
    api_pb2.ExecSyncRequest: containers.exec_sync,
    api_pb2.ExecRequest: containers.exec_,
}


def check(request: Any) -> None:
    """Validate `request` by its type; a type without a validator has nothing to check."""
    validator = _VALIDATORS.get(type(request))
    if validator is not None:
        validator(request)


def validated_types() -> frozenset[type[Any]]:
    """The request types with a validator (for tests that every such RPC calls `check`)."""
    return frozenset(_VALIDATORS)
