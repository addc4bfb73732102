"""`cri-runtime` command line: serve, and config helpers.

Start-up failures (bad config, unusable socket, containerd not answering)
print one line naming the cause and exit 1 — no traceback — because that
line is what an operator reads in `journalctl -u cri-runtime`.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from cri_runtime import __version__
from cri_runtime.config import DEFAULT_CONFIG_DIR, Config, ConfigError, load, render_default, render_effective


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
@click.option("--config-dir", "config_dir", metavar="DIR", default=DEFAULT_CONFIG_DIR, show_default=True,
              help="Drop-in directory: its *.toml files are merged over the config file in lexical order.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None,
              help="Overrides server.log_level.")
@click.option("--socket", "socket_path", default=None, help="Overrides server.socket.")
@click.option("--containerd", "containerd_address", default=None, help="Overrides containerd.address.")
def serve(config_path: str | None, config_dir: str, log_level: str | None, socket_path: str | None,
          containerd_address: str | None) -> None:
    """Serve the CRI API on a unix socket until SIGTERM/SIGINT (SIGHUP reloads the configuration)."""
    from cri_runtime import logging_setup
    from cri_runtime.server import StartupError
    from cri_runtime.server import serve as run_server

    def load_config() -> Config:
        """The files plus the command line's overrides; called again on every SIGHUP."""
        config = load(config_path, config_dir)
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
            raise ConfigError(f"command line: {exc}") from None
        return config

    try:
        config = load_config()
    except ConfigError as exc:
        _fail(str(exc))
    logging_setup.configure(config.server.log_level, config.server.log_format)
    for warning in config.warnings:
        logging.getLogger("cri_runtime.config").warning(warning)
    try:
        asyncio.run(run_server(config, load_config))
    except StartupError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


@main.group()
def config() -> None:
    """Print, check or dump configuration files."""


@config.command("default")
def config_default() -> None:
    """Print the default configuration, commented."""
    click.echo(render_default())


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False), required=False)
@click.option("--config-dir", "config_dir", metavar="DIR", default=None,
              help="Also merge this drop-in directory's *.toml files.")
@click.option("--strict", is_flag=True, help="Unknown keys are errors, not warnings.")
def config_check(path: str | None, config_dir: str | None, strict: bool) -> None:
    """Validate a configuration file (and drop-ins); unknown keys warn on stderr."""
    try:
        cfg = load(path, config_dir, strict=strict)
    except ConfigError as exc:
        _fail(str(exc))
    for warning in cfg.warnings:
        click.echo(f"cri-runtime: warning: {warning}", err=True)
    click.echo(f"{cfg.source.replace(',', ', ')}: ok")


@config.command("dump")
@click.option("--config", "config_path", metavar="FILE", default=None,
              help="Config file (default /etc/cri-runtime/config.toml when present).")
@click.option("--config-dir", "config_dir", metavar="DIR", default=DEFAULT_CONFIG_DIR, show_default=True,
              help="Drop-in directory merged over the config file.")
def config_dump(config_path: str | None, config_dir: str) -> None:
    """Print the effective configuration; keys set by a file name that file."""
    try:
        cfg = load(config_path, config_dir)
    except ConfigError as exc:
        _fail(str(exc))
    for warning in cfg.warnings:
        click.echo(f"cri-runtime: warning: {warning}", err=True)
    click.echo(render_effective(cfg))


def _register_node_tools() -> None:
    from cri_runtime.nodetools.commands import register

    register(main)


_register_node_tools()

if __name__ == "__main__":  # pragma: no cover
    main()
