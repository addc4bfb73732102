"""Validation of RunPodSandbox requests before any work starts.

proto3 accepts any integer for an enum field and leaves missing messages
empty, so a malformed request looks "valid" to the decoder; these checks
turn it into InvalidArgument naming the field instead of a failure deep in
CNI or runc with something half-created.
"""

from __future__ import annotations

import os
import re

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors

_HOSTNAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", re.IGNORECASE)
_NAMESPACE_MODES = {api_pb2.POD, api_pb2.CONTAINER, api_pb2.NODE, api_pb2.TARGET}
_PROTOCOLS = {api_pb2.TCP, api_pb2.UDP, api_pb2.SCTP}


def _bad(message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(message)


def validate_metadata(md: api_pb2.PodSandboxMetadata, has_md: bool) -> None:
    if not has_md:
        raise _bad("pod sandbox config: metadata is required")
    for field in ("name", "namespace", "uid"):
        if not getattr(md, field):
            raise _bad(f"pod sandbox metadata: {field} must not be empty")


def validate_namespace_options(opts: api_pb2.NamespaceOption, where: str) -> None:
    for field in ("network", "pid", "ipc"):
        mode = getattr(opts, field)
        if mode not in _NAMESPACE_MODES:
            raise _bad(f"{where}.{field}: invalid namespace mode {mode}")
    if opts.network in (api_pb2.TARGET,) or opts.ipc in (api_pb2.TARGET,):
        raise _bad(f"{where}: TARGET mode is only valid for pid")
    if opts.pid == api_pb2.TARGET and not opts.target_id:
        raise _bad(f"{where}.target_id: required with pid mode TARGET")


def validate_run_request(request: api_pb2.RunPodSandboxRequest) -> None:
    if not request.HasField("config"):
        raise _bad("RunPodSandbox: config is required")
    cfg = request.config
    validate_metadata(cfg.metadata, cfg.HasField("metadata"))
    if cfg.log_directory and not os.path.isabs(cfg.log_directory):
        raise _bad(f"pod sandbox config: log_directory {cfg.log_directory!r} must be an absolute path")
    if cfg.hostname and (len(cfg.hostname) > 64 or not _HOSTNAME_RE.match(cfg.hostname)):
        raise _bad(f"pod sandbox config: hostname {cfg.hostname!r} is not a valid host name")
    for i, pm in enumerate(cfg.port_mappings):
        where = f"pod sandbox config: port_mappings[{i}]"
        if pm.protocol not in _PROTOCOLS:
            raise _bad(f"{where}.protocol: invalid protocol {pm.protocol}")
        if not 0 < pm.container_port <= 65535:
            raise _bad(f"{where}.container_port: {pm.container_port} is not a port number")
        if not 0 <= pm.host_port <= 65535:
            raise _bad(f"{where}.host_port: {pm.host_port} is not a port number")
    sc = cfg.linux.security_context
    validate_namespace_options(sc.namespace_options, "pod sandbox config: linux.security_context.namespace_options")
    if sc.HasField("run_as_group") and not sc.HasField("run_as_user"):
        raise _bad("pod sandbox config: run_as_group requires run_as_user")
    for key in cfg.linux.sysctls:
        if not key:
            raise _bad("pod sandbox config: sysctl names must not be empty")
    if cfg.linux.cgroup_parent and ".." in cfg.linux.cgroup_parent.split("/"):
        raise _bad(f"pod sandbox config: cgroup_parent {cfg.linux.cgroup_parent!r} must not contain '..'")
