"""docker/go-units' human-readable durations and sizes, as Go tools (crictl, ctr) print them.

Shared by crictl and the node tools so their tables match upstream byte for
byte; standard library only, so either imports it cheaply.
"""

from __future__ import annotations

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: coarse 'N units' text used in the CREATED column."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(_round_half_away(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _round_half_away(value: float) -> float:
    """Go's Duration.Round rounds halves away from zero (Python's round() is banker's)."""
    return float(int(value + 0.5)) if value >= 0 else -float(int(-value + 0.5))


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal (1000-based) units, %.<precision>g."""
    index = 0
    while size >= 1000.0 and index < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        index += 1
    return f"{size:.{precision}g}{_DECIMAL_UNITS[index]}"
