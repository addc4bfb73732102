"""Checks shared by every request family: enums, absolute paths, required IDs.

proto3 keeps enum numbers it does not know and leaves missing fields empty,
so a malformed request decodes fine; these turn it into InvalidArgument
naming the field instead of a failure deep in containerd or runc.
"""

from __future__ import annotations

from typing import Any

from cri_runtime.errors import InvalidArgument


def check_enum(enum: Any, value: int, field: str) -> None:
    if value not in enum.values():
        raise InvalidArgument(f"{field}: unknown value {value}")


def check_abs(path: str, field: str) -> None:
    if not path.startswith("/"):
        raise InvalidArgument(f"{field}: path {path!r} must be absolute")


def require(value: str, rpc: str, field: str) -> None:
    """A field the request cannot do without (an object ID, usually)."""
    if not value:
        raise InvalidArgument(f"{rpc}: {field} must not be empty")
