"""logs: reads the file named by ContainerStatus.log_path (the CLI must run on the node)."""

from __future__ import annotations

import signal
import sys

from crictl import cli, interrupt, log, ops
from crictl.cmdutil import app, is_set, show_help
from crictl.errors import CliError
from crictl.logreader import LogFormatError, LogOptions, read_logs
from crictl.timeparse import parse_since

CANCELLED = "rpc error: code = Canceled desc = context canceled"


@cli.command("logs", help="Fetch the logs of a container", short_options=True)
@cli.option("-f", "--follow", is_flag=True, help="Follow log output")
@cli.option("-p", "--previous", is_flag=True,
              help="Print the logs for the previous instance of the container in a pod if it exists")  # fmt: skip
@cli.option("-r", "--reopen", is_flag=True, help="Reopen the container logs for the provided container")
@cli.option("--tail", type=int, default=-1, help="Number of lines to show from the end of the logs. Defaults to all")
@cli.option("--limit-bytes", type=int, default=-1, help="Maximum bytes of logs to return. Defaults to no limit")
@cli.option(
    "--since",
    default="",
    help="Show logs since timestamp (e.g. 2013-01-02T13:23:37) or relative (e.g. 42m for 42 minutes)",
)
@cli.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@cli.option("-s", "--stream", default="", help="Show specified stream (stdout or stderr). Defaults to both.")
@cli.argument("args", nargs=-1)
@cli.pass_context
def logs_command(
    ctx: cli.Context, follow: bool, previous: bool, reopen: bool, tail: int, limit_bytes: int, since: str,
    timestamps: bool, stream: str, args: tuple[str, ...],
) -> None:  # fmt: skip
    """CONTAINER-ID"""
    if not args or not args[0]:
        raise CliError("ID cannot be empty")
    if len(args) > 1:
        show_help()
    container_id = args[0]
    a = app(ctx)
    if reopen:
        try:
            ops.reopen_container_log(a, container_id)
        except CliError as exc:
            raise CliError(f"reopen container logs: {exc.message}") from exc
        log.info("Container logs reopened")
    try:
        since_ts = parse_since(since)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if stream not in ("", "stdout", "stderr"):
        raise CliError(f'invalid stream "{stream}", must be "stdout" or "stderr"')
    if is_set(ctx, "tail") and is_set(ctx, "stream"):
        raise CliError("--tail and --stream are mutually exclusive")
    status = ops.container_status(a, container_id, False).status
    log_path = status.log_path
    if not log_path:
        raise CliError("the container has not set log path")
    if previous:
        attempt = status.metadata.attempt
        if attempt == 0:
            raise CliError(f"previous terminated container {status.metadata.name} not found")
        slash = log_path.rfind("/") + 1
        log_path = f"{log_path[:slash]}{attempt - 1}{log_path[log_path.rfind('.') :]}"
    opts = LogOptions(follow=follow, timestamps=timestamps, since=since_ts, tail=tail, limit_bytes=limit_bytes,
                      stream=stream)  # fmt: skip

    def still_running() -> bool:
        try:
            current = ops.container_status(a, status.id, False).status
        except CliError:
            return False
        return bool(current.state == ops.pb().CONTAINER_RUNNING)

    try:
        read_logs(log_path, opts, sys.stdout.buffer, sys.stderr.buffer, still_running, interrupt.requested)
        if interrupt.requested():
            raise interrupt.Interrupted(signal.SIGINT)
    except (OSError, LogFormatError) as exc:
        raise CliError(str(exc)) from exc
    except interrupt.Interrupted:
        # Upstream cancels its context; the container-state poll that follows (or the one in
        # flight) then fails with the cancelled call's error, which is what it prints.
        raise CliError(CANCELLED) from None


COMMANDS = [logs_command]
