"""SPDY/3.1 frame encoding and decoding (draft-mbelshe-httpbis-spdy-00 as amended by SPDY/3.1).

Kubernetes streams exec/attach/port-forward over SPDY/3.1 (client-go and kubelet use the Go
``spdystream`` package); no maintained Python implementation exists, so the wire format is
implemented here.  Everything in this module is pure (no I/O besides :func:`read_frame`, no
server-side imports) so the crictl client can import it cheaply.

Wire layout (all integers big-endian)::

    control frame: |1| version(15) | type(16) | flags(8) | length(24) | payload
    data frame:    |0| stream-id(31)           | flags(8) | length(24) | payload

Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are zlib streams primed with
:data:`~cri_runtime.streaming.spdy.dictionary.HEADER_DICTIONARY`; each direction of a
connection keeps one compression context for its whole life, and every block ends with a
``Z_SYNC_FLUSH`` so the peer can decode it without waiting for more bytes.  That shared state
is why one :class:`FrameCodec` must encode (or decode) every frame of a direction, in order.

Malformed input raises :class:`ProtocolError`; nothing here raises anything else for bad bytes.
"""

from __future__ import annotations

import asyncio
import enum
import struct
import zlib
from dataclasses import dataclass, field
from typing import Protocol

from cri_runtime.streaming.spdy.dictionary import HEADER_DICTIONARY

SPDY_VERSION = 3
MAX_FRAME_LENGTH = (1 << 24) - 1
MAX_STREAM_ID = (1 << 31) - 1
MAX_WINDOW = (1 << 31) - 1
DEFAULT_INITIAL_WINDOW = 64 * 1024
"""SPDY/3.1 initial stream and session flow-control window."""
MAX_HEADER_BLOCK = 1 << 20
"""Upper bound on a decompressed header block; guards against zlib bombs."""

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR = 0x01

Headers = list[tuple[str, str]]
"""Ordered header pairs; names are lower-case, several values of one name are NUL-joined."""


