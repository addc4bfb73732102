"""`cri-runtime` command line: serve, and config helpers.

Start-up failures (bad config, unusable socket, containerd not answering)
print one line naming the cause and exit 1 — no traceback — because that
line is what an operator reads in `journalctl -u cri-runtime`.
"""

from __future__ import annotations

import asyncio
import sys

import click

from cri_runtime import __version__
from cri_runtime.config import ConfigError, load, render_default


def _fail(message: str) -> None:
    click.echo(f"cri-runtime: {message}", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cri-runtime")
def main() -> None:
    """A Kubernetes CRI v1 runtime that delegates to containerd."""


@main.command()
@click.option("--config", "config_path", metavar="FILE", default=None,
              help="Config file (default /etc/cri-runtime/config.toml when present).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None,
              help="Overrides server.log_level.")
@click.option("--socket", "socket_path", default=None, help="Overrides server.socket.")
@click.option("--containerd", "containerd_address", default=None, help="Overrides containerd.address.")
def serve(config_path: str | None, log_level: str | None, socket_path: str | None,
          containerd_address: str | None) -> None:
    """Serve the CRI API on a unix socket until SIGTERM/SIGINT."""
    from cri_runtime import logging_setup
    from cri_runtime.server import StartupError
    from cri_runtime.server import serve as run_server

    try:
        config = load(config_path)
    except ConfigError as exc:
        _fail(str(exc))
    if socket_path:
        config.server.socket = socket_path
    if containerd_address:
        config.containerd.address = containerd_address
    if log_level:
        config.server.log_level = log_level
    try:
        config.server.validate("server")
        config.containerd.validate("containerd")
    except ConfigError as exc:
        _fail(f"command line: {exc}")
    logging_setup.configure(config.server.log_level)
    try:
        asyncio.run(run_server(config))
    except StartupError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


@main.group()
def config() -> None:
    """Print or check configuration files."""


@config.command("default")
def config_default() -> None:
    """Print the default configuration, commented."""
    click.echo(render_default())


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
def config_check(path: str) -> None:
    """Validate a configuration file."""
    try:
        load(path)
    except ConfigError as exc:
        _fail(str(exc))
    click.echo(f"{path}: ok")


def _register_node_tools() -> None:
    from cri_runtime.nodetools.commands import register

    register(main)


_register_node_tools()

if __name__ == "__main__":  # pragma: no cover
    main()
