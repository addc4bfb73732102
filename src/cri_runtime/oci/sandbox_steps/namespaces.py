"""Sandbox steps for namespaces: the pause process makes the pod's (or shares the host's)."""

from __future__ import annotations

from cri_protos.runtime.v1 import api_pb2

from ...errors import InvalidArgument
from ...userns.mappings import keep_locked_flags, pod_userns
from ..sandbox_input import SandboxSpecInput
from ..spec_steps import Spec


def with_hostname(inp: SandboxSpecInput, spec: Spec) -> None:
    """The pod's hostname; none with host network (runc refuses a hostname without its own UTS namespace)."""
    if inp.config.hostname and not inp.host_network:
        spec["hostname"] = inp.config.hostname


def with_namespaces(inp: SandboxSpecInput, spec: Spec) -> None:
    """New PID, IPC and UTS namespaces unless the host's; a new mount namespace; the pinned netns."""
    ns_opts = inp.security_context.namespace_options
    namespaces: list[dict[str, str]] = []
    if ns_opts.pid != api_pb2.NODE:
        if ns_opts.pid not in (api_pb2.POD, api_pb2.CONTAINER, api_pb2.TARGET):
            raise InvalidArgument(f"namespace_options.pid: unknown mode {ns_opts.pid}")
        namespaces.append({"type": "pid"})
    if not inp.host_ipc:
        namespaces.append({"type": "ipc"})
    if not inp.host_network:
        namespaces.append({"type": "uts"})
    namespaces.append({"type": "mount"})
    if not inp.host_network:
        namespaces.append({"type": "network", "path": inp.netns_path} if inp.netns_path else {"type": "network"})
    spec["linux"]["namespaces"] = namespaces


def with_userns(inp: SandboxSpecInput, spec: Spec) -> None:
    """A new user namespace with the pod's mappings (runc makes it; every container of the pod joins it).

    Runs after the mounts are final: each bind mount gets the nosuid/nodev/...
    flags of its source, which a user namespace cannot drop.
    """
    userns = pod_userns(inp.security_context.namespace_options)
    if userns is None:
        return
    if inp.security_context.privileged:
        raise InvalidArgument("a privileged pod cannot have its own user namespace")
    linux = spec["linux"]
    linux["namespaces"].append({"type": "user"})
    linux.update(userns.spec_mappings())
    keep_locked_flags(spec["mounts"])
