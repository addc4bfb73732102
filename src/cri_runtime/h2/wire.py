"""gRPC-over-HTTP/2 specifics: message framing, timeouts, status trailers."""

from __future__ import annotations

import struct

from . import hpack
from .status import StatusCode

_LENGTH_PREFIX = struct.Struct(">BL")
PREFIX_SIZE = _LENGTH_PREFIX.size

_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}

# HEADERS sent before the first response message.
RESPONSE_HEADERS = hpack.encode([(b":status", b"200"), (b"content-type", b"application/grpc")])
OK_TRAILERS = hpack.encode([(b"grpc-status", b"0")])


def length_prefixed(payload: bytes) -> bytes:
    return _LENGTH_PREFIX.pack(0, len(payload)) + payload


def parse_prefix(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """(compressed flag, length) of the message starting at `pos`."""
    flag, length = _LENGTH_PREFIX.unpack_from(buf, pos)
    return flag, length


def parse_timeout(value: bytes) -> float | None:
    """grpc-timeout (`<1-8 digits><unit>`) in seconds; None if malformed."""
    if len(value) < 2 or len(value) > 9:
        return None
    digits, unit = value[:-1], value[-1:]
    scale = _TIMEOUT_UNITS.get(unit)
    if scale is None or not digits.isdigit():
        return None
    return int(digits) * scale


def encode_message(message: str) -> bytes:
    """grpc-message: UTF-8, percent-encoded outside printable ASCII (and '%').

    urllib.parse is imported here, on the first error, not with the module: crictl's start-up
    imports this module and never needs it."""
    import urllib.parse

    return urllib.parse.quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~", encoding="utf-8").encode()


def status_trailers(code: StatusCode, message: str, trailers_only: bool) -> bytes:
    """The header block ending a call: status, message; with the response headers if none went out."""
    fields: list[tuple[bytes, bytes]] = []
    if trailers_only:
        fields += [(b":status", b"200"), (b"content-type", b"application/grpc")]
    fields.append((b"grpc-status", str(int(code)).encode()))
    if message:
        fields.append((b"grpc-message", encode_message(message)))
    return hpack.encode(fields)
