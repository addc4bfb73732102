"""A command-line framework that behaves like urfave/cli v2, the one upstream crictl is built on.

Why not click or argparse: scripts grep crictl's help and rely on its exit codes, and neither
library can be bent into urfave's behaviour (Go `flag` parsing that stops at the first argument,
`-flag` and `--flag` alike, `-abc` split into short bools, an implicit `help, h` subcommand on
every command, help rendered through Go's text/tabwriter, `Incorrect Usage:` plus help on
stdout). The rules below follow urfave/cli v2.27 (command.go, help.go, template.go, flag*.go)
and Go's flag package; upstream's recorded output in tests/golden/crictl is the check.

Commands are declared with click-like decorators (`command`, `option`, `argument`,
`pass_context`) so each command module reads as before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from cri_runtime import gotabwriter

F = TypeVar("F", bound=Callable[..., Any])

HELP_USAGE = "Shows a list of commands or help for one command"


class UsageError(Exception):
    """A flag the command line got wrong: urfave prints `Incorrect Usage:` and the help, exit 1."""


class Exit(Exception):
    """End the program with `code`; `message` (if any) goes to stderr as is (urfave's cli.Exit)."""

    def __init__(self, code: int = 0, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ShowSubcommandHelp(Exception):
    """Raised by an action whose arguments don't fit: print the command's help, exit 0."""


# ---------------------------------------------------------------------------------------------
# Flags


def go_quote(text: str) -> str:
    """Go's %q for the printable strings flags have (json is imported only when one is quoted)."""
    import json

    return json.dumps(text, ensure_ascii=False)


def go_duration(seconds: float) -> str:
    """time.Duration.String."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    nanos = round(abs(seconds) * 1e9)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + f"{nanos / size:.9f}".rstrip("0").rstrip(".") + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".")
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + secs + "s"


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_go_bool(text: str) -> bool:
    """strconv.ParseBool."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("parse error")


def parse_go_int(text: str) -> int:
    """strconv.ParseInt(s, 0, 64): decimal, 0x/0o/0b prefixes, underscores only with a prefix."""
    body = text.lstrip("+-")
    if not body or (("_" in body) and body[:2].lower() not in ("0x", "0o", "0b")):
        raise ValueError("parse error")
    try:
        value = int(text, 0) if not (body[0] == "0" and body[1:2].isdigit()) else int(text, 8)
    except ValueError:
        raise ValueError("parse error") from None
    if not -(2**63) <= value < 2**63:
        raise ValueError("parse error")
    return value


def _parse_duration(text: str) -> float:
    from crictl.timeparse import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError("parse error") from None


class Flag:
    """One urfave flag. `kind`: bool, string, int, uint, float, duration or slice.

    This module's classes are plain classes, not dataclasses: importing dataclasses (and the
    inspect module it needs) cost about a tenth of crictl's start-up.
    """

    def __init__(self, name: str, kind: str, usage: str = "", aliases: list[str] | None = None,
                 default: Any = None, envvars: list[str] | None = None, dest: str = "",
                 default_text: str | None = None, hidden: bool = False, takes_file: bool = False) -> None:  # fmt: skip
        self.name = name
        self.kind = kind
        self.usage = usage
        self.aliases = aliases if aliases is not None else []
        self.default = default
        self.envvars = envvars if envvars is not None else []
        self.dest = dest
        self.default_text = default_text
        self.hidden = hidden
        self.takes_file = takes_file  # shells complete file names for it

    def __repr__(self) -> str:
        return f"Flag({self.name!r}, {self.kind!r})"

    def names(self) -> list[str]:
        return [self.name, *self.aliases]

    def takes_value(self) -> bool:
        return self.kind != "bool"

    def initial(self) -> Any:
        if self.kind == "slice":
            return list(self.default or [])
        if self.default is not None:
            return self.default
        return {"bool": False, "string": "", "int": 0, "uint": 0, "float": 0.0, "duration": 0.0}[self.kind]

    def convert(self, text: str) -> Any:
        """The value of `text` for this flag; ValueError("parse error") as Go's flag package says."""
        if self.kind == "bool":
            return parse_go_bool(text)
        if self.kind in ("int", "uint"):
            value = parse_go_int(text)
            if self.kind == "uint" and value < 0:
                raise ValueError("parse error")
            return value
        if self.kind == "float":
            try:
                return float(text)
            except ValueError:
                raise ValueError("parse error") from None
        if self.kind == "duration":
            return _parse_duration(text)
        return text

    def default_string(self) -> str:
        """GetDefaultText: what `(default: …)` shows, or "" for nothing."""
        if self.default_text is not None:
            return self.default_text
        value = self.initial()
        if self.kind == "bool":
            return "true" if value else "false"
        if self.kind == "string":
            return go_quote(value) if value else ""
        if self.kind == "duration":
            return go_duration(value)
        if self.kind == "slice":
            return ", ".join(go_quote(v) for v in value)
        if self.kind == "float":
            return f"{value:g}"
        return str(value)

    def help_line(self) -> str:
        """urfave's stringifyFlag: names, a tab, usage with default, env hint."""
        placeholder, usage = _unquote_usage(self.usage)
        if self.takes_value() and not placeholder:
            placeholder = "value"
        default = self.default_string()
        text = (usage + (f" (default: {default})" if default else "")).strip()
        names = ", ".join(("-" if len(n) == 1 else "--") + n + (f" {placeholder}" if placeholder else "")
                          for n in self.names())  # fmt: skip
        if self.kind == "slice":
            names = f"{names} [ {names} ]"
        line = f"{names}\t{text}"
        if self.envvars:
            line += " [" + ", ".join("$" + e for e in self.envvars) + "]"
        return line


def _unquote_usage(usage: str) -> tuple[str, str]:
    start = usage.find("`")
    if start >= 0:
        end = usage.find("`", start + 1)
        if end >= 0:
            name = usage[start + 1 : end]
            return name, usage[:start] + name + usage[end + 1 :]
    return "", usage


HELP_FLAG = Flag("help", "bool", "show help", ["h"], dest="help", default_text="")
VERSION_FLAG = Flag("version", "bool", "print the version", ["v"], dest="version", default_text="")


# ---------------------------------------------------------------------------------------------
# Commands


class Command:
    def __init__(self, name: str, usage: str = "", action: Callable[..., Any] | None = None,
                 aliases: list[str] | None = None, args_usage: str = "", usage_text: str = "",
                 description: str = "", flags: list[Flag] | None = None, subcommands: list[Command] | None = None,
                 short_options: bool = False, sort_flags: bool = True, hidden: bool = False,
                 arg_name: str | None = None, pass_ctx: bool = False) -> None:  # fmt: skip
        self.name = name
        self.usage = usage
        self.action = action
        self.aliases = aliases if aliases is not None else []
        self.args_usage = args_usage
        self.usage_text = usage_text
        self.description = description
        self.flags = flags if flags is not None else []
        self.subcommands = subcommands if subcommands is not None else []
        self.short_options = short_options
        self.sort_flags = sort_flags
        self.hidden = hidden
        self.arg_name = arg_name  # the keyword argument that receives the positional arguments
        self.pass_ctx = pass_ctx

    def __repr__(self) -> str:
        return f"Command({self.name!r})"

    def names(self) -> list[str]:
        return [self.name, *self.aliases]

    def visible_flags(self) -> list[Flag]:
        flags = sorted(self.flags, key=lambda f: f.name) if self.sort_flags else list(self.flags)
        return [f for f in flags if not f.hidden] + [HELP_FLAG]

    def find(self, name: str) -> Command | None:
        for sub in self.subcommands:
            if name in sub.names():
                return sub
        return None


HELP_COMMAND = Command("help", HELP_USAGE, aliases=["h"], args_usage="[command]")


class Context:
    """One command's parsed flags and arguments, linked to its parent's (urfave's cli.Context)."""

    def __init__(self, command: Command, parent: Context | None, help_name: str) -> None:
        self.command = command
        self.parent = parent
        self.help_name = help_name
        self.values: dict[str, Any] = {}
        self.set_names: set[str] = set()
        self.args: list[str] = []
        self.obj: Any = None
        self.app: App | None = None  # set on the root context
        self._close: list[Callable[[], None]] = []

    def find_root(self) -> Context:
        ctx = self
        while ctx.parent is not None:
            ctx = ctx.parent
        return ctx

    def is_set(self, dest: str) -> bool:
        return dest in self.set_names

    def call_on_close(self, func: Callable[[], None]) -> None:
        self._close.append(func)

    def close(self) -> None:
        for func in reversed(self._close):
            func()
        self._close.clear()

    def get_help(self) -> str:
        """The command's help as ShowSubcommandHelp prints it."""
        return render_subcommand_help(self.command, self.help_name, with_help_command=True)


_CURRENT: list[Context] = []


def get_current_context() -> Context:
    return _CURRENT[-1]


# ---------------------------------------------------------------------------------------------
# Go's flag package, with urfave's short-option splitting


class _FlagError(Exception):
    pass


def _parse_flags(ctx: Context, flags: Sequence[Flag], args: list[str], short_options: bool) -> list[str]:
    """Set ctx.values from `args`; return the arguments after the flags."""
    lookup = {n: f for f in flags for n in f.names()}
    for flag in flags:
        ctx.values[flag.dest] = flag.initial()
        for env in flag.envvars:
            raw = os.environ.get(env, "")
            if raw:
                try:
                    ctx.values[flag.dest] = flag.convert(raw) if flag.kind != "slice" else raw.split(",")
                except ValueError as exc:
                    raise UsageError(
                        f'could not parse "{raw}" as {flag.kind} value from env {env} for flag {flag.name}: {exc}'
                    ) from None
                ctx.set_names.add(flag.dest)
                break
    from_env = set(ctx.set_names)
    rest = list(args)
    while True:
        try:
            return _parse_go(ctx, lookup, rest, from_env)
        except _FlagError as exc:
            message = str(exc)
            prefix = "flag provided but not defined: -"
            if not short_options or not message.startswith(prefix):
                raise UsageError(message) from None
            bad = message[len(prefix) :]
            for i, arg in enumerate(rest):
                if arg.lstrip("-") != bad:
                    continue
                if (
                    arg.startswith("-")
                    and not arg.startswith("--")
                    and len(arg) > 2
                    and all(c in lookup for c in arg[1:])
                ):
                    rest = [f"-{c}" for c in arg[1:]] + rest[i + 1 :]
                    break
                raise UsageError(message) from None
            else:
                raise UsageError(message) from None


def _parse_go(ctx: Context, lookup: dict[str, Flag], args: list[str], from_env: set[str]) -> list[str]:
    i = 0
    while i < len(args):
        arg = args[i]
        if len(arg) < 2 or arg[0] != "-":
            break
        minuses = 2 if arg[1] == "-" else 1
        if minuses == 2 and len(arg) == 2:
            return args[i + 1 :]
        name = arg[minuses:]
        if not name or name[0] in "-=":
            raise _FlagError(f"bad flag syntax: {arg}")
        value: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        flag = lookup.get(name)
        if flag is None:
            raise _FlagError(f"flag provided but not defined: -{name}")
        i += 1
        if flag.kind == "bool":
            if value is None:
                parsed: Any = True
            else:
                try:
                    parsed = parse_go_bool(value)
                except ValueError:
                    raise _FlagError(f'invalid boolean value "{value}" for -{name}: parse error') from None
        else:
            if value is None:
                if i >= len(args):
                    raise _FlagError(f"flag needs an argument: -{name}")
                value = args[i]
                i += 1
            try:
                parsed = flag.convert(value)
            except ValueError as exc:
                raise _FlagError(f'invalid value "{value}" for flag -{name}: {exc}') from None
        if flag.kind == "slice":
            current = [] if flag.dest in from_env or flag.dest not in ctx.set_names else ctx.values[flag.dest]
            from_env.discard(flag.dest)
            ctx.values[flag.dest] = [*current, *parsed.split(",")]
        else:
            ctx.values[flag.dest] = parsed
        ctx.set_names.add(flag.dest)
    return args[i:]


# ---------------------------------------------------------------------------------------------
# Help: urfave's templates through Go's text/tabwriter(minwidth 1, tabwidth 8, padding 2, ' ')

_HELP_TABS = gotabwriter.TabStyle(1, 8, 2, " ")


def tabwrite(text: str) -> str:
    return gotabwriter.tabwrite(text, _HELP_TABS)


def _wrap(text: str, offset: int) -> str:
    pad = " " * offset
    return "\n".join(line if i == 0 or not line else pad + line for i, line in enumerate(text.split("\n")))


def _commands_section(commands: Iterable[Command]) -> str:
    visible = [c for c in commands if not c.hidden]
    width = max((len(", ".join(c.names())) for c in visible), default=0) + 5
    out = ""
    for cmd in visible:
        names = ", ".join(cmd.names())
        out += "\n   " + names + " " * (width - len(names) - 3) + _wrap(cmd.usage, width)
    return out


def _flags_section(flags: Iterable[Flag]) -> str:
    return "".join("\n   " + _wrap(f.help_line(), 6) for f in flags)


def _name_line(command: Command, help_name: str) -> str:
    return _wrap(help_name, 3) + (f" - {_wrap(command.usage, len(help_name) + 6)}" if command.usage else "")


def _usage_line(command: Command, help_name: str) -> str:
    if command.usage_text:
        return _wrap(command.usage_text, 3)
    out = help_name + " [command options]"
    return out + (f" {command.args_usage}" if command.args_usage else "")


def render_command_help(command: Command, help_name: str) -> str:
    """CommandHelpTemplate."""
    text = f"NAME:\n   {_name_line(command, help_name)}\n\nUSAGE:\n   {_usage_line(command, help_name)}"
    if command.description:
        text += f"\n\nDESCRIPTION:\n   {_wrap(command.description, 3)}"
    text += "\n\nOPTIONS:" + _flags_section(command.visible_flags()) + "\n"
    return tabwrite(text)


def render_subcommand_help(command: Command, help_name: str, with_help_command: bool) -> str:
    """SubcommandHelpTemplate; the command's subcommands end with the implicit `help, h`."""
    text = f"NAME:\n   {_name_line(command, help_name)}\n\nUSAGE:\n   {_usage_line(command, help_name)}"
    if command.description:
        text += f"\n\nDESCRIPTION:\n   {_wrap(command.description, 3)}"
    subs = [*command.subcommands, HELP_COMMAND] if with_help_command else command.subcommands
    if subs:
        text += "\n\nCOMMANDS:" + _commands_section(subs)
    text += "\n\nOPTIONS:" + _flags_section(command.visible_flags()) + "\n"
    return tabwrite(text)


def render_help_topic(command: Command, help_name: str) -> str:
    """ShowCommandHelp: the subcommand layout only for commands that have subcommands of their own."""
    if command.subcommands:
        return render_subcommand_help(command, help_name, with_help_command=True)
    return render_command_help(command, help_name)


# ---------------------------------------------------------------------------------------------
# Running


class App:
    """The root: global flags, the command table and the hooks main.py fills in."""

    def __init__(self, name: str, usage: str, version: str, flags: list[Flag], commands: list[Command],
                 load: Callable[[Command], Command],
                 before: Callable[[Context], None] | None = None) -> None:  # fmt: skip
        self.name = name
        self.usage = usage
        self.version = version
        self.flags = flags
        self.commands = commands  # the table; a command's flags and action may load on demand
        self.load = load
        self.before = before

    def render_help(self) -> str:
        flags = [*sorted((f for f in self.flags if not f.hidden), key=lambda f: f.name), HELP_FLAG, VERSION_FLAG]
        text = (
            f"NAME:\n   {self.name} - {self.usage}\n\nUSAGE:\n   {self.name} [global options] command [command options]"
        )
        text += f"\n\nVERSION:\n   {self.version}"
        text += "\n\nCOMMANDS:" + _commands_section([*sorted(self.commands, key=lambda c: c.name), HELP_COMMAND])
        text += "\n\nGLOBAL OPTIONS:" + _flags_section(flags) + "\n"
        return tabwrite(text)

    def find(self, name: str) -> Command | None:
        for cmd in self.commands:
            if name in cmd.names():
                return cmd
        return None

    def run(self, args: list[str]) -> int:
        """Run one command line; returns the exit code (errors from actions propagate)."""
        root = Context(Command(self.name, self.usage), None, self.name)
        root.app = self
        _CURRENT.append(root)
        try:
            try:
                rest = _parse_flags(root, [*self.flags, HELP_FLAG, VERSION_FLAG], args, short_options=False)
            except UsageError as exc:
                out(f"Incorrect Usage: {exc}\n\n")
                out(self.render_help())
                raise
            if root.values["help"]:
                return self._help_topic(root, rest)
            if root.values["version"]:
                out(f"{self.name} version {self.version}\n")
                return 0
            root.args = rest
            if self.before is not None:
                self.before(root)
            if rest and rest[0] in ("help", "h"):
                return self._help_topic(root, _help_command_args(root, rest[1:]))
            command = self.find(rest[0]) if rest else None
            if command is None:
                return self._help_topic(root, rest)
            return self._run_command(self.load(command), root, rest[1:], f"{self.name} {command.name}")
        finally:
            _CURRENT.remove(root)
            root.close()

    def _help_topic(self, root: Context, args: list[str]) -> int:
        if not args:
            out(self.render_help())
            return 0
        command = self.find(args[0])
        if command is None:
            raise Exit(3, f"No help topic for '{args[0]}'")
        out(render_help_topic(self.load(command), f"{self.name} {command.name}"))
        return 0

    def _run_command(self, command: Command, parent: Context, args: list[str], help_name: str) -> int:
        ctx = Context(command, parent, help_name)
        _CURRENT.append(ctx)
        try:
            try:
                rest = _parse_flags(ctx, [*command.flags, HELP_FLAG], args, command.short_options)
            except UsageError as exc:
                out(f"Incorrect Usage: {exc}\n\n")
                out(render_subcommand_help(command, help_name, with_help_command=True))
                raise
            ctx.args = rest
            if ctx.values.pop("help"):
                return self._command_help(ctx, rest)
            if rest:
                if rest[0] in ("help", "h"):
                    return self._command_help(ctx, _help_command_args(ctx, rest[1:]))
                sub = command.find(rest[0])
                if sub is not None:
                    return self._run_command(sub, ctx, rest[1:], f"{help_name} {sub.name}")
            if command.action is None:
                out(ctx.get_help())
                return 0
            try:
                kwargs = dict(ctx.values)
                if command.arg_name:
                    kwargs[command.arg_name] = tuple(rest)
                result = command.action(ctx, **kwargs) if command.pass_ctx else command.action(**kwargs)
            except ShowSubcommandHelp:
                out(ctx.get_help())
                return 0
            return result if isinstance(result, int) else 0
        finally:
            _CURRENT.remove(ctx)

    def _command_help(self, ctx: Context, args: list[str]) -> int:
        command = ctx.command
        if args:
            sub = command.find(args[0])
            if sub is None:
                raise Exit(3, f"No help topic for '{args[0]}'")
            out(render_help_topic(sub, f"{ctx.help_name} {sub.name}"))
            return 0
        if command.subcommands:
            out(ctx.get_help())
        else:
            out(render_command_help(command, ctx.help_name))
        return 0


def _help_command_args(parent: Context, args: list[str]) -> list[str]:
    """The implicit `help` subcommand's own flag parsing (its only flag is --help itself)."""
    ctx = Context(HELP_COMMAND, parent, f"{parent.help_name} help")
    return _parse_flags(ctx, [HELP_FLAG], args, short_options=False)


def out(text: str) -> None:
    sys.stdout.write(text)


def echo(text: str) -> None:
    sys.stdout.write(text + "\n")


# ---------------------------------------------------------------------------------------------
# Declaring commands


def option(
    *decls: str,
    default: Any = None,
    help: str = "",
    type: Any = None,
    is_flag: bool = False,
    multiple: bool = False,
    envvar: str | list[str] | None = None,
    default_text: str | None = None,
    hidden: bool = False,
    name: str | None = None,
    takes_file: bool = False,
) -> Callable[[F], F]:
    """Declare a flag (click-like). Names: the first long one (or `name`) leads, the others are
    aliases in the given order; the keyword argument is the first long name with underscores."""
    dashed = [d for d in decls if d.startswith("-")]
    idents = [d for d in decls if not d.startswith("-")]
    longs = [d[2:] for d in dashed if d.startswith("--")]
    primary = name or (longs[0] if longs else dashed[0].lstrip("-"))
    aliases = [d.lstrip("-") for d in dashed if d.lstrip("-") != primary]
    dest = idents[0] if idents else primary.replace("-", "_")
    if is_flag:
        kind = "bool"
    elif multiple:
        kind = "slice"
    elif type is int:
        kind = "int"
    elif type is float:
        kind = "float"
    elif type == "uint":
        kind = "uint"
    elif type == "duration":
        kind = "duration"
    else:
        kind = "string"
    if kind == "duration" and isinstance(default, str):
        default = _parse_duration(default)
    envvars = [envvar] if isinstance(envvar, str) else list(envvar or [])
    flag = Flag(primary, kind, help, aliases, default, envvars, dest, default_text, hidden, takes_file)

    def wrap(func: F) -> F:
        pending: list[Flag] = func.__dict__.setdefault("__cli_flags__", [])
        pending.insert(0, flag)
        return func

    return wrap


def argument(name: str, nargs: int = -1) -> Callable[[F], F]:
    """Name the keyword argument that receives the positional arguments (always all of them)."""

    def wrap(func: F) -> F:
        func.__dict__["__cli_arg__"] = name
        return func

    return wrap


def pass_context(func: F) -> F:
    func.__dict__["__cli_ctx__"] = True
    return func


def command(
    name: str,
    help: str = "",
    *,
    aliases: Sequence[str] = (),
    args_usage: str = "",
    usage_text: str = "",
    description: str = "",
    short_options: bool = False,
    sort_flags: bool = True,
    subcommands: Sequence[Command] = (),
) -> Callable[[Callable[..., Any]], Command]:
    def wrap(func: Callable[..., Any]) -> Command:
        return Command(
            name=name,
            usage=help,
            action=func,
            aliases=list(aliases),
            args_usage=args_usage or (func.__doc__ or "").strip(),  # the docstring says which arguments
            usage_text=usage_text,
            description=description,
            flags=list(func.__dict__.get("__cli_flags__", [])),
            subcommands=list(subcommands),
            short_options=short_options,
            sort_flags=sort_flags,
            arg_name=func.__dict__.get("__cli_arg__"),
            pass_ctx=bool(func.__dict__.get("__cli_ctx__", False)),
        )

    return wrap
