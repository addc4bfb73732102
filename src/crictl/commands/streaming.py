"""exec (ExecSync with -s; streaming otherwise), attach, port-forward.

The streaming paths hand the runtime's URL to crictl.streamclient, which drives the shared
SPDY/WebSocket protocol code of cri_runtime.streaming (imported only when streaming).
"""

from __future__ import annotations

import sys
from typing import Any

from crictl import cli, log, ops
from crictl.cmdutil import app, is_set, parse_labels, show_help
from crictl.connection import RpcError
from crictl.errors import CliError

_FILTERS = ("name", "pod", "image", "state", "label", "latest", "last")


def _transport_flags(func: Any) -> Any:
    func = cli.option("--tls-key", default="", help="Path to the streaming TLS key")(func)
    func = cli.option("--tls-cert", default="", help="Path to the streaming TLS certificate")(func)
    func = cli.option("--tls-ca", default="", help="Path to the streaming TLS CA certificate")(func)
    sni_help = "Server name used in the TLS client to check server certificates against"
    func = cli.option("--tls-sni", "--tls-server-name", "tls_sni", default="localhost", help=sni_help)(func)
    transport_help = "Transport protocol to use, one of: spdy|websocket"
    func = cli.option("-r", "--transport", default="spdy", help=transport_help)(func)
    return func


@cli.command(
    "exec", help="Run a command in a running container", short_options=True,
    description="The CONTAINER-ID is only required if none of the following filter flags are set:\n"
    "--image, --label, --last, --latest, --name, --pod, --state",
)  # fmt: skip
@cli.option("-s", "--sync", is_flag=True, help="Run the command synchronously")
@cli.option("--timeout", type=int, default=0, help="Timeout in seconds")
@cli.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@cli.option("-i", "--interactive", is_flag=True, help="Keep STDIN open")
@_transport_flags
@cli.option(
    "--name", default="", help="Exec command for all containers matching this name filter regular expression pattern"
)
@cli.option("-p", "--pod", default="", help="Exec command for all containers matching this pod ID filter")
@cli.option("--image", default="", help="Exec command for all containers matching this container image filter")
@cli.option("--state", default="", help="Exec command for all containers matching this container state filter")
@cli.option("--label", multiple=True, help="Exec command for all containers matching this key=value label filter")
@cli.option("-l", "--latest", is_flag=True, help="Exec command for the most recently created container")
@cli.option("-n", "--last", type=int, default=0, help="Exec command for all last n containers, set to 0 for unlimited")
@cli.option("-q", "--quiet", is_flag=True, help="Do not print the container ID if multiple containers are selected")
@cli.option("-e", "--ignore-errors", is_flag=True, help="Ignore errors during command execution")
@cli.option("-x", "--parallel", is_flag=True, help="Run the command in parallel if multiple containers are selected")
@cli.argument("args", nargs=-1)
@cli.pass_context
def exec_command(
    ctx: cli.Context, sync: bool, timeout: int, tty: bool, interactive: bool, transport: str, tls_sni: str,
    tls_ca: str, tls_cert: str, tls_key: str, name: str, pod: str, image: str, state: str,
    label: tuple[str, ...], latest: bool, last: int, quiet: bool, ignore_errors: bool, parallel: bool,
    args: tuple[str, ...],
) -> int:  # fmt: skip
    """[CONTAINER-ID] COMMAND [ARG...]"""
    if not args:
        show_help()
    a = app(ctx)
    a.runtime()  # upstream connects to both services before looking at the rest of the arguments
    a.image()
    if ignore_errors and not quiet:
        log.warning("The `--ignore-errors` option has been set all errors returned by the command will be ignored.")
    ids = [args[0]]
    cmd = list(args[1:])
    print_ids = False
    if any(is_set(ctx, f) for f in _FILTERS):
        cmd = list(args)
        print_ids = not quiet and not parallel
        opts = ops.ListOptions(name_regexp=name, pod_id=pod, image=image, state=state, latest=latest, last=last,
                               labels=parse_labels(label))  # fmt: skip
        try:
            ids = [c.id for c in ops.list_containers(a, opts)]
        except CliError as exc:
            raise CliError(f"listing containers: {exc.message}") from exc
        if not ids:
            log.error("No containers found per filter flags")
            show_help()
    elif len(args) < 2:
        show_help()
    tls = _tls_context(tls_ca, tls_cert, tls_key, tls_sni) if not sync else None
    errors: list[str] = []
    for ctr_id in ids:
        if print_ids:
            print(ctr_id + ":")
        try:
            if sync:
                _exec_sync(a, ctr_id, cmd, timeout)
            else:
                _exec_stream(a, ctr_id, cmd, tty, interactive, transport, tls)
        except CliError as exc:
            errors.append(exc.message)
    if ignore_errors:
        log.debug(f"Ignoring errors: {errors}")
        return 0
    if errors:
        raise CliError("\n".join(errors))
    return 0


