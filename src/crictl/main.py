"""Entry point: global flags, config precedence, command registry and error reporting.

Failures never show a traceback: every error is one log line on stderr and exit code 1
(or the exit code of the command run by `exec -s`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import click

from crictl import log
from crictl.cmdutil import COMMAND_SETTINGS, DURATION, AppContext, is_set
from crictl.errors import CliError, ShowHelp
from crictl.settings import DEFAULT_CONFIG_PATH, FlagValues, load_file_config, resolve

ALIASES = {"image": "images", "img": "images", "event": "events"}
VERSION = "v0.1.0"


class CrictlCommand(click.Command):
    """A subcommand whose arguments don't fit prints its help and exits 0 (ShowSubcommandHelp)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShowHelp:
            click.echo(ctx.get_help())
            return 0


# name -> (module under crictl.commands, one-line help). Only the invoked command's module is
# imported (start-up time); `crictl --help` lists commands from this table without importing any.
COMMAND_INDEX: dict[str, tuple[str, str]] = {
    "attach": ("streaming", "Attach to a running container"),
    "checkpoint": ("containers", "Checkpoint one or more running containers"),
    "completion": ("completion", "Output shell completion code"),
    "config": ("config_cmd", "Get, set and list crictl configuration options"),
    "create": ("containers", "Create a new container"),
    "events": ("stats", "Stream the events of containers"),
    "exec": ("streaming", "Run a command in a running container"),
    "imagefsinfo": ("images", "Return image filesystem info"),
    "images": ("images", "List images"),
    "info": ("runtime", "Display information of the container runtime"),
    "inspect": ("container_status", "Display the status of one or more containers"),
    "inspecti": ("images", "Return the status of one or more images"),
    "inspectp": ("pods", "Display the status of one or more pods"),
    "logs": ("logs", "Fetch the logs of a container"),
    "metricdescs": ("stats", "List metric descriptors."),
    "metricsp": ("stats", "List pod metrics."),
    "pods": ("pods", "List pods"),
    "port-forward": ("streaming", "Forward local port to a pod"),
    "ps": ("container_status", "List containers"),
    "pull": ("images", "Pull an image from a registry"),
    "rm": ("containers", "Remove one or more containers"),
    "rmi": ("images", "Remove one or more images"),
    "rmp": ("pods", "Remove one or more pods"),
    "run": ("containers", "Run a new container inside a sandbox"),
    "runp": ("pods", "Run a new pod"),
    "runtime-config": ("runtime", "Retrieve the container runtime configuration"),
    "start": ("containers", "Start one or more created containers"),
    "stats": ("stats", "List container(s) resource usage statistics"),
    "statsp": ("stats", "List pod statistics."),
    "stop": ("containers", "Stop one or more running containers"),
    "stopp": ("pods", "Stop one or more running pods"),
    "update": ("containers", "Update one or more running containers"),
    "update-runtime-config": ("runtime", "Update the runtime configuration"),
    "version": ("runtime", "Display runtime version information"),
}


def load_command(name: str) -> click.Command | None:
    """Import the module that defines `name` and return its command."""
    entry = COMMAND_INDEX.get(name)
    if entry is None:
        return None
    import importlib

    module = importlib.import_module(f"crictl.commands.{entry[0]}")
    for command in module.COMMANDS:
        if command.name == name:
            assert isinstance(command, click.Command)
            return command
    return None


class CrictlGroup(click.Group):
    """Resolves aliases, loads commands on demand and lists them sorted by name, as crictl does."""

    command_class = CrictlCommand

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_INDEX})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = ALIASES.get(cmd_name, cmd_name)
        command = self.commands.get(name)
        if command is None:
            command = load_command(name)
            if command is not None:
                self.commands[name] = command
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else name), cmd, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        reverse: dict[str, list[str]] = {}
        for alias, target in ALIASES.items():
            reverse.setdefault(target, []).append(alias)
        for name in self.list_commands(ctx):
            loaded = self.commands.get(name)
            if loaded is not None and loaded.hidden:
                continue
            short = loaded.get_short_help_str(limit=90) if loaded is not None else COMMAND_INDEX[name][1]
            rows.append((", ".join([name, *reverse.get(name, [])]), short))
        if rows:
            with formatter.section("COMMANDS"):
                formatter.write_dl(rows)


