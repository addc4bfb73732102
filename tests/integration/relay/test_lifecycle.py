"""Relay lifetime: independent of the server, respawn after a crash, start-up failures."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from cri_runtime.containers.relay import client
from cri_runtime.containers.relay.client import RelayHandle
from cri_runtime.errors import Internal
from tests.integration.relay.conftest import RelayRig, logged, read_log, reap
from tests.waiting import until

FAKE_SERVER = Path(__file__).with_name("fake_server.py")
SRC = Path(client.__file__).resolve().parents[3]


def _stat_field(pid: int, index: int) -> int:
    """A numeric field of /proc/<pid>/stat (index as in proc(5), counting from 1)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[index - 3])


async def test_relay_is_detached_and_survives_kill9_of_the_server(relay_rig: RelayRig) -> None:
    io_dir = relay_rig.io_dir()
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(FAKE_SERVER), str(io_dir), str(relay_rig.log_path()),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    try:
        assert server.stdout is not None
        info = json.loads(await asyncio.wait_for(server.stdout.readline(), 15))
        relay_rig.track(info["pid"])
        assert _stat_field(info["pid"], 4) != server.pid  # not the server's child
        assert _stat_field(info["pid"], 6) != _stat_field(server.pid, 6)  # own session
    finally:
        server.kill()  # SIGKILL
        await server.wait()

    handle = RelayHandle(dir=io_dir, pid=info["pid"], stdin=info["stdin"], stdout=info["stdout"],
                         stderr=info["stderr"], terminal=False)
    assert client.is_alive(io_dir) and await client.ping(io_dir) == info["pid"]
    shim = relay_rig.shim(handle)
    session = await client.attach(io_dir, stdin=True)  # a "restarted server" attaches
    assert session.stdin
    shim.write(shim.out, b"after the server died\n")
    assert await asyncio.wait_for(session.read_frame(), 5) == (1, b"after the server died\n")
    await session.write_stdin(b"typed\n")
    assert await asyncio.to_thread(shim.read_stdin) == b"typed\n"
    await session.close()
    shim.close()
    assert await client.wait_exited(io_dir, 5)
    assert [r.content for r in read_log(relay_rig.log_path())] == [b"after the server died"]


