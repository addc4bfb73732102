"""Go's text/template, the subset crictl's `-o go-template` and CNI config templates use.

The one template engine of the project: crictl renders decoded JSON with it, the runtime renders
its CNI config template (containerd's `conf_template`) with it. It imports only the standard
library, so either side can use it without pulling the other's dependencies. Errors are worded
like Go's; `name` is the template name they carry (crictl's is tmplExecuteRawJSON).

Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming, field chains (`.a.b`, `$x.a`),
`$`, variables (`$x := ...`, `range $i, $e := ...`), pipelines with `|`, parenthesised
pipelines, string/number/bool/nil literals, `if`/`else if`/`else`/`with`/`range`/`end`, and the
functions and, or, not, len, index, print, printf, println, eq, ne, lt, le, gt, ge, json, title,
lower, upper. Missing map keys are errors (crictl sets missingkey=error; containerd's template
data is a struct, where an unknown field is an error too). Anything else is a clear
TemplateError rather than silently wrong output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NAME = "tmplExecuteRawJSON"


class TemplateError(Exception):
    """Parse or execution failure, worded like Go's template errors."""


# ---------------------------------------------------------------- lexing / parsing


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    pipe: _Pipe


@dataclass
class _Pipe:
    decl: list[str]
    cmds: list[list[Any]]
    is_assign: bool = False


@dataclass
class _Field:
    base: str  # "." | "$" | "$name" | "()" for a parenthesised pipeline
    chain: list[str]
    sub: _Pipe | None = None


@dataclass
class _Ident:
    name: str


@dataclass
class _Literal:
    value: Any


@dataclass
class _Block:
    kind: str  # if | with | range
    pipe: _Pipe
    body: list[Any] = field(default_factory=list)
    else_body: list[Any] = field(default_factory=list)


