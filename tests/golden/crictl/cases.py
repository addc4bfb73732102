"""The command lines whose upstream output is recorded in `upstream.json` (see `record.py`).

Each case runs with an empty config file (`CRI_CONFIG_FILE`), cwd `/`, and the empty CRI endpoint
of `fake_cri.py` (or, if `unreachable`, one nobody listens on), so nothing depends on the machine.
`compare` says what a test holds ours to: `all` (stdout, stderr lines without the timestamp, exit
code), `stdout` (stdout and exit code) or `rc` (exit code only: the message names Go or
grpc-go internals we do not copy).
Config cases start from `config` (None: no file) and also record the file afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

ENDPOINT = "unix:///nonexistent/crictl-golden.sock"
TRUNCATED_HELP = (
    "upstream's `crictl help CMD` for a command with subcommands stops after USAGE (its help template fails "
    "on the command's uninitialised categories); ours prints the whole help, as `CMD --help` does"
)

COMMANDS = [
    "attach", "checkpoint", "completion", "config", "create", "events", "exec", "imagefsinfo", "images",
    "info", "inspect", "inspecti", "inspectp", "logs", "metricdescs", "metricsp", "pods", "port-forward",
    "ps", "pull", "rm", "rmi", "rmp", "run", "runp", "runtime-config", "start", "stats", "statsp", "stop",
    "stopp", "update", "update-runtime-config", "version",
]  # fmt: skip
ALIASES = ["event", "image", "img", "h"]


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    compare: str = "all"
    config: str | None = ""  # initial config file text; None: the file does not exist
    stdin: str = ""
    unreachable: bool = False  # run against an endpoint nobody listens on
    # A deliberate difference: ours must print what upstream prints for the case named here.
    same_as: str = ""
    deviation: str = ""


def _cases() -> list[Case]:
    cases = [
        Case("root-help-long", ("--help",)),
        Case("root-help-short", ("-h",)),
        Case("root-help-command", ("help",)),
        Case("root-help-h", ("h",)),
        Case("root-no-args", ()),
        Case("root-unknown-flag", ("--invalid",)),
        Case("root-unknown-short-flag", ("-z",)),
        Case("root-unknown-command", ("nosuch",)),
        Case("root-help-unknown-topic", ("help", "nosuch")),
        Case("root-flag-missing-value", ("--timeout",)),
        Case("root-bad-duration", ("--timeout", "xyz", "ps")),
        Case("root-bad-int", ("--max-retries", "x", "ps")),
        Case("version-flag", ("--version",), compare="rc"),
    ]
    with_subcommands = ("create", "pull", "run", "runp")
    for cmd in COMMANDS:
        cases.append(Case(f"{cmd}-help", (cmd, "--help")))
        cases.append(Case(f"{cmd}-h", (cmd, "-h")))
        if cmd in with_subcommands:
            cases.append(Case(f"help-{cmd}", ("help", cmd), same_as=f"{cmd}-help", deviation=TRUNCATED_HELP))
        else:
            cases.append(Case(f"help-{cmd}", ("help", cmd)))
        cases.append(Case(f"{cmd}-unknown-flag", (cmd, "--invalid")))
    for alias in ALIASES:
        cases.append(Case(f"{alias}-alias-help", (alias, "--help")))
    for sub in ("pull", "runp", "create"):
        cases.append(Case(f"{sub}-jsonschema-help", (sub, "jsonschema", "--help")))
        cases.append(Case(f"{sub}-js-help", (sub, "js", "--help")))
        cases.append(Case(f"{sub}-help-jsonschema", (sub, "help", "jsonschema")))
        cases.append(Case(f"{sub}-jsonschema-extra", (sub, "jsonschema", "extra")))
    cases += [
        Case("pull-jsonschema", ("pull", "jsonschema")),
        Case("runp-jsonschema", ("runp", "jsonschema")),
        Case("runp-js", ("runp", "js")),
        Case("create-jsonschema-none", ("create", "jsonschema")),
        Case("create-jsonschema-pod", ("create", "jsonschema", "--pod")),
        Case("create-jsonschema-container", ("create", "jsonschema", "-c")),
        Case("create-jsonschema-both", ("create", "jsonschema", "-pc")),
    ]
    # Argument counts: no arguments, and more than any command takes.
    streams = {"events"}  # runs until interrupted
    concurrent = {"rm", "rmi", "rmp", "start", "stop", "stopp", "inspect", "inspecti", "update"}  # error order varies
    for cmd in COMMANDS:
        if cmd not in ("config", *streams):
            cases.append(Case(f"{cmd}-no-args", (cmd,)))
        compare = "stdout" if cmd in concurrent else "all"
        cases.append(Case(f"{cmd}-extra-args", (cmd, "a1", "a2", "a3", "a4"), compare=compare))
        cases.append(Case(f"{cmd}-unreachable", (cmd, "x"), compare="rc", unreachable=True))
    cases += [
        Case("rm-all-and-ids", ("rm", "-a", "abc")),
        Case("rmp-all-and-ids", ("rmp", "-a", "abc")),
        Case("rmi-all-and-ids", ("rmi", "-a", "abc")),
        Case("rmi-prune-and-ids", ("rmi", "--prune", "abc")),
        Case("create-no-pull-with-pull", ("create", "--no-pull", "--with-pull", "p", "c.json", "p.json")),
        Case("logs-tail-bad", ("logs", "--tail", "x", "abc")),
        Case("logs-since-bad", ("logs", "--since", "nonsense", "abc"), compare="rc"),
        Case("completion-bash", ("completion", "bash")),
        Case("completion-zsh", ("completion", "zsh")),
        Case("completion-fish", ("completion", "fish")),
        Case("completion-other", ("completion", "tcsh")),
        Case("ps-bad-output", ("ps", "-o", "xml")),
        Case("rm-all-empty", ("rm", "-a")),
        Case("ps-short-combined", ("ps", "-aq")),
        Case("pods-short-combined", ("pods", "-qv")),
        Case("images-short-combined", ("images", "-qv")),
        Case("rmp-short-combined", ("rmp", "-fa")),
        Case("stop-short-not-combinable", ("stop", "-at", "5")),
        Case("start-short-not-split", ("start", "-xy")),
        Case("logs-short-combined-unknown", ("logs", "-fz", "abc")),
        Case("rmp-all-empty", ("rmp", "-a")),
        Case("rmi-all-empty", ("rmi", "-a")),
        Case("rmi-prune-empty", ("rmi", "--prune")),
        Case("stop-missing", ("stop", "abc"), compare="rc"),
        Case("ps-table", ("ps", "-a")),
        Case("ps-quiet", ("ps", "-q")),
        Case("ps-json", ("ps", "-o", "json")),
        Case("pods-table", ("pods",)),
        Case("images-table", ("images",)),
        Case("images-digests", ("images", "--digests")),
        Case("version", ("version",)),
        Case("info-quiet", ("info", "-q")),
        Case("stats-table", ("stats",)),
        Case("statsp-table", ("statsp",)),
        Case("stats-watch-and-ids", ("stats", "a", "b")),
        Case("exec-missing-cmd", ("exec", "abc")),
        Case("exec-sync-and-tty", ("exec", "-s", "-t", "abc", "ls")),
        Case("port-forward-one-arg", ("port-forward", "abc")),
        Case("update-no-ids", ("update", "--cpu-share", "2")),
        Case("interspersed-flag-after-arg", ("inspect", "abc", "-o", "yaml"), compare="rc"),
        Case("double-dash", ("--", "ps"), compare="rc"),
        Case("bool-flag-value", ("ps", "-a=false", "--invalid")),
        Case("flag-equals-syntax", ("--timeout=xyz", "ps")),
        Case("single-dash-long", ("-debug", "nosuch")),
    ]
    cases += _config_cases()
    return cases


COMMENTED = """\
# crictl configuration
runtime-endpoint: unix:///run/containerd/containerd.sock  # the runtime
image-endpoint: "unix:///run/containerd/containerd.sock"