class FrameType(enum.IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(enum.IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    FRAME_TOO_LARGE = 11


class GoAwayStatus(enum.IntEnum):
    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class SettingId(enum.IntEnum):
    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8


class ProtocolError(Exception):
    """The peer sent bytes that violate SPDY/3.1.

    ``stream_id`` is non-zero when the error concerns one stream only (answer with RST_STREAM
    ``status``); otherwise the session is unusable (answer with GOAWAY and close).
    """

    def __init__(self, message: str, *, stream_id: int = 0, status: RstStatus = RstStatus.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.status = status


# --------------------------------------------------------------------------- frames
@dataclass
class DataFrame:
    stream_id: int
    data: bytes = b""
    fin: bool = False


@dataclass
class SynStreamFrame:
    stream_id: int
    headers: Headers = field(default_factory=list)
    fin: bool = False
    unidirectional: bool = False
    associated_stream_id: int = 0
    priority: int = 0
    slot: int = 0


@dataclass
class SynReplyFrame:
    stream_id: int
    headers: Headers = field(default_factory=list)
    fin: bool = False


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=list)
    fin: bool = False


@dataclass
class RstStreamFrame:
    stream_id: int
    status: int = RstStatus.CANCEL


@dataclass
class Setting:
    id: int
    value: int
    flags: int = 0


@dataclass
class SettingsFrame:
    settings: list[Setting] = field(default_factory=list)
    clear: bool = False

    def get(self, setting_id: int) -> int | None:
        for s in self.settings:
            if s.id == setting_id:
                return s.value
        return None


@dataclass
class PingFrame:
    id: int


@dataclass
class GoAwayFrame:
    last_good_stream_id: int
    status: int = GoAwayStatus.OK


@dataclass
class WindowUpdateFrame:
    stream_id: int
    delta: int


@dataclass
class UnknownControlFrame:
    """A control frame of a type SPDY/3.1 does not define (e.g. CREDENTIAL): to be ignored."""

    type: int
    flags: int
    payload: bytes


Frame = (
    DataFrame
    | SynStreamFrame
    | SynReplyFrame
    | HeadersFrame
    | RstStreamFrame
    | SettingsFrame
    | PingFrame
    | GoAwayFrame
    | WindowUpdateFrame
    | UnknownControlFrame
)


# ------------------------------------------------------------------- header blocks
def header_value(headers: Headers, name: str) -> str | None:
    """First value of header ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    for key, value in headers:
        if key == wanted:
            return value.split("\0", 1)[0]
    return None


def normalize_headers(headers: Headers | dict[str, str]) -> Headers:
    """Lower-case names and merge repeated names into one NUL-joined value (SPDY forbids duplicates)."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    merged: dict[str, list[str]] = {}
    for name, value in pairs:
        if not name:
            raise ValueError("empty header name")
        merged.setdefault(name.lower(), []).append(value)
    return [(name, "\0".join(values)) for name, values in merged.items()]


def encode_header_block(headers: Headers) -> bytes:
    """Uncompressed name/value block: count, then (length, name, length, value) per pair."""
    pairs = normalize_headers(headers)
    out = bytearray(struct.pack(">I", len(pairs)))
    for name, value in pairs:
        n = name.encode("utf-8")
        v = value.encode("utf-8")
        out += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
    return bytes(out)


def decode_header_block(block: bytes, stream_id: int = 0) -> Headers:
    """Parse an uncompressed name/value block; it must be consumed exactly."""
    if len(block) < 4:
        raise ProtocolError("header block too short")
    (count,) = struct.unpack_from(">I", block, 0)
    if count > (len(block) - 4) // 8:
        raise ProtocolError(f"header block claims {count} pairs in {len(block)} bytes")
    pos = 4
    headers: Headers = []
    seen: set[str] = set()
    for _ in range(count):
        items: list[str] = []
        for _part in range(2):
            if pos + 4 > len(block):
                raise ProtocolError("truncated header block")
            (length,) = struct.unpack_from(">I", block, pos)
            pos += 4
            if pos + length > len(block):
                raise ProtocolError("header length beyond block")
            try:
                items.append(block[pos : pos + length].decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ProtocolError("header is not UTF-8") from exc
            pos += length
        name, value = items
        if not name:
            raise ProtocolError("empty header name")
        name = name.lower()
        if name in seen:
            raise ProtocolError(f"duplicate header {name!r}", stream_id=stream_id)
        seen.add(name)
        headers.append((name, value))
    if pos != len(block):
        raise ProtocolError("trailing bytes after header block")
    return headers


class HeaderCompressor:
    """One direction's zlib compression context (kept for the whole connection)."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                   HEADER_DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        block = encode_header_block(headers)
        return self._z.compress(block) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """One direction's zlib decompression context (kept for the whole connection)."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(zdict=HEADER_DICTIONARY)

    def decompress(self, data: bytes, stream_id: int = 0) -> Headers:
        try:
            block = self._z.decompress(data, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise ProtocolError(f"header block does not decompress: {exc}") from exc
        if self._z.unconsumed_tail:
            raise ProtocolError(f"header block larger than {MAX_HEADER_BLOCK} bytes")
        if self._z.eof:
            raise ProtocolError("header compression stream ended")
        return decode_header_block(block, stream_id)


# -------------------------------------------------------------------------- codec
def _control(frame_type: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_LENGTH:
        raise ValueError("frame payload too large")
    return struct.pack(">HHI", 0x8000 | SPDY_VERSION, frame_type, (flags << 24) | len(payload)) + payload


def _check_stream_id(stream_id: int) -> None:
    if not 0 < stream_id <= MAX_STREAM_ID:
        raise ValueError(f"invalid stream id {stream_id}")


class FrameCodec:
    """Encodes outgoing and decodes incoming frames of one connection.

    Holds the two header compression contexts, so use exactly one codec per connection and
    feed it every frame in wire order.
    """

    def __init__(self) -> None:
        self._compressor = HeaderCompressor()
        self._decompressor = HeaderDecompressor()

    # ---------------------------------------------------------------- encoding
    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            _check_stream_id(frame.stream_id)
            if len(frame.data) > MAX_FRAME_LENGTH:
                raise ValueError("data frame too large")
            flags = FLAG_FIN if frame.fin else 0
            return struct.pack(">II", frame.stream_id, (flags << 24) | len(frame.data)) + frame.data
        if isinstance(frame, SynStreamFrame):
            _check_stream_id(frame.stream_id)
            flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
            body = struct.pack(">IIBB", frame.stream_id, frame.associated_stream_id & MAX_STREAM_ID,
                               (frame.priority & 0x7) << 5, frame.slot & 0xFF)
            return _control(FrameType.SYN_STREAM, flags, body + self._compressor.compress(frame.headers))
        if isinstance(frame, SynReplyFrame | HeadersFrame):
            _check_stream_id(frame.stream_id)
            ftype = FrameType.SYN_REPLY if isinstance(frame, SynReplyFrame) else FrameType.HEADERS
            body = struct.pack(">I", frame.stream_id) + self._compressor.compress(frame.headers)
            return _control(ftype, FLAG_FIN if frame.fin else 0, body)
        if isinstance(frame, RstStreamFrame):
            _check_stream_id(frame.stream_id)
            return _control(FrameType.RST_STREAM, 0, struct.pack(">II", frame.stream_id, int(frame.status)))
        if isinstance(frame, SettingsFrame):
            entries = b"".join(struct.pack(">II", ((s.flags & 0xFF) << 24) | (s.id & 0xFFFFFF), s.value & 0xFFFFFFFF)
                               for s in frame.settings)
            payload = struct.pack(">I", len(frame.settings)) + entries
            return _control(FrameType.SETTINGS, FLAG_SETTINGS_CLEAR if frame.clear else 0, payload)
        if isinstance(frame, PingFrame):
            return _control(FrameType.PING, 0, struct.pack(">I", frame.id & 0xFFFFFFFF))
        if isinstance(frame, GoAwayFrame):
            body = struct.pack(">II", frame.last_good_stream_id & MAX_STREAM_ID, int(frame.status))
            return _control(FrameType.GOAWAY, 0, body)
        if isinstance(frame, WindowUpdateFrame):
            if not 0 < frame.delta <= MAX_WINDOW:
                raise ValueError(f"invalid window delta {frame.delta}")
            if not 0 <= frame.stream_id <= MAX_STREAM_ID:
                raise ValueError(f"invalid stream id {frame.stream_id}")
            return _control(FrameType.WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))
        if isinstance(frame, UnknownControlFrame):
            return _control(frame.type, frame.flags, frame.payload)
        raise TypeError(f"not a SPDY frame: {frame!r}")

    # ---------------------------------------------------------------- decoding
    @staticmethod
    def payload_length(head: bytes) -> int:
        """Payload length announced by an 8-byte frame header."""
        if len(head) != 8:
            raise ProtocolError("frame header must be 8 bytes")
        return int.from_bytes(head[5:8], "big")

    def decode(self, head: bytes, payload: bytes) -> Frame:
        """Decode one frame from its 8-byte header and its payload."""
        if self.payload_length(head) != len(payload):
            raise ProtocolError("payload length does not match frame header")
        first, second = struct.unpack(">II", head)
        flags = second >> 24
        if not first & 0x80000000:
            stream_id = first & MAX_STREAM_ID
            if stream_id == 0:
                raise ProtocolError("data frame on stream 0")
            return DataFrame(stream_id, payload, bool(flags & FLAG_FIN))
        version = (first >> 16) & 0x7FFF
        ftype = first & 0xFFFF
        if version != SPDY_VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}", status=RstStatus.UNSUPPORTED_VERSION)
        return self._decode_control(ftype, flags, payload)

    def _decode_control(self, ftype: int, flags: int, payload: bytes) -> Frame:
        size = len(payload)
        if ftype == FrameType.SYN_STREAM:
            if size < 10:
                raise ProtocolError("SYN_STREAM too short")
            sid, assoc, pri, slot = struct.unpack_from(">IIBB", payload)
            sid &= MAX_STREAM_ID
            headers = self._decompressor.decompress(payload[10:], sid)
            if sid == 0:
                raise ProtocolError("SYN_STREAM on stream 0")
            return SynStreamFrame(sid, headers, bool(flags & FLAG_FIN), bool(flags & FLAG_UNIDIRECTIONAL),
                                  assoc & MAX_STREAM_ID, pri >> 5, slot)
        if ftype in (FrameType.SYN_REPLY, FrameType.HEADERS):
            if size < 4:
                raise ProtocolError("SYN_REPLY/HEADERS too short")
            sid = struct.unpack_from(">I", payload)[0] & MAX_STREAM_ID
            headers = self._decompressor.decompress(payload[4:], sid)
            if sid == 0:
                raise ProtocolError("SYN_REPLY/HEADERS on stream 0")
            cls = SynReplyFrame if ftype == FrameType.SYN_REPLY else HeadersFrame
            return cls(sid, headers, bool(flags & FLAG_FIN))
        if ftype == FrameType.RST_STREAM:
            if size != 8:
                raise ProtocolError("RST_STREAM must be 8 bytes")
            sid, status = struct.unpack(">II", payload)
            sid &= MAX_STREAM_ID
            if sid == 0 or status == 0:
                raise ProtocolError("RST_STREAM with stream 0 or status 0")
            return RstStreamFrame(sid, status)
        if ftype == FrameType.SETTINGS:
            if size < 4:
                raise ProtocolError("SETTINGS too short")
            (count,) = struct.unpack_from(">I", payload)
            if size != 4 + 8 * count:
                raise ProtocolError("SETTINGS length does not match its entry count")
            settings = []
            for i in range(count):
                word, value = struct.unpack_from(">II", payload, 4 + 8 * i)
                settings.append(Setting(word & 0xFFFFFF, value, word >> 24))
            return SettingsFrame(settings, bool(flags & FLAG_SETTINGS_CLEAR))
        if ftype == FrameType.PING:
            if size != 4:
                raise ProtocolError("PING must be 4 bytes")
            return PingFrame(struct.unpack(">I", payload)[0])
        if ftype == FrameType.GOAWAY:
            if size != 8:
                raise ProtocolError("GOAWAY must be 8 bytes")
            last, status = struct.unpack(">II", payload)
            return GoAwayFrame(last & MAX_STREAM_ID, status)
        if ftype == FrameType.WINDOW_UPDATE:
            if size != 8:
                raise ProtocolError("WINDOW_UPDATE must be 8 bytes")
            sid, delta = struct.unpack(">II", payload)
            sid &= MAX_STREAM_ID
            delta &= MAX_WINDOW
            if delta == 0:
                raise ProtocolError("WINDOW_UPDATE with delta 0", stream_id=sid)
            return WindowUpdateFrame(sid, delta)
        return UnknownControlFrame(ftype, flags, bytes(payload))


class FrameSource(Protocol):
    """What :func:`read_frame` needs: ``asyncio.StreamReader`` and the WebSocket tunnel fit."""

    async def readexactly(self, n: int) -> bytes: ...


async def read_frame(reader: FrameSource, codec: FrameCodec, max_length: int = MAX_FRAME_LENGTH) -> Frame | None:
    """Read and decode the next frame; None at a clean end of stream (EOF between frames)."""
    try:
        head = await reader.readexactly(8)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("connection closed inside a frame header") from exc
    length = codec.payload_length(head)
    if length > max_length:
        raise ProtocolError(f"frame of {length} bytes exceeds limit {max_length}", status=RstStatus.FRAME_TOO_LARGE)
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("connection closed inside a frame") from exc
    return codec.decode(head, payload)
