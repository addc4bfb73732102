"""ReopenContainerLog: kubelet renames the file, the relay reopens; no line lost or doubled."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from cri_runtime.containers.relay import client
from cri_runtime.errors import FailedPrecondition, Internal
from tests.integration.relay.conftest import RelayRig, logged, read_log
from tests.waiting import until


async def test_rotation_under_load_keeps_every_line_exactly_once(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    shim = relay_rig.shim(handle)
    log_path = relay_rig.log_path()
    total = 1500
    done = threading.Event()

    def produce() -> None:
        for i in range(total):
            shim.write(shim.out, b"line %d\n" % i)
            time.sleep(0.001)
        done.set()

    producer = asyncio.create_task(asyncio.to_thread(produce))
    rotated = []
    while not done.is_set():
        await asyncio.sleep(0.1)
        target = log_path.with_name(f"{log_path.name}.{len(rotated) + 1}")
        os.rename(log_path, target)
        rotated.append(target)
        await client.reopen(handle.dir)
    await producer
    shim.close()
    assert await client.wait_exited(handle.dir, 5)

    assert len(rotated) >= 5
    numbers = []
    for path in [*rotated, log_path]:
        numbers += [int(r.content.split()[1]) for r in read_log(path)]
    assert numbers == list(range(total))


async def test_reopen_creates_a_fresh_file_at_the_path(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    shim = relay_rig.shim(handle)
    log_path = relay_rig.log_path()
    shim.write(shim.out, b"before\n")
    await until(lambda: logged(log_path) == [b"before"], "the line is logged")
    os.rename(log_path, log_path.with_suffix(".old"))
    await client.reopen(handle.dir)
    assert log_path.exists() and log_path.stat().st_size == 0
    shim.write(shim.out, b"after\n")
    shim.close()
    assert await client.wait_exited(handle.dir, 5)
    assert [r.content for r in read_log(log_path.with_suffix(".old"))] == [b"before"]
    assert [r.content for r in read_log(log_path)] == [b"after"]


async def test_reopen_fails_when_the_log_directory_is_gone(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    shim = relay_rig.shim(handle)
    log_path = relay_rig.log_path()
    moved = log_path.parent.with_name("moved-away")
    os.rename(log_path.parent, moved)
    with pytest.raises(Internal, match="No such file or directory"):
        await client.reopen(handle.dir)
    # the relay keeps logging into the file it had open
    shim.write(shim.out, b"still here\n")
    await until(lambda: logged(moved / log_path.name), "the line is logged")
    assert [r.content for r in read_log(moved / log_path.name)] == [b"still here"]
    # and recovers once the directory is back
    log_path.parent.mkdir()
    await client.reopen(handle.dir)
    shim.write(shim.out, b"new file\n")
    shim.close()
    assert await client.wait_exited(handle.dir, 5)
    assert [r.content for r in read_log(log_path)] == [b"new file"]


async def test_reopen_without_a_relay_is_a_failed_precondition(relay_rig: RelayRig) -> None:
    handle = await relay_rig.spawn()
    relay_rig.shim(handle).close()
    assert await client.wait_exited(handle.dir, 5)
    with pytest.raises(FailedPrecondition, match="not running"):
        await client.reopen(handle.dir)
