"""ps and inspect: kept apart from the container lifecycle verbs so `crictl ps` imports little."""

from __future__ import annotations

import re
from typing import Any

from crictl import cli, ops
from crictl.cmdutil import app, inspect_targets, parse_labels, show_help, template_option
from crictl.errors import CliError
from crictl.humanize import ago, go_zero_time_rfc3339, rfc3339nano, truncate_id
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

CONTAINER_STATES = {0: "Created", 1: "Running", 2: "Exited", 3: "Unknown"}
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


def container_state_name(state: int) -> str:
    name = CONTAINER_STATES.get(state)
    if name is None:
        raise CliError(f'unknown container state "{state}"')
    return name


def filter_flags(func: Any) -> Any:
    """The filter flags of ps and inspect."""
    func = cli.option("--namespace", default="", help="Filter by pod namespace regular expression pattern")(func)
    last_help = "Show last n recently created containers (includes all states). Set 0 for unlimited."
    func = cli.option("-n", "--last", type=int, default=0, help=last_help)(func)
    func = cli.option("-l", "--latest", is_flag=True,
                        help="Show the most recently created container (includes all states)")(func)  # fmt: skip
    func = cli.option("-a", "--all", "all_", is_flag=True, help="Show all containers")(func)
    func = cli.option("--label", multiple=True, help="Filter by key=value label")(func)
    func = cli.option("-s", "--state", default="", help="Filter by container state")(func)
    func = cli.option("--image", default="", help="Filter by container image")(func)
    func = cli.option("-p", "--pod", default="", help="Filter by pod id")(func)
    func = cli.option("--name", default="", help="Filter by container name regular expression pattern")(func)
    return func


@cli.command("ps", help="List containers", short_options=True)
@cli.option("-v", "--verbose", is_flag=True, help="Show verbose information for containers")
@cli.option("--id", "ctr_id", default="", help="Filter by container id")
@filter_flags
@cli.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@cli.option("-o", "--output", default=OUTPUT_TABLE, help="Output format, One of: json|yaml|table")
@cli.option("--no-trunc", is_flag=True, help="Show output without truncating the ID")
@cli.option("-r", "--resolve-image-path", is_flag=True, help="Show image path instead of image id")
@cli.argument("args", nargs=-1)
@cli.pass_context
def ps_command(
    ctx: cli.Context, verbose: bool, ctr_id: str, name: str, pod: str, image: str, state: str,
    label: tuple[str, ...], all_: bool, latest: bool, last: int, namespace: str, quiet: bool, output: str,
    no_trunc: bool, resolve_image_path: bool, args: tuple[str, ...],
) -> None:  # fmt: skip
    if args:
        show_help()
    opts = ops.ListOptions(
        id=ctr_id, pod_id=pod, namespace_regexp=namespace, state=state, verbose=verbose, quiet=quiet,
        output=output, all=all_, name_regexp=name, latest=latest, last=last, no_trunc=no_trunc, image=image,
        resolve_image_path=resolve_image_path, labels=parse_labels(label),
    )  # fmt: skip
    a = app(ctx)
    a.runtime(), a.image()  # upstream connects to (and validates) both services first
    try:
        try:
            containers = ops.list_containers(a, opts)
        except CliError as exc:
            raise CliError(f"list containers: {exc.message}") from exc
        if output in (OUTPUT_JSON, OUTPUT_YAML):
            print_message(ops.pb().ListContainersResponse(containers=containers), output)
            return
        if output != OUTPUT_TABLE:
            raise CliError(f'unsupported output format "{output}"')
        _ps_table(a, containers, opts)
    except CliError as exc:
        raise CliError(f"listing containers: {exc.message}") from exc


