"""YAML rendering of JSON data the way crictl does it (sigs.k8s.io/yaml JSONToYAML, i.e. yaml.v2).

yaml.v2 sorts mapping keys with a "natural" order, writes sequences inside mappings without
extra indentation, double-quotes strings that would otherwise read back as another type,
single-quotes strings that cannot be plain, and uses literal blocks for multi-line strings.
PyYAML's defaults differ on each point, so this small emitter is ours.
"""

from __future__ import annotations

import functools
import re
from typing import Any

# yaml.v2 resolves with strconv.ParseInt(base 0) and this float pattern (after removing "_").
_INT_RE = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[1-9][0-9]*|0)$")
_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_TIMESTAMP_RE = re.compile(
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"([Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?(Z|[-+][0-9]{2}:[0-9]{2})?)?$"
)
# yaml.v2 quotes YAML 1.1 base-60 floats ("1:20", MAC addresses) for other parsers' sake.
_BASE60_FLOAT_RE = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_SPECIAL_WORDS = {
    "", "~", "null", "Null", "NULL",
    "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
    "n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
    "<<", ".inf", "-.inf", "+.inf", ".Inf", "-.Inf", "+.Inf", ".INF", "-.INF", "+.INF", ".nan", ".NaN", ".NAN",
}  # fmt: skip


def dump(data: Any) -> str:
    """Render JSON-compatible `data` as yaml.v2 would, ending with a newline."""
    lines: list[str] = []
    _emit(data, 0, lines, top=True)
    return "\n".join(lines) + "\n"


def _resolves_to_non_string(text: str) -> bool:
    if text in _SPECIAL_WORDS:
        return True
    if text[:1] in "0123456789+-.":
        plain = text.replace("_", "")
        if _INT_RE.match(plain) or _FLOAT_RE.match(plain):
            return True
        if text[:1].isdigit() and _TIMESTAMP_RE.match(text):
            return True
        if ":" in text and _BASE60_FLOAT_RE.match(text):
            return True
    return False


def _plain_allowed(text: str) -> bool:
    if text[0] in " \t" or text[-1] in " \t":
        return False
    if text.startswith(("---", "...")):
        return False
    first = text[0]
    if first in "#,[]{}&*!|>'\"%@`":
        return False
    if first in "?:-" and (len(text) == 1 or text[1] in " \t"):
        return False
    if ": " in text or " #" in text or text.endswith(":"):
        return False
    return all(ch == "\t" or (ch >= " " and ch not in "\x7f\ufeff") for ch in text)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    text = str(value)
    if _resolves_to_non_string(text):
        return _double_quoted(text)
    if _plain_allowed(text):
        return text
    if all(ch >= " " for ch in text):
        return "'" + text.replace("'", "''") + "'"
    return _double_quoted(text)


def _float(value: float) -> str:
    if value != value:
        return ".NaN"
    if value in (float("inf"), float("-inf")):
        return ".Inf" if value > 0 else "-.Inf"
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").lstrip("0").rjust(2, "0")
        text = f"{mantissa}e{sign}{digits}"
    return text


BEST_WIDTH = 80


def _wrap(rendered: str, column: int, indent: int) -> list[str]:
    """libyaml's line folding of plain and single-quoted scalars past column 80."""
    if not rendered or rendered[0] == '"':
        return [rendered]
    quoted = rendered[0] == "'"
    lines: list[str] = []
    current: list[str] = []
    spaces = False
    for index, ch in enumerate(rendered):
        if ch == " ":
            nxt = rendered[index + 1] if index + 1 < len(rendered) else ""
            inner = not quoted or (index != 1 and index != len(rendered) - 2)
            if not spaces and column > BEST_WIDTH and nxt not in (" ", "") and inner:
                lines.append("".join(current))
                current = [" " * indent]
                column = indent
            else:
                current.append(ch)
                column += 1
            spaces = True
        else:
            current.append(ch)
            column += 1
            spaces = False
    lines.append("".join(current))
    return lines


def _double_quoted(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _literal(text: str, indent: int) -> list[str]:
    if text.endswith("\n\n") or text == "\n":
        chomp = "+"
    elif text.endswith("\n"):
        chomp = ""
    else:
        chomp = "-"
    body = text[:-1] if text.endswith("\n") else text
    header = "|" + ("2" if text.startswith(" ") else "") + chomp
    pad = " " * indent
    return [header] + [(pad + line) if line else "" for line in body.split("\n")]


@functools.cmp_to_key
def _key_order(a: str, b: str) -> int:
    return -1 if _key_less(a, b) else (1 if _key_less(b, a) else 0)


def _key_less(a: str, b: str) -> bool:
    """yaml.v2's keyList.Less: letters compare by code point, digit runs compare numerically."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        al, bl = a[i].isalpha(), b[i].isalpha()
        if al and bl:
            return a[i] < b[i]
        if al or bl:
            return bl
        an = bn = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and a[j].isdigit():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdigit():
            an = an * 10 + int(a[ai])
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdigit():
            bn = bn * 10 + int(b[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return a[i] < b[i]
    return len(a) < len(b)


def _is_block(value: Any) -> bool:
    return (isinstance(value, dict) and bool(value)) or (isinstance(value, list) and bool(value))


def _inline(value: Any, indent: int) -> list[str]:
    """Text for a non-block value; a literal block yields several lines."""
    if isinstance(value, dict):
        return ["{}"]
    if isinstance(value, list):
        return ["[]"]
    if isinstance(value, str) and "\n" in value:
        return _literal(value, indent)
    return [_scalar(value)]


def _emit(data: Any, indent: int, lines: list[str], top: bool = False) -> None:
    pad = " " * indent
    if isinstance(data, dict) and data:
        for key in sorted((str(k) for k in data), key=_key_order):
            value = data[key]
            key_text = _scalar(key)
            if isinstance(value, dict) and value:
                lines.append(f"{pad}{key_text}:")
                _emit(value, indent + 2, lines)
            elif isinstance(value, list) and value:
                lines.append(f"{pad}{key_text}:")
                _emit(value, indent, lines)
            else:
                parts = _inline(value, indent + 2)
                if len(parts) == 1:
                    parts = _wrap(parts[0], len(pad) + len(key_text) + 2, indent + 2)
                lines.append(f"{pad}{key_text}: {parts[0]}")
                lines.extend(parts[1:])
    elif isinstance(data, list) and data:
        for item in data:
            if _is_block(item):
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                first = sub[0][indent + 2 :]
                lines.append(f"{pad}- {first}")
                lines.extend(sub[1:])
            else:
                parts = _inline(item, indent + 2)
                if len(parts) == 1:
                    parts = _wrap(parts[0], indent + 2, indent + 2)
                lines.append(f"{pad}- {parts[0]}")
                lines.extend(parts[1:])
    else:
        lines.extend(_inline(data, indent))
