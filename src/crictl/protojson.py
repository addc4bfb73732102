"""Protobuf message -> JSON-ready dict, the way Go's protojson (EmitDefaultValues) renders it.

crictl prints with `protojson.MarshalOptions{EmitDefaultValues: true}`: lowerCamelCase names,
fields in declaration order, scalars/repeated/maps always present, unset sub-messages omitted,
64-bit integers as strings, enums by name, bytes base64. google.protobuf.json_format differs in
ordering and float formatting, so the walk is done here.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.protobuf.message import Message

# FieldDescriptorProto.Type (descriptor.proto), named as protobuf's FieldDescriptor names them:
# google.protobuf.descriptor itself is not imported, it costs more than the whole walk.
TYPE_DOUBLE, TYPE_FLOAT, TYPE_GROUP, TYPE_MESSAGE, TYPE_BYTES, TYPE_ENUM = 1, 2, 10, 11, 12, 14
TYPE_INT64, TYPE_UINT64, TYPE_FIXED64, TYPE_SFIXED64, TYPE_SINT64 = 3, 4, 6, 16, 18
_INT64_TYPES = {TYPE_INT64, TYPE_UINT64, TYPE_SINT64, TYPE_FIXED64, TYPE_SFIXED64}


def message_to_dict(message: Message) -> dict[str, Any]:
    """Convert `message` into an insertion-ordered dict mirroring protojson output."""
    out: dict[str, Any] = {}
    descriptor: Any = message.DESCRIPTOR  # python or upb descriptor: typed loosely on purpose
    for field in descriptor.fields:
        if field.is_repeated:
            values = getattr(message, field.name)
            if isinstance(values, Mapping):  # a map field (its options would need descriptor_pb2)
                value_field = field.message_type.fields_by_name["value"]
                out[field.json_name] = {str(_map_key(k)): _scalar(value_field, values[k]) for k in sorted(values)}
            else:
                out[field.json_name] = [_scalar(field, v) for v in values]
        elif field.has_presence:
            if message.HasField(field.name):
                out[field.json_name] = _scalar(field, getattr(message, field.name))
        else:
            out[field.json_name] = _scalar(field, getattr(message, field.name))
    return out


def _map_key(key: Any) -> Any:
    if isinstance(key, bool):
        return "true" if key else "false"
    return key


def _scalar(field: Any, value: Any) -> Any:
    kind = field.type
    if kind in (TYPE_MESSAGE, TYPE_GROUP):
        return message_to_dict(value)
    if kind in _INT64_TYPES:
        return str(value)
    if kind == TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if kind == TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if kind == TYPE_FLOAT:
        return _float(_shortest_float32(value))
    if kind == TYPE_DOUBLE:
        return _float(value)
    return value


def _float(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == int(value) and abs(value) < 1e21:
        return int(value)
    return value


def _shortest_float32(value: float) -> float:
    """The shortest decimal that round-trips through float32 (Go formats with bitSize 32)."""
    if math.isnan(value) or math.isinf(value):
        return value
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value


def status_fields_in_struct_order(message: Message) -> dict[str, Any]:
    """crictl's marshalMapInOrder: every non-oneof field by JSON name, missing ones as null."""
    rendered = message_to_dict(message)
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None and not _is_synthetic_oneof(oneof):
            continue
        out[field.json_name] = rendered.get(field.json_name)
    return out


def _is_synthetic_oneof(oneof: Any) -> bool:
    fields = list(oneof.fields)
    return len(fields) == 1 and oneof.name == "_" + fields[0].name
