"""Container steps for namespaces: join the pod's (held by the pause process), or make new ones."""

from __future__ import annotations

from cri_protos.runtime.v1 import api_pb2

from ...errors import InvalidArgument
from ...userns.mappings import keep_locked_flags, pod_userns
from ..container_input import ContainerSpecInput
from ..spec_steps import Spec


def ns_path(pid: int, kind: str) -> str:
    """``/proc/<pid>/ns/<kind>``."""
    return f"/proc/{pid}/ns/{kind}"


def _pid_namespace(inp: ContainerSpecInput) -> list[dict[str, str]]:
    ns_opts = inp.security_context.namespace_options
    if ns_opts.pid == api_pb2.POD:
        return [{"type": "pid", "path": ns_path(inp.sandbox.pid, "pid")}]
    if ns_opts.pid == api_pb2.CONTAINER:
        return [{"type": "pid"}]
    if ns_opts.pid == api_pb2.TARGET:
        if inp.target_pid is None:
            raise InvalidArgument(
                f"namespace_options.pid is TARGET ({ns_opts.target_id!r}) but no target container pid was given"
            )
        return [{"type": "pid", "path": ns_path(inp.target_pid, "pid")}]
    if ns_opts.pid != api_pb2.NODE:
        raise InvalidArgument(f"namespace_options.pid: unknown mode {ns_opts.pid}")
    return []


def with_namespaces(inp: ContainerSpecInput, spec: Spec) -> None:
    """PID per the PID mode; the pod's IPC, UTS and network unless the host's; a new mount namespace;
    a new cgroup namespace on cgroup v2 unless privileged."""
    ns_opts = inp.security_context.namespace_options
    sandbox_pid = inp.sandbox.pid
    host_network = ns_opts.network == api_pb2.NODE
    out = _pid_namespace(inp)
    if ns_opts.ipc != api_pb2.NODE:
        out.append({"type": "ipc", "path": ns_path(sandbox_pid, "ipc")})
    if not host_network:
        out.append({"type": "uts", "path": ns_path(sandbox_pid, "uts")})
    out.append({"type": "mount"})
    if not host_network:
        out.append({"type": "network", "path": ns_path(sandbox_pid, "net")})
    if inp.options.cgroup_namespace and not inp.privileged:
        out.append({"type": "cgroup"})
    spec["linux"]["namespaces"] = out


def with_pod_userns(inp: ContainerSpecInput, spec: Spec) -> None:
    """A pod with a user namespace: every container joins it (held by the pause process).

    Runs after the mounts are final: each bind mount gets the nosuid/nodev/...
    flags of its source, which a user namespace cannot drop (runc's read-only
    remount without them fails).
    """
    userns = pod_userns(inp.sandbox.config.linux.security_context.namespace_options)
    asked = inp.security_context.namespace_options
    if userns is None:
        if asked.HasField("userns_options") and asked.userns_options.mode != api_pb2.NODE:
            raise InvalidArgument("the container asks for the pod's user namespace but the pod has none")
        return
    if inp.privileged:
        raise InvalidArgument("a privileged container cannot run in a pod with its own user namespace")
    linux = spec["linux"]
    linux["namespaces"].append({"type": "user", "path": ns_path(inp.sandbox.pid, "user")})
    linux.update(userns.spec_mappings())
    keep_locked_flags(spec["mounts"])
