"""stats, statsp, metricdescs, metricsp, events."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from crictl import cli, interrupt, ops
from crictl.cmdutil import app, parse_labels, show_help, template_option
from crictl.errors import CliError
from crictl.humanize import human_size, truncate_id
from crictl.output import OUTPUT_GO_TEMPLATE, OUTPUT_JSON, OUTPUT_YAML, Table, print_message


def _watch(enabled: bool, display: Callable[[], None]) -> None:
    """crictl's handleDisplay: once, or every 500 ms until interrupted."""
    if not enabled:
        display()
        return
    try:
        while not interrupt.requested():
            time.sleep(0.5)
            display()
            sys.stdout.flush()  # each refresh shows at once, into a pipe too
    except interrupt.Interrupted:
        return  # upstream's handleDisplay returns nil: exit 0


def _clear_screen() -> None:
    sys.stdout.write("\033[2J\033[H")


@cli.command("stats", help="List container(s) resource usage statistics", short_options=True)
@cli.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@cli.option("--id", "ctr_id", default="", help="Filter by container id")
@cli.option("-p", "--pod", default="", help="Filter by pod id")
@cli.option("--label", multiple=True, help="Filter by key=value label")
@cli.option("-o", "--output", default="", help="Output format, One of: json|yaml|table")
@cli.option("-s", "--seconds", type=int, default=1, help="Sample duration for CPU usage in seconds")
@cli.option("-w", "--watch", is_flag=True, help="Watch pod resources")
@cli.argument("args", nargs=-1)
@cli.pass_context
def stats_command(
    ctx: cli.Context, all_: bool, ctr_id: str, pod: str, label: tuple[str, ...], output: str, seconds: int,
    watch: bool, args: tuple[str, ...],
) -> None:  # fmt: skip
    """[ID]"""
    if len(args) > 1:
        show_help()
    a = app(ctx)
    api = ops.pb()
    flt = api.ContainerStatsFilter(id=ctr_id or (args[0] if args else ""), pod_sandbox_id=pod,
                                   label_selector=parse_labels(label))  # fmt: skip

    def display() -> None:
        stats = ops.container_stats(a, flt)
        if output in (OUTPUT_JSON, OUTPUT_YAML):
            print_message(api.ListContainerStatsResponse(stats=stats), output)
            return
        old = {s.attributes.id: s for s in stats}
        time.sleep(seconds)
        stats = ops.container_stats(a, flt)
        table = Table()
        table.add_row(["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES", "SWAP"])
        for s in stats:
            cpu = s.cpu.usage_core_nano_seconds.value
            mem = s.memory.working_set_bytes.value
            if not all_ and cpu == 0 and mem == 0:
                continue
            previous = old.get(s.attributes.id)
            if previous is None:
                continue
            percent = 0.0
            if cpu:
                duration = s.cpu.timestamp - previous.cpu.timestamp
                if duration == 0:
                    raise CliError("cpu stat is not updated during sample")
                percent = (cpu - previous.cpu.usage_core_nano_seconds.value) / duration * 100
            table.add_row([
                truncate_id(s.attributes.id), s.attributes.metadata.name, f"{percent:.2f}", human_size(float(mem)),
                human_size(float(s.writable_layer.used_bytes.value)), str(s.writable_layer.inodes_used.value),
                human_size(float(s.swap.swap_usage_bytes.value)),
            ])  # fmt: skip
        _clear_screen()
        table.flush()

    try:
        _watch(watch, display)
    except CliError as exc:
        raise CliError(f"get container stats: {exc.message}") from exc


@cli.command(
    "statsp",
    help="List pod statistics. Stats represent a structured API that will fulfill the Kubelet's "
    "/stats/summary endpoint.",
    short_options=True,
)
@cli.option("--id", "pod_id", default="", help="Filter by pod id")
@cli.option("--label", multiple=True, help="Filter by key=value label")
@cli.option("-o", "--output", default="", help="Output format, One of: json|yaml|table")
@cli.option("-s", "--seconds", type=int, default=1, help="Sample duration for CPU usage in seconds")
@cli.option("-w", "--watch", is_flag=True, help="Watch pod resources")
@cli.argument("args", nargs=-1)
@cli.pass_context
def statsp_command(
    ctx: cli.Context, pod_id: str, label: tuple[str, ...], output: str, seconds: int, watch: bool,
    args: tuple[str, ...],
) -> None:  # fmt: skip
    """[ID]"""
    if len(args) > 1:
        show_help()
    a = app(ctx)
    api = ops.pb()
    flt = api.PodSandboxStatsFilter(id=pod_id or (args[0] if args else ""), label_selector=parse_labels(label))

    def sample(s: Any) -> tuple[int, int, int]:
        has_linux, has_windows = s.HasField("linux"), s.HasField("windows")
        if has_linux and has_windows:
            raise CliError(
                f'pod "{truncate_id(s.attributes.id)}" has both linux and windows stats which is not supported'
            )
        part = s.linux if has_linux else s.windows
        return (part.cpu.usage_core_nano_seconds.value, part.memory.working_set_bytes.value, part.cpu.timestamp)

    def display() -> None:
        stats = ops.pod_stats(a, flt)
        if output in (OUTPUT_JSON, OUTPUT_YAML):
            print_message(api.ListPodSandboxStatsResponse(stats=stats), output)
            return
        old = {s.attributes.id: s for s in stats}
        time.sleep(seconds)
        stats = ops.pod_stats(a, flt)
        table = Table()
        table.add_row(["POD", "POD ID", "CPU %", "MEM"])
        for s in stats:
            cpu, mem, ts = sample(s)
            if cpu == 0 and mem == 0:
                continue
            previous = old.get(s.attributes.id)
            if previous is None:
                continue
            old_cpu, _, old_ts = sample(previous)
            percent = 0.0
            if cpu:
                if ts == old_ts:
                    raise CliError("cpu stat is not updated during sample")
                percent = (cpu - old_cpu) / (ts - old_ts) * 100
            table.add_row([s.attributes.metadata.name, truncate_id(s.attributes.id), f"{percent:.2f}",
                           human_size(float(mem))])  # fmt: skip
        _clear_screen()
        table.flush()

    try:
        _watch(watch, display)
    except CliError as exc:
        raise CliError(f"get pod stats: list pod sandbox stats: {exc.message}") from exc


