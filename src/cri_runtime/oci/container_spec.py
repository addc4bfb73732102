"""``build_container_spec``: the OCI spec of an application container of a pod.

Mirrors what containerd's CRI plugin produces: the default spec, the process
from image + CRI config, the pod's namespaces joined through the pause
process's /proc/<pid>/ns paths, the pod's hostname/hosts/resolv.conf/shm files
bound in, security context (capabilities, privileged, seccomp, AppArmor, user),
resources and the CRI annotations.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cri_protos.runtime.v1 import api_pb2

from ..errors import InvalidArgument
from ..userns.mappings import keep_locked_flags, pod_userns
from . import annotations as ann
from .apparmor import apparmor_profile
from .capabilities import apply_capability_request, capabilities_section, normalize_capability
from .cgroups import cgroups_path
from .defaults import CGROUP_MOUNT, DEFAULT_CAPABILITIES, default_spec
from .devices import cgroup_rule, devices_under, host_devices, parse_permissions
from .mounts import bind_mount, mount_depth, parse_mountinfo, same_destination
from .options import SpecOptions
from .process import ImageConfig, container_args, cri_env, merge_env
from .resources import clamp_oom_score_adj, linux_resources
from .seccomp import requested_profile, seccomp_section
from .user import ImageAccounts, resolve_process_user

ETC_HOSTNAME = "/etc/hostname"
ETC_HOSTS = "/etc/hosts"
ETC_RESOLV_CONF = "/etc/resolv.conf"
DEV_SHM = "/dev/shm"


@dataclass(frozen=True)
class SandboxContext:
    """What a container's spec needs to know about its pod sandbox."""

    id: str
    config: api_pb2.PodSandboxConfig
    #: PID of the sandbox's pause task (its namespaces are joined via /proc/<pid>/ns/*).
    pid: int
    #: Host files of the pod bound into every container; "" skips /etc/hostname.
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    #: The pod's /dev/shm directory on the host (ignored with host IPC: the host's /dev/shm is used).
    shm_path: str = ""


def ns_path(pid: int, kind: str) -> str:
    """``/proc/<pid>/ns/<kind>``."""
    return f"/proc/{pid}/ns/{kind}"


def _opt_int(msg: Any, field_name: str) -> int | None:
    return int(getattr(msg, field_name).value) if msg.HasField(field_name) else None


def _sub(msg: Any, field_name: str) -> Any:
    """The sub-message if set, else None (proto3 has presence for messages)."""
    return getattr(msg, field_name) if msg.HasField(field_name) else None


def _pod_file_mounts(config: api_pb2.ContainerConfig, sandbox: SandboxContext) -> list[api_pb2.Mount]:
    """The pod's hostname/hosts/resolv.conf/shm as CRI mounts, unless the config mounts over them."""
    sc = config.linux.security_context
    readonly = sc.readonly_rootfs

    def taken(dst: str) -> bool:
        return any(same_destination(m.container_path, dst) for m in config.mounts)

    mounts = []
    if sandbox.hostname_path and not taken(ETC_HOSTNAME):
        mounts.append(api_pb2.Mount(container_path=ETC_HOSTNAME, host_path=sandbox.hostname_path, readonly=readonly))
    if sandbox.hosts_path and not taken(ETC_HOSTS):
        mounts.append(api_pb2.Mount(container_path=ETC_HOSTS, host_path=sandbox.hosts_path, readonly=readonly))
    if sandbox.resolv_conf_path and not taken(ETC_RESOLV_CONF):
        mounts.append(
            api_pb2.Mount(container_path=ETC_RESOLV_CONF, host_path=sandbox.resolv_conf_path, readonly=readonly)
        )
    if not taken(DEV_SHM):
        shm = DEV_SHM if sc.namespace_options.ipc == api_pb2.NODE else sandbox.shm_path
        if shm:
            mounts.append(api_pb2.Mount(container_path=DEV_SHM, host_path=shm))
    return mounts


def _build_mounts(
    spec: dict[str, Any],
    config: api_pb2.ContainerConfig,
    extra: Sequence[api_pb2.Mount],
    options: SpecOptions,
    privileged: bool,
) -> None:
    cri_mounts = [m for m in config.mounts if not m.HasField("image")]
    mounts = list(cri_mounts)
    mounts += [e for e in extra if not any(same_destination(e.container_path, c.container_path) for c in cri_mounts)]
    mounts.sort(key=lambda m: mount_depth(m.container_path))  # stable: parents before children

    cgroup = dict(CGROUP_MOUNT, options=list(CGROUP_MOUNT["options"]))
    defaults = [*spec["mounts"], cgroup]
    if privileged:
        for m in defaults:
            if m["type"] in ("sysfs", "cgroup"):
                m["options"] = ["rw" if o == "ro" else o for o in m["options"]]
    taken = {os.path.normpath(m.container_path) for m in mounts}
    kept = []
    for m in defaults:
        dst = os.path.normpath(m["destination"])
        if dst in taken or ("/dev" in taken and dst.startswith("/dev/")):
            continue
        kept.append(m)

    table = parse_mountinfo(options.mountinfo)
    rootfs_propagation = ""
    for m in mounts:
        oci_mount, needs = bind_mount(m, mountinfo=table, rro_supported=options.recursive_read_only_mounts)
        if needs == "rshared" or (needs == "rslave" and rootfs_propagation != "rshared"):
            rootfs_propagation = needs
        kept.append(oci_mount)
    spec["mounts"] = kept
    if rootfs_propagation:
        spec["linux"]["rootfsPropagation"] = rootfs_propagation


