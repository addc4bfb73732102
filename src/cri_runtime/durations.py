"""Go-style duration strings ("0s", "10s", "1m30s", "500ms"), as containerd's config uses them.

Options that carry a containerd name keep containerd's value syntax too, so a
line copied from a containerd config means the same here. Hand-written: the
grammar is one regular expression, not worth a dependency.
"""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; ValueError naming the text when it is not one."""
    body = text.strip()
    if body in ("0", ""):
        if body == "":
            raise ValueError("empty duration")
        return 0.0
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    total, pos = 0.0, 0
    for m in _PART.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(body) or pos == 0:
        raise ValueError(f"{text!r} is not a duration such as 10s, 1m30s or 500ms")
    return sign * total
