"""Our HTTP/2 server against hostile or broken clients (issue 14), one test per client behaviour.

Each attack drives raw frames from a real unix socket, bounded in time and count, while a
grpcio client makes normal calls on its own connection: those must keep being served within
1 s, the server's memory must stay bounded, and the attacking connection must end the way
RFC 9113 (or the Go/grpc-go server we follow) says.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.h2 import frames, hpack
from cri_runtime.rpc.limits import Limits
from cri_runtime.rpc.server import bind_unix_socket
from tests.waiting import wait_until

from .server_thread import RawClient, ServerThread, grpc_message

VERSION = "/runtime.v1.RuntimeService/Version"
EXEC_SYNC = "/runtime.v1.RuntimeService/ExecSync"
BASE_FIELDS = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"localhost"),
               (b"content-type", b"application/grpc"), (b"te", b"trailers")]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def request_frames(stream: int, path: str, body: bytes | None, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    block = hpack.encode([(b":path", path.encode())] + BASE_FIELDS + (extra or []))
    if body is None:
        return frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS | frames.FLAG_END_STREAM, stream, block)
    return (frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS, stream, block)
            + frames.frame(frames.DATA, frames.FLAG_END_STREAM, stream, body))


def version_body(text: str) -> bytes:
    return grpc_message(api_pb2.VersionRequest(version=text).SerializeToString())


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    wait_until(predicate, "the server's state", timeout=timeout)


class Prober:
    """Normal calls on their own connection, every 50 ms, for as long as the attack runs."""

    def __init__(self, server: ServerThread) -> None:
        self._channel, self._stub = server.stub()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._stub.Version(api_pb2.VersionRequest(version="echo:warm"), timeout=10)  # connect first
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        deadline = time.monotonic() + 10  # an attack over in a blink still gets its probes
        while len(self.latencies) < 3 and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        self._stop.set()
        self._thread.join(15)
        self._channel.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                reply = self._stub.Version(api_pb2.VersionRequest(version="echo:probe"), timeout=5)
                if reply.version != "probe":
                    self.errors.append(f"wrong answer {reply.version!r}")
            except grpc.RpcError as exc:
                self.errors.append(f"{exc.code()}: {exc.details()}")
            self.latencies.append(time.monotonic() - started)
            self._stop.wait(0.05)

    def check(self) -> None:
        """Every probe answered; all within 1 s but a rare outlier (this machine is shared)."""
        assert not self.errors, self.errors
        assert len(self.latencies) >= 3, f"only {len(self.latencies)} probes ran"
        slow = [round(t, 2) for t in self.latencies if t > 1.0]
        assert len(slow) <= max(1, len(self.latencies) // 10), f"slow probes {slow} of {len(self.latencies)}"


def run_for(seconds: float, attack: Callable[[], Any], max_rounds: int) -> int:
    """Repeat `attack` for `seconds` or `max_rounds` rounds, whichever ends first."""
    deadline = time.monotonic() + seconds
    rounds = 0
    while rounds < max_rounds and time.monotonic() < deadline:
        attack()
        rounds += 1
    return rounds


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerThread]]:
    servers: list[ServerThread] = []

    def make(**kwargs: Any) -> ServerThread:
        srv = ServerThread(tmp_path / f"s{len(servers)}.sock", **kwargs).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


def open_calls(server: ServerThread) -> int:
    async def count() -> int:
        return server.server.open_calls
    return int(server.call(count()))


def connection_count(server: ServerThread) -> int:
    async def count() -> int:
        return server.server.connection_count
    return int(server.call(count()))


# -- resets ---------------------------------------------------------------------


def reset_pairs(first_stream: int, count: int, text: str = "sleep:30") -> bytes:
    body = version_body(text)
    return b"".join(request_frames(sid, VERSION, body) + frames.rst_stream(sid, frames.CANCEL)
                    for sid in range(first_stream, first_stream + 2 * count, 2))


def test_headers_and_reset_in_one_write_never_start_and_free_their_streams(server: ServerThread) -> None:
    def one_connection() -> None:
        raw = RawClient(server.path)
        raw.send(reset_pairs(1, 1100))
        raw.send(request_frames(2201, VERSION, version_body("echo:after")))
        blocks, data = raw.response(2201)  # not REFUSED_STREAM: the reset streams were freed
        assert blocks[-1][b"grpc-status"] == b"0"
        assert api_pb2.VersionResponse.FromString(data[5:]).version == "after"
        raw.close()

    with Prober(server) as probe:
        rounds = run_for(3, one_connection, 10)
    # A call whose RST is in the same read buffer never starts; only a pair split across two
    # reads by the kernel can start (and is then cancelled at once).
    assert len(server.servicer.started) <= 3 * rounds
    until(lambda: open_calls(server) == 0)
    until(lambda: len(server.servicer.cancelled) == len(server.servicer.started))
    probe.check()


def test_rapid_reset_over_new_connections_is_served(server: ServerThread) -> None:
    before = rss_mb()
    with Prober(server) as probe:
        def one_connection() -> None:
            raw = RawClient(server.path)
            raw.send(reset_pairs(1, 1000))
            raw.send(request_frames(2001, VERSION, version_body("echo:ok")))
            assert raw.response(2001)[0][-1][b"grpc-status"] == b"0"
            raw.close()
        rounds = run_for(6, one_connection, 8)
    assert rounds >= 2
    probe.check()
    until(lambda: open_calls(server) == 0)
    assert rss_mb() - before < 40


def test_too_many_resets_on_one_connection_get_goaway_enhance_your_calm(server: ServerThread) -> None:
    raw = RawClient(server.path)
    with Prober(server) as probe:
        raw.try_send(reset_pairs(1, 2100), 5)
        code, _ = raw.goaway()
        assert code == frames.ENHANCE_YOUR_CALM
        assert raw.closed_by_server(5)
    probe.check()
    until(lambda: open_calls(server) == 0)


def test_reset_of_a_running_call_is_forgotten_at_once(server: ServerThread) -> None:
    raw = RawClient(server.path)
    raw.send(request_frames(1, VERSION, version_body("sleep:30")))
    until(lambda: server.servicer.started == ["sleep:30"])
    assert open_calls(server) == 1
    raw.send(frames.rst_stream(1, frames.CANCEL))
    until(lambda: open_calls(server) == 0 and server.servicer.cancelled == ["sleep:30"], timeout=5)
    raw.close()


# -- HPACK ------------------------------------------------------------------------


def test_many_references_to_one_table_entry_hit_the_header_list_limit(server: ServerThread) -> None:
    # A literal with incremental indexing puts "x-a: b" in the table (index 62); 16k one-byte
    # references to it would decode to 16k fields (560 KB).
    block = b"\x40" + hpack.encode_int(3, 7, 0) + b"x-a" + hpack.encode_int(1, 7, 0) + b"b" + b"\xbe" * 16000
    before = rss_mb()
    with Prober(server) as probe:
        def one_block() -> None:
            raw = RawClient(server.path)
            raw.try_send(frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS, 1, block), 5)
            assert raw.goaway_code() == frames.ENHANCE_YOUR_CALM
            raw.close()
        assert run_for(4, one_block, 42) >= 5
    probe.check()
    assert rss_mb() - before < 20


def test_repeated_headers_within_the_limit_are_joined_once(server: ServerThread) -> None:
    fields = [(b":path", VERSION.encode()), *BASE_FIELDS]
    block = hpack.encode(fields) + b"\x40" + hpack.encode_int(3, 7, 0) + b"x-a" + hpack.encode_int(1, 7, 0) + b"b"
    block += b"\xbe" * 1500  # 1501 x-a fields, 54 KB decoded: under the 64 KiB limit
    raw = RawClient(server.path)
    started = time.monotonic()
    raw.send(frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS, 1, block)
             + frames.frame(frames.DATA, frames.FLAG_END_STREAM, 1, version_body("metadata")))
    blocks, data = raw.response(1)
    assert time.monotonic() - started < 2
    assert blocks[-1][b"grpc-status"] == b"0"
    assert "'b," + ",".join(["b"] * 1500) + "'" in api_pb2.VersionResponse.FromString(data[5:]).version
    raw.close()


def huffman_field(name: bytes, coded: bytes) -> bytes:
    """A literal field without indexing whose value is the Huffman string `coded`."""
    return (b"\x00" + hpack.encode_int(len(name), 7, 0) + name + hpack.encode_int(len(coded), 7, 0x80) + coded)


def header_block_frames(stream: int, block: bytes) -> bytes:
    return frames.headers_frames(stream, block, False, frames.DEFAULT_MAX_FRAME_SIZE)


def test_one_megabyte_blocks_of_30_bit_huffman_symbols_are_refused_cheaply(server: ServerThread) -> None:
    block = huffman_field(b"x-h", hpack.huffman_encode(b"\n" * 280_000))  # 30-bit symbol, ~1 MB coded
    assert len(block) > 1_000_000
    with Prober(server) as probe:
        def one_block() -> None:
            raw = RawClient(server.path)
            raw.try_send(header_block_frames(1, block), 5)  # the server hangs up part-way
            assert raw.goaway_code() == frames.ENHANCE_YOUR_CALM
            raw.close()
        assert run_for(5, one_block, 22) >= 3
    probe.check()


def test_huffman_decoding_is_table_driven_and_uncached() -> None:
    coded = hpack.huffman_encode(b"\n" * 16_000)  # 60 KB of 30-bit codes
    started = time.monotonic()
    assert hpack.huffman_decode(coded) == b"\n" * 16_000
    assert time.monotonic() - started < 0.5  # the bit-by-bit decoder took ~1 s for this
    assert not hasattr(hpack.huffman_decode, "cache_info")


def test_header_list_limit_is_checked_before_a_string_is_decoded() -> None:
    decoder = hpack.Decoder(max_header_list_size=64 * 1024)
    block = huffman_field(b"x-h", hpack.huffman_encode(b"\n" * 300_000))  # at least 300 KB decoded
    started = time.monotonic()
    with pytest.raises(hpack.HeaderListTooLarge):
        decoder.decode(block)
    assert time.monotonic() - started < 0.05  # refused from the length alone


def test_distinct_600k_huffman_strings_leave_no_memory_behind(server: ServerThread) -> None:
    before = rss_mb()
    with Prober(server) as probe:
        counter = iter(range(10**6))
        coded = hpack.huffman_encode(b"0123456789abcdef" * 40_000)[:600_000]

        def one_block() -> None:
            value = b"%08d" % next(counter) + coded[8:]  # distinct each time
            raw = RawClient(server.path)
            raw.try_send(header_block_frames(1, huffman_field(b"x-d", value)), 5)
            assert raw.goaway_code() == frames.ENHANCE_YOUR_CALM
            raw.close()
        assert run_for(5, one_block, 23) >= 3
    probe.check()
    assert rss_mb() - before < 20


def test_uppercase_header_name_resets_the_stream(server: ServerThread) -> None:
    raw = RawClient(server.path)
    raw.send(request_frames(1, VERSION, version_body("echo:x"), extra=[(b"X-Upper", b"1")]))
    blocks, _ = raw.response(1)
    assert blocks == [{b"rst": struct.pack(">L", frames.PROTOCOL_ERROR)}]
    raw.send(request_frames(3, VERSION, version_body("echo:fine")))
    assert raw.response(3)[0][-1][b"grpc-status"] == b"0"
    raw.close()


# -- SETTINGS and flow control ---------------------------------------------------------


def settings_frame(pairs: list[tuple[int, int]]) -> bytes:
    return frames.frame(frames.SETTINGS, 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in pairs))


def test_settings_with_thousands_of_entries_get_goaway(server: ServerThread) -> None:
    raw = RawClient(server.path)
    raw.send(settings_frame([(frames.SETTINGS_INITIAL_WINDOW_SIZE, 1000 + i) for i in range(2730)]))
    assert raw.goaway_code() == frames.PROTOCOL_ERROR  # Go's limit: at most 100 entries
    raw.close()


def test_window_settings_flood_with_a_thousand_open_streams_costs_no_stall(server: ServerThread) -> None:
    raw = RawClient(server.path)
    block = hpack.encode([(b":path", VERSION.encode()), *BASE_FIELDS])
    raw.send(b"".join(frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS, sid, block)
                      for sid in range(1, 2001, 2)))  # 1000 streams, requests never finished
    until(lambda: open_calls(server) == 1000)
    stop = threading.Event()

    def reader() -> None:  # a well-behaved client reads the ACKs
        raw.sock.settimeout(0.5)
        while not stop.is_set():
            try:
                if not raw.sock.recv(1 << 20):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    flood = b"".join(settings_frame([(frames.SETTINGS_INITIAL_WINDOW_SIZE, 70000 + (i + j) % 2)
                                     for j in range(100)]) for i in range(100))
    with Prober(server) as probe:
        rounds = run_for(4, lambda: raw.send(flood), 60)
    stop.set()
    thread.join(5)
    probe.check()
    assert rounds >= 5
    assert open_calls(server) == 1000  # the connection is still in business
    raw.close()


def test_settings_pushing_a_stream_window_past_the_maximum_is_a_flow_control_error(server: ServerThread) -> None:
    raw = RawClient(server.path)
    block = hpack.encode([(b":path", VERSION.encode()), *BASE_FIELDS])
    raw.send(frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS, 1, block)
             + frames.window_update(1, frames.MAX_WINDOW - frames.DEFAULT_WINDOW))  # exactly the maximum
    raw.send(settings_frame([(frames.SETTINGS_INITIAL_WINDOW_SIZE, frames.DEFAULT_WINDOW + 1)]))
    assert raw.goaway_code() == frames.FLOW_CONTROL_ERROR
    raw.close()


def test_data_beyond_the_stream_window_is_a_flow_control_error(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(max_message=32 * 1024 * 1024)  # so the window, not the size limit, is hit first
    raw = RawClient(server.path)
    block = hpack.encode([(b":path", EXEC_SYNC.encode()), *BASE_FIELDS])
    chunk = b"\0" * frames.DEFAULT_MAX_FRAME_SIZE
    count = (16 * 1024 * 1024 + 1024) // len(chunk) + 1
    raw.send(frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS, 1, block)
             + b"".join(frames.frame(frames.DATA, 0, 1, chunk) for _ in range(count)))
    blocks, _ = raw.response(1)
    assert blocks[-1] == {b"rst": struct.pack(">L", frames.FLOW_CONTROL_ERROR)}
    raw.close()


def test_connection_window_is_refilled_as_requests_are_consumed(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(max_message=16 * 1024 * 1024)
    channel, stub = server.stub(options=[("grpc.max_send_message_length", 16 * 1024 * 1024)])
    with channel:  # 8 x 10 MB is more than the 65 MiB connection window: only refills let it through
        for _ in range(8):
            reply = stub.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=["3"] + ["a" * 1000] * 10_000),
                                  timeout=30)
            assert reply.exit_code == 10_001


def test_buffered_request_bytes_are_limited_per_connection(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(max_message=16 * 1024 * 1024,
                         limits=Limits(max_buffered_request=16 * 1024 * 1024 + 1024))
    raw = RawClient(server.path)
    block = hpack.encode([(b":path", EXEC_SYNC.encode()), *BASE_FIELDS])
    nine_mb = 9 * 1024 * 1024 // frames.DEFAULT_MAX_FRAME_SIZE

    def partial(stream: int) -> bytes:
        data = b"\0" * frames.DEFAULT_MAX_FRAME_SIZE
        return (frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS, stream, block)
                + b"".join(frames.frame(frames.DATA, 0, stream, data) for _ in range(nine_mb)))
    raw.send(partial(1) + partial(3))  # 18 MB held for two unfinished requests: over the limit
    blocks, _ = raw.response(3)
    assert blocks[0][b"grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]).encode()
    assert b"buffered" in blocks[0][b"grpc-message"]
    raw.send(request_frames(5, VERSION, version_body("echo:still")))
    assert raw.response(5)[0][-1][b"grpc-status"] == b"0"
    raw.close()


@pytest.mark.parametrize("empty", [
    frames.frame(frames.DATA, 0, 1, b""),
    frames.frame(frames.CONTINUATION, 0, 1, b""),
], ids=["data", "continuation"])
def test_empty_frame_floods_get_goaway_enhance_your_calm(server: ServerThread, empty: bytes) -> None:
    raw = RawClient(server.path)
    block = hpack.encode([(b":path", VERSION.encode()), *BASE_FIELDS])
    flags = frames.FLAG_END_HEADERS if empty[3] == frames.DATA else 0
    raw.try_send(frames.frame(frames.HEADERS, flags, 1, block) + empty * 100_000, 5)
    assert raw.goaway_code() == frames.ENHANCE_YOUR_CALM
    raw.close()
    assert open_calls(server) == 0


# -- clients that do not read --------------------------------------------------------


STALL = Limits(send_stall_timeout=2.0, ping_min_interval=0, ping_idle_interval=0)


def flood_without_reading(raw: RawClient, chunk: bytes, max_bytes: int) -> int:
    """Send `chunk` until the server stops reading (a 1 s blocked send); the bytes sent."""
    sent = 0
    while sent < max_bytes:
        if not raw.try_send(chunk, 1.0):
            return sent
        sent += len(chunk)
    raise AssertionError(f"the server kept reading {sent} bytes from a client that never reads")


@pytest.mark.parametrize("control", [
    frames.frame(frames.PING, 0, 0, b"12345678"),
    frames.frame(frames.SETTINGS, 0, 0),
], ids=["ping", "settings"])
def test_control_floods_from_a_client_that_never_reads_stop_being_read(
        make_server: Callable[..., ServerThread], control: bytes) -> None:
    server = make_server(limits=STALL)
    before = rss_mb()
    raw = RawClient(server.path)
    with Prober(server) as probe:
        flood_without_reading(raw, control * 50_000, 200 * 1024 * 1024)
        assert rss_mb() - before < 30  # the ACKs were not buffered without limit
        until(lambda: connection_count(server) == 1, timeout=15)  # dropped after the send-stall timeout
    probe.check()
    raw.close()


def test_answers_to_a_client_that_never_reads_stop_the_reading(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(limits=STALL)
    raw = RawClient(server.path)
    raw.send(settings_frame([(frames.SETTINGS_INITIAL_WINDOW_SIZE, frames.MAX_WINDOW)])
             + frames.window_update(0, frames.MAX_WINDOW - frames.DEFAULT_WINDOW))
    body = grpc_message(api_pb2.ExecSyncRequest(container_id="c", cmd=["65536"]).SerializeToString())
    stream = iter(range(1, 2**31, 2))
    before = rss_mb()
    with Prober(server) as probe:
        sent = 0
        while True:
            batch = b"".join(request_frames(next(stream), EXEC_SYNC, body) for _ in range(200))
            if not raw.try_send(batch, 1.0):
                break
            sent += 200
            assert sent < 50_000, "the server kept answering a client that never reads"
        # Reading stops once the socket's buffer is full, but the calls already read are answered:
        # at most one per open stream (max_concurrent_streams, 64 MiB of answers), plus the
        # interpreter's own slack. Unbounded, 50 000 answers of 64 KiB would be 3 GB.
        assert rss_mb() - before < STALL.max_concurrent_streams * 64 / 1024 + 40
        until(lambda: connection_count(server) == 1, timeout=15)  # dropped after the send-stall timeout
    probe.check()
    raw.close()


def test_a_call_parked_on_a_zero_window_is_reset_after_the_stall_timeout(
        make_server: Callable[..., ServerThread]) -> None:
    server = make_server(limits=STALL)
    raw = RawClient(server.path, preface=False)
    raw.send(frames.PREFACE + settings_frame([(frames.SETTINGS_INITIAL_WINDOW_SIZE, 0)]))
    body = grpc_message(api_pb2.ExecSyncRequest(container_id="c", cmd=["100"]).SerializeToString())
    raw.send(request_frames(1, EXEC_SYNC, body))  # no grpc-timeout: no deadline
    started = time.monotonic()
    blocks, _ = raw.response(1)
    assert blocks[-1] == {b"rst": struct.pack(">L", frames.CANCEL)}
    assert 1.5 < time.monotonic() - started < 15
    until(lambda: open_calls(server) == 0)
    raw.close()


# -- connections ---------------------------------------------------------------------------


def test_ping_flood_gets_goaway_too_many_pings(server: ServerThread) -> None:
    raw = RawClient(server.path)
    raw.send(frames.frame(frames.PING, 0, 0, b"12345678") * 5)  # the first is free, then 3 strikes
    assert raw.goaway() == (frames.ENHANCE_YOUR_CALM, b"too_many_pings")
    raw.close()


def test_a_ping_after_we_sent_data_is_no_strike(server: ServerThread) -> None:
    raw = RawClient(server.path)
    for stream in range(1, 12, 2):
        raw.send(request_frames(stream, VERSION, version_body("echo:x")) + frames.frame(frames.PING, 0, 0, b"p" * 8))
        assert raw.response(stream)[0][-1][b"grpc-status"] == b"0"
    raw.send(request_frames(13, VERSION, version_body("echo:y")))
    assert raw.response(13)[0][-1][b"grpc-status"] == b"0"
    raw.close()


def test_no_preface_in_time_closes_the_connection(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(limits=Limits(preface_timeout=0.5))
    raw = RawClient(server.path, preface=False)
    raw.send(frames.PREFACE[:10])
    assert raw.closed_by_server(10)
    until(lambda: connection_count(server) == 0)


def test_idle_connection_gets_goaway(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(limits=Limits(idle_timeout=0.5))
    raw = RawClient(server.path)
    raw.send(request_frames(1, VERSION, version_body("echo:x")))
    assert raw.response(1)[0][-1][b"grpc-status"] == b"0"
    assert raw.goaway() == (frames.NO_ERROR, b"")
    assert raw.closed_by_server(5)


def test_connection_cap_sends_the_longest_idle_away_then_refuses(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(limits=Limits(max_connections=3))
    idle = [RawClient(server.path) for _ in range(3)]
    until(lambda: connection_count(server) == 3)
    newcomer = RawClient(server.path)
    assert idle[0].goaway_code() == frames.NO_ERROR  # the longest idle
    for raw in [*idle[1:], newcomer]:
        raw.send(request_frames(1, VERSION, version_body("sleep:30")))
    until(lambda: open_calls(server) == 3)
    refused = RawClient(server.path, preface=False)  # all busy: refused
    assert refused.closed_by_server(5)
    for raw in [*idle, newcomer, refused]:
        raw.close()


def test_listen_backlog_absorbs_a_burst_while_the_loop_is_busy(server: ServerThread) -> None:
    block = threading.Event()
    server.loop.call_soon_threadsafe(lambda: block.wait(10))  # the server accepts nothing meanwhile
    socks = []
    refused = 0
    try:
        for _ in range(300):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(server.path)
            except BlockingIOError:
                refused += 1
            socks.append(sock)
    finally:
        block.set()
        for sock in socks:
            sock.close()
    assert refused == 0  # the old backlog of 100 refused two thirds of these


def test_socket_is_never_more_open_than_its_mode(tmp_path: Path) -> None:
    path = str(tmp_path / "mode.sock")
    old = os.umask(0)
    try:
        sock = bind_unix_socket(path, 0o660, 16)
    finally:
        os.umask(old)
    try:
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o660)
        assert sorted(os.listdir(tmp_path)) == ["mode.sock"]  # no temporary name left behind
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        client.close()
    finally:
        sock.close()
