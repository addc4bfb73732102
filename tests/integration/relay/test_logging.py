"""Output written by a fake shim ends up in the CRI log exactly as containerd would write it."""

from __future__ import annotations

import asyncio
import os
import select
import time

from cri_runtime.containers.relay import client
from tests.integration.relay.conftest import RelayRig, logged, read_log, stream_text
from tests.waiting import until


def test_linux_fifo_semantics_the_relay_relies_on(tmp_path: object) -> None:
    """No event before a writer connects; HUP + b'' after the last writer leaves."""
    path = f"{tmp_path}/fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    ep = select.epoll()
    try:
        ep.register(reader, select.EPOLLIN)
        assert ep.poll(0.05) == []  # no writer yet: no spurious EOF
        assert os.read(reader, 10) == b""  # ... although read() would say "no writer"
        writer = os.open(path, os.O_WRONLY)
        assert ep.poll(0.05) == []
        os.write(writer, b"x")
        os.close(writer)
        ((_fd, events),) = ep.poll(0.5)
        assert events & select.EPOLLHUP and os.read(reader, 10) == b"x"
        assert os.read(reader, 10) == b""
    finally:
        ep.close()
        os.close(reader)


async def test_lines_from_both_streams_are_logged_and_relay_cleans_up(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn(max_line_size=16)
    assert handle.stdin == "" and handle.stderr and not handle.terminal
    shim = relay_rig.shim(handle)
    shim.write(shim.out, b"first line\n")
    shim.write(shim.err, b"oops\r\n")
    shim.write(shim.out, b"a line that is longer than sixteen bytes\n\n")
    shim.write(shim.out, b"binary \x00\x01\xff\xfe\r middle CR\n")
    shim.write(shim.err, b"no newline at the end")
    shim.close()
    assert await client.wait_exited(handle.dir, 5)

    records = read_log(relay_rig.log_path())
    out = [(r.tag, r.content) for r in records if r.stream == "stdout"]
    err = [(r.tag, r.content) for r in records if r.stream == "stderr"]
    assert out == [
        ("F", b"first line"),
        ("P", b"a line that is l"), ("P", b"onger than sixte"), ("F", b"en bytes"),
        ("F", b""),
        ("P", b"binary \x00\x01\xff\xfe\r mid"), ("F", b"dle CR"),
    ]
    assert err == [("F", b"oops"), ("P", b"no newline at th"), ("P", b"e end")]
    # the relay ended by itself: marker written, control socket and pid file gone
    assert client.has_exited(handle.dir)
    assert not client.is_alive(handle.dir)
    left = set(os.listdir(handle.dir))
    assert "ctl.sock" not in left and "relay.pid" not in left and "exited" in left


async def test_ten_thousand_numbered_lines_fast(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    shim = relay_rig.shim(handle)
    out = b"".join(b"stdout line %d\n" % i for i in range(10_000))
    err = b"".join(b"stderr line %d\n" % i for i in range(10_000))

    def produce() -> None:
        for i in range(0, len(out), 4096):  # interleave the two streams, pipe-sized writes
            shim.write(shim.out, out[i : i + 4096])
            shim.write(shim.err, err[i : i + 4096])

    started = time.monotonic()
    await asyncio.to_thread(produce)
    shim.close()
    assert await client.wait_exited(handle.dir, 10)
    elapsed = time.monotonic() - started
    records = read_log(relay_rig.log_path())
    assert all(r.tag == "F" for r in records)
    assert stream_text(records, "stdout") == out
    assert stream_text(records, "stderr") == err
    stamps = [r.timestamp for r in records if r.stream == "stdout"]
    assert stamps == sorted(stamps)  # same zone, same length prefix: text order is time order
    assert elapsed < 10


async def test_tty_uses_stdout_only_and_strips_crlf(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn(tty=True)
    assert handle.terminal and handle.stderr == "" and handle.stdout
    assert not os.path.exists(handle.dir / "stderr")
    shim = relay_rig.shim(handle)
    shim.write(shim.out, b"$ ls\r\nbin  etc\r\n$ ")
    shim.close()
    assert await client.wait_exited(handle.dir, 5)
    records = read_log(relay_rig.log_path())
    assert [(r.stream, r.tag, r.content) for r in records] == [
        ("stdout", "F", b"$ ls"), ("stdout", "F", b"bin  etc"), ("stdout", "P", b"$ "),
    ]


async def test_log_parent_directories_are_created(relay_rig: RelayRig) -> None:
    log_path = relay_rig.root / "deep" / "er" / "c.log"
    handle = await relay_rig.spawn(log_path=str(log_path))
    shim = relay_rig.shim(handle)
    shim.write(shim.out, b"hi\n")
    shim.close()
    assert await client.wait_exited(handle.dir, 5)
    assert [r.content for r in read_log(log_path)] == [b"hi"]
    assert oct(log_path.stat().st_mode & 0o777) == oct(0o640)


async def test_stop_flushes_an_unfinished_line_and_leaves_no_exit_marker(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    shim = relay_rig.shim(handle)
    shim.write(shim.out, b"complete\nunfinished")  # one write: read at once, the complete line logged
    await until(lambda: b"complete" in logged(relay_rig.log_path()), "the complete line is logged")
    await client.stop(handle.dir)
    assert not client.is_alive(handle.dir)
    assert not client.has_exited(handle.dir)  # stopped, not ended: a respawn may continue
    assert [(r.tag, r.content) for r in read_log(relay_rig.log_path())] == [("F", b"complete"), ("P", b"unfinished")]
