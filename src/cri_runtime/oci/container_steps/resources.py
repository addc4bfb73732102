"""Container steps for the cgroup: resource limits, oom_score_adj, the cgroup path."""

from __future__ import annotations

from ..cgroups import cgroups_path
from ..container_input import ContainerSpecInput
from ..protofields import sub_message
from ..resources import clamp_oom_score_adj, linux_resources
from ..spec_steps import Spec


def with_resources(inp: ContainerSpecInput, spec: Spec) -> None:
    """CPU, memory, hugetlb and unified limits, within what the node's controllers support."""
    options = inp.options
    spec["linux"]["resources"].update(
        linux_resources(
            sub_message(inp.config.linux, "resources"),
            swap_available=options.swap_available,
            hugetlb_available=options.hugetlb_available,
            tolerate_missing_hugetlb=options.tolerate_missing_hugetlb,
        )
    )


def with_oom_score_adj(inp: ContainerSpecInput, spec: Spec) -> None:
    """The requested oom_score_adj, never below our own unless we may lower it; unset without resources."""
    resources = sub_message(inp.config.linux, "resources")
    if resources is not None:
        spec["process"]["oomScoreAdj"] = clamp_oom_score_adj(
            resources.oom_score_adj,
            restrict=inp.options.restrict_oom_score_adj,
            current=inp.options.current_oom_score_adj,
        )


def with_cgroups_path(inp: ContainerSpecInput, spec: Spec) -> None:
    """Under the pod's cgroup parent, in the runtime handler's driver's syntax."""
    options = inp.options
    spec["linux"]["cgroupsPath"] = cgroups_path(
        inp.sandbox.config.linux.cgroup_parent, inp.container_id, options.cgroup_driver, options.systemd_cgroup_prefix
    )
