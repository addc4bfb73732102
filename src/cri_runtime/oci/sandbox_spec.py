"""``build_sandbox_spec``: the OCI spec of a pod's pause (infra) container.

The pause process owns the pod's namespaces: it gets the pre-made network
namespace (or the host's), new IPC/UTS/PID namespaces unless the pod shares
the host's, the pod sysctls, the pod cgroup parent, a read-only rootfs, the
minimum cpu.shares and an oom_score_adj of -998 so it outlives its containers.
"""

from __future__ import annotations

from typing import Any

from cri_protos.runtime.v1 import api_pb2

from ..errors import InvalidArgument
from ..userns.mappings import keep_locked_flags, pod_userns
from . import annotations as ann
from .cgroups import cgroups_path
from .defaults import default_spec
from .options import SpecOptions
from .process import ImageConfig, merge_env
from .resources import SANDBOX_CPU_SHARES, SANDBOX_OOM_SCORE_ADJ, clamp_oom_score_adj
from .seccomp import requested_profile, seccomp_section
from .sysctls import validate_sysctls
from .user import ImageAccounts, resolve_process_user

DEV_SHM = "/dev/shm"
ETC_RESOLV_CONF = "/etc/resolv.conf"


def _opt_int(msg: Any, field_name: str) -> int | None:
    return int(getattr(msg, field_name).value) if msg.HasField(field_name) else None


