"""runp, pods, inspectp, stopp, rmp."""

from __future__ import annotations

from typing import Any

from crictl import cli, log, ops
from crictl.cmdutil import app, inspect_targets, parse_labels, show_help, template_option
from crictl.commands.jsonschema import RUNP_JSONSCHEMA
from crictl.configfiles import load_pod_config
from crictl.errors import CliError
from crictl.humanize import ago, go_time_string, rfc3339nano, truncate_id
from crictl.output import (
    OUTPUT_JSON,
    OUTPUT_TABLE,
    OUTPUT_YAML,
    Table,
    go_map_string,
    print_labels_block,
    print_message,
    print_status_entries,
    status_entry,
)

POD_STATES = {0: "Ready", 1: "NotReady"}


def pod_state_name(state: int) -> str:
    name = POD_STATES.get(state)
    if name is None:
        raise CliError(f'unknown pod state "{state}"')
    return name


def runtime_handler(pod: Any) -> str:
    return pod.runtime_handler or "(default)"


@cli.command("runp", help="Run a new pod", subcommands=[RUNP_JSONSCHEMA])
@cli.option(
    "-r",
    "--runtime",
    default="",
    help="Runtime handler to use. Available options are defined by the container runtime.",
)
@cli.option(
    "-T",
    "--cancel-timeout",
    type="duration",
    default="0s",
    help="Seconds to wait for a run pod sandbox request to complete before cancelling the request",
)
@cli.argument("args", nargs=-1)
@cli.pass_context
def runp_command(ctx: cli.Context, runtime: str, cancel_timeout: float, args: tuple[str, ...]) -> None:
    """pod-config.[json|yaml]"""
    if len(args) != 1 or not args[0]:
        show_help()
    app(ctx).runtime(cancel_timeout or None)  # upstream connects before it reads the file
    try:
        config = load_pod_config(args[0])
    except CliError as exc:
        prefix = "load podSandboxConfig: "
        raise CliError(exc.message if exc.message.startswith(prefix) else prefix + exc.message) from exc
    try:
        pod_id = ops.run_pod(app(ctx), config, runtime, cancel_timeout)
    except CliError as exc:
        raise CliError(f"run pod sandbox: {exc.message}") from exc
    print(pod_id)


@cli.command("stopp", help="Stop one or more running pods")
@cli.argument("ids", nargs=-1)
@cli.pass_context
def stopp_command(ctx: cli.Context, ids: tuple[str, ...]) -> None:
    """POD-ID [POD-ID...]"""
    if not ids:
        show_help()
    for pod_id in ids:
        try:
            ops.stop_pod(app(ctx), pod_id)
        except CliError as exc:
            raise CliError(f'stopping the pod sandbox "{pod_id}": {exc.message}') from exc
        print(f"Stopped sandbox {pod_id}")


@cli.command("rmp", help="Remove one or more pods", short_options=True)
@cli.option("-f", "--force", is_flag=True, help="Force removal of the pod sandbox, disregarding if running")
@cli.option("-a", "--all", "all_", is_flag=True, help="Remove all pods")
@cli.argument("ids", nargs=-1)
@cli.pass_context
def rmp_command(ctx: cli.Context, force: bool, all_: bool, ids: tuple[str, ...]) -> None:
    """POD-ID [POD-ID...]"""
    a = app(ctx)
    targets = list(ids)
    if all_:
        targets = [p.id for p in a.runtime().call("ListPodSandbox", ops.pb().ListPodSandboxRequest()).items]
    if not targets:
        if all_:
            log.info("No pods to remove")
            return
        show_help()
    errors = []
    for pod_id in targets:
        try:
            _remove_pod(a, pod_id, force)
        except CliError as exc:
            errors.append(exc.message)
    if errors:
        raise CliError("\n".join(errors))


def _remove_pod(a: Any, pod_id: str, force: bool) -> None:
    try:
        status = ops.pod_status(a, pod_id, False)
    except CliError as exc:
        raise CliError(f'getting sandbox status of pod "{pod_id}": {exc.message}') from exc
    if status.status.state == ops.pb().SANDBOX_READY:
        if not force:
            raise CliError(f'pod sandbox "{pod_id}" is running, please stop it first')
        try:
            ops.stop_pod(a, pod_id)
        except CliError as exc:
            raise CliError(f'stopping the pod sandbox "{pod_id}" failed: {exc.message}') from exc
        print(f"Stopped sandbox {pod_id}")
    try:
        ops.remove_pod(a, pod_id)
    except CliError as exc:
        raise CliError(f'removing the pod sandbox "{pod_id}": {exc.message}') from exc
    print(f"Removed sandbox {pod_id}")


def _list_flags(func: Any) -> Any:
    func = cli.option(
        "-n", "--last", type=int, default=0, help="Show last n recently created pods. Set 0 for unlimited"
    )(func)
    func = cli.option("-l", "--latest", is_flag=True, help="Show the most recently created pod")(func)
    func = cli.option("--label", multiple=True, help="Filter by key=value label")(func)
    func = cli.option("-s", "--state", default="", help="Filter by pod state")(func)
    func = cli.option("--namespace", default="", help="Filter by pod namespace regular expression pattern")(func)
    func = cli.option("--name", default="", help="Filter by pod name regular expression pattern")(func)
    return func


