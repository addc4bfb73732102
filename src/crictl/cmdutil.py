"""Shared pieces for command modules: the per-invocation context, option types, small parsers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from crictl import log
from crictl.connection import Clients
from crictl.errors import CliError
from crictl.settings import Settings
from crictl.timeparse import parse_duration

F = TypeVar("F", bound=Callable[..., Any])


class AppContext:
    """What a command needs: effective settings and lazily-connected CRI clients."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients = Clients(settings)

    def runtime(self, timeout: float | None = None) -> Any:
        return self.clients.runtime(timeout)

    def image(self) -> Any:
        return self.clients.image()


def app(ctx: click.Context) -> AppContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, AppContext)
    return obj


if TYPE_CHECKING:
    _ParamTypeBase = click.ParamType[float, Any]
else:
    _ParamTypeBase = click.ParamType


class GoDuration(_ParamTypeBase):
    """A Go duration flag value ("2s", "1m"), converted to seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(f'invalid value "{value}" for flag -{param.name if param else ""}: {exc}', param, ctx)


DURATION = GoDuration()


def split_slice(values: Iterable[str]) -> list[str]:
    """urfave/cli StringSliceFlag: repeated flags, each value also split on commas."""
    out: list[str] = []
    for value in values:
        out.extend(part for part in value.split(","))
    return out


def parse_labels(values: Iterable[str]) -> dict[str, str]:
    """key=value pairs (crictl's parseLabelStringSlice)."""
    labels: dict[str, str] = {}
    for item in split_slice(values):
        pair = item.split("=")
        if len(pair) != 2:
            raise CliError(f"incorrectly specified label: {item}")
        labels[pair[0]] = pair[1]
    return labels


def is_set(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


def show_help() -> None:
    """crictl's ShowSubcommandHelp: print the current command's help and exit 0."""
    ctx = click.get_current_context()
    click.echo(ctx.get_help())
    raise click.exceptions.Exit(0)


def inspect_targets(ids: Iterable[str], list_ids: Callable[[], list[str]], what: str) -> list[str]:
    """The IDs an inspect command works on: those given, else those the filters list (help if none)."""
    targets = list(ids)
    if not targets:
        try:
            targets = list_ids()
        except CliError as exc:
            raise CliError(f"listing {what}: {exc.message}") from exc
    if not targets:
        log.error("No IDs provided or nothing found per filter")
        show_help()
    return targets


def output_option(default: str | None, choices_help: str) -> Callable[[F], F]:
    return click.option("-o", "--output", default=default, help=f"Output format, One of: {choices_help}")


def template_option() -> Callable[[F], F]:
    return click.option(
        "--template",
        default="",
        help="The template string is only used when output is go-template; The Template format is golang template",
    )


COMMAND_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "allow_interspersed_args": False}
"""urfave/cli stops parsing flags at the first argument: `exec ID sh -c x`, `inspect ID -o yaml` (an ID)."""
