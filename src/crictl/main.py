"""Entry point: global flags, config precedence, the command table and error reporting.

Failures never show a traceback: every error is one logrus line on stderr and exit code 1
(or the exit code of the command run by `exec -s`), as upstream's main() does.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

from crictl import cli, log
from crictl.connection import DEFAULT_RUNTIME_ENDPOINTS, go_list
from crictl.errors import CliError
from crictl.settings import DEFAULT_CONFIG_PATH, FlagValues, load_file_config, resolve

VERSION = "v0.1.0"

# name -> (module under crictl.commands, aliases, usage). Only the invoked command's module is
# imported (start-up time); `crictl --help` lists commands from this table without importing any.
COMMAND_INDEX: dict[str, tuple[str, tuple[str, ...], str]] = {
    "attach": ("streaming", (), "Attach to a running container"),
    "checkpoint": ("containers", (), "Checkpoint one or more running containers"),
    "completion": ("completion", (), "Output shell completion code"),
    "config": ("config_cmd", (), "Get, set and list crictl configuration options"),
    "create": ("containers", (), "Create a new container"),
    "events": ("stats", ("event",), "Stream the events of containers"),
    "exec": ("streaming", (), "Run a command in a running container"),
    "imagefsinfo": ("images", (), "Return image filesystem info"),
    "images": ("images", ("image", "img"), "List images"),
    "info": ("runtime", (), "Display information of the container runtime"),
    "inspect": ("container_status", (), "Display the status of one or more containers"),
    "inspecti": ("images", (), "Return the status of one or more images"),
    "inspectp": ("pods", (), "Display the status of one or more pods"),
    "logs": ("logs", (), "Fetch the logs of a container"),
    "metricdescs": (
        "stats",
        (),
        "List metric descriptors. Returns information about the metrics available through the CRI.",
    ),
    "metricsp": (
        "stats",
        (),
        "List pod metrics. Metrics are unstructured key/value pairs gathered by CRI meant "
        "to replace cAdvisor's /metrics/cadvisor endpoint.",
    ),
    "pods": ("pods", (), "List pods"),
    "port-forward": ("streaming", (), "Forward local port to a pod"),
    "ps": ("container_status", (), "List containers"),
    "pull": ("images", (), "Pull an image from a registry"),
    "rm": ("containers", (), "Remove one or more containers"),
    "rmi": ("images", (), "Remove one or more images"),
    "rmp": ("pods", (), "Remove one or more pods"),
    "run": ("containers", (), "Run a new container inside a sandbox"),
    "runp": ("pods", (), "Run a new pod"),
    "runtime-config": ("runtime", (), "Retrieve the container runtime configuration"),
    "start": ("containers", (), "Start one or more created containers"),
    "stats": ("stats", (), "List container(s) resource usage statistics"),
    "statsp": (
        "stats",
        (),
        "List pod statistics. Stats represent a structured API that will fulfill the "
        "Kubelet's /stats/summary endpoint.",
    ),
    "stop": ("containers", (), "Stop one or more running containers"),
    "stopp": ("pods", (), "Stop one or more running pods"),
    "update": ("containers", (), "Update one or more running containers"),
    "update-runtime-config": ("runtime", (), "Update the runtime configuration"),
    "version": ("runtime", (), "Display runtime version information"),
}


def load_command(stub: cli.Command) -> cli.Command:
    """Import the module that defines `stub` and return its full command."""
    module = importlib.import_module(f"crictl.commands.{COMMAND_INDEX[stub.name][0]}")
    for command in module.COMMANDS:
        if command.name == stub.name:
            assert isinstance(command, cli.Command)
            return command
    raise LookupError(stub.name)


GLOBAL_FLAGS = [
    cli.Flag(
        "config",
        "string",
        "Location of the client config file. If not specified and the default does not "
        "exist, the program's directory is searched as well",
        ["c"],
        DEFAULT_CONFIG_PATH,
        ["CRI_CONFIG_FILE"],
        "config",
    ),
    cli.Flag(
        "runtime-endpoint",
        "string",
        "Endpoint of CRI container runtime service (default: uses in order the "
        f"first successful one of {go_list(DEFAULT_RUNTIME_ENDPOINTS)}). Default is now deprecated and the "
        "endpoint should be set instead.",
        ["r"],
        None,
        ["CONTAINER_RUNTIME_ENDPOINT"],
        "runtime_endpoint",
    ),
    cli.Flag(
        "image-endpoint",
        "string",
        "Endpoint of CRI image manager service (default: uses 'runtime-endpoint' setting)",
        ["i"],
        None,
        ["IMAGE_SERVICE_ENDPOINT"],
        "image_endpoint",
    ),
    cli.Flag(
        "timeout",
        "duration",
        "Timeout of connecting to the server in seconds (e.g. 2s, 20s.). 0 or less is set to default",
        ["t"],
        2.0,
        dest="timeout",
    ),
    cli.Flag("debug", "bool", "Enable debug mode", ["D"], dest="debug"),
    cli.Flag(
        "max-retries",
        "int",
        "Max retries for connecting to an explicitly set endpoint with exponential "
        "backoff (0 to disable, negative for infinite)",
        default=3,
        dest="max_retries",
    ),
    cli.Flag("enable-tracing", "bool", "Enable OpenTelemetry tracing.", dest="enable_tracing"),
    cli.Flag(
        "tracing-sampling-rate-per-million",
        "int",
        "Number of samples to collect per million OpenTelemetry spans. Set to 1000000 or -1 to always sample.",
        default=-1,
        dest="tracing_sampling_rate",
    ),
    cli.Flag(
        "tracing-endpoint",
        "string",
        "Address to which the gRPC tracing collector will send spans to.",
        default="127.0.0.1:4317",
        dest="tracing_endpoint",
    ),
    cli.Flag("profile-cpu", "string", "Write a pprof CPU profile to the provided path.", dest="profile_cpu"),
    cli.Flag("profile-mem", "string", "Write a pprof memory profile to the provided path.", dest="profile_mem"),
]


def _before(root: cli.Context) -> None:
    """Upstream's app.Before: read the config file, resolve settings, start tracing."""
    from crictl.cmdutil import AppContext

    values, is_set = root.values, root.is_set
    flags = FlagValues(
        config=values["config"],
        runtime_endpoint=values["runtime_endpoint"] if is_set("runtime_endpoint") else None,
        image_endpoint=values["image_endpoint"] if is_set("image_endpoint") else None,
        timeout=values["timeout"] if is_set("timeout") else None,
        debug=values["debug"] if is_set("debug") else None,
        max_retries=values["max_retries"] if is_set("max_retries") else None,
    )
    command = root.args[0] if root.args else None
    file_config = load_file_config(values["config"], is_set("config"), command, os.path.abspath(sys.argv[0]))
    settings = resolve(flags, file_config)
    log.set_debug(settings.debug)
    app = AppContext(settings)
    root.obj = app
    root.call_on_close(app.clients.close)
    if is_set("enable_tracing"):
        from crictl import tracing

        rate, endpoint = values["tracing_sampling_rate"], values["tracing_endpoint"]
        app.tracer = tracing.start(endpoint, rate, command or "crictl", settings.timeout)


