"""Our asyncio gRPC client (FastChannel) against our server: results, statuses, limits, streams, failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.grpc_client import aio
from cri_runtime.grpc_client.aio import FastChannel, Stub
from cri_runtime.grpc_client.status import RpcError, StatusCode
from tests.waiting import until

from .server_thread import ServerThread

RUNTIME = api_pb2.DESCRIPTOR.services_by_name["RuntimeService"]


def stub_for(path: str) -> tuple[FastChannel, Stub]:
    channel = FastChannel(path)
    return channel, Stub(channel, RUNTIME)


async def test_calls_statuses_and_metadata(server: ServerThread) -> None:
    channel, stub = stub_for(server.path)
    try:
        assert (await stub.Version(api_pb2.VersionRequest(version="echo:hi"))).version == "hi"
        results = await asyncio.gather(*(stub.Version(api_pb2.VersionRequest(version=f"echo:{i}"))
                                         for i in range(100)))
        assert [r.version for r in results] == [str(i) for i in range(100)]
        md = await stub.Version(api_pb2.VersionRequest(version="metadata"), metadata=(("x-ns", "k8s.io"),))
        assert "('x-ns', 'k8s.io')" in md.version
        with pytest.raises(RpcError) as err:
            await stub.Version(api_pb2.VersionRequest(version="abort:NOT_FOUND:no such thing: 100% é"))
        assert err.value.code() == StatusCode.NOT_FOUND
        assert err.value.details() == "no such thing: 100% é"
    finally:
        await channel.close()


@pytest.mark.parametrize("size", [0, 100_000, 3 * 1024 * 1024])
async def test_large_requests_and_responses(server: ServerThread, size: int) -> None:
    channel, stub = stub_for(server.path)
    try:
        resp = await stub.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=[str(size)] + ["a" * 1000] * 200))
        assert resp.stdout == b"x" * size and resp.exit_code == 201
    finally:
        await channel.close()


async def test_deadline_is_sent_and_enforced(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    channel, stub = stub_for(server.path)
    try:
        remaining = float((await stub.Version(api_pb2.VersionRequest(version="remaining"), timeout=5)).version)
        assert 0 < remaining <= 5
        started = time.monotonic()
        with pytest.raises(RpcError) as err:
            await stub.Version(api_pb2.VersionRequest(version="sleep:5"), timeout=0.3)
        assert err.value.code() == StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2
        await until(lambda: server.servicer.cancelled == ["sleep:5"], "the expired call's stream is reset")
        assert (await stub.Version(api_pb2.VersionRequest(version="echo:after"))).version == "after"
        # Calls answered within their deadline leave no timer behind to fail them later.
        loop = asyncio.get_running_loop()
        timers: list[asyncio.TimerHandle] = []
        call_later = loop.call_later

        def recorded(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
            handle = call_later(delay, callback, *args)
            if callback is aio._expire:
                timers.append(handle)
            return handle

        monkeypatch.setattr(loop, "call_later", recorded)
        answers = await asyncio.gather(*(stub.Version(api_pb2.VersionRequest(version=f"echo:{i}"), timeout=0.2)
                                         for i in range(20)))
        assert len(timers) == 20
        assert all(t.cancelled() for t in timers)  # their expiry timers were disarmed with the answers
        monkeypatch.undo()
        assert [a.version for a in answers] == [str(i) for i in range(20)]
        assert (await stub.Version(api_pb2.VersionRequest(version="echo:later"))).version == "later"
    finally:
        await channel.close()


async def test_cancelling_a_call_resets_its_stream(server: ServerThread) -> None:
    channel, stub = stub_for(server.path)
    try:
        call = asyncio.ensure_future(stub.Version(api_pb2.VersionRequest(version="sleep:4")))
        await until(lambda: server.servicer.started, "the handler runs")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await until(lambda: server.servicer.cancelled, "the handler is cancelled")
        assert server.servicer.cancelled == ["sleep:4"]
    finally:
        await channel.close()


async def test_no_server_is_unavailable_and_a_new_server_is_found(tmp_path: Path) -> None:
    path = tmp_path / "later.sock"
    channel, stub = stub_for(str(path))
    try:
        with pytest.raises(RpcError) as err:
            await stub.Version(api_pb2.VersionRequest(version="echo:x"), timeout=1)
        assert err.value.code() == StatusCode.UNAVAILABLE
        srv = ServerThread(path)
        starter = asyncio.get_running_loop().run_in_executor(None, lambda: asyncio.run(_start_later(srv)))
        resp = await stub.Version(api_pb2.VersionRequest(version="echo:ready"), timeout=10, wait_for_ready=True)
        assert resp.version == "ready"
        await starter
        # The server goes away: the call in flight fails as UNAVAILABLE, not as a hang.
        pending = asyncio.ensure_future(stub.Version(api_pb2.VersionRequest(version="sleep:30"), timeout=20))
        await until(lambda: srv.servicer.started, "the handler runs")
        await asyncio.get_running_loop().run_in_executor(None, lambda: srv.stop(grace=0.1))
        with pytest.raises(RpcError) as err:
            await pending
        assert err.value.code() in (StatusCode.UNAVAILABLE, StatusCode.CANCELLED)
    finally:
        await channel.close()


async def _start_later(srv: ServerThread) -> None:
    await asyncio.sleep(0.3)
    srv.start()


async def test_a_call_in_flight_finishes_across_goaway_and_the_old_connection_closes(tmp_path: Path) -> None:
    srv = ServerThread(tmp_path / "goaway.sock").start()
    channel, stub = stub_for(srv.path)
    try:
        assert (await stub.Version(api_pb2.VersionRequest(version="echo:warm"))).version == "warm"
        running = asyncio.ensure_future(stub.Version(api_pb2.VersionRequest(version="sleep:0.5")))
        await until(lambda: srv.servicer.started, "the handler runs")
        stopping = asyncio.get_running_loop().run_in_executor(None, lambda: srv.stop(grace=5))
        assert (await running).version == "slept"  # GOAWAY lets it finish
        await stopping
        conn = channel.unary._conn
        assert conn is not None and conn.closed
    finally:
        await channel.close()


@pytest.mark.parametrize("count", [1, 2, 5])
async def test_single_request_stream_answers_with_the_last_message(server: ServerThread, count: int) -> None:
    """containerd's Content.Write used with one COMMIT message repeats its answer: the last one counts."""
    channel = FastChannel(server.path)
    path = "/runtime.v1.RuntimeService/StreamContainers"
    request = api_pb2.StreamContainersRequest(filter=api_pb2.ContainerFilter(id=str(count)))
    try:
        once = channel.single_request_stream(path, api_pb2.StreamContainersRequest.SerializeToString,
                                             api_pb2.StreamContainersResponse.FromString)
        assert [c.id for c in (await once(request)).containers] == [str(count - 1)]
        unary = channel.unary_unary(path, request_serializer=api_pb2.StreamContainersRequest.SerializeToString,
                                    response_deserializer=api_pb2.StreamContainersResponse.FromString)
        if count == 1:
            assert [c.id for c in (await unary(request)).containers] == ["0"]
        else:  # a unary method must get exactly one message
            with pytest.raises(RpcError) as err:
                await unary(request)
            assert err.value.code() == StatusCode.INTERNAL
            assert err.value.details() == "malformed response message"
        with pytest.raises(RpcError) as err:
            await once(api_pb2.StreamContainersRequest(filter=api_pb2.ContainerFilter(id="0")))
        assert err.value.details() == "the server sent no response message"
    finally:
        await channel.close()


