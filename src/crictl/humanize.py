"""Human-friendly durations, sizes, timestamps and IDs, formatted exactly as crictl prints them.

crictl relies on docker/go-units and Go's time formatting; the rules are reproduced here so
table output matches byte for byte.
"""

from __future__ import annotations

import datetime as _dt
import time

from cri_runtime.gounits import human_duration, human_size

TRUNCATED_ID_LEN = 13
__all__ = ["ago", "human_duration", "human_size", "rfc3339nano", "truncate_id"]


def ago(created_ns: int, now: float | None = None) -> str:
    """'N units ago' for a nanosecond timestamp, as in crictl's CREATED column."""
    current = time.time() if now is None else now
    return human_duration(current - created_ns / 1e9) + " ago"


def truncate_id(value: str, prefix: str = "") -> str:
    """Strip `prefix` and keep the first 13 characters, as crictl's getTruncatedID."""
    if prefix and value.startswith(prefix):
        value = value[len(prefix) :]
    return value[:TRUNCATED_ID_LEN]


def rfc3339nano(ns: int) -> str:
    """Go's time.Unix(0, ns).Format(time.RFC3339Nano) in the local time zone."""
    secs, frac = divmod(ns, 1_000_000_000)
    moment = _dt.datetime.fromtimestamp(secs, tz=_dt.UTC).astimezone()
    return _format_go_time(moment, frac, nano=True)


def go_zero_time_rfc3339() -> str:
    """Formatting of Go's zero time.Time{} (UTC)."""
    return "0001-01-01T00:00:00Z"


def _format_go_time(moment: _dt.datetime, frac_ns: int, nano: bool) -> str:
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if nano and frac_ns:
        base += "." + f"{frac_ns:09d}".rstrip("0")
    return base + _offset(moment)


def _offset(moment: _dt.datetime) -> str:
    delta = moment.utcoffset() or _dt.timedelta(0)
    total = int(delta.total_seconds())
    if total == 0:
        return "Z"
    sign = "+" if total > 0 else "-"
    total = abs(total)
    return f"{sign}{total // 3600:02d}:{(total % 3600) // 60:02d}"


def go_time_string(ns: int) -> str:
    """Go's default time.Time String(): '2006-01-02 15:04:05.999999999 -0700 MST'."""
    secs, frac = divmod(ns, 1_000_000_000)
    moment = _dt.datetime.fromtimestamp(secs, tz=_dt.UTC).astimezone()
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    delta = moment.utcoffset() or _dt.timedelta(0)
    total = int(delta.total_seconds())
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    zone = moment.tzname() or ""
    return f"{text} {sign}{total // 3600:02d}{(total % 3600) // 60:02d} {zone}"
