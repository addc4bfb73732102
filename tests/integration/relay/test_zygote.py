"""Relays forked by the relay zygote: same behaviour and lifetime as spawned ones, no leaked zygote."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cri_runtime.containers.relay import client
from cri_runtime.containers.relay.client import RelayConfig, RelayHandle
from cri_runtime.containers.relay.launcher import RelayLauncher
from cri_runtime.errors import Internal
from tests.integration.relay.conftest import RelayRig, logged, read_log
from tests.waiting import until

FAKE_SERVER = Path(__file__).with_name("fake_server.py")
SRC = Path(client.__file__).resolve().parents[3]


def _stat_field(pid: int, index: int) -> int:
    """A numeric field of /proc/<pid>/stat (index as in proc(5), counting from 1)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[index - 3])


def _exists(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


async def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _exists(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.fixture
async def launcher(relay_rig: RelayRig) -> AsyncIterator[RelayLauncher]:
    launcher = RelayLauncher(str(relay_rig.root))
    try:
        yield launcher
    finally:
        zygote = launcher.zygote_pid
        await launcher.close()
        if zygote is not None:
            assert await _gone(zygote)


async def _spawn(rig: RelayRig, launcher: RelayLauncher, name: str = "c1") -> RelayHandle:
    handle = await launcher.spawn(rig.io_dir(name), RelayConfig(log_path=str(rig.log_path(name))))
    rig.track(handle.pid)
    return handle


async def test_forked_relay_logs_is_detached_and_stops(relay_rig: RelayRig, launcher: RelayLauncher) -> None:
    handle = await _spawn(relay_rig, launcher)
    zygote = launcher.zygote_pid
    assert zygote is not None and handle.pid != zygote
    assert _stat_field(handle.pid, 4) != os.getpid()  # never the server's child
    assert _stat_field(handle.pid, 6) == handle.pid  # its own session, like a spawned relay
    assert await client.ping(handle.dir) == handle.pid
    shim = relay_rig.shim(handle)
    shim.write(shim.out, b"out 1\n")
    shim.write(shim.err, b"err 1\n")
    await until(lambda: sorted(logged(relay_rig.log_path())) == [b"err 1", b"out 1"], "the lines are logged")
    await client.stop(handle.dir)  # finds the relay by its lock file, not its (zygote's) cmdline
    assert not client.is_alive(handle.dir)
    assert sorted(r.content for r in read_log(relay_rig.log_path())) == [b"err 1", b"out 1"]


async def test_one_zygote_serves_many_relays(relay_rig: RelayRig, launcher: RelayLauncher) -> None:
    handles = await asyncio.gather(*(_spawn(relay_rig, launcher, f"c{i}") for i in range(5)))
    assert len({h.pid for h in handles}) == 5
    assert launcher.zygote_pid is not None
    for h in handles:
        assert client.is_alive(h.dir)
        await client.stop(h.dir)


async def test_a_killed_zygote_is_replaced(relay_rig: RelayRig, launcher: RelayLauncher) -> None:
    first = await _spawn(relay_rig, launcher, "c1")
    zygote = launcher.zygote_pid
    assert zygote is not None
    os.kill(zygote, signal.SIGKILL)
    assert await _gone(zygote)
    second = await _spawn(relay_rig, launcher, "c2")  # works although the zygote died
    assert client.is_alive(first.dir) and client.is_alive(second.dir)
    assert launcher.zygote_pid not in (None, zygote)
    third = await _spawn(relay_rig, launcher, "c3")
    assert client.is_alive(third.dir)


async def test_zygote_exits_with_a_killed_server_and_its_relay_lives_on(relay_rig: RelayRig) -> None:
    io_dir = relay_rig.io_dir()
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(FAKE_SERVER), str(io_dir), str(relay_rig.log_path()), "--zygote", str(relay_rig.root),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    try:
        assert server.stdout is not None
        info = json.loads(await asyncio.wait_for(server.stdout.readline(), 15))
        relay_rig.track(info["pid"])
        assert info["zygote"] and _exists(info["zygote"])
    finally:
        server.kill()  # SIGKILL
        await server.wait()
    assert await _gone(info["zygote"])  # no idle process outlives its server
    handle = RelayHandle(dir=io_dir, pid=info["pid"], stdin=info["stdin"], stdout=info["stdout"],
                         stderr=info["stderr"], terminal=False)
    assert client.is_alive(io_dir) and await client.ping(io_dir) == info["pid"]
    shim = relay_rig.shim(handle)
    shim.write(shim.out, b"after the server died\n")
    shim.close()
    assert await client.wait_exited(io_dir, 5)
    assert [r.content for r in read_log(relay_rig.log_path())] == [b"after the server died"]


async def test_failed_relay_start_is_reported_with_its_log(relay_rig: RelayRig, launcher: RelayLauncher) -> None:
    io_dir = relay_rig.io_dir()
    io_dir.mkdir(parents=True)
    (io_dir / "stdout").write_text("not a fifo")
    with pytest.raises(Internal, match="is not a FIFO"):
        await launcher.spawn(io_dir, RelayConfig(log_path=str(relay_rig.log_path())))
    assert launcher.zygote_pid is not None  # the zygote itself is fine
    assert not client.is_alive(io_dir)