@pytest.fixture
async def channel(server: ServerThread) -> AsyncIterator[FastChannel]:
    """A lean channel to the test server, closed after the test."""
    ch = FastChannel(server.path)
    yield ch
    await ch.close()


def _stream_method(channel: FastChannel) -> aio._StreamMethod:
    return Stub(channel, RUNTIME).StreamContainers


def _stream_request(count: int, then: str = "") -> api_pb2.StreamContainersRequest:
    return api_pb2.StreamContainersRequest(filter=api_pb2.ContainerFilter(id=str(count), pod_sandbox_id=then))


@pytest.mark.parametrize("count", [0, 1, 300])
async def test_server_stream_reads_every_message_in_order(server: ServerThread, count: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 64 KiB stream window, 300 KiB arrive only if the reader gives the window back."""
    monkeypatch.setattr(aio, "_STREAM_WINDOW", 64 * 1024)
    channel = FastChannel(server.path)
    try:
        call = _stream_method(channel)(_stream_request(count))
        async with asyncio.timeout(10):  # a window never given back stalls the server: fail, not hang
            ids = [r.containers[0].id async for r in call]
        assert ids == [str(i) for i in range(count)]
        # The connection serves the next call.
        assert [r.containers[0].id async for r in _stream_method(channel)(_stream_request(2))] == ["0", "1"]
    finally:
        await channel.close()


async def test_server_stream_status_after_its_messages(channel: FastChannel) -> None:
    call = _stream_method(channel)(_stream_request(3, "abort:NOT_FOUND:gone: 100% é"))
    got: list[str] = []
    with pytest.raises(RpcError) as err:
        async for r in call:
            got.append(r.containers[0].id)
    assert got == ["0", "1", "2"]  # the messages before the status are all read
    assert err.value.code() == StatusCode.NOT_FOUND
    assert err.value.details() == "gone: 100% é"


async def test_cancelling_a_server_stream_resets_it(server: ServerThread, channel: FastChannel) -> None:
    call = _stream_method(channel)(_stream_request(2, "hold"))
    assert (await call.__anext__()).containers[0].id == "0"
    assert (await call.__anext__()).containers[0].id == "1"
    await until(lambda: server.servicer.started == ["stream"], "the handler waits after its messages")
    reader = asyncio.ensure_future(call.__anext__())
    await until(lambda: call._open is not None and call._open[2].arrived is not None,
                "the reader waits for a message")
    call.cancel()
    with pytest.raises(RpcError) as err:
        await reader
    assert err.value.code() == StatusCode.CANCELLED
    await until(lambda: server.servicer.cancelled == ["stream"], "the server's handler is cancelled")
    assert channel.streams._conn is not None and not channel.streams._conn.replies
    # A call cancelled before it was read never opens a stream.
    unread = _stream_method(channel)(_stream_request(1))
    unread.cancel()
    with pytest.raises(RpcError):
        await unread.__anext__()


async def test_a_server_stream_ends_unavailable_when_the_server_goes(tmp_path: Path) -> None:
    srv = ServerThread(tmp_path / "stream.sock").start()
    channel = FastChannel(srv.path)
    try:
        call = _stream_method(channel)(_stream_request(1, "hold"))
        assert (await call.__anext__()).containers[0].id == "0"
        await until(lambda: srv.servicer.started == ["stream"], "the handler waits")
        await asyncio.get_running_loop().run_in_executor(None, lambda: srv.stop(grace=0.1))
        with pytest.raises(RpcError) as err:
            await call.__anext__()
        assert err.value.code() in (StatusCode.UNAVAILABLE, StatusCode.CANCELLED)
        with pytest.raises(RpcError) as err:  # and no server: the next call says so
            await _stream_method(channel)(_stream_request(1)).__anext__()
        assert err.value.code() == StatusCode.UNAVAILABLE
    finally:
        await channel.close()


def _bidi_method(channel: FastChannel) -> aio._StreamMethod:
    """The server-streaming method driven as a bidirectional call: requests written one by one."""
    return channel.stream("/runtime.v1.RuntimeService/StreamContainers",
                          api_pb2.StreamContainersRequest.SerializeToString,
                          api_pb2.StreamContainersResponse.FromString, client_streaming=True)


async def test_a_bidirectional_call_writes_then_reads(channel: FastChannel) -> None:
    call = _bidi_method(channel)()
    await call.write(_stream_request(3))
    await call.done_writing()
    got = []
    while (message := await call.read()) is not None:
        got.append(message.containers[0].id)
    assert got == ["0", "1", "2"]
    assert await call.read() is None  # ended with OK, and stays ended


async def test_a_write_after_the_server_ended_the_call_raises_its_status(channel: FastChannel) -> None:
    """As containerd ending a Content.Write (a full disk): the next write says why, with the server's words."""
    call = _bidi_method(channel)()
    await call.write(_stream_request(1, "abort:RESOURCE_EXHAUSTED:no space left on device"))
    await call.done_writing()
    assert (await call.read()).containers[0].id == "0"  # type: ignore[union-attr]
    with pytest.raises(RpcError) as err:
        await call.read()
    assert err.value.code() == StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(RpcError) as err:
        await call.write(_stream_request(1))
    assert err.value.code() == StatusCode.RESOURCE_EXHAUSTED
    assert err.value.details() == "no space left on device"


async def test_streams_and_bulk_writes_keep_off_the_unary_connection(channel: FastChannel) -> None:
    """A stream (a layer being written) fills its connection's window at the server's pace;
    unary calls go on a connection of their own, so they never queue behind it."""
    stub = Stub(channel, RUNTIME)
    call = stub.StreamContainers(_stream_request(1, "hold"))
    assert (await call.__anext__()).containers[0].id == "0"
    assert (await stub.Version(api_pb2.VersionRequest(version="echo:beside"))).version == "beside"
    once = channel.single_request_stream("/runtime.v1.RuntimeService/StreamContainers",
                                         api_pb2.StreamContainersRequest.SerializeToString,
                                         api_pb2.StreamContainersResponse.FromString)
    assert [c.id for c in (await once(_stream_request(2))).containers] == ["1"]
    unary, streams = channel.unary._conn, channel.streams._conn
    assert unary is not None and streams is not None and unary is not streams
    assert len(streams.replies) == 1 and not unary.replies  # the held stream, on its own connection
    call.cancel()
