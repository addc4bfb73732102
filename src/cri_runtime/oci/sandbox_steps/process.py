"""Sandbox steps for the pause process: args, environment, working directory, user, oom_score_adj."""

from __future__ import annotations

from cri_protos.runtime.v1 import api_pb2

from ...errors import InvalidArgument
from ..process import merge_env
from ..protofields import optional_int
from ..resources import SANDBOX_OOM_SCORE_ADJ, clamp_oom_score_adj
from ..sandbox_input import SandboxSpecInput
from ..spec_steps import Spec
from ..user import ImageAccounts, resolve_process_user


def with_args(inp: SandboxSpecInput, spec: Spec) -> None:
    """The pause image's entrypoint and cmd; the pod config has no command of its own."""
    args = [*inp.image_config.entrypoint, *inp.image_config.cmd]
    if not args:
        raise InvalidArgument("sandbox image config has neither Entrypoint nor Cmd")
    spec["process"]["args"] = args


def with_env(inp: SandboxSpecInput, spec: Spec) -> None:
    spec["process"]["env"] = merge_env(spec["process"]["env"], inp.image_config.env)


def with_cwd(inp: SandboxSpecInput, spec: Spec) -> None:
    if inp.image_config.working_dir:
        spec["process"]["cwd"] = inp.image_config.working_dir


def with_user(inp: SandboxSpecInput, spec: Spec) -> None:
    """The pod's run_as_user/group or the image user; only the groups asked for (Strict policy)."""
    sc = inp.security_context
    user = resolve_process_user(
        ImageAccounts.from_rootfs(inp.rootfs),
        image_user=inp.image_config.user,
        run_as_user=optional_int(sc, "run_as_user"),
        run_as_group=optional_int(sc, "run_as_group"),
        supplemental_groups=list(sc.supplemental_groups),
        policy=api_pb2.Strict,
    )
    spec["process"]["user"] = user.to_spec()


def with_oom_score_adj(inp: SandboxSpecInput, spec: Spec) -> None:
    """-998, so the pause process outlives its containers (never below our own unless we may lower it)."""
    spec["process"]["oomScoreAdj"] = clamp_oom_score_adj(
        SANDBOX_OOM_SCORE_ADJ, restrict=inp.options.restrict_oom_score_adj, current=inp.options.current_oom_score_adj
    )
