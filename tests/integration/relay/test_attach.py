"""Attach: fan-out of raw output, stdin forwarding, stdin_once, slow clients."""

from __future__ import annotations

import asyncio

import pytest

from cri_runtime.containers.relay import client, protocol
from cri_runtime.containers.relay.client import AttachSession
from tests.integration.relay.conftest import RelayRig, read_log, stream_text


async def collect(session: AttachSession) -> tuple[bytes, bytes, bytes | None]:
    """Read frames until the relay closes: (stdout bytes, stderr bytes, END reason)."""
    out, err, end = bytearray(), bytearray(), None
    while (frame := await asyncio.wait_for(session.read_frame(), 10)) is not None:
        kind, payload = frame
        if kind == protocol.FRAME_STDOUT:
            out += payload
        elif kind == protocol.FRAME_STDERR:
            err += payload
        elif kind == protocol.FRAME_END:
            end = payload
    await session.close()
    return bytes(out), bytes(err), end


async def test_two_attachers_see_the_same_raw_output(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    first = await client.attach(handle.dir)
    second = await client.attach(handle.dir)
    assert not first.stdin and not second.stdin
    readers = [asyncio.create_task(collect(s)) for s in (first, second)]
    shim = relay_rig.shim(handle)
    out = b"".join(b"out %d\r\n" % i for i in range(2000)) + b"no newline"
    err = b"".join(b"err %d\n" % i for i in range(2000))
    await asyncio.to_thread(shim.write, shim.out, out)
    await asyncio.to_thread(shim.write, shim.err, err)
    shim.close()
    results = await asyncio.gather(*readers)
    assert results[0] == results[1] == (out, err, protocol.END_EOF)
    assert await client.wait_exited(handle.dir, 5)


async def test_attach_after_output_ended_is_refused(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    relay_rig.shim(handle).close()
    assert await client.wait_exited(handle.dir, 5)
    with pytest.raises(Exception, match="not running"):
        await client.attach(handle.dir)


async def test_stdin_reaches_the_container_and_session_ends_on_stdin_close(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn(stdin=True)
    assert handle.stdin
    shim = relay_rig.shim(handle)
    session = await client.attach(handle.dir, stdin=True)
    assert session.stdin
    await session.write_stdin(b"echo hello\n")
    assert await asyncio.to_thread(shim.read_stdin) == b"echo hello\n"
    await session.close_stdin()
    # without stdin_once the container keeps its stdin; only this session ends
    assert await collect(session) == (b"", b"", protocol.END_STDIN_CLOSED)
    with pytest.raises(BlockingIOError):
        shim.read_stdin(timeout=0.1)
    # a later attach can still write
    again = await client.attach(handle.dir, stdin=True)
    await again.write_stdin(b"more\n")
    assert await asyncio.to_thread(shim.read_stdin) == b"more\n"
    await again.close()
    shim.close()
    assert await client.wait_exited(handle.dir, 5)


async def test_stdin_once_closes_container_stdin_after_first_session(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn(stdin=True, stdin_once=True)
    shim = relay_rig.shim(handle)
    session = await client.attach(handle.dir, stdin=True)
    await session.write_stdin(b"x" * 200_000)  # more than a pipe holds: queued in the relay
    received = bytearray()
    while len(received) < 200_000:
        received += await asyncio.to_thread(shim.read_stdin)
    await session.close_stdin()
    assert await asyncio.to_thread(shim.read_stdin) == b""  # EOF: the container's stdin is closed
    assert received == b"x" * 200_000
    # the session keeps receiving output until the container ends
    shim.write(shim.out, b"bye\n")
    shim.close()
    assert await collect(session) == (b"bye\n", b"", protocol.END_EOF)
    assert await client.wait_exited(handle.dir, 5)


async def test_stdin_once_also_closes_when_the_attacher_disconnects(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn(stdin=True, stdin_once=True)
    shim = relay_rig.shim(handle)
    session = await client.attach(handle.dir, stdin=True)
    await session.write_stdin(b"data")
    await session.close()
    assert await asyncio.to_thread(shim.read_stdin) == b"data"
    assert await asyncio.to_thread(shim.read_stdin) == b""
    late = await client.attach(handle.dir, stdin=True)
    assert not late.stdin  # nothing left to attach to
    await late.close()


async def test_stdin_once_with_tty_keeps_stdin_open(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn(stdin=True, stdin_once=True, tty=True)
    shim = relay_rig.shim(handle)
    session = await client.attach(handle.dir, stdin=True)
    await session.write_stdin(b"ls\r")
    assert await asyncio.to_thread(shim.read_stdin) == b"ls\r"
    await session.close_stdin()
    assert await collect(session) == (b"", b"", protocol.END_STDIN_CLOSED)
    with pytest.raises(BlockingIOError):
        shim.read_stdin(timeout=0.1)


async def test_slow_attacher_is_dropped_and_never_blocks_logging(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    shim = relay_rig.shim(handle)
    slow = await client.attach(handle.dir)  # never reads while output flows
    fast = await client.attach(handle.dir)
    received = bytearray()

    async def read_fast() -> bytes | None:
        end = None
        while (frame := await asyncio.wait_for(fast.read_frame(), 10)) is not None:
            if frame[0] == protocol.FRAME_STDOUT:
                received.extend(frame[1])
            elif frame[0] == protocol.FRAME_END:
                end = frame[1]
        await fast.close()
        return end

    fast_reader = asyncio.create_task(read_fast())
    line = b"y" * 1000 + b"\n"
    chunk, chunks = line * 500, 40  # ~20 MB: far beyond socket buffers and the relay's per-client backlog
    for n in range(1, chunks + 1):
        # every chunk is written although one client reads nothing: logging never waits for it
        await asyncio.wait_for(asyncio.to_thread(shim.write, shim.out, chunk), 30)
        # pace on the client that keeps up, so a loaded machine never makes *it* fall 4 MiB behind
        deadline = asyncio.get_running_loop().time() + 30
        while len(received) < n * len(chunk) and not fast_reader.done():
            assert asyncio.get_running_loop().time() < deadline, "the reading client stopped receiving"
            await asyncio.sleep(0.005)
    shim.close()
    out, _err, end = await collect(slow)  # what the kernel buffered, then the END frame
    assert end == protocol.END_SLOW
    assert len(out) < len(chunk) * chunks
    assert await fast_reader == protocol.END_EOF
    assert bytes(received) == chunk * chunks
    assert await client.wait_exited(handle.dir, 10)
    assert stream_text(read_log(relay_rig.log_path()), "stdout") == chunk * chunks
