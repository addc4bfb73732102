"""CRI messages as containerd's verbose info shows them.

containerd's CRI plugin puts the request's config (``ContainerConfig``,
``PodSandboxConfig``) into verbose info with Go's ``encoding/json`` on the
generated structs, not with the protobuf JSON mapping: field names are the
proto names (``log_path``, ``security_context``), enums and 64-bit integers
are plain numbers, and zero values are left out
(``omitempty``). Tools that read ``crictl inspect`` output written against
containerd expect exactly that, so this module reproduces it from the
message descriptors (``google.protobuf.json_format`` cannot: it camel-cases
names, quotes int64 and spells enums as names).
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return go_json(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        # Our CRI proto declares KeyValue.value as bytes (env values need not be UTF-8);
        # upstream it is a Go string, which encoding/json writes with U+FFFD for bad bytes.
        return value.decode("utf-8", errors="replace")
    if field.type == FieldDescriptor.TYPE_ENUM:
        return int(value)
    return value


def go_json(message: Message) -> dict[str, Any]:
    """The message as a JSON-ready dict in Go ``encoding/json`` shape (see the module doc)."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():  # set fields only: omitempty
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {str(k): _value(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_value(field, v) for v in value]
        else:
            out[field.name] = _value(field, value)
    return out


def go_json_text(message: Message) -> str:
    """`go_json` encoded, in `json.dumps`' layout (verbose info encodes a config once: configs never change)."""
    return json.dumps(go_json(message))


def encode_members(members: list[tuple[str, str]]) -> str:
    """A JSON object from already encoded member values, laid out as `json.dumps` lays out a dict.

    Verbose info splices big members (a config, a runtime spec) in as text encoded once.
    """
    return "{" + ", ".join(f"{json.dumps(key)}: {value}" for key, value in members) + "}"