# a timeout in seconds
timeout: 10
debug: false # quiet
"""

DUPLICATES = """\
debug: true
timeout: 3
debug: false # second one wins on read
"""

HEADER_GAP = """\
# managed by hand

runtime-endpoint: unix:///x.sock # inline
# about debug
debug: false
"""

ORDERED = """\
max-retries: 5
pull-image-on-create: true
runtime-endpoint: 'unix:///a.sock'
"""


def _config_cases() -> list[Case]:
    c = "{config}"
    return [
        Case("config-set-new-file", ("-c", c, "config", "--set", "debug=true"), config=None),
        Case("config-set-empty-file", ("-c", c, "config", "--set", "timeout=5")),
        Case("config-set-commented", ("-c", c, "config", "--set", "timeout=5,debug=true"), config=COMMENTED),
        Case(
            "config-set-repeated",
            ("-c", c, "config", "--set", "debug=true", "--set", "image-endpoint=unix:///i"),
            config=COMMENTED,
        ),
        Case(
            "config-set-endpoint-quoted",
            ("-c", c, "config", "--set", "image-endpoint=unix:///b.sock"),
            config=COMMENTED,
        ),
        Case("config-set-duplicates", ("-c", c, "config", "--set", "debug=true"), config=DUPLICATES),
        Case("config-get-duplicates", ("-c", c, "config", "--get", "debug"), config=DUPLICATES),
        Case("config-get-timeout", ("-c", c, "config", "--get", "timeout"), config=COMMENTED),
        Case("config-get-missing", ("-c", c, "config", "--get", "runtime-endpoint"), config=ORDERED),
        Case("config-get-unknown", ("-c", c, "config", "--get", "nosuch"), config=ORDERED),
        Case("config-set-ordered", ("-c", c, "config", "--set", "runtime-endpoint=unix:///b.sock"), config=ORDERED),
        Case("config-positional", ("-c", c, "config", "debug", "true"), config=ORDERED),
        Case("config-positional-key-only", ("-c", c, "config", "timeout"), config=ORDERED),
        Case("config-list", ("-c", c, "config", "--list"), config=COMMENTED),
        Case("config-no-args", ("-c", c, "config"), config=ORDERED),
        Case("config-set-bad-pair", ("-c", c, "config", "--set", "debug"), config=ORDERED),
        Case("config-set-bad-bool", ("-c", c, "config", "--set", "debug=maybe"), config=ORDERED),
        Case("config-set-bad-int", ("-c", c, "config", "--set", "timeout=soon"), config=ORDERED),
        Case("config-set-unknown-key", ("-c", c, "config", "--set", "colour=blue"), config=ORDERED),
        Case("config-file-unknown-key", ("-c", c, "config", "--list"), config="colour: blue\n"),
        # The parser's own message differs (Go yaml.v3 and ruamel.yaml word it differently).
        Case("config-file-bad-yaml", ("-c", c, "config", "--list"), config="debug: [\n", compare="stdout"),
        Case("config-set-header-gap", ("-c", c, "config", "--set", "debug=true"), config=HEADER_GAP),
        Case("config-set-only-comments", ("-c", c, "config", "--set", "debug=true"), config="# nothing yet\n"),
        Case("config-default-unreadable-ignored", ("config", "--list"), config="colour: blue\n"),
        Case("config-flag-missing-file", ("-c", "/nonexistent/crictl.yaml", "ps"), config=None, compare="rc"),
    ]


CASES = _cases()
