"""SPDY/3.1 frame codec: dictionary, known bytes (some captured from upstream crictl), round
trips, and robustness against malformed input."""

from __future__ import annotations

import asyncio
import contextlib
import random
import zlib

import pytest

from cri_runtime.streaming.spdy.dictionary import HEADER_DICTIONARY
from cri_runtime.streaming.spdy.frames import (
    DataFrame,
    FrameCodec,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    ProtocolError,
    RstStreamFrame,
    Setting,
    SettingsFrame,
    SynReplyFrame,
    SynStreamFrame,
    UnknownControlFrame,
    WindowUpdateFrame,
    decode_header_block,
    encode_header_block,
    read_frame,
)

# The first frames upstream crictl (client-go + spdystream) sent for `crictl exec -i ID cat`
# with "hi" on stdin, captured from a run against our server.
CRICTL_FRAMES = [
    ("800300010000002a", "0000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a5a54945f04000000ffff"),
    ("8003000100000017", "00000003000000000000c22e555c92929907000000ffff"),
    ("8003000100000019", "00000005000000000000c22ac5565c92925f5a02000000ffff"),
    ("8003000100000015", "00000007000000000000c229975a5404000000ffff"),
    ("0000000300000003", "68690a"),
    ("0000000301000000", ""),
]


def split(raw: bytes) -> tuple[bytes, bytes]:
    return raw[:8], raw[8:]


def test_dictionary_is_the_spdy3_dictionary() -> None:
    assert len(HEADER_DICTIONARY) == 1423
    assert zlib.adler32(HEADER_DICTIONARY) == 0xE3C6A7C2
    assert HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options")
    assert HEADER_DICTIONARY.endswith(b"enq=0.")


def test_decodes_frames_captured_from_crictl() -> None:
    codec = FrameCodec()
    frames = [codec.decode(bytes.fromhex(h), bytes.fromhex(p)) for h, p in CRICTL_FRAMES]
    assert frames[:4] == [
        SynStreamFrame(1, [("streamtype", "error")]),
        SynStreamFrame(3, [("streamtype", "stdin")]),
        SynStreamFrame(5, [("streamtype", "stdout")]),
        SynStreamFrame(7, [("streamtype", "stderr")]),
    ]
    assert frames[4] == DataFrame(3, b"hi\n")
    assert frames[5] == DataFrame(3, b"", fin=True)


def test_our_encoding_is_decodable_by_a_fresh_peer_context_and_names_the_dictionary() -> None:
    sender, receiver = FrameCodec(), FrameCodec()
    raw = sender.encode(SynStreamFrame(1, [("streamtype", "error")]))
    assert raw[:4] == bytes.fromhex("80030001")
    # zlib header with FDICT set, then the dictionary's Adler-32 as dictionary id.
    assert raw[18] == 0x78 and raw[19] & 0x20 and raw[20:24] == bytes.fromhex("e3c6a7c2")
    assert receiver.decode(*split(raw)) == SynStreamFrame(1, [("streamtype", "error")])


@pytest.mark.parametrize(
    ("frame", "raw"),
    [
        (PingFrame(1), "8003000600000004" "00000001"),
        (RstStreamFrame(5, 5), "8003000300000008" "0000000500000005"),
        (GoAwayFrame(7, 0), "8003000700000008" "0000000700000000"),
        (WindowUpdateFrame(0, 65536), "8003000900000008" "0000000000010000"),
        (DataFrame(3, b"ab", fin=True), "0000000301000002" "6162"),
        (SettingsFrame([Setting(7, 65536)]), "800300040000000c" "00000001" "0000000700010000"),
    ],
)
def test_fixed_frames_have_known_bytes(frame: object, raw: str) -> None:
    codec = FrameCodec()
    assert codec.encode(frame).hex() == raw  # type: ignore[arg-type]
    assert FrameCodec().decode(*split(bytes.fromhex(raw))) == frame


