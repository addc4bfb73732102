"""A small subset of Go's text/template, enough for CNI config templates.

containerd's `conf_template` is a Go template rendered with `.PodCIDR`,
`.PodCIDRRanges` and `.Routes`; operators already have such templates, so
we accept the same syntax instead of inventing our own. Supported: text,
`{{.Field}}`, `{{$var}}`, `{{.}}`, string/number/bool literals,
`{{if X}}…{{else if Y}}…{{else}}…{{end}}`, `{{range X}}`,
`{{range $v := X}}`, `{{range $i, $v := X}}` (with `{{else}}`), comments
`{{/* … */}}` and the `{{-`/`-}}` whitespace trimming. Anything else is
rejected with a message naming the action, never silently mis-rendered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class TemplateError(ValueError):
    """The template uses unsupported syntax or refers to a value that does not exist."""


@dataclass
class _Text:
    text: str


@dataclass
class _Print:
    expr: str


@dataclass
class _If:
    cond: str
    body: list[Any] = field(default_factory=list)
    orelse: list[Any] = field(default_factory=list)


@dataclass
class _Range:
    expr: str
    key_var: str | None
    value_var: str | None
    body: list[Any] = field(default_factory=list)
    orelse: list[Any] = field(default_factory=list)


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_RANGE_VARS = re.compile(r"^range\s+(\$\w+)\s*(?:,\s*(\$\w+)\s*)?:=\s*(.+)$", re.S)


def _tokens(source: str) -> list[tuple[str, str]]:
    """Split into ("text", …) and ("action", …) tokens, applying trim markers."""
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(source):
        text = source[pos:match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        if text:
            out.append(("text", text))
        out.append(("action", match.group(2).strip()))
        trim_next = bool(match.group(3))
        pos = match.end()
    tail = source[pos:]
    if trim_next:
        tail = tail.lstrip()
    if "{{" in tail:
        raise TemplateError("unclosed action: '{{' without '}}'")
    if tail:
        out.append(("text", tail))
    return out


def _parse(tokens: list[tuple[str, str]]) -> list[Any]:
    """Build the node tree; block structure is checked here."""
    root: list[Any] = []
    # Each frame: (node or None for root, the list currently being filled).
    stack: list[tuple[Any, list[Any]]] = [(None, root)]
    for kind, value in tokens:
        current = stack[-1][1]
        if kind == "text":
            current.append(_Text(value))
            continue
        if value.startswith("/*"):
            if not value.endswith("*/"):
                raise TemplateError(f"unterminated comment {{{{{value}}}}}")
            continue
        word = value.split(None, 1)[0] if value else ""
        if word == "if":
            node = _If(cond=value[2:].strip())
            current.append(node)
            stack.append((node, node.body))
        elif word == "range":
            m = _RANGE_VARS.match(value)
            if m:
                first, second, expr = m.groups()
                key_var, value_var = (first, second) if second else (None, first)
                node_r = _Range(expr=expr.strip(), key_var=key_var, value_var=value_var)
            else:
                node_r = _Range(expr=value[5:].strip(), key_var=None, value_var=None)
            current.append(node_r)
            stack.append((node_r, node_r.body))
        elif word == "else":
            owner = stack[-1][0]
            if owner is None:
                raise TemplateError("{{else}} outside of if/range")
            rest = value[4:].strip()
            if rest.startswith("if ") or rest == "if":
                if not isinstance(owner, _If):
                    raise TemplateError("{{else if}} after {{range}}")
                nested = _If(cond=rest[2:].strip())
                owner.orelse.append(nested)
                # The nested if shares the outer {{end}}: replace the frame.
                stack[-1] = (nested, nested.body)
            elif rest:
                raise TemplateError(f"unsupported action {{{{{value}}}}}")
            else:
                stack[-1] = (owner, owner.orelse)
        elif word == "end":
            if len(stack) == 1:
                raise TemplateError("{{end}} without a matching if/range")
            stack.pop()
        elif word in ("with", "define", "template", "block", "break", "continue"):
            raise TemplateError(f"unsupported action {{{{{value}}}}}")
        else:
            current.append(_Print(value))
    if len(stack) != 1:
        raise TemplateError("missing {{end}}")
    return root


_STRING = re.compile(r'^"((?:[^"\\]|\\.)*)"$')
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_PATH = re.compile(r"^(\$\w*|\.)?((?:\.\w+)*)$")


class _Scope:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.frames: list[dict[str, Any]] = [{"$": root}]

    def lookup_var(self, name: str) -> Any:
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        raise TemplateError(f"undefined variable {name}")


def _evaluate(expr: str, dot: Any, scope: _Scope) -> Any:
    """Evaluate one operand: literal, `.`, `.A.B`, `$v`, `$v.A`."""
    expr = expr.strip()
    if expr.startswith("(") and expr.endswith(")"):
        expr = expr[1:-1].strip()
    if m := _STRING.match(expr):
        return json.loads(f'"{m.group(1)}"')
    if _NUMBER.match(expr):
        return float(expr) if "." in expr else int(expr)
    if expr in ("true", "false"):
        return expr == "true"
    m = _PATH.match(expr)
    if not m or expr == "":
        raise TemplateError(f"unsupported expression {{{{{expr}}}}} "
                            "(only fields, variables and literals are supported)")
    head, fields = m.group(1), m.group(2)
    value = dot if head is None or head == "." else scope.lookup_var(head)
    for name in (f for f in fields.split(".") if f):
        if isinstance(value, Mapping):
            if name not in value:
                known = ", ".join(f".{k}" for k in value)
                raise TemplateError(f"can't evaluate field {name} (known: {known})")
            value = value[name]
        else:
            raise TemplateError(f"can't evaluate field {name} in a {type(value).__name__}")
    return value


def _truthy(value: Any) -> bool:
    """Go's notion of "true" for if: non-zero, non-empty, non-nil."""
    if value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def _format(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_format(v) for v in value) + "]"
    return str(value)


def _execute(nodes: list[Any], dot: Any, scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Print):
            out.append(_format(_evaluate(node.expr, dot, scope)))
        elif isinstance(node, _If):
            branch = node.body if _truthy(_evaluate(node.cond, dot, scope)) else node.orelse
            _execute(branch, dot, scope, out)
        elif isinstance(node, _Range):
            seq = _evaluate(node.expr, dot, scope)
            if isinstance(seq, Mapping):
                items = [(k, seq[k]) for k in sorted(seq)]
            elif isinstance(seq, (list, tuple)):
                items = list(enumerate(seq))
            elif seq is None:
                items = []
            else:
                raise TemplateError(f"range can't iterate over {type(seq).__name__} ({node.expr})")
            if not items:
                _execute(node.orelse, dot, scope, out)
                continue
            for key, item in items:
                frame: dict[str, Any] = {}
                if node.key_var:
                    frame[node.key_var] = key
                if node.value_var:
                    frame[node.value_var] = item
                scope.frames.append(frame)
                try:
                    _execute(node.body, item, scope, out)
                finally:
                    scope.frames.pop()


def render(source: str, data: Mapping[str, Any]) -> str:
    """Render `source` with `data` as the template's dot."""
    tree = _parse(_tokens(source))
    out: list[str] = []
    _execute(tree, data, _Scope(data), out)
    return "".join(out)
