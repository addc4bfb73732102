"""`crictl config`: get, set and list the client config file, keeping its comments."""

from __future__ import annotations

import os
import sys

from crictl import cli, log, settings
from crictl.cmdutil import show_help, split_slice
from crictl.errors import CliError
from crictl.output import Table

_ARGS_USAGE = """[<crictl options>]

EXAMPLES:
   # Set the key "debug" to "true"
   crictl config --set debug=true

   # Set the key "debug" to "true"
   crictl config debug true

   # Get the value of "debug"
   crictl config --get debug

   # Show the full configuration
   crictl config --list

CRICTL OPTIONS:
\t runtime-endpoint:\tContainer Runtime Interface (CRI) runtime endpoint (default: "")
\t image-endpoint:\tContainer Runtime Interface (CRI) image endpoint (default: "")
\t timeout:\tTimeout of connecting to server (default: 2)
\t debug:\tEnable debug output (default: false)
\t pull-image-on-create:\tEnable pulling image on create requests (default: false)
\t disable-pull-on-run:\tDisable pulling image on run requests (default: false)
\t max-retries:\tMax retries for connecting to an explicitly set endpoint (default: 3, 0 to disable, negative for \
infinite)"""


@cli.command(
    "config", help="Get, set and list crictl configuration options", args_usage=_ARGS_USAGE, short_options=True
)
@cli.option("--get", "get_key", default="", help="Show the option value")
@cli.option(
    "--set",
    "set_values",
    multiple=True,
    help="Set option (can specify multiple or separate values with commas: opt1=val1,opt2=val2)",
)
@cli.option("--list", "list_all", is_flag=True, help="Show all option value")
@cli.argument("args", nargs=-1)
@cli.pass_context
def config_command(
    ctx: cli.Context, get_key: str | None, set_values: tuple[str, ...], list_all: bool, args: tuple[str, ...]
) -> None:
    path = ctx.find_root().values["config"]
    if not os.path.exists(path):
        settings.write_config(settings.FileConfig(), path)
    try:
        config = settings.read_config(path)
    except OSError as exc:
        raise CliError(f"load config file: open {path}: {(exc.strerror or str(exc)).lower()}") from exc
    except CliError as exc:
        raise CliError(f"load config file: {exc.message}") from exc
    if ctx.is_set("get_key"):
        if get_key not in settings.KEYS:
            raise CliError(f"no configuration option named {get_key}")
        print(config.get(get_key))
        return
    if ctx.is_set("set_values"):
        for option in split_slice(set_values):
            pair = option.split("=")
            if len(pair) != 2:
                raise CliError(f"incorrectly specified option: {option}")
            settings.set_value(config, pair[0], pair[1])
        settings.write_config(config, path)
        return
    if list_all:
        table = Table()
        table.add_row(["KEY", "VALUE"])
        for key in settings.KEYS:
            table.add_row([key, config.get(key)])
        sys.stdout.write("\033[2J\033[H")  # crictl clears the screen before the table, always
        table.flush()
        return
    if not args:
        show_help()
    key = args[0]
    value = args[1] if len(args) > 1 else ""
    log.info(f'No --get, --set or --list provided, setting key "{key}" to value "{value}"')
    try:
        settings.set_value(config, key, value)
    except CliError as exc:
        raise CliError(f'set "{key}" to "{value}": {exc.message}') from exc
    settings.write_config(config, path)


COMMANDS = [config_command]