def _tls_context(ca: str, cert: str, key: str, server_name: str) -> Any:
    from crictl.streamclient import tls_context

    try:
        return tls_context(ca, cert, key, server_name)
    except (CliError, OSError) as exc:
        raise CliError(f"get TLS config from flags: {getattr(exc, 'message', exc)}") from exc


def _exec_stream(a: Any, ctr_id: str, cmd: list[str], tty: bool, stdin: bool, transport: str, tls: Any) -> None:
    """Exec RPC, then the remote-command stream on the URL it returns (SPDY or WebSocket)."""
    from crictl.streamclient import run_command_stream

    try:
        url = ops.exec_url(a, ctr_id, cmd, tty, stdin)
        run_command_stream(url, stdin=stdin, tty=tty, transport=transport, context=tls)
    except CliError as exc:
        raise CliError(f"execing command in container {ctr_id}: {exc.message}") from exc


def _exec_sync(a: Any, ctr_id: str, cmd: list[str], timeout: int) -> None:
    """ExecSync as crictl's client does it: a non-zero exit is an error carrying the command's stderr."""
    prefix = f"execing command in container {ctr_id} synchronously"
    try:
        response = ops.exec_sync(a, ctr_id, cmd, timeout)
    except RpcError as exc:
        if exc.code == "DEADLINE_EXCEEDED":
            from crictl.timeparse import format_go_duration

            joined = " ".join(cmd).replace("\\", "\\\\").replace('"', '\\"')
            raise CliError(
                f'{prefix}: command timed out: "{joined}" timed out after {format_go_duration(timeout)}'
            ) from exc
        raise CliError(f"{prefix}: {exc.message}") from exc
    if response.exit_code != 0:
        stderr = response.stderr.decode("utf-8", "replace")
        raise CliError(f"{prefix}: command '{' '.join(cmd)}' exited with {response.exit_code}: {stderr}")
    sys.stdout.write(response.stdout.decode("utf-8", "replace") + "\n")
    sys.stdout.write(response.stderr.decode("utf-8", "replace") + "\n")
    sys.stdout.flush()


@cli.command("attach", help="Attach to a running container", short_options=True)
@cli.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@cli.option("-i", "--stdin", is_flag=True, help="Keep STDIN open")
@_transport_flags
@cli.argument("args", nargs=-1)
@cli.pass_context
def attach_command(ctx: cli.Context, tty: bool, stdin: bool, transport: str, tls_sni: str, tls_ca: str,
                   tls_cert: str, tls_key: str, args: tuple[str, ...]) -> None:  # fmt: skip
    """CONTAINER-ID"""
    if not args or not args[0]:
        raise CliError("ID cannot be empty")
    if len(args) != 1:
        show_help()
    a = app(ctx)
    tls = _tls_context(tls_ca, tls_cert, tls_key, tls_sni)
    from crictl.streamclient import run_command_stream

    try:
        url = ops.attach_url(a, args[0], tty, stdin)
        run_command_stream(url, stdin=stdin, tty=tty, transport=transport, context=tls)
    except CliError as exc:
        raise CliError(f"attaching running container failed: {exc.message}") from exc


@cli.command("port-forward", help="Forward local port to a pod")
@_transport_flags
@cli.argument("args", nargs=-1)
@cli.pass_context
def port_forward_command(ctx: cli.Context, transport: str, tls_sni: str, tls_ca: str, tls_cert: str,
                         tls_key: str, args: tuple[str, ...]) -> None:  # fmt: skip
    """POD-ID [LOCAL_PORT:]REMOTE_PORT"""
    if len(args) < 2:
        show_help()
    if not args[0]:
        raise CliError("port forward: ID cannot be empty")
    a = app(ctx)
    tls = _tls_context(tls_ca, tls_cert, tls_key, tls_sni)
    from crictl.streamclient import run_port_forward

    try:
        url = ops.port_forward_url(a, args[0])
        run_port_forward(url, list(args[1:]), transport=transport, context=tls)
    except CliError as exc:
        raise CliError(f"port forward: {exc.message}") from exc


COMMANDS = [exec_command, attach_command, port_forward_command]
