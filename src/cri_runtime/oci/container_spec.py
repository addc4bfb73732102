"""``build_container_spec``: the OCI spec of an application container of a pod.

Mirrors what containerd's CRI plugin produces: the default spec, the process
from image + CRI config, the pod's namespaces joined through the pause
process's /proc/<pid>/ns paths, the pod's hostname/hosts/resolv.conf/shm files
bound in, security context (capabilities, privileged, seccomp, AppArmor, user),
resources and the CRI annotations — each a step of ``CONTAINER_STEPS``
(``container_steps/``), applied in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cri_protos.runtime.v1 import api_pb2

from .container_input import ContainerSpecInput, SandboxContext
from .container_steps import annotations as annotation_steps
from .container_steps import devices, mounts, namespaces, process, resources, security
from .container_steps.namespaces import ns_path
from .defaults import default_spec
from .options import SpecOptions
from .process import ImageConfig
from .seccomp_step import with_seccomp
from .spec_steps import SpecStep, apply_steps
from .user import ImageAccounts

__all__ = [
    "CONTAINER_STEPS",
    "SandboxContext",
    "build_container_spec",
    "ns_path",
]

#: The order matters where a step reads what an earlier one made: the CRI mounts
#: replace the defaults as adjusted, seccomp follows the final capabilities,
#: the user namespace locks the final mounts' flags. Errors surface in this order.
CONTAINER_STEPS: tuple[SpecStep[ContainerSpecInput], ...] = (
    security.require_privileged_pod,
    process.with_args,
    process.with_no_new_privileges,
    process.with_cwd,
    process.with_terminal,
    process.with_hostname_env,
    process.with_env,
    process.with_user,
    security.with_capabilities,
    security.with_masked_paths,
    mounts.with_readonly_rootfs,
    mounts.with_cgroup_mount,
    mounts.with_writable_sysfs_and_cgroupfs,
    mounts.with_cri_mounts,
    devices.with_cri_devices,
    devices.with_host_devices,
    resources.with_resources,
    resources.with_oom_score_adj,
    resources.with_cgroups_path,
    namespaces.with_namespaces,
    namespaces.with_pod_userns,
    security.with_apparmor,
    with_seccomp,
    annotation_steps.with_annotations,
)


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
    inp = ContainerSpecInput(
        container_id=container_id,
        config=config,
        image_config=image_config,
        image_name=image_name,
        sandbox=sandbox,
        options=options,
        rootfs=rootfs,
        target_pid=target_pid,
        extra_mounts=extra_mounts,
    )
    return apply_steps(default_spec(), inp, CONTAINER_STEPS)
