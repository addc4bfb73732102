"""Go-style durations ("1m30s") and crictl's --since timestamps."""

from __future__ import annotations

import datetime as _dt
import re
import time

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """time.ParseDuration, returning seconds; raises ValueError with Go's wording."""
    original = text
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if text[:1] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if not text:
        raise ValueError(f'time: invalid duration "{original}"')
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if not match or match.group(1) in ("", "."):
            if re.match(r"[0-9.]+$", text[pos:]):
                raise ValueError(f'time: missing unit in duration "{original}"')
            raise ValueError(f'time: invalid duration "{original}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def format_go_duration(seconds: float) -> str:
    """time.Duration.String for whole-ish values (used in debug messages)."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    out += f"{secs:g}s"
    return out


_ABSOLUTE_LAYOUTS = (
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H",
    "%Y-%m-%d",
)


def parse_since(value: str, now: float | None = None) -> float | None:
    """crictl's --since: a relative duration ("42m") or an absolute time; returns epoch seconds."""
    if not value:
        return None
    current = time.time() if now is None else now
    try:
        return current - parse_duration(value)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9]+(\.[0-9]{1,9})?", value):
        return float(value)
    text = value.replace("Z", "+00:00")
    for layout in _ABSOLUTE_LAYOUTS:
        try:
            parsed = _dt.datetime.strptime(text, layout)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()  # a zone-less time is local, as in docker's timetype
        return parsed.timestamp()
    raise ValueError(f'failed to parse value as time or duration: "{value}"')
