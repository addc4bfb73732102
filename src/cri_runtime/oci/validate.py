"""Up-front validation of the CRI configs the spec builders consume.

proto3 keeps enum numbers it does not know, so an out-of-range mode would
otherwise fall through to some default branch; and a relative container path
would only fail deep inside runc. Everything here raises InvalidArgument naming
the offending field.
"""

from __future__ import annotations

import re
from typing import Any

from cri_protos.runtime.v1 import api_pb2

from ..errors import InvalidArgument
from .capabilities import normalize_capability
from .devices import parse_permissions

_HUGEPAGE_SIZE = re.compile(r"^[1-9][0-9]*[KMGTP]B$")
_OOM_RANGE = (-1000, 1000)


def _check_enum(enum: Any, value: int, field: str) -> None:
    if value not in enum.values():
        raise InvalidArgument(f"{field}: unknown value {value}")


def _check_abs(path: str, field: str) -> None:
    if not path.startswith("/"):
        raise InvalidArgument(f"{field}: path {path!r} must be absolute")


def validate_resources(res: api_pb2.LinuxContainerResources, field: str) -> None:
    """Non-negative limits, oom_score_adj in [-1000, 1000], well-formed hugepage sizes."""
    for name in ("cpu_period", "cpu_shares", "memory_limit_in_bytes", "memory_swap_limit_in_bytes"):
        if getattr(res, name) < 0:
            raise InvalidArgument(f"{field}.{name} must not be negative, got {getattr(res, name)}")
    if res.cpu_quota < -1:
        raise InvalidArgument(f"{field}.cpu_quota must be -1 (unlimited) or more, got {res.cpu_quota}")
    if not _OOM_RANGE[0] <= res.oom_score_adj <= _OOM_RANGE[1]:
        raise InvalidArgument(f"{field}.oom_score_adj must be in [-1000, 1000], got {res.oom_score_adj}")
    if res.memory_swap_limit_in_bytes and res.memory_limit_in_bytes > res.memory_swap_limit_in_bytes:
        raise InvalidArgument(f"{field}.memory_swap_limit_in_bytes must not be below memory_limit_in_bytes")
    for i, h in enumerate(res.hugepage_limits):
        if not _HUGEPAGE_SIZE.match(h.page_size):
            raise InvalidArgument(f"{field}.hugepage_limits[{i}].page_size {h.page_size!r} is not like 2MB or 1GB")


def validate_namespace_options(ns: api_pb2.NamespaceOption, field: str) -> None:
    """Modes in range; TARGET only for pid and only with a target_id."""
    for name in ("network", "pid", "ipc"):
        _check_enum(api_pb2.NamespaceMode, getattr(ns, name), f"{field}.{name}")
    if ns.network == api_pb2.TARGET or ns.ipc == api_pb2.TARGET:
        raise InvalidArgument(f"{field}: TARGET mode is only supported for the pid namespace")
    if ns.pid == api_pb2.TARGET and not ns.target_id:
        raise InvalidArgument(f"{field}.target_id is required when pid is TARGET")
    if ns.HasField("userns_options"):
        _check_enum(api_pb2.NamespaceMode, ns.userns_options.mode, f"{field}.userns_options.mode")


def _validate_profile(profile: api_pb2.SecurityProfile, field: str) -> None:
    _check_enum(api_pb2.SecurityProfile.ProfileType, profile.profile_type, f"{field}.profile_type")
    if profile.profile_type == api_pb2.SecurityProfile.Localhost and not profile.localhost_ref:
        raise InvalidArgument(f"{field}.localhost_ref is required for a Localhost profile")
    if profile.profile_type != api_pb2.SecurityProfile.Localhost and profile.localhost_ref:
        raise InvalidArgument(f"{field}.localhost_ref must only be set for a Localhost profile")


