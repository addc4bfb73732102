"""Optional-field access on CRI protobuf messages, as the spec steps read them."""

from __future__ import annotations

from typing import Any


def optional_int(msg: Any, field_name: str) -> int | None:
    """The wrapped value of an ``Int64Value`` field, None when unset (not 0)."""
    return int(getattr(msg, field_name).value) if msg.HasField(field_name) else None


def sub_message(msg: Any, field_name: str) -> Any:
    """The sub-message if set, else None (proto3 has presence for messages)."""
    return getattr(msg, field_name) if msg.HasField(field_name) else None
