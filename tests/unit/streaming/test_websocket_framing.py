"""RFC 6455 framing and handshake helpers."""

from __future__ import annotations

import asyncio

import pytest

from cri_runtime.streaming.http import HttpError, HttpHeaders
from cri_runtime.streaming.websocket import (
    OP_BINARY,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WebSocketConnection,
    WebSocketError,
    accept_key,
    check_server_handshake,
    client_handshake_headers,
    encode_frame,
    read_ws_frame,
    select_subprotocol,
    server_handshake,
)


class BufferWriter:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    async def wait_closed(self) -> None:
        return None


def reader_with(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_rfc6455_examples() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert encode_frame(OP_TEXT, b"Hello").hex() == "810548656c6c6f"
    masked = encode_frame(OP_TEXT, b"Hello", mask=bytes.fromhex("37fa213d"))
    assert masked.hex() == "818537fa213d7f9f4d5158"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300000])
async def test_round_trip_lengths_and_masking(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = await read_ws_frame(reader_with(encode_frame(OP_BINARY, payload, mask=b"abcd")), expect_masked=True,
                                max_size=1 << 20)
    assert frame is not None and frame.payload == payload and frame.opcode == OP_BINARY and frame.fin


@pytest.mark.parametrize(
    "raw",
    [
        "c100",  # RSV1 set
        "8300",  # unknown opcode 3
        "0900",  # fragmented ping
        "897e0080" + "00" * 128,  # ping longer than 125
        "8180",  # masked frame where unmasked expected... (mask bit set) handled below
    ],
)
async def test_malformed_frames(raw: str) -> None:
    with pytest.raises(WebSocketError):
        await read_ws_frame(reader_with(bytes.fromhex(raw) + b"\0" * 4), expect_masked=False, max_size=1 << 20)


async def test_oversized_frame_rejected() -> None:
    with pytest.raises(WebSocketError):
        await read_ws_frame(reader_with(encode_frame(OP_BINARY, b"x" * 2000)), expect_masked=False, max_size=1000)


async def test_connection_reassembles_fragments_and_answers_pings() -> None:
    data = (encode_frame(OP_BINARY, b"he", fin=False, mask=b"\1\2\3\4")
            + encode_frame(OP_PING, b"p", mask=b"\1\2\3\4")
            + encode_frame(OP_CONTINUATION, b"llo", mask=b"\1\2\3\4"))
    writer = BufferWriter()
    ws = WebSocketConnection(reader_with(data), writer, client=False)
    message = await ws.recv()
    assert message is not None and message.data == b"hello" and message.opcode == OP_BINARY
    assert bytes(writer.data) == encode_frame(OP_PONG, b"p")
    assert await ws.recv() is None  # EOF
    assert ws.closed


async def test_close_handshake_echoes_code() -> None:
    writer = BufferWriter()
    ws = WebSocketConnection(reader_with(encode_frame(0x8, b"\x03\xe8bye", mask=b"abcd")), writer, client=False)
    assert await ws.recv() is None
    assert ws.close_code == 1000 and ws.close_reason == "bye"
    assert bytes(writer.data).startswith(bytes.fromhex("880203e8"))


def test_subprotocol_selection_follows_client_order_and_403_lists_ours() -> None:
    headers = HttpHeaders([("Sec-WebSocket-Protocol", "foo, v4.channel.k8s.io"),
                           ("Sec-WebSocket-Protocol", "v5.channel.k8s.io")])
    assert select_subprotocol(headers, ["v5.channel.k8s.io", "v4.channel.k8s.io"]) == "v4.channel.k8s.io"
    assert select_subprotocol(HttpHeaders(), ["v5.channel.k8s.io", ""]) == ""
    with pytest.raises(HttpError) as info:
        select_subprotocol(HttpHeaders([("Sec-WebSocket-Protocol", "nope")]), ["v5.channel.k8s.io", ""])
    assert info.value.status == 403 and "v5.channel.k8s.io" in info.value.message


def test_client_and_server_handshakes_agree() -> None:
    key, request = client_handshake_headers(["v5.channel.k8s.io"])
    protocol, response = server_handshake(HttpHeaders(request), ["v5.channel.k8s.io"])
    assert protocol == "v5.channel.k8s.io"
    assert check_server_handshake(101, HttpHeaders(response), key, ["v5.channel.k8s.io"]) == protocol
    with pytest.raises(ConnectionError):
        check_server_handshake(101, HttpHeaders(response), "AAAAAAAAAAAAAAAAAAAAAA==", ["v5.channel.k8s.io"])
    with pytest.raises(HttpError):
        server_handshake(HttpHeaders([("Sec-WebSocket-Version", "8")]), ["v5.channel.k8s.io"])