def validate_container_config(config: api_pb2.ContainerConfig) -> None:
    """Check the fields ``build_container_spec`` relies on."""
    if not config.HasField("metadata") or not config.metadata.name:
        raise InvalidArgument("container config: metadata.name is required")
    if not config.HasField("image") or not config.image.image:
        raise InvalidArgument("container config: image.image is required")
    _check_enum(api_pb2.Signal, config.stop_signal, "container config stop_signal")
    for i, kv in enumerate(config.envs):
        if not kv.key or "=" in kv.key:
            raise InvalidArgument(f"envs[{i}].key {kv.key!r} must be non-empty and must not contain '='")
        try:
            kv.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"envs[{i}] ({kv.key}): value is not valid UTF-8") from exc
    for i, m in enumerate(config.mounts):
        field = f"mounts[{i}]"
        _check_abs(m.container_path, f"{field}.container_path")
        _check_enum(api_pb2.MountPropagation, m.propagation, f"{field}.propagation")
        if m.HasField("image") and m.image.image:
            if m.host_path:
                raise InvalidArgument(f"{field}: host_path and image are mutually exclusive")
        else:
            if m.image_sub_path:
                raise InvalidArgument(f"{field}.image_sub_path is only valid with image")
            _check_abs(m.host_path, f"{field}.host_path")
        if m.recursive_read_only and not m.readonly:
            raise InvalidArgument(f"{field}: recursive_read_only requires readonly")
    for i, d in enumerate(config.devices):
        field = f"devices[{i}]"
        _check_abs(d.container_path, f"{field}.container_path")
        _check_abs(d.host_path, f"{field}.host_path")
        parse_permissions(d.permissions, f"{field}.permissions")
    if config.working_dir:
        _check_abs(config.working_dir, "working_dir")
    if not config.HasField("linux"):
        return
    linux = config.linux
    if linux.HasField("resources"):
        validate_resources(linux.resources, "linux.resources")
    sc = linux.security_context
    field = "linux.security_context"
    if sc.HasField("run_as_group") and not (sc.HasField("run_as_user") or sc.run_as_username):
        raise InvalidArgument(f"{field}.run_as_group requires run_as_user or run_as_username")
    for name in ("run_as_user", "run_as_group"):
        if sc.HasField(name) and not 0 <= getattr(sc, name).value <= 2**32 - 1:
            raise InvalidArgument(f"{field}.{name} out of range: {getattr(sc, name).value}")
    for g in sc.supplemental_groups:
        if not 0 <= g <= 2**32 - 1:
            raise InvalidArgument(f"{field}.supplemental_groups: {g} out of range")
    _check_enum(api_pb2.SupplementalGroupsPolicy, sc.supplemental_groups_policy, f"{field}.supplemental_groups_policy")
    validate_namespace_options(sc.namespace_options, f"{field}.namespace_options")
    if sc.HasField("capabilities"):
        caps = sc.capabilities
        for name in (*caps.add_capabilities, *caps.drop_capabilities, *caps.add_ambient_capabilities):
            if name.strip().upper() != "ALL":
                normalize_capability(name)
    for path_field in ("masked_paths", "readonly_paths"):
        for p in getattr(sc, path_field):
            _check_abs(p, f"{field}.{path_field}")
    if sc.HasField("seccomp"):
        _validate_profile(sc.seccomp, f"{field}.seccomp")
    if sc.HasField("apparmor"):
        _validate_profile(sc.apparmor, f"{field}.apparmor")


def validate_sandbox_config(config: api_pb2.PodSandboxConfig) -> None:
    """Check the fields ``build_sandbox_spec`` relies on."""
    if not config.HasField("metadata"):
        raise InvalidArgument("sandbox config: metadata is required")
    for name in ("name", "uid", "namespace"):
        if not getattr(config.metadata, name):
            raise InvalidArgument(f"sandbox config: metadata.{name} is required")
    for i, pm in enumerate(config.port_mappings):
        _check_enum(api_pb2.Protocol, pm.protocol, f"port_mappings[{i}].protocol")
        if not 0 <= pm.container_port <= 65535 or not 0 <= pm.host_port <= 65535:
            raise InvalidArgument(f"port_mappings[{i}]: ports must be in 0..65535")
    if not config.HasField("linux"):
        return
    linux = config.linux
    for name in ("overhead", "resources"):
        if linux.HasField(name):
            validate_resources(getattr(linux, name), f"linux.{name}")
    sc = linux.security_context
    field = "linux.security_context"
    if sc.HasField("run_as_group") and not sc.HasField("run_as_user"):
        raise InvalidArgument(f"{field}.run_as_group requires run_as_user")
    validate_namespace_options(sc.namespace_options, f"{field}.namespace_options")
    _check_enum(api_pb2.SupplementalGroupsPolicy, sc.supplemental_groups_policy, f"{field}.supplemental_groups_policy")
    if sc.HasField("seccomp"):
        _validate_profile(sc.seccomp, f"{field}.seccomp")
    if sc.HasField("apparmor"):
        _validate_profile(sc.apparmor, f"{field}.apparmor")
