"""The blocking gRPC client (crictl's transport) against our server: results, statuses, limits,
deadlines, streams, interrupts, and that it loads neither grpcio nor the server."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.grpc_client.blocking import Channel
from cri_runtime.grpc_client.status import RpcError, StatusCode
from cri_runtime.h2 import frames, hpack, wire
from tests.unit.rpc.server_thread import ServerThread
from tests.waiting import wait_until

SERVICE = "/runtime.v1.RuntimeService/"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    srv = ServerThread(tmp_path / "rpc.sock").start()
    try:
        yield srv
    finally:
        srv.stop()


def version(channel: Channel, text: str, timeout: float | None = None,
            metadata: list[tuple[str, str]] | None = None) -> str:  # fmt: skip
    request = api_pb2.VersionRequest(version=text).SerializeToString()
    raw = channel.unary(SERVICE + "Version", request, timeout=timeout, metadata=metadata or ())
    return str(api_pb2.VersionResponse.FromString(raw).version)


def test_calls_metadata_and_statuses(server: ServerThread) -> None:
    channel = Channel(server.path)
    try:
        assert [version(channel, f"echo:{i}") for i in range(20)] == [str(i) for i in range(20)]
        assert "('x-ns', 'k8s.io')" in version(channel, "metadata", metadata=[("X-Ns", "k8s.io")])
        with pytest.raises(RpcError) as err:
            version(channel, "abort:NOT_FOUND:no such thing: 100% é")
        assert (err.value.code(), err.value.details()) == (StatusCode.NOT_FOUND, "no such thing: 100% é")
        assert err.value.code().name == "NOT_FOUND"  # what crictl maps to Go's code names
        assert version(channel, "echo:same connection") == "same connection"
    finally:
        channel.close()


@pytest.mark.parametrize("size", [0, 100_000, 3 * 1024 * 1024])
def test_large_requests_and_responses_respect_flow_control(server: ServerThread, size: int) -> None:
    channel = Channel(server.path)
    try:
        request = api_pb2.ExecSyncRequest(container_id="c", cmd=[str(size)] + ["a" * 1000] * 200)
        raw = channel.unary(SERVICE + "ExecSync", request.SerializeToString())
        response = api_pb2.ExecSyncResponse.FromString(raw)
        assert response.stdout == b"x" * size and response.exit_code == 201
    finally:
        channel.close()


def test_size_limits_fail_as_grpc_go_words_them(server: ServerThread) -> None:
    channel = Channel(server.path, max_receive=1000, max_send=2000)
    try:
        with pytest.raises(RpcError) as err:
            channel.unary(SERVICE + "ExecSync", api_pb2.ExecSyncRequest(cmd=["5000"]).SerializeToString())
        assert err.value.code() == StatusCode.RESOURCE_EXHAUSTED
        size = len(api_pb2.ExecSyncResponse(stdout=b"x" * 5000, exit_code=1).SerializeToString())
        assert err.value.details() == f"grpc: received message larger than max ({size} vs. 1000)"
        with pytest.raises(RpcError) as err:
            channel.unary(SERVICE + "Version", api_pb2.VersionRequest(version="x" * 3000).SerializeToString())
        assert err.value.details() == "grpc: trying to send message larger than max (3003 vs. 2000)"
        assert version(channel, "echo:still fine") == "still fine"
    finally:
        channel.close()


def test_deadline_is_sent_enforced_and_the_call_reset(server: ServerThread) -> None:
    channel = Channel(server.path)
    try:
        assert 0 < float(version(channel, "remaining", timeout=5)) <= 5
        started = time.monotonic()
        with pytest.raises(RpcError) as err:
            version(channel, "sleep:5", timeout=0.3)
        assert (err.value.code(), err.value.details()) == (StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
        assert time.monotonic() - started < 2
        wait_until(lambda: server.servicer.cancelled == ["sleep:5"], "cancelled on the server")
        assert version(channel, "echo:after") == "after"
    finally:
        channel.close()


class Interrupted(BaseException):
    pass


def test_a_signal_raising_in_the_wait_ends_the_call_at_once_and_resets_it(server: ServerThread) -> None:
    """Ctrl-C in crictl: the handler raises in the waiting thread; the server sees the reset."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    channel = Channel(server.path)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        with pytest.raises(Interrupted):
            version(channel, "sleep:10")
        assert time.monotonic() - started < 2
        wait_until(lambda: server.servicer.cancelled == ["sleep:10"], "cancelled on the server")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        channel.close()


def test_server_streams_arrive_in_order_and_can_be_cancelled(server: ServerThread) -> None:
    channel = Channel(server.path)
    method = SERVICE + "StreamContainers"
    try:
        request = api_pb2.StreamContainersRequest(filter=api_pb2.ContainerFilter(id="300"))
        ids = [api_pb2.StreamContainersResponse.FromString(raw).containers[0].id
               for raw in channel.server_stream(method, request.SerializeToString())]  # fmt: skip
        assert ids == [str(i) for i in range(300)]
        stream = channel.server_stream(method, request.SerializeToString())
        first = next(iter(stream))
        assert api_pb2.StreamContainersResponse.FromString(first).containers[0].id == "0"
        stream.cancel()
        assert version(channel, "echo:after the stream") == "after the stream"
    finally:
        channel.close()


