"""Diagnostics on stderr in logrus' text format, as crictl prints them.

On a terminal: `WARN[0000] message`; otherwise `time="..." level=warning msg="..."`.
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
import time

_START = time.monotonic()
_LEVELS = {"debug": ("DEBU", 37), "info": ("INFO", 36), "warning": ("WARN", 33), "error": ("ERRO", 31)}
_ORDER = {"debug": 0, "info": 1, "warning": 2, "error": 3}
_PLAIN = re.compile(r"^[A-Za-z0-9\-._/@^+]+$")

_state = {"level": "info"}


def set_debug(enabled: bool) -> None:
    _state["level"] = "debug" if enabled else "info"


def debug_enabled() -> bool:
    return _state["level"] == "debug"


def format_line(level: str, message: str, tty: bool, now: float | None = None) -> str:
    """One log line (without newline) in logrus' TextFormatter layout."""
    if tty:
        text, color = _LEVELS[level]
        elapsed = int(time.monotonic() - _START)
        return f"\x1b[{color}m{text}\x1b[0m[{elapsed:04d}] {message:<44} "
    stamp = _dt.datetime.fromtimestamp(time.time() if now is None else now).astimezone()
    offset = stamp.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    when = stamp.strftime("%Y-%m-%dT%H:%M:%S") + zone
    return f'time="{when}" level={level} msg={_quote(message)}'


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
               "\\": "\\\\", '"': '\\"'}  # fmt: skip


def _quote(message: str) -> str:
    """logrus quotes with Go's %q: C-style escapes, \\xNN for other control bytes."""
    if message and _PLAIN.match(message):
        return message
    out = []
    for ch in message:
        escaped = _GO_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isprintable() and ch != " ":
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _emit(level: str, message: str) -> None:
    if _ORDER[level] < _ORDER[_state["level"]]:
        return
    stream = sys.stderr
    tty = stream.isatty()
    # logrus trims the trailing newline only in its colored (terminal) layout.
    stream.write(format_line(level, message.rstrip("\n") if tty else message, tty) + "\n")
    stream.flush()


def debug(message: str) -> None:
    _emit("debug", message)


def info(message: str) -> None:
    _emit("info", message)


def warning(message: str) -> None:
    _emit("warning", message)


def error(message: str) -> None:
    _emit("error", message)
