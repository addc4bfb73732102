"""Validation of the container RPCs: Create, Start, Stop, Remove, UpdateContainerResources, ExecSync, Exec.

Everything the spec builder and the managers rely on is checked here before
any work starts; each failure is InvalidArgument naming the offending field.
"""

from __future__ import annotations

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.capabilities import normalize_capability
from cri_runtime.oci.devices import parse_permissions
from cri_runtime.validation.common import check_abs as _check_abs
from cri_runtime.validation.common import check_enum as _check_enum
from cri_runtime.validation.common import require
from cri_runtime.validation.process import check_argv, check_env
from cri_runtime.validation.resources import validate_resources


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


def validate_profile(profile: api_pb2.SecurityProfile, field: str) -> None:
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
    check_argv([*config.command, *config.args], "command+args")
    check_env([(kv.key, kv.value) for kv in config.envs], "envs")
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
        validate_profile(sc.seccomp, f"{field}.seccomp")
    if sc.HasField("apparmor"):
        validate_profile(sc.apparmor, f"{field}.apparmor")


# ------------------------------------------------------------------ requests


def create_container(request: api_pb2.CreateContainerRequest) -> None:
    require(request.pod_sandbox_id, "CreateContainer", "pod_sandbox_id")
    if not request.HasField("config"):
        raise InvalidArgument("CreateContainer: config is required")
    validate_container_config(request.config)


def start_container(request: api_pb2.StartContainerRequest) -> None:
    require(request.container_id, "StartContainer", "container_id")


def stop_container(request: api_pb2.StopContainerRequest) -> None:
    if request.timeout < 0:
        raise InvalidArgument(f"StopContainer: timeout must not be negative, got {request.timeout}")
    require(request.container_id, "StopContainer", "container_id")


def remove_container(request: api_pb2.RemoveContainerRequest) -> None:
    require(request.container_id, "RemoveContainer", "container_id")


def update_container_resources(request: api_pb2.UpdateContainerResourcesRequest) -> None:
    require(request.container_id, "UpdateContainerResources", "container_id")
    if request.HasField("linux"):
        validate_resources(request.linux, "UpdateContainerResources: linux")


def exec_sync(request: api_pb2.ExecSyncRequest) -> None:
    require(request.container_id, "ExecSync", "container_id")
    if not request.cmd:
        raise InvalidArgument("ExecSync: cmd must not be empty")
    if request.timeout < 0:
        raise InvalidArgument(f"ExecSync: timeout must not be negative, got {request.timeout}")
    check_argv(request.cmd, "ExecSync: cmd")


def exec_(request: api_pb2.ExecRequest) -> None:
    require(request.container_id, "Exec", "container_id")
    if not request.cmd:
        raise InvalidArgument("Exec: cmd must not be empty")
    check_argv(request.cmd, "Exec: cmd")