def test_no_server_is_unavailable_with_grpc_gos_dial_error(tmp_path: Path) -> None:
    path = tmp_path / "nobody.sock"
    with pytest.raises(RpcError) as err:
        version(Channel(str(path)), "echo:x", timeout=1)
    assert err.value.code() == StatusCode.UNAVAILABLE
    assert err.value.details() == (f'connection error: desc = "transport: Error while dialing: dial unix {path}: '
                                   'connect: no such file or directory"')  # fmt: skip


def test_a_stopped_server_ends_the_call_in_flight_then_is_unavailable(tmp_path: Path) -> None:
    srv = ServerThread(tmp_path / "goaway.sock").start()
    channel = Channel(srv.path)

    def stop_once_called() -> None:
        wait_until(lambda: srv.servicer.started == ["sleep:0.5"], "started the call")
        srv.stop(grace=5)

    stopper = threading.Thread(target=stop_once_called)
    try:
        assert version(channel, "echo:warm") == "warm"
        stopper.start()
        assert version(channel, "sleep:0.5") == "slept"  # GOAWAY lets the call in flight finish
        stopper.join(10)
        with pytest.raises(RpcError) as err:
            version(channel, "echo:gone", timeout=1)
        assert err.value.code() == StatusCode.UNAVAILABLE
    finally:
        channel.close()
        if stopper.is_alive() or not stopper.ident:
            stopper.join(10)


def test_a_server_restarted_between_calls_is_dialled_anew(tmp_path: Path) -> None:
    """As `crictl logs -f` polls across a runtime restart: the idle connection is not reused."""
    path = tmp_path / "restart.sock"
    channel = Channel(str(path))
    try:
        first = ServerThread(path).start()
        assert version(channel, "echo:before") == "before"
        first.stop(grace=0.1)
        second = ServerThread(path).start()
        try:
            assert version(channel, "echo:after", timeout=5) == "after"
        finally:
            second.stop()
    finally:
        channel.close()


class ScriptedServer:
    """A bare HTTP/2 server answering each call with `echo`, and sending a PING when told to."""

    def __init__(self, path: Path) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.send_ping = threading.Event()
        self.ping_sent = threading.Event()
        self.pings_acked = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        buf = b""
        while len(buf) < len(frames.PREFACE):
            buf += conn.recv(65536)
        buf = buf[len(frames.PREFACE):]
        conn.sendall(frames.settings({}))
        response = wire.length_prefixed(api_pb2.VersionResponse(version="echo").SerializeToString())
        for call in range(2):
            stream, buf = self._read_call(conn, buf)
            conn.sendall(frames.headers_frames(stream, hpack.encode([(b":status", b"200")]), False, 16384)
                         + frames.data_frames(stream, response, 16384)
                         + frames.headers_frames(stream, hpack.encode([(b"grpc-status", b"0")]), True, 16384))
            if call == 0:
                assert self.send_ping.wait(10)
                conn.sendall(frames.frame(frames.PING, 0, 0, b"12345678"))
                self.ping_sent.set()
        conn.close()

    def _read_call(self, conn: socket.socket, buf: bytes) -> tuple[int, bytes]:
        """Read frames until a request ends (its stream and the bytes after it); count PING acks."""
        while True:
            while len(buf) < frames.HEADER_SIZE:
                buf += conn.recv(65536)
            length, ftype, flags, stream = frames.parse_header(buf, 0)
            while len(buf) < frames.HEADER_SIZE + length:
                buf += conn.recv(65536)
            buf = buf[frames.HEADER_SIZE + length:]
            if ftype == frames.PING and flags & frames.FLAG_ACK:
                self.pings_acked += 1
            if ftype == frames.DATA and flags & frames.FLAG_END_STREAM:
                return stream, buf


def test_a_ping_that_arrived_while_idle_is_answered_and_the_next_call_runs(tmp_path: Path) -> None:
    server = ScriptedServer(tmp_path / "scripted.sock")
    channel = Channel(str(tmp_path / "scripted.sock"))
    results: list[str] = []

    def calls() -> None:
        results.append(version(channel, "one", timeout=5))
        server.send_ping.set()
        assert server.ping_sent.wait(5)
        results.append(version(channel, "two", timeout=5))

    client = threading.Thread(target=calls, daemon=True)
    try:
        client.start()
        client.join(10)
        assert not client.is_alive(), "the second call hung"
        assert results == ["echo", "echo"]
        server.thread.join(10)
        assert server.pings_acked == 1
    finally:
        channel.close()
        server.listener.close()


def test_importing_the_client_loads_neither_grpcio_nor_the_server() -> None:
    code = ("import sys, cri_runtime.grpc_client.blocking; print(sorted(m for m in sys.modules "
            "if m == 'grpc' or m.startswith(('grpc.', 'cri_runtime.rpc'))))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