_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
     |(?P<raw>`[^`]*`)
     |(?P<char>'(?:[^'\\]|\\.)+')
     |(?P<decl>:=|=)
     |(?P<punct>[|(),])
     |(?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?))
     |(?P<field>(?:\$[A-Za-z0-9_]*|\.)?(?:\.?[A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z_][A-Za-z0-9_]*)*|\$[A-Za-z0-9_]*|\.)
    )""",
    re.VERBOSE,
)


def _tokenize(src: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        match = _TOKEN_RE.match(src, pos)
        if not match or match.end() == pos:
            raise TemplateError(f"template: {NAME}:1: unexpected {src[pos:].strip()[:1]!r} in command")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _split_actions(template: str) -> list[tuple[str, str]]:
    """Split into ('text', s) and ('action', s) pieces honouring trim markers."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            pieces.append(("text", template[pos:]))
            return pieces
        text = template[pos:start]
        inner_start = start + 2
        if (
            template.startswith("{{- ", start)
            or template.startswith("{{-\t", start)
            or (template.startswith("{{-\n", start))
        ):
            text = text.rstrip(" \t\r\n")
            inner_start += 1
        pieces.append(("text", text))
        end = template.find("}}", inner_start)
        if end < 0:
            raise TemplateError(f"template: {NAME}:1: unclosed action")
        inner = template[inner_start:end]
        pos = end + 2
        if inner.endswith((" -", "\t-", "\n-")):
            inner = inner[:-1]
            while pos < len(template) and template[pos] in " \t\r\n":
                pos += 1
        inner = inner.strip()
        if inner.startswith("/*") and inner.endswith("*/"):
            continue
        pieces.append(("action", inner))


class _Parser:
    def __init__(self, template: str) -> None:
        self.pieces = _split_actions(template)
        self.index = 0

    def parse(self) -> list[Any]:
        nodes, end = self._parse_list()
        if end is not None:
            raise TemplateError(f"template: {NAME}:1: unexpected {{{{{end}}}}}")
        return nodes

    def _parse_list(self) -> tuple[list[Any], str | None]:
        nodes: list[Any] = []
        while self.index < len(self.pieces):
            kind, content = self.pieces[self.index]
            self.index += 1
            if kind == "text":
                if content:
                    nodes.append(_Text(content))
                continue
            word = content.split(None, 1)[0] if content else ""
            if word in ("end", "else"):
                return nodes, content
            if word in ("if", "with", "range"):
                nodes.append(self._parse_block(word, content[len(word) :]))
            elif word in ("define", "template", "block", "break", "continue"):
                raise TemplateError(f"template: {NAME}:1: {word!r} is not supported")
            elif not content:
                raise TemplateError(f"template: {NAME}:1: missing value for command")
            else:
                nodes.append(_Action(_parse_pipe(content)))
        return nodes, None

    def _parse_block(self, kind: str, rest: str) -> _Block:
        block = _Block(kind, _parse_pipe(rest, allow_range_decl=kind == "range"))
        block.body, end = self._parse_list()
        if end is None:
            raise TemplateError(f"template: {NAME}:1: unexpected EOF")
        if end.startswith("else"):
            tail = end[4:].strip()
            if tail.startswith(("if ", "with ")):
                sub_kind = tail.split(None, 1)[0]
                block.else_body = [self._parse_block(sub_kind, tail[len(sub_kind) :])]
                return block
            block.else_body, end = self._parse_list()
            if end != "end":
                raise TemplateError(f"template: {NAME}:1: expected end; found {end!r}")
        elif end != "end":
            raise TemplateError(f"template: {NAME}:1: unexpected {end!r}")
        return block


def _parse_pipe(src: str, allow_range_decl: bool = False) -> _Pipe:
    tokens = _tokenize(src)
    decl: list[str] = []
    is_assign = False
    for i, (kind, value) in enumerate(tokens):
        if kind == "decl":
            names = [v for k, v in tokens[:i] if k == "field"]
            if not names or any(not n.startswith("$") for n in names) or (len(names) > 1 and not allow_range_decl):
                raise TemplateError(f"template: {NAME}:1: bad variable declaration")
            decl = names
            is_assign = value == "="
            tokens = tokens[i + 1 :]
            break
    cmds, rest = _parse_cmds(tokens, 0)
    if rest != len(tokens):
        raise TemplateError(f"template: {NAME}:1: unexpected {tokens[rest][1]!r} in operand")
    if not cmds or any(not c for c in cmds):
        raise TemplateError(f"template: {NAME}:1: missing value for command")
    return _Pipe(decl, cmds, is_assign)


def _parse_cmds(tokens: list[tuple[str, str]], pos: int) -> tuple[list[list[Any]], int]:
    cmds: list[list[Any]] = [[]]
    while pos < len(tokens):
        kind, value = tokens[pos]
        if kind == "punct" and value == ")":
            return cmds, pos
        if kind == "punct" and value == "|":
            cmds.append([])
            pos += 1
            continue
        if kind == "punct" and value == "(":
            sub, end = _parse_cmds(tokens, pos + 1)
            if end >= len(tokens) or tokens[end][1] != ")":
                raise TemplateError(f"template: {NAME}:1: unclosed left paren")
            pos = end + 1
            chain: list[str] = []
            if pos < len(tokens) and tokens[pos][0] == "field" and tokens[pos][1].startswith("."):
                chain = [p for p in tokens[pos][1].split(".") if p]
                pos += 1
            cmds[-1].append(_Field("()", chain, _Pipe([], sub)))
            continue
        cmds[-1].append(_operand(kind, value))
        pos += 1
    return cmds, pos


def _operand(kind: str, value: str) -> Any:
    if kind == "str":
        return _Literal(json.loads(value))
    if kind == "raw":
        return _Literal(value[1:-1])
    if kind == "char":
        return _Literal(ord(json.loads('"' + value[1:-1] + '"')))
    if kind == "num":
        if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", value):
            return _Literal(int(value, 16))
        if re.fullmatch(r"[-+]?\d+", value):
            return _Literal(int(value))
        return _Literal(float(value))
    if kind == "field":
        if value in ("true", "false"):
            return _Literal(value == "true")
        if value == "nil":
            return _Literal(None)
        if value.startswith("$"):
            head, _, tail = value.partition(".")
            return _Field(head, [p for p in tail.split(".") if p])
        if value.startswith("."):
            return _Field(".", [p for p in value.split(".") if p])
        if "." in value:
            raise TemplateError(f"template: {NAME}:1: unexpected {value!r} in operand")
        return _Ident(value)
    raise TemplateError(f"template: {NAME}:1: unexpected {value!r} in command")


# ---------------------------------------------------------------- values and functions


class _Missing:
    """Go's <no value>."""


MISSING = _Missing()


def format_value(value: Any) -> str:
    """fmt's %v for decoded JSON values."""
    if value is None or value is MISSING:
        return "<no value>" if value is MISSING else "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{format_value(value[k])}" for k in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    return str(value)


def _go_float(value: float) -> str:
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        text = f"{mantissa}e{sign}{exp.lstrip('+-').rjust(2, '0')}"
    return text


def _truth(value: Any) -> bool:
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


def _fn_json(value: Any) -> str:
    return (
        json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        + "\n"
    )


def _fn_index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(str(key), MISSING) if key is not None else MISSING
            if item is MISSING:
                return None
        elif isinstance(item, (list, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise TemplateError(f"error calling index: cannot index slice/array with type {type(key).__name__}")
            if not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        else:
            raise TemplateError(f"error calling index: can't index item of type {type(item).__name__}")
    return item


def _fn_len(item: Any) -> int:
    if isinstance(item, (list, dict, str)):
        return len(item)
    raise TemplateError(f"error calling len: len of type {type(item).__name__}")


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _fn_printf(fmt: str, *args: Any) -> str:
    out: list[str] = []
    arg_iter = iter(args)
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        match = re.match(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])", fmt[i:])
        if not match:
            out.append("%!(NOVERB)")
            i += 1
            continue
        flags, width, prec, verb = match.groups()
        i += match.end()
        if verb == "%":
            out.append("%")
            continue
        try:
            arg = next(arg_iter)
        except StopIteration:
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_verb(flags, width, prec, verb, arg))
    extra = list(arg_iter)
    if extra:
        out.append("%!(EXTRA " + ", ".join(f"{type(a).__name__}={format_value(a)}" for a in extra) + ")")
    return "".join(out)


def _format_verb(flags: str, width: str, prec: str | None, verb: str, arg: Any) -> str:
    spec = "%" + flags + width + (f".{prec}" if prec is not None else "")
    if verb in "vs":
        return (spec + "s") % format_value(arg)
    if verb == "q":
        return (spec + "s") % _go_quote(format_value(arg))
    if verb == "t":
        return (spec + "s") % format_value(arg)
    number = _as_number(arg)
    if verb in "dxXob" and isinstance(number, int):
        if verb == "b":
            return (spec + "s") % format(number, "b")
        return (spec + verb) % number
    if verb in "feEgG" and number is not None:
        return (spec + verb) % float(number)
    return f"%!{verb}({type(arg).__name__}={format_value(arg)})"


def _as_number(arg: Any) -> int | float | None:
    if isinstance(arg, bool):
        return None
    if isinstance(arg, (int, float)):
        return arg
    if isinstance(arg, str):
        try:
            return int(arg)
        except ValueError:
            try:
                return float(arg)
            except ValueError:
                return None
    return None


def _cmp_args(a: Any, b: Any) -> tuple[Any, Any]:
    na, nb = _as_number(a), _as_number(b)
    if (isinstance(a, (int, float)) or isinstance(b, (int, float))) and na is not None and nb is not None:
        return na, nb
    return a, b


def _fn_eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("error calling eq: missing argument for comparison")
    return any(_cmp_args(a, b)[0] == _cmp_args(a, b)[1] for b in others)


def _ordered(op: Callable[[Any, Any], bool], name: str) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        x, y = _cmp_args(a, b)
        try:
            return op(x, y)
        except TypeError as exc:
            raise TemplateError(f"error calling {name}: incompatible types for comparison") from exc

    return compare


def _title(text: Any) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), str(text))


_FUNCS: dict[str, Callable[..., Any]] = {
    "not": lambda v: not _truth(v),
    "len": _fn_len,
    "index": _fn_index,
    "print": lambda *a: "".join(format_value(v) for v in a),
    "println": lambda *a: " ".join(format_value(v) for v in a) + "\n",
    "printf": _fn_printf,
    "eq": _fn_eq,
    "ne": lambda a, b: not _fn_eq(a, b),
    "lt": _ordered(lambda a, b: a < b, "lt"),
    "le": _ordered(lambda a, b: a <= b, "le"),
    "gt": _ordered(lambda a, b: a > b, "gt"),
    "ge": _ordered(lambda a, b: a >= b, "ge"),
    "json": _fn_json,
    "title": _title,
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
}


# ---------------------------------------------------------------- execution


class _Exec:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.out: list[str] = []

    def run(self, nodes: list[Any], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(format_value(value))
            else:
                self.block(node, dot)

    def block(self, node: _Block, dot: Any) -> None:
        mark = len(self.vars)
        if node.kind == "range":
            self._range(node, dot, mark)
            return
        value = self.pipe(node.pipe, dot)
        if _truth(value):
            self.run(node.body, value if node.kind == "with" else dot)
        else:
            self.run(node.else_body, dot)
        del self.vars[mark:]

    def _range(self, node: _Block, dot: Any, mark: int) -> None:
        value = self.pipe(node.pipe, dot, declare=False)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            raise TemplateError(f"range can't iterate over {format_value(value)}")
        if not items:
            self.run(node.else_body, dot)
            return
        for key, element in items:
            del self.vars[mark:]
            names = node.pipe.decl
            if len(names) == 1:
                self.vars.append((names[0], element))
            elif len(names) == 2:
                self.vars.append((names[0], key))
                self.vars.append((names[1], element))
            self.run(node.body, element)
        del self.vars[mark:]

    def pipe(self, pipe: _Pipe, dot: Any, declare: bool = True) -> Any:
        value: Any = MISSING
        first = True
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, None if first else value, not first)
            first = False
        if declare and pipe.decl:
            name = pipe.decl[0]
            if pipe.is_assign:
                for i in range(len(self.vars) - 1, -1, -1):
                    if self.vars[i][0] == name:
                        self.vars[i] = (name, value)
                        break
                else:
                    raise TemplateError(f'undefined variable "{name}"')
            else:
                self.vars.append((name, value))
        return value

    def command(self, cmd: list[Any], dot: Any, piped: Any, has_piped: bool) -> Any:
        head = cmd[0]
        if isinstance(head, _Ident):
            func = _FUNCS.get(head.name)
            if func is None:
                if head.name in ("and", "or"):
                    return self._and_or(head.name, cmd[1:], dot, piped, has_piped)
                raise TemplateError(f'function "{head.name}" not defined')
            args = [self.operand(a, dot) for a in cmd[1:]]
            if has_piped:
                args.append(piped)
            try:
                return func(*args)
            except TemplateError:
                raise
            except TypeError as exc:
                raise TemplateError(f"wrong number of args for {head.name}: {exc}") from exc
        if len(cmd) > 1 or has_piped:
            raise TemplateError(f"can't give argument to non-function {self._describe(head)}")
        return self.operand(head, dot)

    def _and_or(self, name: str, args: list[Any], dot: Any, piped: Any, has_piped: bool) -> Any:
        values: list[Any] = [lambda a=a: self.operand(a, dot) for a in args]
        if has_piped:
            values.append(lambda: piped)
        if not values:
            raise TemplateError(f"wrong number of args for {name}: want at least 1 got 0")
        result: Any = None
        for getter in values:
            result = getter()
            if (name == "and" and not _truth(result)) or (name == "or" and _truth(result)):
                return result
        return result

    def operand(self, node: Any, dot: Any) -> Any:
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Ident):
            if node.name in ("and", "or"):
                return self._and_or(node.name, [], dot, None, False)
            func = _FUNCS.get(node.name)
            if func is None:
                raise TemplateError(f'function "{node.name}" not defined')
            return func()
        if isinstance(node, _Field):
            if node.base == ".":
                base = dot
            elif node.base == "()":
                assert node.sub is not None
                base = self.pipe(node.sub, dot)
            else:
                for name, value in reversed(self.vars):
                    if name == node.base:
                        base = value
                        break
                else:
                    raise TemplateError(f'undefined variable "{node.base}"')
            return self._walk(base, node)
        raise TemplateError("unexpected operand")

    def _walk(self, value: Any, node: _Field) -> Any:
        for name in node.chain:
            if isinstance(value, dict):
                if name not in value:
                    raise TemplateError(
                        f'executing "{NAME}" at <{self._describe(node)}>: map has no entry for key "{name}"'
                    )
                value = value[name]
            elif value is None or value is MISSING:
                raise TemplateError(
                    f'executing "{NAME}" at <{self._describe(node)}>: nil pointer evaluating interface {{}}.{name}'
                )
            else:
                raise TemplateError(
                    f'executing "{NAME}" at <{self._describe(node)}>: can\'t evaluate field {name} '
                    f"in type {_go_type(value)}"
                )
        return value

    @staticmethod
    def _describe(node: Any) -> str:
        if isinstance(node, _Field):
            prefix = "" if node.base in (".", "()") else node.base
            return prefix + "".join("." + c for c in node.chain) if node.chain else (node.base)
        if isinstance(node, _Literal):
            return format_value(node.value)
        return str(node)


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "json.Number"
    if isinstance(value, list):
        return "[]interface {}"
    return "interface {}"


def _named(exc: TemplateError, name: str) -> TemplateError:
    message = str(exc)
    if not message.startswith("template:"):
        message = f"template: {NAME}:1: {message}"
    if name != NAME:
        message = message.replace(f"template: {NAME}:", f"template: {name}:").replace(f'"{NAME}"', f'"{name}"')
    return TemplateError(message)


def parse(template: str, name: str = NAME) -> list[Any]:
    """Parse only, raising TemplateError (crictl's validateTemplate)."""
    try:
        return _Parser(template).parse()
    except TemplateError as exc:
        raise _named(exc, name) from exc


def render(template: str, data: Any, name: str = NAME) -> str:
    """Execute `template` against `data` (decoded JSON: dicts, lists and scalars)."""
    nodes = parse(template, name)
    runner = _Exec(data)
    try:
        runner.run(nodes, data)
    except TemplateError as exc:
        raise _named(exc, name) from exc
    return "".join(runner.out)