def _namespaces(
    ns_opts: api_pb2.NamespaceOption, sandbox_pid: int, target_pid: int | None, privileged: bool, options: SpecOptions
) -> list[dict[str, str]]:
    host_network = ns_opts.network == api_pb2.NODE
    out: list[dict[str, str]] = []
    if ns_opts.pid == api_pb2.POD:
        out.append({"type": "pid", "path": ns_path(sandbox_pid, "pid")})
    elif ns_opts.pid == api_pb2.CONTAINER:
        out.append({"type": "pid"})
    elif ns_opts.pid == api_pb2.TARGET:
        if target_pid is None:
            raise InvalidArgument(
                f"namespace_options.pid is TARGET ({ns_opts.target_id!r}) but no target container pid was given"
            )
        out.append({"type": "pid", "path": ns_path(target_pid, "pid")})
    elif ns_opts.pid != api_pb2.NODE:
        raise InvalidArgument(f"namespace_options.pid: unknown mode {ns_opts.pid}")
    if ns_opts.ipc != api_pb2.NODE:
        out.append({"type": "ipc", "path": ns_path(sandbox_pid, "ipc")})
    if not host_network:
        out.append({"type": "uts", "path": ns_path(sandbox_pid, "uts")})
    out.append({"type": "mount"})
    if not host_network:
        out.append({"type": "network", "path": ns_path(sandbox_pid, "net")})
    if options.cgroup_namespace and not privileged:
        out.append({"type": "cgroup"})
    return out


def _join_pod_userns(linux: dict[str, Any], spec_mounts: list[dict[str, Any]], config: api_pb2.ContainerConfig,
                     sandbox: SandboxContext) -> None:
    """A pod with a user namespace: every container joins it (held by the pause process)."""
    userns = pod_userns(sandbox.config.linux.security_context.namespace_options)
    asked = config.linux.security_context.namespace_options
    if userns is None:
        if asked.HasField("userns_options") and asked.userns_options.mode != api_pb2.NODE:
            raise InvalidArgument("the container asks for the pod's user namespace but the pod has none")
        return
    if config.linux.security_context.privileged:
        raise InvalidArgument("a privileged container cannot run in a pod with its own user namespace")
    linux["namespaces"].append({"type": "user", "path": ns_path(sandbox.pid, "user")})
    linux.update(userns.spec_mappings())
    keep_locked_flags(spec_mounts)


def _devices(
    spec: dict[str, Any], config: api_pb2.ContainerConfig, privileged: bool, options: SpecOptions
) -> None:
    linux = spec["linux"]
    devices: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = list(linux["resources"]["devices"])
    for d in config.devices:
        what = f"device {d.container_path!r}"
        access = parse_permissions(d.permissions, what)
        host = os.path.realpath(d.host_path)
        for dev in devices_under(host, d.container_path):
            devices.append(dev)
            rules.append(cgroup_rule(dev, access))
    if privileged and not options.privileged_without_host_devices:
        node_devices = options.host_devices if options.host_devices is not None else tuple(host_devices())
        devices.extend(dict(dev) for dev in node_devices)
        rules = [{"allow": True, "access": "rwm"}]
    if devices:
        linux["devices"] = devices
    linux["resources"]["devices"] = rules