def build_app() -> cli.App:
    stubs = [cli.Command(name, usage, aliases=list(aliases)) for name, (_, aliases, usage) in COMMAND_INDEX.items()]
    return cli.App("crictl", "client for CRI", VERSION, GLOBAL_FLAGS, stubs, load_command, _before)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    from crictl import interrupt

    interrupt.install()
    error: str | None = None
    try:
        code = build_app().run(args)
    except cli.UsageError as exc:
        error = str(exc)
        log.error(error)
        code = 1
    except cli.Exit as exc:
        if exc.message:
            error = exc.message
            sys.stderr.write(exc.message + "\n")
        code = exc.code
    except CliError as exc:
        if exc.message:
            error = exc.message
            log.error(exc.message)
        code = exc.exit_code
    except interrupt.Interrupted as exc:
        if "crictl.tracing" in sys.modules:
            from crictl import tracing

            tracing.finish_active("interrupted")
        interrupt.die_by_signal(exc.signum)
        code = 128 + exc.signum
    except BrokenPipeError:
        code = 1
    except OSError as exc:
        log.error(str(exc))
        code = 1
    except Exception as exc:  # never a traceback: one line naming the failure
        log.error(f"{type(exc).__name__}: {exc}")
        code = 1
    if "crictl.tracing" in sys.modules:
        from crictl import tracing

        tracing.finish_active(error)
    _finish(code, fast=argv is None)


def _finish(code: int, fast: bool) -> None:
    """Flush and exit. As a program (not called with argv, e.g. from tests) skip interpreter
    finalization: tearing down grpc's modules and threads costs ~25 ms and nothing is left to do."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = code or 1
    with contextlib.suppress(BrokenPipeError):
        sys.stderr.flush()
    if fast:
        os._exit(code)
    sys.exit(code)