def _ps_table(a: Any, containers: list[Any], opts: ops.ListOptions) -> None:
    table = Table()
    if not opts.verbose and not opts.quiet:
        table.add_row(["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD", "NAMESPACE"])
    for ctr in containers:
        if opts.quiet:
            print(ctr.id)
            continue
        created = ago(ctr.created_at)
        namespace = ops.label_value(ctr.labels, ops.POD_NAMESPACE_LABEL)
        if not opts.verbose:
            ctr_id, pod_id, image = ctr.id, ctr.pod_sandbox_id, ctr.image.image
            if not opts.no_trunc:
                ctr_id = truncate_id(ctr_id)
                pod_id = truncate_id(pod_id)
                if _DIGEST_RE.match(image):
                    algorithm = image.split(":", 1)[0]
                    image = truncate_id(image, algorithm + ":")
            if opts.resolve_image_path:
                try:
                    image = ops.repo_image(a, image)
                except CliError as exc:
                    raise CliError(f"failed to fetch repo image {exc.message}") from exc
            table.add_row([
                ctr_id, image, created, container_state_name(ctr.state), ctr.metadata.name,
                str(ctr.metadata.attempt), pod_id, ops.label_value(ctr.labels, ops.POD_NAME_LABEL), namespace,
            ])  # fmt: skip
            continue
        print(f"ID: {ctr.id}")
        print(f"PodID: {ctr.pod_sandbox_id}")
        print(f"Namespace: {namespace}")
        if ctr.HasField("metadata"):
            if ctr.metadata.name:
                print(f"Name: {ctr.metadata.name}")
            print(f"Attempt: {ctr.metadata.attempt}")
        print(f"State: {container_state_name(ctr.state)}")
        if ctr.HasField("image"):
            print(f"Image: {ctr.image.image}")
        print(f"Created: {created}")
        print_labels_block("Labels", dict(ctr.labels))
        print_labels_block("Annotations", dict(ctr.annotations))
        print()
    table.flush()


@cli.command("inspect", help="Display the status of one or more containers")
@cli.option("-o", "--output", default="", help="Output format, One of: json|yaml|go-template|table")
@cli.option("-q", "--quiet", is_flag=True, help="Do not show verbose information")
@template_option()
@filter_flags
@cli.argument("ids", nargs=-1)
@cli.pass_context
def inspect_command(
    ctx: cli.Context, output: str, quiet: bool, template: str, name: str, pod: str, image: str, state: str,
    label: tuple[str, ...], all_: bool, latest: bool, last: int, namespace: str, ids: tuple[str, ...],
) -> None:  # fmt: skip
    """CONTAINER-ID [CONTAINER-ID...]"""
    a = app(ctx)
    a.runtime(), a.image()  # upstream connects to (and validates) both services first
    opts = ops.ListOptions(name_regexp=name, pod_id=pod, namespace_regexp=namespace, image=image, state=state,
                           latest=latest, last=last, all=all_, labels=parse_labels(label))  # fmt: skip
    targets = inspect_targets(ids, lambda: [c.id for c in ops.list_containers(a, opts)], "containers")
    try:
        container_status_output(a, targets, output or OUTPUT_JSON, template, not quiet)
    except CliError as exc:
        raise CliError(f"get the status of containers: {exc.message}") from exc


def container_status_output(a: Any, ids: list[str], output: str, template: str, verbose: bool) -> None:
    from crictl.protojson import status_fields_in_struct_order

    api = ops.pb()
    entries = []
    for ctr_id in ids:
        try:
            response = ops.container_status(a, ctr_id, verbose)
        except CliError as exc:
            raise CliError(f"get container status: {exc.message}") from exc
        if output == OUTPUT_TABLE:
            _container_status_table(response, verbose)
            continue
        st = response.status
        data = status_fields_in_struct_order(st)
        data["createdAt"] = rfc3339nano(st.created_at)
        started = rfc3339nano(st.started_at) if st.state != api.CONTAINER_CREATED else go_zero_time_rfc3339()
        exited = st.state == api.CONTAINER_EXITED or (st.state == api.CONTAINER_UNKNOWN and st.finished_at > 0)
        data["startedAt"] = started
        data["finishedAt"] = rfc3339nano(st.finished_at) if exited else go_zero_time_rfc3339()
        entries.append(status_entry(data, dict(response.info)))
    print_status_entries(entries, output, template)


def _container_status_table(response: Any, verbose: bool) -> None:
    api = ops.pb()
    st = response.status
    print(f"ID: {st.id}")
    if st.HasField("metadata"):
        if st.metadata.name:
            print(f"Name: {st.metadata.name}")
        if st.metadata.attempt:
            print(f"Attempt: {st.metadata.attempt}")
    print(f"State: {api.ContainerState.Name(st.state)}")
    print(f"Created: {ago(st.created_at)}")
    if st.state != api.CONTAINER_CREATED:
        print(f"Started: {ago(st.started_at)}")
    if st.state == api.CONTAINER_EXITED:
        if st.finished_at > 0:
            print(f"Finished: {ago(st.finished_at)}")
        print(f"Exit Code: {st.exit_code}")
    print_labels_block("Labels", dict(st.labels))
    print_labels_block("Annotations", dict(st.annotations))
    if verbose:
        print(f"Info: {go_map_string(dict(response.info))}")


COMMANDS = [ps_command, inspect_command]