@cli.command("pods", help="List pods", short_options=True)
@cli.option("--id", "pod_id", default="", help="filter by pod id")
@_list_flags
@cli.option("-v", "--verbose", is_flag=True, help="Show verbose info for pods")
@cli.option("-q", "--quiet", is_flag=True, help="List only pod IDs")
@cli.option("-o", "--output", default=OUTPUT_TABLE, help="Output format, One of: json|yaml|table")
@cli.option("--no-trunc", is_flag=True, help="Show output without truncating the ID")
@cli.pass_context
def pods_command(
    ctx: cli.Context, pod_id: str, name: str, namespace: str, state: str, label: tuple[str, ...],
    latest: bool, last: int, verbose: bool, quiet: bool, output: str, no_trunc: bool,
) -> None:  # fmt: skip
    opts = ops.ListOptions(
        id=pod_id, state=state, verbose=verbose, quiet=quiet, output=output, latest=latest, last=last,
        no_trunc=no_trunc, name_regexp=name, namespace_regexp=namespace, labels=parse_labels(label),
    )  # fmt: skip
    try:
        try:
            pods = ops.list_pods(app(ctx), opts)
        except CliError as exc:
            raise CliError(f"list pod sandboxes: {exc.message}") from exc
        if output in (OUTPUT_JSON, OUTPUT_YAML):
            print_message(ops.pb().ListPodSandboxResponse(items=pods), output)
            return
        if output != OUTPUT_TABLE:
            raise CliError(f'unsupported output format "{output}"')
        _pods_table(pods, opts)
    except CliError as exc:
        raise CliError(f"listing pod sandboxes: {exc.message}") from exc


def _pods_table(pods: list[Any], opts: ops.ListOptions) -> None:
    table = Table()
    if not opts.verbose and not opts.quiet:
        table.add_row(["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"])
    for pod in pods:
        if opts.quiet:
            print(pod.id)
            continue
        if not opts.verbose:
            table.add_row([
                pod.id if opts.no_trunc else truncate_id(pod.id),
                ago(pod.created_at),
                pod_state_name(pod.state),
                pod.metadata.name,
                pod.metadata.namespace,
                str(pod.metadata.attempt),
                runtime_handler(pod),
            ])  # fmt: skip
            continue
        print(f"ID: {pod.id}")
        if pod.HasField("metadata"):
            if pod.metadata.name:
                print(f"Name: {pod.metadata.name}")
            if pod.metadata.uid:
                print(f"UID: {pod.metadata.uid}")
            if pod.metadata.namespace:
                print(f"Namespace: {pod.metadata.namespace}")
            if pod.metadata.attempt:
                print(f"Attempt: {pod.metadata.attempt}")
        print(f"Status: {pod_state_name(pod.state)}")
        print(f"Created: {go_time_string(pod.created_at)}")
        print_labels_block("Labels", dict(pod.labels))
        print_labels_block("Annotations", dict(pod.annotations))
        print(f"Runtime: {runtime_handler(pod)}")
        print()
    table.flush()


@cli.command("inspectp", help="Display the status of one or more pods", short_options=True)
@cli.option("-o", "--output", default="", help="Output format, One of: json|yaml|go-template|table")
@cli.option("-q", "--quiet", is_flag=True, help="Do not show verbose information")
@template_option()
@_list_flags
@cli.argument("ids", nargs=-1)
@cli.pass_context
def inspectp_command(
    ctx: cli.Context, output: str, quiet: bool, template: str, name: str, namespace: str, state: str,
    label: tuple[str, ...], latest: bool, last: int, ids: tuple[str, ...],
) -> None:  # fmt: skip
    """POD-ID [POD-ID...]"""
    a = app(ctx)
    opts = ops.ListOptions(name_regexp=name, namespace_regexp=namespace, state=state, latest=latest, last=last,
                           labels=parse_labels(label))  # fmt: skip
    targets = inspect_targets(ids, lambda: [p.id for p in ops.list_pods(a, opts)], "pod sandboxes")
    try:
        pod_status_output(a, targets, output or OUTPUT_JSON, template, not quiet)
    except CliError as exc:
        raise CliError(f"get the status of pod sandboxes: {exc.message}") from exc


def pod_status_output(a: Any, ids: list[str], output: str, template: str, verbose: bool) -> None:
    from crictl.protojson import status_fields_in_struct_order

    entries = []
    for pod_id in ids:
        try:
            response = ops.pod_status(a, pod_id, verbose)
        except CliError as exc:
            raise CliError(f"get pod sandbox status: {exc.message}") from exc
        if output == OUTPUT_TABLE:
            _pod_status_table(response, verbose)
            continue
        status = status_fields_in_struct_order(response.status)
        status["createdAt"] = rfc3339nano(response.status.created_at)
        entries.append(status_entry(status, dict(response.info)))
    print_status_entries(entries, output, template)


def _pod_status_table(response: Any, verbose: bool) -> None:
    status = response.status
    print(f"ID: {status.id}")
    if status.HasField("metadata"):
        if status.metadata.name:
            print(f"Name: {status.metadata.name}")
        if status.metadata.uid:
            print(f"UID: {status.metadata.uid}")
        if status.metadata.namespace:
            print(f"Namespace: {status.metadata.namespace}")
        print(f"Attempt: {status.metadata.attempt}")
    print(f"Status: {ops.pb().PodSandboxState.Name(status.state)}")
    print(f"Created: {go_time_string(status.created_at)}")
    if status.HasField("network"):
        print(f"IP Addresses: {status.network.ip}")
        for extra in status.network.additional_ips:
            print(f"Additional IP: {extra.ip}")
    print_labels_block("Labels", dict(status.labels))
    print_labels_block("Annotations", dict(status.annotations))
    if verbose:
        print(f"Info: {go_map_string(dict(response.info))}")


COMMANDS = [runp_command, stopp_command, rmp_command, pods_command, inspectp_command]
