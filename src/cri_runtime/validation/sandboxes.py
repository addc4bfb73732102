"""Validation of the pod sandbox RPCs: RunPodSandbox and UpdatePodSandboxResources.

Merged from the two validators that used to disagree (the spec builder's,
used only by tests, accepted container_port 0; this one, used by
RunPodSandbox, refuses it, as a port mapping without a container port maps
nothing). Sysctls are checked here too, names and namespaces, so a name
such as `net/../../etc/passwd` never reaches runc as a path under /proc/sys.
"""

from __future__ import annotations

import os
import re

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.sysctls import validate_sysctls
from cri_runtime.validation.common import check_enum, require
from cri_runtime.validation.containers import validate_namespace_options, validate_profile
from cri_runtime.validation.resources import validate_pod_resources, validate_resources

_HOSTNAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", re.IGNORECASE)
_WHERE = "pod sandbox config"


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(message)


def validate_metadata(md: api_pb2.PodSandboxMetadata, has_md: bool) -> None:
    if not has_md:
        raise _bad(f"{_WHERE}: metadata is required")
    for field in ("name", "namespace", "uid"):
        if not getattr(md, field):
            raise _bad(f"pod sandbox metadata: {field} must not be empty")


def validate_sandbox_config(cfg: api_pb2.PodSandboxConfig) -> None:
    """Everything RunPodSandbox and the sandbox spec builder rely on."""
    validate_metadata(cfg.metadata, cfg.HasField("metadata"))
    if cfg.log_directory and not os.path.isabs(cfg.log_directory):
        raise _bad(f"{_WHERE}: log_directory {cfg.log_directory!r} must be an absolute path")
    if cfg.hostname and (len(cfg.hostname) > 64 or not _HOSTNAME_RE.match(cfg.hostname)):
        raise _bad(f"{_WHERE}: hostname {cfg.hostname!r} is not a valid host name")
    for i, pm in enumerate(cfg.port_mappings):
        where = f"{_WHERE}: port_mappings[{i}]"
        check_enum(api_pb2.Protocol, pm.protocol, f"{where}.protocol")
        if not 0 < pm.container_port <= 65535:
            raise _bad(f"{where}.container_port: {pm.container_port} is not a port number")
        if not 0 <= pm.host_port <= 65535:
            raise _bad(f"{where}.host_port: {pm.host_port} is not a port number")
    linux = cfg.linux
    for name in ("overhead", "resources"):
        if linux.HasField(name):
            validate_resources(getattr(linux, name), f"{_WHERE}: linux.{name}")
    sc = linux.security_context
    field = f"{_WHERE}: linux.security_context"
    validate_namespace_options(sc.namespace_options, f"{field}.namespace_options")
    if sc.HasField("run_as_group") and not sc.HasField("run_as_user"):
        raise _bad(f"{_WHERE}: run_as_group requires run_as_user")
    check_enum(api_pb2.SupplementalGroupsPolicy, sc.supplemental_groups_policy, f"{field}.supplemental_groups_policy")
    if sc.HasField("seccomp"):
        validate_profile(sc.seccomp, f"{field}.seccomp")
    if sc.HasField("apparmor"):
        validate_profile(sc.apparmor, f"{field}.apparmor")
    ns = sc.namespace_options
    validate_sysctls(dict(linux.sysctls), host_network=ns.network == api_pb2.NODE, host_ipc=ns.ipc == api_pb2.NODE)
    if linux.cgroup_parent and ".." in linux.cgroup_parent.split("/"):
        raise _bad(f"{_WHERE}: cgroup_parent {linux.cgroup_parent!r} must not contain '..'")


# ------------------------------------------------------------------ requests


def run_pod_sandbox(request: api_pb2.RunPodSandboxRequest) -> None:
    if not request.HasField("config"):
        raise _bad("RunPodSandbox: config is required")
    validate_sandbox_config(request.config)


def update_pod_sandbox_resources(request: api_pb2.UpdatePodSandboxResourcesRequest) -> None:
    require(request.pod_sandbox_id, "UpdatePodSandboxResources", "pod_sandbox_id")
    validate_pod_resources(request.overhead if request.HasField("overhead") else None,
                           request.resources if request.HasField("resources") else None,
                           "UpdatePodSandboxResources")
