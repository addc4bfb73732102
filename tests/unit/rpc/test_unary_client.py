"""The lean unary client (FastChannel) against our server: results, statuses, limits, failures."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc
from cri_runtime.grpc_client import aio
from cri_runtime.grpc_client.aio import FastChannel
from tests.waiting import until

from .server_thread import ServerThread


def stub_for(path: str) -> tuple[FastChannel, api_pb2_grpc.RuntimeServiceStub]:
    channel = FastChannel(path, grpc.aio.insecure_channel(f"unix://{path}"))
    return channel, api_pb2_grpc.RuntimeServiceStub(channel)


async def test_calls_statuses_and_metadata(server: ServerThread) -> None:
    channel, stub = stub_for(server.path)
    try:
        assert (await stub.Version(api_pb2.VersionRequest(version="echo:hi"))).version == "hi"
        results = await asyncio.gather(*(stub.Version(api_pb2.VersionRequest(version=f"echo:{i}"))
                                         for i in range(100)))
        assert [r.version for r in results] == [str(i) for i in range(100)]
        md = await stub.Version(api_pb2.VersionRequest(version="metadata"), metadata=(("x-ns", "k8s.io"),))
        assert "('x-ns', 'k8s.io')" in md.version
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Version(api_pb2.VersionRequest(version="abort:NOT_FOUND:no such thing: 100% é"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
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


async def test_deadline_is_sent_and_enforced(server: ServerThread) -> None:
    channel, stub = stub_for(server.path)
    try:
        remaining = float((await stub.Version(api_pb2.VersionRequest(version="remaining"), timeout=5)).version)
        assert 0 < remaining <= 5
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Version(api_pb2.VersionRequest(version="sleep:5"), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2
        await until(lambda: server.servicer.cancelled == ["sleep:5"], "the expired call's stream is reset")
        assert (await stub.Version(api_pb2.VersionRequest(version="echo:after"))).version == "after"
        # Calls answered within their deadline leave no timer behind to fail them later.
        answers = await asyncio.gather(*(stub.Version(api_pb2.VersionRequest(version=f"echo:{i}"), timeout=0.2)
                                         for i in range(20)))
        loop = asyncio.get_running_loop()
        armed = [h for h in loop._scheduled  # type: ignore[attr-defined]
                 if getattr(h, "_callback", None) is aio._expire and not h.cancelled()]
        assert armed == []  # their expiry timers were disarmed with the answers
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
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Version(api_pb2.VersionRequest(version="echo:x"), timeout=1)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        srv = ServerThread(path)
        starter = asyncio.get_running_loop().run_in_executor(None, lambda: asyncio.run(_start_later(srv)))
        resp = await stub.Version(api_pb2.VersionRequest(version="echo:ready"), timeout=10, wait_for_ready=True)
        assert resp.version == "ready"
        await starter
        # The server goes away: the call in flight fails as UNAVAILABLE, not as a hang.
        pending = asyncio.ensure_future(stub.Version(api_pb2.VersionRequest(version="sleep:30"), timeout=20))
        await until(lambda: srv.servicer.started, "the handler runs")
        await asyncio.get_running_loop().run_in_executor(None, lambda: srv.stop(grace=0.1))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pending
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
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
    channel = FastChannel(server.path, grpc.aio.insecure_channel(f"unix://{server.path}"))
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
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await unary(request)
            assert err.value.code() == grpc.StatusCode.INTERNAL
            assert err.value.details() == "malformed response message"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await once(api_pb2.StreamContainersRequest(filter=api_pb2.ContainerFilter(id="0")))
        assert err.value.details() == "the server sent no response message"
    finally:
        await channel.close()
