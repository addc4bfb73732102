"""version, info, runtime-config, update-runtime-config."""

from __future__ import annotations

import json

from crictl import cli, log, ops
from crictl.cmdutil import app, is_set, show_help, template_option
from crictl.errors import CliError
from crictl.output import OUTPUT_GO_TEMPLATE, OUTPUT_JSON, OUTPUT_YAML, Table, print_status_entries, status_entry


@cli.command("version", help="Display runtime version information")
@cli.argument("args", nargs=-1)
@cli.pass_context
def version_command(ctx: cli.Context, args: tuple[str, ...]) -> None:
    if args:
        show_help()
    try:
        response = ops.version(app(ctx))
    except CliError as exc:
        raise CliError(f"getting the runtime version: {exc.message}") from exc
    print("Version: ", response.version)
    print("RuntimeName: ", response.runtime_name)
    print("RuntimeVersion: ", response.runtime_version)
    print("RuntimeApiVersion: ", response.runtime_api_version)


@cli.command("info", help="Display information of the container runtime", short_options=True)
@cli.option("-o", "--output", default=OUTPUT_JSON, help="Output format, One of: json|yaml|go-template")
@cli.option("-q", "--quiet", is_flag=True, help="Do not show verbose information")
@template_option()
@cli.argument("args", nargs=-1)
@cli.pass_context
def info_command(ctx: cli.Context, output: str, quiet: bool, template: str, args: tuple[str, ...]) -> None:
    if args:
        show_help()
    from crictl.protojson import message_to_dict

    try:
        response = ops.status(app(ctx), not quiet)
    except CliError as exc:
        raise CliError(f"getting status of runtime: {exc.message}") from exc
    extra: dict[str, object] = {}
    handlers = [_go_struct_json(h) for h in response.runtime_handlers]
    if handlers:
        extra["runtimeHandlers"] = handlers
    if response.HasField("features"):
        extra["features"] = _go_struct_json(response.features)
    else:
        extra["features"] = None
    status = message_to_dict(response.status) if response.HasField("status") else None
    if status is None:
        status = None
    entry = status_entry(status, dict(response.info), extra)
    if entry.get("features") is None:
        entry.pop("features", None)
    _check_format(output)
    try:
        print_status_entries([entry], output, template)
    except CliError as exc:
        raise CliError(f"getting status of runtime: {exc.message}") from exc


def _check_format(output: str) -> None:
    if output not in (OUTPUT_JSON, OUTPUT_YAML, OUTPUT_GO_TEMPLATE):
        raise CliError(f'getting status of runtime: unsupported format: "{output}"')


def _go_struct_json(message: object) -> object:
    """encoding/json of a Go protobuf struct: original field names, omitempty, enums as numbers."""
    from google.protobuf.descriptor import FieldDescriptor

    out: dict[str, object] = {}
    descriptor = message.DESCRIPTOR  # type: ignore[attr-defined]
    for field in descriptor.fields:
        value = getattr(message, field.name)
        if field.is_repeated:
            if len(value) == 0:
                continue
            if field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
                out[field.name] = [_go_struct_json(v) for v in value]
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                out[field.name] = {str(k): value[k] for k in value}
            else:
                out[field.name] = list(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if message.HasField(field.name):  # type: ignore[attr-defined]
                out[field.name] = _go_struct_json(value)
        elif value:
            out[field.name] = value
    return json.loads(json.dumps(out))


@cli.command("runtime-config", help="Retrieve the container runtime configuration", short_options=True)
@cli.pass_context
def runtime_config_command(ctx: cli.Context) -> None:
    try:
        response = ops.runtime_config(app(ctx))
    except CliError as exc:
        raise CliError(f"get runtime config: call RuntimeConfig RPC: {exc.message}") from exc
    table = Table(minwidth=10)
    if response.HasField("linux"):
        from crictl.ops import pb

        table.add_row(["cgroup driver:", pb().CgroupDriver.Name(response.linux.cgroup_driver)])
    table.flush()


@cli.command("update-runtime-config", help="Update the runtime configuration", short_options=True)
@cli.option(
    "-p",
    "--pod-cidr",
    default=None,
    help="The new Classless Inter-Domain Routing (CIDR) value to be used for pod IP addresses. "
    "If the CIDR is empty, runtimes should omit it.",
)
@cli.argument("args", nargs=-1)
@cli.pass_context
def update_runtime_config_command(ctx: cli.Context, pod_cidr: str | None, args: tuple[str, ...]) -> None:
    if args or not is_set(ctx, "pod_cidr"):
        show_help()
    try:
        ops.update_runtime_config(app(ctx), pod_cidr)
    except CliError as exc:
        raise CliError(f"update runtime config: {exc.message}") from exc
    log.info("Runtime config successfully updated")


COMMANDS = [version_command, info_command, runtime_config_command, update_runtime_config_command]
