"""Container steps for the process: args, working directory, terminal, environment, user."""

from __future__ import annotations

from ..container_input import ContainerSpecInput
from ..process import container_args, cri_env, merge_env
from ..protofields import optional_int
from ..spec_steps import Spec
from ..user import ImageAccounts, resolve_process_user


def with_args(inp: ContainerSpecInput, spec: Spec) -> None:
    """The config's command and args over the image's entrypoint and cmd (Kubernetes' rules)."""
    spec["process"]["args"] = container_args(inp.config.command, inp.config.args, inp.image_config)


def with_no_new_privileges(inp: ContainerSpecInput, spec: Spec) -> None:
    """CRI leaves no_new_privs off unless asked (the default spec has it on, for the pause container)."""
    spec["process"]["noNewPrivileges"] = inp.security_context.no_new_privs


def with_cwd(inp: ContainerSpecInput, spec: Spec) -> None:
    """The config's working directory, else the image's, else the default "/"."""
    cwd = inp.config.working_dir or inp.image_config.working_dir
    if cwd:
        spec["process"]["cwd"] = cwd


def with_terminal(inp: ContainerSpecInput, spec: Spec) -> None:
    """A TTY, and TERM=xterm for it (image and config env may still override it)."""
    if inp.config.tty:
        spec["process"]["terminal"] = True
        spec["process"]["env"] = [*spec["process"]["env"], "TERM=xterm"]


def with_hostname_env(inp: ContainerSpecInput, spec: Spec) -> None:
    """HOSTNAME: the pod's hostname, the node's with host network (the pod has none)."""
    hostname = inp.sandbox.config.hostname or inp.options.node_hostname
    spec["process"]["env"] = merge_env(spec["process"]["env"], [f"HOSTNAME={hostname}"])


def with_env(inp: ContainerSpecInput, spec: Spec) -> None:
    """The image's env, then the config's, each overriding what came before."""
    spec["process"]["env"] = merge_env(spec["process"]["env"], [*inp.image_config.env, *cri_env(inp.config.envs)])


def with_user(inp: ContainerSpecInput, spec: Spec) -> None:
    """uid, gid and groups from the security context or the image user, looked up in the image's files."""
    sc = inp.security_context
    accounts = inp.rootfs if isinstance(inp.rootfs, ImageAccounts) else ImageAccounts.from_rootfs(inp.rootfs)
    user = resolve_process_user(
        accounts,
        image_user=inp.image_config.user,
        run_as_username=sc.run_as_username,
        run_as_user=optional_int(sc, "run_as_user"),
        run_as_group=optional_int(sc, "run_as_group"),
        supplemental_groups=list(sc.supplemental_groups),
        policy=sc.supplemental_groups_policy,
    )
    spec["process"]["user"] = user.to_spec()
