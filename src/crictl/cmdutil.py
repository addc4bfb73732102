"""Shared pieces for command modules: the per-invocation context, option types, small parsers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from crictl import cli, log
from crictl.connection import Clients
from crictl.errors import CliError
from crictl.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


class AppContext:
    """What a command needs: effective settings and lazily-connected CRI clients."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients = Clients(settings)
        self.tracer: Any = None  # crictl.tracing.Tracer when --enable-tracing is on

    def runtime(self, timeout: float | None = None) -> Any:
        return self.clients.runtime(timeout)

    def image(self) -> Any:
        return self.clients.image()


def app(ctx: cli.Context) -> AppContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, AppContext)
    return obj


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


def is_set(ctx: cli.Context, name: str) -> bool:
    """urfave's IsSet: given on the command line or through its environment variable."""
    return ctx.is_set(name)


def show_help() -> None:
    """crictl's ShowSubcommandHelp: print the current command's help and exit 0."""
    raise cli.ShowSubcommandHelp()


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
    return cli.option("-o", "--output", default=default, help=f"Output format, One of: {choices_help}")


def template_option() -> Callable[[F], F]:
    return cli.option(
        "--template",
        default="",
        help="The template string is only used when output is go-template; The Template format is golang template",
    )