async def test_killed_relay_is_respawned_and_no_line_is_lost(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    shim = relay_rig.shim(handle)
    shim.write(shim.out, b"0\n1\n")
    shim.write(shim.err, b"e0\n")
    await until(lambda: sorted(logged(relay_rig.log_path())) == [b"0", b"1", b"e0"], "the lines are logged")
    os.kill(handle.pid, signal.SIGKILL)
    await reap(handle.pid)
    assert not client.is_alive(handle.dir) and not client.has_exited(handle.dir)

    # the container keeps writing; the output waits in the FIFOs (the shim holds a read end)
    shim.write(shim.out, b"".join(b"%d\n" % i for i in range(2, 1000)))
    shim.write(shim.err, b"e1\n")
    respawned = await client.respawn_if_dead(handle.dir)
    assert respawned is not None and respawned.pid != handle.pid
    relay_rig.track(respawned.pid)
    assert (respawned.stdout, respawned.stderr) == (handle.stdout, handle.stderr)
    assert await client.respawn_if_dead(handle.dir) is None  # alive: nothing to do

    shim.write(shim.out, b"".join(b"%d\n" % i for i in range(1000, 1500)))
    shim.close()
    assert await client.wait_exited(handle.dir, 5)
    assert await client.respawn_if_dead(handle.dir) is None  # output ended: nothing to do
    records = read_log(relay_rig.log_path())
    assert [int(r.content) for r in records if r.stream == "stdout"] == list(range(1500))
    assert [r.content for r in records if r.stream == "stderr"] == [b"e0", b"e1"]


async def test_respawn_after_the_container_ended_finishes_at_once(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    shim = relay_rig.shim(handle)
    shim.write(shim.out, b"last words\n")
    await until(lambda: logged(relay_rig.log_path()) == [b"last words"], "the line is logged")
    os.kill(handle.pid, signal.SIGKILL)
    await reap(handle.pid)
    shim.close()  # the container and its shim went away while no relay ran
    respawned = await client.respawn_if_dead(handle.dir)
    assert respawned is not None
    relay_rig.track(respawned.pid)
    assert await client.wait_exited(handle.dir, 5)
    assert client.has_exited(handle.dir)
    assert [r.content for r in read_log(relay_rig.log_path())] == [b"last words"]


async def test_spawn_failure_reports_the_relay_log(relay_rig: RelayRig) -> None:
    with pytest.raises(Internal, match=r"failed to start: .*cannot start: .*Not a directory: '/dev/null/cannot'"):
        await relay_rig.spawn(log_path="/dev/null/cannot/be.log")
    assert not client.is_alive(relay_rig.io_dir())


async def test_second_relay_for_the_same_directory_is_refused(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    with pytest.raises(Internal, match="another relay is running"):
        await relay_rig.spawn()
    assert await client.ping(handle.dir) == handle.pid


async def test_long_directory_paths_work(relay_rig: RelayRig) -> None:
    name = "c" * 120  # the control socket path exceeds sun_path's 108 bytes
    handle = await relay_rig.spawn(name)
    assert len(str(handle.dir / "ctl.sock")) > 108
    assert await client.ping(handle.dir) == handle.pid
    await client.reopen(handle.dir)
    session = await client.attach(handle.dir)
    shim = relay_rig.shim(handle)
    shim.write(shim.out, b"hi\n")
    assert await asyncio.wait_for(session.read_frame(), 5) == (1, b"hi\n")
    await session.close()
    shim.close()
    assert await client.wait_exited(handle.dir, 5)


async def test_cleanup_stops_the_relay_and_removes_the_directory(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn(stdin=True)
    relay_rig.shim(handle)  # a running container
    await client.cleanup(handle.dir)
    assert not handle.dir.exists()
    assert not client.is_alive(handle.dir)


async def test_relay_serves_even_when_its_spawner_vanished_before_ready(relay_rig: RelayRig) -> None:
    io_dir = relay_rig.io_dir()
    io_dir.mkdir(parents=True)
    ready_r, ready_w = os.pipe()
    os.close(ready_r)  # nobody will read "ready": writing it fails with EPIPE
    try:
        intermediate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cri_runtime.containers.relay", "--dir", str(io_dir),
            "--log-path", str(relay_rig.log_path()), "--ready-fd", str(ready_w),
            pass_fds=(ready_w,), start_new_session=True, env={**os.environ, "PYTHONPATH": str(SRC)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
    finally:
        os.close(ready_w)
    assert await intermediate.wait() == 0
    for _ in range(500):
        if client.is_alive(io_dir) and (io_dir / "relay.pid").exists():
            break
        await asyncio.sleep(0.01)
    pid = await client.ping(io_dir)
    relay_rig.track(pid)
    assert os.path.exists(io_dir / "stdout")
    await client.stop(io_dir)


async def test_relays_start_while_their_directories_are_probed(relay_rig: RelayRig) -> None:
    """`client.is_alive` takes the IO dir's lock shared for an instant; a relay starting just then
    must wait it out, not take it for another relay (the spawner-vanished test lost its relay so)."""
    names = [f"p{i}" for i in range(16)]
    for name in names:
        relay_rig.io_dir(name).mkdir(parents=True)
    stop = threading.Event()
    probes = 0

    def probe() -> None:
        nonlocal probes
        while not stop.is_set():
            for name in names:
                client.is_alive(relay_rig.io_dir(name))
                probes += 1

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        handles = [await relay_rig.spawn(name) for name in names]
    finally:
        stop.set()
        prober.join()
    assert probes > len(names)
    for name, handle in zip(names, handles, strict=True):
        assert await client.ping(relay_rig.io_dir(name)) == handle.pid