def build_sandbox_spec(
    sandbox_id: str,
    config: api_pb2.PodSandboxConfig,
    image_config: ImageConfig,
    *,
    options: SpecOptions,
    netns_path: str = "",
    shm_path: str = "",
    resolv_conf_path: str = "",
    rootfs: str | None = None,
) -> dict[str, Any]:
    """The OCI runtime spec (a JSON-ready dict) for the pause container of a pod.

    ``netns_path``: the pinned network namespace (ignored with host network;
    "" lets runc create one). ``shm_path``: host directory (a tmpfs of the
    pod's shm size) bound on /dev/shm; ignored with host IPC, which uses the
    host's /dev/shm. ``resolv_conf_path``: the pod's resolv.conf ("" none).
    ``rootfs``: the pause rootfs for resolving a named image user.
    """
    linux_cfg = config.linux
    sc = linux_cfg.security_context
    ns_opts = sc.namespace_options
    host_network = ns_opts.network == api_pb2.NODE
    host_ipc = ns_opts.ipc == api_pb2.NODE

    args = [*image_config.entrypoint, *image_config.cmd]
    if not args:
        raise InvalidArgument("sandbox image config has neither Entrypoint nor Cmd")

    spec = default_spec()
    process = spec["process"]
    linux = spec["linux"]
    process["args"] = args
    process["env"] = merge_env(process["env"], image_config.env)
    if image_config.working_dir:
        process["cwd"] = image_config.working_dir
    spec["root"]["readonly"] = True
    if config.hostname and not host_network:
        spec["hostname"] = config.hostname

    user = resolve_process_user(
        ImageAccounts.from_rootfs(rootfs),
        image_user=image_config.user,
        run_as_user=_opt_int(sc, "run_as_user"),
        run_as_group=_opt_int(sc, "run_as_group"),
        supplemental_groups=list(sc.supplemental_groups),
        policy=api_pb2.Strict,
    )
    process["user"] = user.to_spec()
    process["oomScoreAdj"] = clamp_oom_score_adj(
        SANDBOX_OOM_SCORE_ADJ, restrict=options.restrict_oom_score_adj, current=options.current_oom_score_adj
    )

    namespaces: list[dict[str, str]] = []
    if ns_opts.pid != api_pb2.NODE:
        if ns_opts.pid not in (api_pb2.POD, api_pb2.CONTAINER, api_pb2.TARGET):
            raise InvalidArgument(f"namespace_options.pid: unknown mode {ns_opts.pid}")
        namespaces.append({"type": "pid"})
    if not host_ipc:
        namespaces.append({"type": "ipc"})
    if not host_network:
        namespaces.append({"type": "uts"})
    namespaces.append({"type": "mount"})
    if not host_network:
        namespaces.append({"type": "network", "path": netns_path} if netns_path else {"type": "network"})
    userns = pod_userns(ns_opts)
    if userns is not None:
        if sc.privileged:
            raise InvalidArgument("a privileged pod cannot have its own user namespace")
        namespaces.append({"type": "user"})  # made by runc; every container of the pod joins it
        linux.update(userns.spec_mappings())
    linux["namespaces"] = namespaces

    mounts = [m for m in spec["mounts"] if m["destination"] != DEV_SHM]
    shm_source = DEV_SHM if host_ipc else shm_path
    if shm_source:
        mounts.append({"destination": DEV_SHM, "type": "bind", "source": shm_source, "options": ["rbind", "ro"]})
    else:
        mounts = spec["mounts"]
    if resolv_conf_path:
        mounts.append(
            {"destination": ETC_RESOLV_CONF, "type": "bind", "source": resolv_conf_path, "options": ["rbind", "ro"]}
        )
    if sc.privileged and not host_network:
        _writable_sysfs(mounts)
    if userns is not None:
        keep_locked_flags(mounts)
    spec["mounts"] = mounts

    sysctls = validate_sysctls(linux_cfg.sysctls, host_network=host_network, host_ipc=host_ipc)
    if not host_network:
        if options.enable_unprivileged_ports:
            sysctls.setdefault("net.ipv4.ip_unprivileged_port_start", "0")
        if options.enable_unprivileged_icmp:
            sysctls.setdefault("net.ipv4.ping_group_range", "0 2147483647")
    if sysctls:
        linux["sysctl"] = sysctls

    linux["resources"]["cpu"] = {"shares": SANDBOX_CPU_SHARES}
    linux["cgroupsPath"] = cgroups_path(
        linux_cfg.cgroup_parent, sandbox_id, options.cgroup_driver, options.systemd_cgroup_prefix
    )

    seccomp = seccomp_section(
        requested_profile(
            sc.seccomp if sc.HasField("seccomp") else None, sc.seccomp_profile_path, options.unset_seccomp_profile
        ),
        privileged=sc.privileged,
        seccomp_enabled=options.seccomp_enabled,
        bounding_caps=process["capabilities"]["bounding"],
        arch=options.arch,
        kernel_version=options.kernel_version,
    )
    if seccomp is not None:
        linux["seccomp"] = seccomp

    meta = config.metadata
    annotations = ann.passthrough(config.annotations, options.passthrough_annotations)
    if linux_cfg.HasField("resources"):
        res = linux_cfg.resources
        annotations[ann.SANDBOX_CPU_PERIOD] = str(res.cpu_period)
        annotations[ann.SANDBOX_CPU_QUOTA] = str(res.cpu_quota)
        annotations[ann.SANDBOX_CPU_SHARES] = str(res.cpu_shares)
        annotations[ann.SANDBOX_MEMORY] = str(res.memory_limit_in_bytes)
    annotations.update(
        {
            ann.CONTAINER_TYPE: ann.CONTAINER_TYPE_SANDBOX,
            ann.SANDBOX_ID: sandbox_id,
            ann.SANDBOX_NAMESPACE: meta.namespace,
            ann.SANDBOX_UID: meta.uid,
            ann.SANDBOX_NAME: meta.name,
            ann.SANDBOX_LOG_DIRECTORY: config.log_directory,
        }
    )
    spec["annotations"] = annotations
    return spec


def _writable_sysfs(mounts: list[dict[str, Any]]) -> None:
    """Mount the pause container's /sys read-write (privileged pods with their own netns).

    The kernel keeps one sysfs superblock per network namespace, and the first
    mount decides whether it is read-only: the pause container mounts first, so
    a read-only /sys there would make every later /sys of the pod read-only,
    even the read-write one a privileged container asks for (as containerd gives
    it). Per-mount flags still keep the pod's other containers' /sys read-only.
    """
    for m in mounts:
        if m["type"] == "sysfs":
            m["options"] = ["rw" if o == "ro" else o for o in m["options"]]