@click.group(
    cls=CrictlGroup,
    context_settings=COMMAND_SETTINGS,
    help="client for CRI",
    invoke_without_command=True,
)
@click.option(
    "-c", "--config", envvar="CRI_CONFIG_FILE", default=DEFAULT_CONFIG_PATH, show_default=True,
    help="Location of the client config file. If not specified and the default does not exist, "
    "the program's directory is searched as well",
)  # fmt: skip
@click.option(
    "-r", "--runtime-endpoint", envvar="CONTAINER_RUNTIME_ENDPOINT",
    help="Endpoint of CRI container runtime service (default: uses in order the first successful one of "
    "[unix:///run/cri-runtime/cri-runtime.sock unix:///run/containerd/containerd.sock "
    "unix:///run/crio/crio.sock unix:///var/run/cri-dockerd.sock]). "
    "Default is now deprecated and the endpoint should be set instead.",
)  # fmt: skip
@click.option(
    "-i", "--image-endpoint", envvar="IMAGE_SERVICE_ENDPOINT",
    help="Endpoint of CRI image manager service (default: uses 'runtime-endpoint' setting)",
)  # fmt: skip
@click.option(
    "-t", "--timeout", type=DURATION, default="2s", show_default=True,
    help="Timeout of connecting to the server in seconds (e.g. 2s, 20s.). 0 or less is set to default",
)  # fmt: skip
@click.option("-D", "--debug", is_flag=True, default=False, help="Enable debug mode")
@click.option(
    "--max-retries", type=int, default=3, show_default=True,
    help="Max retries for connecting to an explicitly set endpoint with exponential backoff "
    "(0 to disable, negative for infinite)",
)  # fmt: skip
@click.version_option(VERSION, "-v", "--version", prog_name="crictl", message="%(prog)s version %(version)s")
@click.pass_context
def cli(ctx: click.Context, /, **params: Any) -> None:
    """client for CRI"""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        return
    flags = FlagValues(
        config=params["config"],
        runtime_endpoint=params["runtime_endpoint"] if is_set(ctx, "runtime_endpoint") else None,
        image_endpoint=params["image_endpoint"] if is_set(ctx, "image_endpoint") else None,
        timeout=params["timeout"] if is_set(ctx, "timeout") else None,
        debug=params["debug"] if is_set(ctx, "debug") else None,
        max_retries=params["max_retries"] if is_set(ctx, "max_retries") else None,
    )
    if ctx.invoked_subcommand in ("help", "completion"):
        file_config = None
    else:
        file_config = load_file_config(
            params["config"], is_set(ctx, "config"), ctx.invoked_subcommand, os.path.abspath(sys.argv[0])
        )
    settings = resolve(flags, file_config)
    log.set_debug(settings.debug)
    ctx.obj = AppContext(settings)
    ctx.call_on_close(ctx.obj.clients.close)


@cli.command(
    "help",
    context_settings=COMMAND_SETTINGS,
    help="Shows a list of commands or help for one command",
)
@click.argument("command", required=False)
@click.pass_context
def help_command(ctx: click.Context, command: str | None) -> None:
    root = ctx.find_root()
    group = root.command
    assert isinstance(group, click.Group)
    if not command:
        click.echo(root.get_help())
        return
    sub = group.get_command(root, command)
    if sub is None:
        raise CliError(f"No help topic for '{command}'")
    with click.Context(sub, info_name=sub.name, parent=root) as sub_ctx:
        click.echo(sub.get_help(sub_ctx))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = cli.main(args=args, prog_name="crictl", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "", err=False)
        code = 0
    except click.UsageError as exc:
        ctx_hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        log.error(f"Incorrect Usage: {exc.format_message()}{ctx_hint}")
        code = 1
    except click.exceptions.Abort:
        code = 130
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except CliError as exc:
        if exc.message:
            log.error(exc.message)
        code = exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        code = 130
    except BrokenPipeError:
        code = 1
    except OSError as exc:
        log.error(str(exc))
        code = 1
    except Exception as exc:  # never a traceback: one line naming the failure
        log.error(f"{type(exc).__name__}: {exc}")
        code = 1
    _finish(code, fast=argv is None)


def _finish(code: int, fast: bool) -> None:
    """Flush and exit. As a program (not called with argv, e.g. from tests) skip interpreter
    finalization: tearing down grpc's modules and threads costs ~25 ms and nothing is left to do."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = code or 1
    with contextlib.suppress(BrokenPipeError):
        sys.stderr.flush()
    if fast:
        os._exit(code)
    sys.exit(code)