def build_container_spec(
    container_id: str,
    config: api_pb2.ContainerConfig,
    image_config: ImageConfig,
    *,
    image_name: str,
    sandbox: SandboxContext,
    options: SpecOptions,
    rootfs: str | ImageAccounts | None = None,
    target_pid: int | None = None,
    extra_mounts: Sequence[api_pb2.Mount] = (),
) -> dict[str, Any]:
    """The OCI runtime spec (a JSON-ready dict) for container ``container_id``.

    ``rootfs``: host path of the container's mounted snapshot, read for
    /etc/passwd and /etc/group (None: an image without them), or those files
    as read before (they are the same for every container of an image). ``target_pid``:
    the pid of the container named by ``namespace_options.target_id`` when the
    PID mode is TARGET. ``extra_mounts``: host-path mounts the caller resolved
    (image volumes); a config mount with the same destination wins. Config
    mounts with ``image`` set are left to the caller (pass their resolved form
    in ``extra_mounts``). Host paths must exist (see ``mounts.ensure_host_paths``).
    """
    sc = config.linux.security_context
    sandbox_sc = sandbox.config.linux.security_context
    privileged = sc.privileged
    if privileged and not sandbox_sc.privileged:
        raise InvalidArgument("privileged container is not allowed in a sandbox that is not privileged")

    spec = default_spec()
    process = spec["process"]
    linux = spec["linux"]

    process["args"] = container_args(config.command, config.args, image_config)
    process["noNewPrivileges"] = sc.no_new_privs
    cwd = config.working_dir or image_config.working_dir
    if cwd:
        process["cwd"] = cwd
    if config.tty:
        process["terminal"] = True
    env = list(process["env"])
    if config.tty:
        env.append("TERM=xterm")
    hostname = sandbox.config.hostname or options.node_hostname
    env = merge_env(env, [f"HOSTNAME={hostname}"])
    process["env"] = merge_env(env, [*image_config.env, *cri_env(config.envs)])

    accounts = rootfs if isinstance(rootfs, ImageAccounts) else ImageAccounts.from_rootfs(rootfs)
    user = resolve_process_user(
        accounts,
        image_user=image_config.user,
        run_as_username=sc.run_as_username,
        run_as_user=_opt_int(sc, "run_as_user"),
        run_as_group=_opt_int(sc, "run_as_group"),
        supplemental_groups=list(sc.supplemental_groups),
        policy=sc.supplemental_groups_policy,
    )
    process["user"] = user.to_spec()

    # Capabilities, then the privileged override (which ignores add/drop).
    request = _sub(sc, "capabilities")
    caps = apply_capability_request(DEFAULT_CAPABILITIES, request, options.all_capabilities)
    ambient: list[str] = []
    if request is not None:
        ambient = [normalize_capability(c) for c in request.add_ambient_capabilities]
    if privileged:
        caps = list(options.all_capabilities)
    process["capabilities"] = capabilities_section(caps, ambient)

    if privileged:
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
    else:
        linux["maskedPaths"] = list(sc.masked_paths)
        linux["readonlyPaths"] = list(sc.readonly_paths)

    if sc.readonly_rootfs:
        spec["root"]["readonly"] = True

    _build_mounts(spec, config, [*_pod_file_mounts(config, sandbox), *extra_mounts], options, privileged)
    _devices(spec, config, privileged, options)

    resources = _sub(config.linux, "resources")
    linux["resources"].update(
        linux_resources(
            resources,
            swap_available=options.swap_available,
            hugetlb_available=options.hugetlb_available,
            tolerate_missing_hugetlb=options.tolerate_missing_hugetlb,
        )
    )
    if resources is not None:
        process["oomScoreAdj"] = clamp_oom_score_adj(
            resources.oom_score_adj,
            restrict=options.restrict_oom_score_adj,
            current=options.current_oom_score_adj,
        )
    linux["cgroupsPath"] = cgroups_path(
        sandbox.config.linux.cgroup_parent, container_id, options.cgroup_driver, options.systemd_cgroup_prefix
    )
    linux["namespaces"] = _namespaces(sc.namespace_options, sandbox.pid, target_pid, privileged, options)
    _join_pod_userns(linux, spec["mounts"], config, sandbox)

    profile = apparmor_profile(
        _sub(sc, "apparmor"),
        sc.apparmor_profile,
        privileged=privileged,
        enabled=options.apparmor_enabled,
        default_profile=options.apparmor_default_profile,
    )
    if profile:
        process["apparmorProfile"] = profile
    seccomp = seccomp_section(
        requested_profile(_sub(sc, "seccomp"), sc.seccomp_profile_path, options.unset_seccomp_profile),
        privileged=privileged,
        seccomp_enabled=options.seccomp_enabled,
        bounding_caps=process["capabilities"]["bounding"],
        arch=options.arch,
        kernel_version=options.kernel_version,
    )
    if seccomp is not None:
        linux["seccomp"] = seccomp

    meta = sandbox.config.metadata
    annotations = {
        **ann.passthrough(sandbox.config.annotations, options.passthrough_annotations),
        **ann.passthrough(config.annotations, options.passthrough_annotations),
        ann.CONTAINER_TYPE: ann.CONTAINER_TYPE_CONTAINER,
        ann.SANDBOX_ID: sandbox.id,
        ann.SANDBOX_NAMESPACE: meta.namespace,
        ann.SANDBOX_UID: meta.uid,
        ann.SANDBOX_NAME: meta.name,
        ann.CONTAINER_NAME: config.metadata.name,
        ann.IMAGE_NAME: image_name,
    }
    spec["annotations"] = annotations
    return spec
