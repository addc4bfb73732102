"""Our gRPC transport against grpcio's client and a raw HTTP/2 socket."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.h2 import frames, hpack
from tests.waiting import wait_until

from .server_thread import RawClient, ServerThread, grpc_message

VERSION = "/runtime.v1.RuntimeService/Version"


def version(server: ServerThread, text: str, **kw: object) -> str:
    channel, stub = server.stub()
    with channel:
        return str(stub.Version(api_pb2.VersionRequest(version=text), timeout=10, **kw).version)


def status_of(server: ServerThread, text: str, timeout: float = 10) -> grpc.RpcError:
    channel, stub = server.stub()
    with channel, pytest.raises(grpc.RpcError) as info:
        stub.Version(api_pb2.VersionRequest(version=text), timeout=timeout)
    return info.value


def test_unary_call_round_trips(server: ServerThread) -> None:
    assert version(server, "echo:hello") == "hello"


def test_a_pre_serialized_response_is_sent_as_is(server: ServerThread) -> None:
    assert version(server, "serialized") == "pre-encoded"


def test_many_calls_on_one_channel_reuse_the_header_table(server: ServerThread) -> None:
    channel, stub = server.stub()
    with channel:
        for i in range(200):
            assert stub.Version(api_pb2.VersionRequest(version=f"echo:{i}"), timeout=10).version == str(i)


@pytest.mark.parametrize("code", ["NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"])
def test_abort_carries_code_and_message(server: ServerThread, code: str) -> None:
    err = status_of(server, f"abort:{code}:pod \"x\" not found: 100% gone\nnext line é")
    assert err.code() == grpc.StatusCode[code]
    assert err.details() == "pod \"x\" not found: 100% gone\nnext line é"


def test_unexpected_exception_is_internal_not_unknown(server: ServerThread) -> None:
    err = status_of(server, "raise")
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "boom" in err.details()


def test_unknown_method_is_unimplemented(server: ServerThread) -> None:
    channel = grpc.insecure_channel(f"unix://{server.path}")
    with channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/runtime.v1.RuntimeService/NoSuchCall")(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "NoSuchCall" in info.value.details()


def test_deadline_cancels_the_handler(server: ServerThread) -> None:
    started = time.monotonic()
    err = status_of(server, "sleep:5", timeout=0.3)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2
    wait_until(lambda: server.servicer.cancelled, "the handler is cancelled")
    assert server.servicer.cancelled == ["sleep:5"]


def test_handler_sees_the_time_remaining(server: ServerThread) -> None:
    remaining = float(version(server, "remaining"))
    assert 0 < remaining <= 11  # grpcio rounds the timeout it sends up a little


def test_client_cancel_reaches_the_handler(server: ServerThread) -> None:
    channel, stub = server.stub()
    with channel:
        future = stub.Version.future(api_pb2.VersionRequest(version="sleep:4"), timeout=10)
        wait_until(lambda: server.servicer.started, "the handler runs")
        future.cancel()
        wait_until(lambda: server.servicer.cancelled, "the handler is cancelled")
    assert server.servicer.cancelled == ["sleep:4"]


def test_metadata_and_peer_reach_the_handler(server: ServerThread) -> None:
    text = version(server, "metadata", metadata=(("x-trace", "abc"), ("x-data-bin", b"\x00\x01")))
    assert "('x-trace', 'abc')" in text and "('x-data-bin', '\\x00\\x01')" in text
    assert version(server, "peer").startswith("unix:")


def test_concurrent_calls_on_one_connection(server: ServerThread) -> None:
    channel, stub = server.stub()
    with channel:
        futures = [stub.Version.future(api_pb2.VersionRequest(version="sleep:0.3"), timeout=10) for _ in range(50)]
        started = time.monotonic()
        assert all(f.result().version == "slept" for f in futures)
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("size", [0, 70_000, 3 * 1024 * 1024])
def test_large_responses_respect_flow_control(server: ServerThread, size: int) -> None:
    channel, stub = server.stub()
    with channel:
        resp = stub.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=[str(size)]), timeout=20)
    assert resp.stdout == b"x" * size and resp.exit_code == 1


def test_large_request_is_received(server: ServerThread) -> None:
    channel, stub = server.stub()
    with channel:
        resp = stub.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=["3"] + ["a" * 1000] * 3000),
                             timeout=20)
    assert resp.exit_code == 3001


def test_oversized_request_is_resource_exhausted(tmp_path: Path) -> None:
    srv = ServerThread(tmp_path / "small.sock", max_message=100_000).start()
    try:
        channel, stub = srv.stub()
        with channel, pytest.raises(grpc.RpcError) as info:
            stub.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=["1", "a" * 200_000]), timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        channel, stub = srv.stub()
        with channel, pytest.raises(grpc.RpcError) as info:
            stub.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=["200000"]), timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        channel, stub = srv.stub()
        with channel:  # the connection is still usable afterwards
            assert stub.Version(api_pb2.VersionRequest(version="echo:ok"), timeout=5).version == "ok"
    finally:
        srv.stop()


def test_gzip_compressed_request_is_accepted(server: ServerThread) -> None:
    channel, stub = server.stub(compression=grpc.Compression.Gzip)
    with channel:
        resp = stub.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=["5"] + ["z" * 100] * 100), timeout=10)
    assert resp.stdout == b"xxxxx"


def test_server_stream_with_a_slow_reader(server: ServerThread) -> None:
    channel, stub = server.stub()
    with channel:
        call = stub.StreamContainers(api_pb2.StreamContainersRequest(
            filter=api_pb2.ContainerFilter(id="300")), timeout=20)
        assert ("x-live", "yes") in call.initial_metadata()
        ids = []
        for i, resp in enumerate(call):
            if i % 100 == 0:
                time.sleep(0.2)  # let the windows fill up
            ids.append(resp.containers[0].id)
    assert ids == [str(i) for i in range(300)]


def test_stop_lets_running_calls_finish_and_refuses_new_ones(tmp_path: Path) -> None:
    srv = ServerThread(tmp_path / "stop.sock").start()
    channel, stub = srv.stub()
    with channel:
        running = stub.Version.future(api_pb2.VersionRequest(version="sleep:0.5"), timeout=10)
        wait_until(lambda: srv.servicer.started, "the handler runs")
        stopper = threading.Thread(target=srv.stop, kwargs={"grace": 5})
        stopper.start()
        assert running.result().version == "slept"
        stopper.join(10)
    assert not stopper.is_alive()
    assert not Path(srv.path).exists() or RawClient_refused(srv.path)


def RawClient_refused(path: str) -> bool:
    try:
        RawClient(path).close()
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    return False


def test_stop_cancels_calls_still_running_after_the_grace(tmp_path: Path) -> None:
    srv = ServerThread(tmp_path / "grace.sock").start()
    channel, stub = srv.stub()
    with channel:
        running = stub.Version.future(api_pb2.VersionRequest(version="sleep:30"), timeout=60)
        wait_until(lambda: srv.servicer.started, "the handler runs")
        started = time.monotonic()
        srv.stop(grace=0.3)
        assert time.monotonic() - started < 3
        with pytest.raises(grpc.RpcError):
            running.result(timeout=5)
    assert srv.servicer.cancelled == ["sleep:30"]


# -- raw HTTP/2 ---------------------------------------------------------------


def test_bad_preface_gets_goaway(server: ServerThread) -> None:
    raw = RawClient(server.path, preface=False)
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.goaway_code() == frames.PROTOCOL_ERROR
    raw.close()


def test_ping_is_acknowledged(server: ServerThread) -> None:
    raw = RawClient(server.path)
    raw.send(frames.frame(frames.PING, 0, 0, b"12345678"))
    ftype, flags, _, payload = raw.read_frame()
    assert (ftype, flags, payload) == (frames.PING, frames.FLAG_ACK, b"12345678")
    raw.close()


def _status(blocks: list[dict[bytes, bytes]]) -> tuple[bytes, bytes]:
    last = blocks[-1]
    return last.get(b"grpc-status", b""), last.get(b"grpc-message", b"")


def test_unparsable_request_is_invalid_argument(server: ServerThread) -> None:
    raw = RawClient(server.path)
    raw.request(1, VERSION, grpc_message(b"\xff\xff\xff"))
    status, message = _status(raw.response(1)[0])
    assert status == str(grpc.StatusCode.INVALID_ARGUMENT.value[0]).encode()
    assert b"runtime.v1.VersionRequest" in message
    raw.close()


@pytest.mark.parametrize("body", [None, grpc_message(b"") * 2, grpc_message(b"")[:3]])
def test_request_without_exactly_one_message_is_internal(server: ServerThread, body: bytes | None) -> None:
    raw = RawClient(server.path)
    raw.request(1, VERSION, body)
    assert _status(raw.response(1)[0])[0] == str(grpc.StatusCode.INTERNAL.value[0]).encode()
    raw.close()


def test_malformed_timeout_is_invalid_argument(server: ServerThread) -> None:
    raw = RawClient(server.path)
    raw.request(1, VERSION, grpc_message(b""), extra=[(b"grpc-timeout", b"soon")])
    assert _status(raw.response(1)[0])[0] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0]).encode()
    raw.close()


def test_unknown_compression_is_unimplemented(server: ServerThread) -> None:
    raw = RawClient(server.path)
    raw.request(1, VERSION, b"\x01\x00\x00\x00\x01x", extra=[(b"grpc-encoding", b"snappy")])
    assert _status(raw.response(1)[0])[0] == str(grpc.StatusCode.UNIMPLEMENTED.value[0]).encode()
    raw.close()


def test_non_grpc_content_type_gets_415(server: ServerThread) -> None:
    raw = RawClient(server.path)
    raw.request(1, VERSION, grpc_message(b""), content_type=b"text/plain")
    blocks, _ = raw.response(1)
    assert blocks[0][b":status"] == b"415"
    raw.close()


def test_headers_split_over_continuation_frames(server: ServerThread) -> None:
    raw = RawClient(server.path)
    block = hpack.encode([(b":method", b"POST"), (b":scheme", b"http"), (b":path", VERSION.encode()),
                          (b"content-type", b"application/grpc"), (b"x-pad", b"p" * 40000)])
    raw.send(frames.frame(frames.HEADERS, 0, 1, block[:14000])
             + frames.frame(frames.CONTINUATION, 0, 1, block[14000:28000])
             + frames.frame(frames.CONTINUATION, frames.FLAG_END_HEADERS, 1, block[28000:])
             + frames.frame(frames.DATA, frames.FLAG_END_STREAM, 1,
                            grpc_message(api_pb2.VersionRequest(version="echo:cont").SerializeToString())))
    blocks, data = raw.response(1)
    assert _status(blocks)[0] == b"0"
    assert api_pb2.VersionResponse.FromString(data[5:]).version == "cont"
    raw.close()


@pytest.mark.parametrize("bad, code", [
    (frames.frame(frames.DATA, 0, 0, b"x"), frames.PROTOCOL_ERROR),
    (frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS, 2, b"\x83"), frames.PROTOCOL_ERROR),
    (frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS, 1, b"\x80"), frames.COMPRESSION_ERROR),
    (frames.frame(frames.PING, 0, 0, b"short"), frames.PROTOCOL_ERROR),
    (frames.frame(frames.SETTINGS, 0, 0, b"\x00\x04\xff\xff\xff\xff"), frames.FLOW_CONTROL_ERROR),
    (frames.frame(frames.WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x00"), frames.PROTOCOL_ERROR),
    (frames.frame(frames.DATA, 0, 1, b"x" * 20000), frames.FRAME_SIZE_ERROR),
    (frames.frame(frames.CONTINUATION, frames.FLAG_END_HEADERS, 1, b"\x83"), frames.PROTOCOL_ERROR),
])
def test_protocol_violations_close_the_connection(server: ServerThread, bad: bytes, code: int) -> None:
    raw = RawClient(server.path)
    raw.send(bad)
    assert raw.goaway_code() == code
    raw.close()
    assert version(server, "echo:still") == "still"  # other connections are unaffected


def test_reset_stream_frees_it_and_the_connection_goes_on(server: ServerThread) -> None:
    raw = RawClient(server.path)
    raw.request(1, VERSION, grpc_message(api_pb2.VersionRequest(version="sleep:5").SerializeToString()))
    wait_until(lambda: server.servicer.started, "the handler runs")
    raw.send(frames.rst_stream(1, frames.CANCEL))
    raw.request(3, VERSION, grpc_message(api_pb2.VersionRequest(version="echo:after").SerializeToString()))
    blocks, data = raw.response(3)
    assert _status(blocks)[0] == b"0"
    assert api_pb2.VersionResponse.FromString(data[5:]).version == "after"
    wait_until(lambda: server.servicer.cancelled, "the reset handler is cancelled")
    assert server.servicer.cancelled == ["sleep:5"]
    raw.close()
