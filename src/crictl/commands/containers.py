"""create, run, start, update, stop, rm, checkpoint (ps and inspect live in container_status)."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from typing import Any

from crictl import cli, log, ops
from crictl.cmdutil import F, app, show_help
from crictl.commands.images import get_auth, pull_options, pull_with_progress
from crictl.commands.jsonschema import CONFIG_JSONSCHEMA
from crictl.configfiles import load_container_config, load_pod_config
from crictl.errors import CliError


def _container_pull_flags(no_pull_help: str, with_pull_help: str) -> Callable[[F], F]:
    def wrap(func: F) -> F:
        func = pull_options(func)
        func = cli.option("-T", "--cancel-timeout", type="duration", default="0s",
                            help="Seconds to wait for the request to complete before cancelling")(func)  # fmt: skip
        func = cli.option("--with-pull", is_flag=True, help=with_pull_help)(func)
        func = cli.option("--no-pull", is_flag=True, help=no_pull_help)(func)
        return func

    return wrap


def _create(
    a: Any, pod_id: str, config_path: str, pod_config_path: str, with_pull: bool, creds: str, auth: str,
    username: str, pull_timeout: float, cancel_timeout: float,
) -> str:  # fmt: skip
    config = load_container_config(config_path)
    pod_config = load_pod_config(pod_config_path) if pod_config_path else None
    image = config.image.image
    if not config.image.user_specified_image:
        config.image.user_specified_image = image
    if with_pull:
        auth_config = get_auth(creds, auth, username)
        images = [image]
        log.info(f"Pulling container image: {image}")
        for mount in config.mounts:
            if mount.HasField("image") and mount.image.image:
                log.info(f"Pulling image {image} to be mounted to container path: {mount.container_path}")
                images.append(mount.image.image)
        for ref in images:
            pull_with_progress(a, ref, auth_config, pod_config, dict(config.image.annotations), pull_timeout)
    return ops.create_container(a, pod_id, config, pod_config, cancel_timeout)


@cli.command("create", help="Create a new container", subcommands=[CONFIG_JSONSCHEMA])
@_container_pull_flags(
    "Do not pull the image on container creation (overrides pull-image-on-create=true in config)",
    "Pull the image on container creation (overrides pull-image-on-create=false in config)",
)
@cli.argument("args", nargs=-1)
@cli.pass_context
def create_command(
    ctx: cli.Context, no_pull: bool, with_pull: bool, cancel_timeout: float, creds: str, auth: str,
    username: str, pull_timeout: float, args: tuple[str, ...],
) -> None:  # fmt: skip
    """POD container-config.[json|yaml] pod-config.[json|yaml]"""
    if len(args) != 3:
        show_help()
    if no_pull and with_pull:
        raise CliError("conflict: no-pull and with-pull are both set")
    a = app(ctx)
    pull = (not no_pull and a.settings.pull_image_on_create) or with_pull
    try:
        ctr_id = _create(a, args[0], args[1], args[2], pull, creds, auth, username, pull_timeout, cancel_timeout)
    except CliError as exc:
        raise CliError(f"creating container: {exc.message}") from exc
    print(ctr_id)


@cli.command("run", help="Run a new container inside a sandbox", subcommands=[CONFIG_JSONSCHEMA])
@_container_pull_flags(
    "Do not pull the image (overrides disable-pull-on-run=false in config)",
    "Pull the image (overrides disable-pull-on-run=true in config)",
)
@cli.option(
    "-r",
    "--runtime",
    default="",
    help="Runtime handler to use. Available options are defined by the container runtime.",
)
@cli.argument("args", nargs=-1)
@cli.pass_context
def run_command(
    ctx: cli.Context, no_pull: bool, with_pull: bool, cancel_timeout: float, creds: str, auth: str,
    username: str, pull_timeout: float, runtime: str, args: tuple[str, ...],
) -> None:  # fmt: skip
    """container-config.[json|yaml] pod-config.[json|yaml]"""
    if len(args) != 2:
        show_help()
    if no_pull and with_pull:
        raise CliError("conflict: no-pull and with-pull are both set")
    a = app(ctx)
    pull = (not a.settings.disable_pull_on_run and not no_pull) or with_pull
    try:
        pod_config = load_pod_config(args[1])
        try:
            pod_id = ops.run_pod(a, pod_config, runtime, cancel_timeout)
        except CliError as exc:
            raise CliError(f"run pod sandbox: {exc.message}") from exc
        try:
            ctr_id = _create(a, pod_id, args[0], args[1], pull, creds, auth, username, pull_timeout, cancel_timeout)
        except CliError as exc:
            raise CliError(f"creating container failed: {exc.message}") from exc
        try:
            ops.start_container(a, ctr_id)
        except CliError as exc:
            raise CliError(f'starting the container "{ctr_id}": {exc.message}') from exc
        print(ctr_id)
    except CliError as exc:
        raise CliError(f"running container: {exc.message}") from exc


@cli.command("start", help="Start one or more created containers")
@cli.argument("ids", nargs=-1)
@cli.pass_context
def start_command(ctx: cli.Context, ids: tuple[str, ...]) -> None:
    """CONTAINER-ID [CONTAINER-ID...]"""
    if not ids:
        raise CliError("ID cannot be empty")
    for ctr_id in ids:
        try:
            ops.start_container(app(ctx), ctr_id)
        except CliError as exc:
            raise CliError(f'starting the container "{ctr_id}": {exc.message}') from exc
        print(ctr_id)


@cli.command("update", help="Update one or more running containers")
@cli.option("--cpu-count", type=int, default=0, help="(Windows only) Number of CPUs available to the container")
@cli.option(
    "--cpu-maximum", type=int, default=0, help="(Windows only) Portion of CPU cycles specified as a percentage * 100"
)
@cli.option(
    "--cpu-period",
    type=int,
    default=0,
    help="CPU CFS period to be used for hardcapping (in usecs). 0 to use system default",
)
@cli.option(
    "--cpu-quota", type=int, default=0, help="CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"
)
@cli.option("--cpu-share", type=int, default=0, help="CPU shares (relative weight vs. other containers)")
@cli.option("--memory", type=int, default=0, help="Memory limit (in bytes)")
@cli.option("--cpuset-cpus", default="", help="CPU(s) to use")
@cli.option("--cpuset-mems", default="", help="Memory node(s) to use")
@cli.option("--oom-score-adj", type=int, default=0, default_text="", help="OOM Killer score to use")
@cli.argument("ids", nargs=-1)
@cli.pass_context
def update_command(
    ctx: cli.Context, cpu_count: int, cpu_maximum: int, cpu_period: int, cpu_quota: int, cpu_share: int,
    memory: int, cpuset_cpus: str, cpuset_mems: str, oom_score_adj: int, ids: tuple[str, ...],
) -> None:  # fmt: skip
    """CONTAINER-ID [CONTAINER-ID...]"""
    if not ids:
        raise CliError("ID cannot be empty")
    linux = ops.pb().LinuxContainerResources(
        cpu_period=cpu_period, cpu_quota=cpu_quota, cpu_shares=cpu_share, cpuset_cpus=cpuset_cpus,
        cpuset_mems=cpuset_mems, memory_limit_in_bytes=memory, oom_score_adj=oom_score_adj,
    )  # fmt: skip
    for ctr_id in ids:
        try:
            ops.update_container(app(ctx), ctr_id, linux)
        except CliError as exc:
            raise CliError(f'updating container resources for "{ctr_id}": {exc.message}') from exc
        print(ctr_id)


@cli.command("stop", help="Stop one or more running containers", short_options=True)
@cli.option(
    "-t",
    "--timeout",
    type=int,
    default=0,
    help="Seconds to wait to kill the container after a graceful stop is requested",
)
@cli.option("-a", "--all", "all_", is_flag=True, help="Stop all running containers")
@cli.argument("ids", nargs=-1)
@cli.pass_context
def stop_command(ctx: cli.Context, timeout: int, all_: bool, ids: tuple[str, ...]) -> None:
    """CONTAINER-ID [CONTAINER-ID...]"""
    a = app(ctx)
    if all_ and ids:
        raise cli.Exit(1, "cannot specify CONTAINER-ID(s) when using --all")
    if all_:
        targets = [c.id for c in ops.list_containers(a, ops.ListOptions(state="running"), with_image_client=False)]
        if not targets:
            print("No running containers found.")
            return
    else:
        if not ids:
            raise cli.Exit(1, "you must specify at least one CONTAINER-ID or use --all")
        targets = list(ids)
    for ctr_id in targets:
        try:
            ops.stop_container(a, ctr_id, timeout)
        except CliError as exc:
            raise CliError(f'stopping the container "{ctr_id}": {exc.message}') from exc
        print(ctr_id)


@cli.command("rm", help="Remove one or more containers", short_options=True)
@cli.option("-f", "--force", is_flag=True, help="Force removal of the container, disregarding if running")
@cli.option("-k", "--keep-logs", is_flag=True, help="Preserve the container log file and its rotations")
@cli.option("-a", "--all", "all_", is_flag=True, help="Remove all containers")
@cli.argument("ids", nargs=-1)
@cli.pass_context
def rm_command(ctx: cli.Context, force: bool, keep_logs: bool, all_: bool, ids: tuple[str, ...]) -> None:
    """CONTAINER-ID [CONTAINER-ID...]"""
    a = app(ctx)
    targets = list(ids)
    if all_:
        targets = [c.id for c in a.runtime().call("ListContainers", ops.pb().ListContainersRequest()).containers]
    if not targets:
        if all_:
            log.info("No containers to remove")
            return
        show_help()
    errors = []
    for ctr_id in targets:
        try:
            _remove_container(a, ctr_id, force, keep_logs)
        except CliError as exc:
            errors.append(exc.message)
    if errors:
        raise CliError("\n".join(errors))


def _remove_container(a: Any, ctr_id: str, force: bool, keep_logs: bool) -> None:
    try:
        status = ops.container_status(a, ctr_id, False)
    except CliError as exc:
        raise CliError(f'getting container status "{ctr_id}": {exc.message}') from exc
    if status.status.state == ops.pb().CONTAINER_RUNNING:
        if not force:
            raise CliError(f'container "{ctr_id}" is running, please stop it first')
        try:
            ops.stop_container(a, ctr_id, 0)
        except CliError as exc:
            raise CliError(f'stopping the container "{ctr_id}": {exc.message}') from exc
        print(ctr_id)
    try:
        ops.remove_container(a, ctr_id)
    except CliError as exc:
        raise CliError(f'removing container "{ctr_id}": {exc.message}') from exc
    print(ctr_id)
    log_path = status.status.log_path
    if keep_logs or not log_path:
        return
    for path in [*sorted(glob.glob(glob.escape(log_path) + ".*")), log_path]:
        try:
            os.remove(path)
        except OSError as exc:
            log.error(f'removing log file {path} for container "{ctr_id}" failed: {exc}')


@cli.command("checkpoint", help="Checkpoint one or more running containers", short_options=True)
@cli.option(
    "-e",
    "--export",
    default="",
    help="Specify the name of the tar archive (/path/to/checkpoint.tar) used to export the checkpoint image.",
)
@cli.argument("ids", nargs=-1)
@cli.pass_context
def checkpoint_command(ctx: cli.Context, export: str, ids: tuple[str, ...]) -> None:
    """CONTAINER-ID [CONTAINER-ID...]"""
    if not ids:
        raise CliError("ID cannot be empty")
    if not export:
        raise CliError(
            "cannot checkpoint a container without specifying the checkpoint destination. "
            "Use --export=/path/to/checkpoint.tar"
        )
    for ctr_id in ids:
        try:
            ops.checkpoint_container(app(ctx), ctr_id, export)
        except CliError as exc:
            raise CliError(f'checkpointing the container "{ctr_id}" failed: {exc.message}') from exc
        print(ctr_id)


COMMANDS = [
    create_command, run_command, start_command, update_command, stop_command, rm_command, checkpoint_command,
]  # fmt: skip
