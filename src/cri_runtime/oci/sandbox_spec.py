"""``build_sandbox_spec``: the OCI spec of a pod's pause (infra) container.

The pause process owns the pod's namespaces: it gets the pre-made network
namespace (or the host's), new IPC/UTS/PID namespaces unless the pod shares
the host's, the pod sysctls, the pod cgroup parent, a read-only rootfs, the
minimum cpu.shares and an oom_score_adj of -998 so it outlives its containers
— each a step of ``SANDBOX_STEPS`` (``sandbox_steps/``), applied in that order.
"""

from __future__ import annotations

from typing import Any

from cri_protos.runtime.v1 import api_pb2

from .defaults import default_spec
from .options import SpecOptions
from .process import ImageConfig
from .sandbox_input import SandboxSpecInput
from .sandbox_steps import annotations as annotation_steps
from .sandbox_steps import mounts, namespaces, process, resources
from .seccomp_step import with_seccomp
from .spec_steps import SpecStep, apply_steps

#: The order matters where a step reads what an earlier one made: the user
#: namespace locks the final mounts' flags, seccomp follows the capabilities.
#: Errors surface in this order.
SANDBOX_STEPS: tuple[SpecStep[SandboxSpecInput], ...] = (
    process.with_args,
    process.with_env,
    process.with_cwd,
    mounts.with_readonly_rootfs,
    namespaces.with_hostname,
    process.with_user,
    process.with_oom_score_adj,
    namespaces.with_namespaces,
    mounts.with_shm,
    mounts.with_resolv_conf,
    mounts.with_writable_sysfs,
    namespaces.with_userns,
    resources.with_sysctls,
    resources.with_cpu_shares,
    resources.with_cgroups_path,
    with_seccomp,
    annotation_steps.with_annotations,
)


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
    inp = SandboxSpecInput(
        sandbox_id=sandbox_id,
        config=config,
        image_config=image_config,
        options=options,
        netns_path=netns_path,
        shm_path=shm_path,
        resolv_conf_path=resolv_conf_path,
        rootfs=rootfs,
    )
    return apply_steps(default_spec(), inp, SANDBOX_STEPS)