@cli.command(
    "metricdescs",
    help="List metric descriptors. Returns information about the metrics available through the CRI.",
    short_options=True,
)
@cli.option("-o", "--output", default="", help="Output format, One of: json|yaml")
@cli.argument("args", nargs=-1)
@cli.pass_context
def metricdescs_command(ctx: cli.Context, output: str, args: tuple[str, ...]) -> None:
    if args or output not in (OUTPUT_JSON, OUTPUT_YAML, ""):
        show_help()
    try:
        descriptors = ops.metric_descriptors(app(ctx))
    except CliError as exc:
        raise CliError(f"get metric descriptors: list metric descriptors: {exc.message}") from exc
    print_message(ops.pb().ListMetricDescriptorsResponse(descriptors=descriptors), output or OUTPUT_JSON)


@cli.command(
    "metricsp",
    help="List pod metrics. Metrics are unstructured key/value pairs gathered by CRI meant to replace "
    "cAdvisor's /metrics/cadvisor endpoint.",
    short_options=True,
)
@cli.option("-o", "--output", default="", help="Output format, One of: json|yaml")
@cli.option("-w", "--watch", is_flag=True, help="Watch pod metrics")
@cli.argument("args", nargs=-1)
@cli.pass_context
def metricsp_command(ctx: cli.Context, output: str, watch: bool, args: tuple[str, ...]) -> None:
    if args or output not in (OUTPUT_JSON, OUTPUT_YAML, ""):
        show_help()
    a = app(ctx)

    def display() -> None:
        metrics = ops.pod_metrics(a)
        print_message(ops.pb().ListPodSandboxMetricsResponse(pod_metrics=metrics), output or OUTPUT_JSON)

    try:
        _watch(watch, display)
    except CliError as exc:
        raise CliError(f"get pod metrics: list pod sandbox metrics: {exc.message}") from exc


@cli.command("events", help="Stream the events of containers", aliases=["event"], short_options=True)
@cli.option("-o", "--output", default=OUTPUT_JSON, help="Output format, One of: json|yaml|go-template")
@template_option()
@cli.argument("args", nargs=-1)
@cli.pass_context
def events_command(ctx: cli.Context, output: str, template: str, args: tuple[str, ...]) -> None:
    if args:
        show_help()
    from cri_runtime.gotemplate import TemplateError, parse

    if output in (OUTPUT_JSON, OUTPUT_YAML):
        if template:
            raise CliError(f'template can\'t be used with "{output}" format')
    elif output == OUTPUT_GO_TEMPLATE:
        try:
            parse(template)
        except TemplateError as exc:
            raise CliError(f"failed to parse go-template: {exc}") from exc
    else:
        raise CliError(f'don\'t support "{output}" format')
    service = app(ctx).runtime()
    from crictl.connection import format_rpc_error, rpc_code
    from crictl.output import render_template_message

    stream = None
    try:
        stream = service.stream("GetContainerEvents", ops.pb().GetEventsRequest())
        for event in stream:  # read in this thread: Ctrl-C raises Interrupted inside the wait
            if output == OUTPUT_GO_TEMPLATE:
                try:
                    print(render_template_message(event, template), flush=True)
                except TemplateError as exc:
                    print(f"failed to format container event with the error: {exc}", flush=True)
            else:
                print_message(event, output)
                sys.stdout.flush()
    except interrupt.Interrupted:
        if stream is not None:
            stream.cancel()
        raise CliError("getting container events: interrupted: context canceled") from None
    except Exception as exc:
        if rpc_code(exc) is None:
            raise
        raise CliError(f"getting container events: {format_rpc_error(exc)}") from exc


COMMANDS = [stats_command, statsp_command, metricdescs_command, metricsp_command, events_command]
