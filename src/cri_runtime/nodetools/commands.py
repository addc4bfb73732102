"""The click commands `cri-runtime ctr …`, `cri-runtime tree` and `cri-runtime doctor`.

Thin: parse flags, open one containerd connection, call the module that
does the work, print. Heavy imports happen inside the commands so that
`cri-runtime serve` does not pay for them.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

T = TypeVar("T")

DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
DEFAULT_NAMESPACE = "k8s.io"

output_option = click.option("-o", "--output", "output", type=click.Choice(["table", "json", "yaml"]),
                             default="table", show_default=True, help="Output format.")


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"cri-runtime: {message}", err=True)
    sys.exit(code)


def _with_containerd(address: str, namespace: str, work: Callable[[Any], Awaitable[T]]) -> T:
    from cri_runtime import errors
    from cri_runtime.containerd.connection import Containerd

    async def run() -> T:
        ctd = Containerd(address, namespace)
        try:
            await ctd.wait_ready(5.0)
            return await work(ctd)
        finally:
            await ctd.close()

    try:
        return asyncio.run(run())
    except errors.CriError as exc:
        _fail(str(exc))
        raise  # unreachable


# ------------------------------------------------------------------------ ctr

class _AliasGroup(click.Group):
    """ctr's short names (ns, c, i, t …) resolve to the full command without cluttering --help."""

    aliases = {"namespace": "namespaces", "ns": "namespaces", "container": "containers", "c": "containers",
               "image": "images", "i": "images", "snapshot": "snapshots", "task": "tasks", "t": "tasks",
               "lease": "leases", "list": "ls"}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))


@click.group("ctr", cls=_AliasGroup)
@click.option("-a", "--address", envvar="CONTAINERD_ADDRESS", default=DEFAULT_ADDRESS, show_default=True,
              help="containerd's gRPC socket.")
@click.option("-n", "--namespace", envvar="CONTAINERD_NAMESPACE", default=DEFAULT_NAMESPACE, show_default=True,
              help="containerd namespace.")
@click.pass_context
def ctr(ctx: click.Context, address: str, namespace: str) -> None:
    """containerd's objects as ctr lists them, plus the CRI owner of each (--cri)."""
    ctx.obj = {"address": address, "namespace": namespace}


def _list_command(group: click.Group, name: str, what: str, lister_name: str, *, snapshotter: bool = False,
                  cri_flag: bool = True) -> None:
    @group.group(name, cls=_AliasGroup)
    def obj_group() -> None:
        pass

    obj_group.help = f"List {what} (ls)."

    @obj_group.command("ls")
    @click.option("-q", "--quiet", is_flag=True, help="Print only the IDs.")
    @click.option("--cri", "cri", is_flag=True, hidden=not cri_flag,
                  help="Add the CRI owner (cri-runtime or containerd's CRI) of each object.")
    @output_option
    @click.pass_context
    def ls(ctx: click.Context, /, quiet: bool, cri: bool, output: str, **kwargs: Any) -> None:
        from cri_runtime.nodetools import ctrviews, render

        lister: Callable[..., Awaitable[Any]] = getattr(ctrviews, lister_name)

        def call(ctd: Any) -> Awaitable[Any]:
            args: list[Any] = [ctd]
            if snapshotter:
                args.append(kwargs["snapshotter"])
            if cri_flag:
                args.append(cri)
            return lister(*args)

        view = _with_containerd(ctx.obj["address"], ctx.obj["namespace"], call)
        if quiet:
            render.emit("".join(f"{i}\n" for i in view.ids))
        elif output == "table":
            render.emit(view.table())
        else:
            render.emit(render.document(view.records, output))

    ls.help = f"List {what}."
    if snapshotter:
        click.option("--snapshotter", envvar="CONTAINERD_SNAPSHOTTER", default="overlayfs", show_default=True,
                     help="Snapshotter to list.")(ls)


def _register_ctr() -> None:
    _list_command(ctr, "namespaces", "namespaces", "namespaces", cri_flag=False)
    _list_command(ctr, "containers", "containers", "containers")
    _list_command(ctr, "images", "images", "images")
    _list_command(ctr, "content", "content (blobs); --cri says which images refer to each", "content")
    _list_command(ctr, "snapshots", "snapshots", "snapshots", snapshotter=True)
    _list_command(ctr, "leases", "leases", "leases")
    _list_command(ctr, "tasks", "tasks", "tasks")


# ----------------------------------------------------------------- tree, doctor

def _load_config(path: str | None) -> Any:
    from cri_runtime.config import ConfigError, load

    try:
        return load(path)
    except ConfigError as exc:
        _fail(str(exc))


config_option = click.option("--config", "config_path", metavar="FILE", default=None,
                             help="The server's config file (default /etc/cri-runtime/config.toml when present).")


@click.command("tree")
@click.argument("target", metavar="[POD|CONTAINER]", required=False)
@config_option
@output_option
def tree(target: str | None, config_path: str | None, output: str) -> None:
    """The live process chain: containerd → shims → pause/container processes → exec'd processes."""
    from cri_runtime.nodetools import render
    from cri_runtime.nodetools import tree as tree_mod
    from cri_runtime.nodetools.inventory import Inventory

    config = _load_config(config_path)

    async def work(ctd: Any) -> Any:
        inv = await Inventory.gather(ctd, config)
        builder = tree_mod.TreeBuilder(inv, config.containerd.address, config.containerd.namespace)
        return builder.build(builder.resolve(target) if target else None)

    root = _with_containerd(config.containerd.address, config.containerd.namespace, work)
    if output == "table":
        render.emit(tree_mod.render_text(root))
    else:
        render.emit(render.document(tree_mod.strip(root), output))


@click.command("doctor")
@click.option("--fix", is_flag=True, help="Apply the fixes that are provably safe, and report them.")
@click.option("--grace", type=float, default=None, metavar="SECONDS",
              help="While a server runs, leave objects younger than this (default 600).")
@config_option
@output_option
def doctor(fix: bool, grace: float | None, config_path: str | None, output: str) -> None:
    """Find what is leaked or inconsistent between our records, containerd, CNI and the kernel.

    Exit code 0: clean; 1: something was found (fixed or not).
    """
    from cri_runtime.nodetools import doctor as doctor_mod
    from cri_runtime.nodetools import render

    if os.geteuid() != 0:
        _fail("doctor needs root (it reads /proc of every process and the server's state dirs)")
    config = _load_config(config_path)
    chosen_grace = doctor_mod.DEFAULT_GRACE if grace is None else grace

    def work(ctd: Any) -> Awaitable[Any]:
        return doctor_mod.diagnose(config, ctd, fix=fix, grace=chosen_grace)

    findings, running = _with_containerd(config.containerd.address, config.containerd.namespace, work)
    if output == "table":
        render.emit(doctor_mod.render_text(findings, running, fix))
    else:
        render.emit(render.document({"serverRunning": running, "clean": not findings,
                                     "findings": [f.to_json() for f in findings]}, output))
    sys.exit(1 if findings else 0)


def register(main: click.Group) -> None:
    """Add the node tools to the `cri-runtime` command group."""
    _register_ctr()
    main.add_command(ctr)
    main.add_command(tree)
    main.add_command(doctor)
