"""HTTP/2 frame layout (RFC 9113 section 4 and 6): types, flags, settings, builders."""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)

FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

# Error codes (RFC 9113 section 7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME_SIZE = 16384
MAX_WINDOW = 2**31 - 1
MAX_FRAME_SIZE_LIMIT = 2**24 - 1

_HEADER = struct.Struct(">BHBBL")  # 24-bit length as a high byte + a 16-bit rest
HEADER_SIZE = 9
_SETTING = struct.Struct(">HL")


def parse_header(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int, int, int]:
    """(length, type, flags, stream id) of the frame header at `pos`."""
    hi, lo, ftype, flags, stream = _HEADER.unpack_from(buf, pos)
    return (hi << 16) | lo, ftype, flags, stream & 0x7FFFFFFF


def strip_padding(flags: int, payload: bytes) -> bytes:
    """The content of a DATA or HEADERS payload without its padding; ValueError if malformed."""
    if not flags & FLAG_PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise ValueError("bad padding")
    return payload[1:len(payload) - payload[0]]


def header_block(flags: int, payload: bytes) -> bytes:
    """The header block fragment of a HEADERS payload (padding and priority fields removed)."""
    block = strip_padding(flags, payload)
    return block[5:] if flags & FLAG_PRIORITY else block


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """(identifier, value) pairs of a SETTINGS payload; ValueError if its length is not a multiple of 6."""
    if len(payload) % 6:
        raise ValueError("SETTINGS length not a multiple of 6")
    return [_SETTING.unpack_from(payload, offset) for offset in range(0, len(payload), 6)]


def frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return _HEADER.pack(n >> 16, n & 0xFFFF, ftype, flags, stream) + payload


def settings(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in values.items()))


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">L", increment))


def rst_stream(stream: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream, struct.pack(">L", code))


def goaway(last_stream: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">LL", last_stream, code) + debug)


def headers_frames(stream: int, block: bytes, end_stream: bool, max_frame: int) -> bytes:
    """HEADERS (+ CONTINUATION) frames carrying one header block."""
    end = FLAG_END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return frame(HEADERS, end | FLAG_END_HEADERS, stream, block)
    parts = [frame(HEADERS, end, stream, block[:max_frame])]
    pos = max_frame
    while pos < len(block):
        chunk = block[pos:pos + max_frame]
        pos += max_frame
        parts.append(frame(CONTINUATION, FLAG_END_HEADERS if pos >= len(block) else 0, stream, chunk))
    return b"".join(parts)


def data_frames(stream: int, data: bytes | memoryview, max_frame: int) -> bytes:
    """DATA frames (never END_STREAM: gRPC ends a response with trailers)."""
    if len(data) <= max_frame:
        return frame(DATA, 0, stream, bytes(data))
    return b"".join(frame(DATA, 0, stream, bytes(data[i:i + max_frame]))
                    for i in range(0, len(data), max_frame))
