"""ttrpc message frames: a 10-byte header (length, stream id, type, flags) and the data.

Written from containerd/ttrpc's PROTOCOL.md: big-endian length and stream id,
data at most 4 MiB (a larger frame is refused, so the first header byte is
always zero), client-initiated streams have odd ids.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct(">IIBB")
HEADER_SIZE = HEADER.size  # 10
MAX_DATA = 4 << 20

TYPE_REQUEST = 0x01
TYPE_RESPONSE = 0x02
TYPE_DATA = 0x03

FLAG_REMOTE_CLOSED = 0x01
FLAG_REMOTE_OPEN = 0x02
FLAG_NO_DATA = 0x04


class FrameError(Exception):
    """The peer broke the framing; the connection cannot be trusted any more."""


@dataclass(frozen=True, slots=True)
class Frame:
    stream_id: int
    type: int
    flags: int
    data: bytes


def encode(stream_id: int, type_: int, data: bytes, flags: int = 0) -> bytes:
    if len(data) > MAX_DATA:
        raise FrameError(f"ttrpc message of {len(data)} bytes exceeds the {MAX_DATA}-byte limit")
    return HEADER.pack(len(data), stream_id, type_, flags) + data


class FrameParser:
    """Incremental parser: feed bytes, take whole frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= HEADER_SIZE:
            length, stream_id, type_, flags = HEADER.unpack_from(self._buf)
            if length > MAX_DATA:
                raise FrameError(f"ttrpc frame of {length} bytes exceeds the {MAX_DATA}-byte limit")
            end = HEADER_SIZE + length
            if len(self._buf) < end:
                break
            frames.append(Frame(stream_id, type_, flags, bytes(self._buf[HEADER_SIZE:end])))
            del self._buf[:end]
        return frames
