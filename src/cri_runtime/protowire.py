"""Protobuf wire encoding of one length-delimited field, for responses joined from cached bytes.

A repeated message field is encoded as the concatenation of its elements,
each as tag + length + bytes; so a list answer can be assembled from entries
encoded once and kept, instead of copying and re-encoding every entry per call.
"""

from __future__ import annotations

from google.protobuf.message import Message


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def message_field(field_number: int, message: Message) -> bytes:
    """`message` encoded as field `field_number` of an enclosing message."""
    payload = message.SerializeToString()
    return _varint((field_number << 3) | 2) + _varint(len(payload)) + payload