def test_round_trip_of_every_frame_type_through_one_context() -> None:
    frames = [
        SynStreamFrame(1, [("streamtype", "data"), ("port", "80"), ("requestid", "0")], fin=True,
                       unidirectional=True, associated_stream_id=0, priority=3, slot=0),
        SynReplyFrame(1, [], fin=False),
        HeadersFrame(1, [("x", "a\0b")], fin=True),
        SynStreamFrame(3, [("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
        DataFrame(3, b"x" * 100000),
        RstStreamFrame(3, 1),
        SettingsFrame([Setting(4, 100, 1), Setting(7, 1 << 20)], clear=True),
        PingFrame(0xFFFFFFFF),
        GoAwayFrame(3, 2),
        WindowUpdateFrame(3, (1 << 31) - 1),
        UnknownControlFrame(10, 0, b"credential"),
    ]
    sender, receiver = FrameCodec(), FrameCodec()
    for frame in frames:
        assert receiver.decode(*split(sender.encode(frame))) == frame


def test_header_names_are_lowercased_and_repeats_merged() -> None:
    block = encode_header_block([("StreamType", "error"), ("X", "1"), ("x", "2")])
    assert decode_header_block(block) == [("streamtype", "error"), ("x", "1\x002")]


@pytest.mark.parametrize(
    ("head", "payload"),
    [
        ("8002000600000004", "00000001"),  # SPDY/2
        ("8003000600000005", "0000000100"),  # PING of 5 bytes
        ("8003000300000008", "0000000000000005"),  # RST on stream 0
        ("8003000300000008", "0000000100000000"),  # RST with status 0
        ("8003000700000004", "00000001"),  # short GOAWAY
        ("800300040000000c", "000000020000000700010000"),  # SETTINGS count mismatch
        ("8003000100000004", "00000001"),  # SYN_STREAM too short
        ("800300010000000e", "0000000100000000000001020304"),  # garbage header block
        ("0000000000000001", "00"),  # DATA on stream 0
        ("8003000900000008", "0000000100000000"),  # WINDOW_UPDATE delta 0
    ],
)
def test_malformed_frames_raise_protocol_error(head: str, payload: str) -> None:
    with pytest.raises(ProtocolError):
        FrameCodec().decode(bytes.fromhex(head), bytes.fromhex(payload))


def test_header_block_claims_are_bounded() -> None:
    with pytest.raises(ProtocolError):
        decode_header_block(bytes.fromhex("7fffffff"))
    with pytest.raises(ProtocolError):
        decode_header_block(bytes.fromhex("00000001" "00000010" "61"))
    with pytest.raises(ProtocolError):
        decode_header_block(encode_header_block([("a", "b")]) + b"junk")


def test_zlib_bomb_is_rejected() -> None:
    z = zlib.compressobj(zdict=HEADER_DICTIONARY)
    bomb = z.compress(b"\x00\x00\x00\x01\x00\x00\x00\x01a" + (1 << 22).to_bytes(4, "big") + b"a" * (1 << 22))
    bomb += z.flush(zlib.Z_SYNC_FLUSH)
    payload = bytes.fromhex("00000001") + bomb
    head = bytes.fromhex("80030002") + len(payload).to_bytes(4, "big")
    with pytest.raises(ProtocolError):
        FrameCodec().decode(head, payload)


def test_random_bytes_only_ever_raise_protocol_error() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        codec = FrameCodec()
        head = bytes([rng.choice([0x00, 0x80]), rng.randrange(4)]) + rng.randbytes(2) + rng.randbytes(4)
        length = int.from_bytes(head[5:8], "big") % 64
        head = head[:5] + length.to_bytes(3, "big")
        with contextlib.suppress(ProtocolError):
            codec.decode(head, rng.randbytes(length))


async def test_read_frame_from_a_stream_and_clean_eof() -> None:
    sender = FrameCodec()
    reader = asyncio.StreamReader()
    reader.feed_data(sender.encode(PingFrame(3)) + sender.encode(DataFrame(1, b"z")))
    reader.feed_eof()
    codec = FrameCodec()
    assert await read_frame(reader, codec) == PingFrame(3)
    assert await read_frame(reader, codec) == DataFrame(1, b"z")
    assert await read_frame(reader, codec) is None


async def test_read_frame_truncated_and_oversized() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(bytes.fromhex("80030006000000"))
    reader.feed_eof()
    with pytest.raises(ProtocolError):
        await read_frame(reader, FrameCodec())
    reader = asyncio.StreamReader()
    reader.feed_data(bytes.fromhex("0000000100ffffff"))
    with pytest.raises(ProtocolError):
        await read_frame(reader, FrameCodec(), max_length=1024)
