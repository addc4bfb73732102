"""Relays run in a cgroup of their own (cgroupfs, every hierarchy), never in the server's."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from cri_runtime.containers.relay import cgroup, client
from cri_runtime.containers.relay.client import RelayConfig
from cri_runtime.containers.relay.launcher import RelayLauncher
from tests.integration.relay.conftest import RelayRig
from tests.rig import paths


def _in(pid: int, path: str) -> dict[str, bool]:
    """Per hierarchy of /proc/PID/cgroup: is the process in `path`?"""
    return {controllers: cg == path for controllers, cg in cgroup.current(pid).items()}


@pytest.fixture
async def relay_cgroup_path() -> AsyncIterator[str]:
    path = f"/crirt-{paths.session_token()}-relays"
    yield path
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the stopped relays leave the cgroup as the kernel reaps them
        cgroup.remove(path)
        if not any((m / path.lstrip("/")).exists() for m in cgroup.hierarchies()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"cgroup {path} still exists")


async def test_zygote_and_its_relays_live_in_the_relay_cgroup(relay_rig: RelayRig, relay_cgroup_path: str) -> None:
    launcher = RelayLauncher(str(relay_rig.root), cgroup=relay_cgroup_path)
    try:
        handle = await launcher.spawn(relay_rig.io_dir("c1"), RelayConfig(log_path=str(relay_rig.log_path("c1"))))
        relay_rig.track(handle.pid)
        zygote = launcher.zygote_pid
        assert zygote is not None
        for pid in (zygote, handle.pid):
            placement = _in(pid, relay_cgroup_path)
            assert placement and all(placement.values()), (pid, cgroup.current(pid))
        ours = _in(os.getpid(), relay_cgroup_path)
        assert not any(ours.values())  # the "server" (this test) stays where it was
        # The relay cgroup is a real, separate accounting unit: its pids controller counts the relays.
        pids_mounts = [m for m in cgroup.hierarchies() if (m / "pids.max").exists() or m.name == "pids"]
        for mount in pids_mounts:
            current = (mount / relay_cgroup_path.lstrip("/") / "pids.current")
            if current.exists():
                assert int(current.read_text()) >= 2
        await client.stop(handle.dir)
    finally:
        await launcher.close()


async def test_empty_relay_cgroup_leaves_relays_with_the_server(relay_rig: RelayRig) -> None:
    launcher = RelayLauncher(str(relay_rig.root), cgroup="")
    try:
        handle = await launcher.spawn(relay_rig.io_dir("c2"), RelayConfig(log_path=str(relay_rig.log_path("c2"))))
        relay_rig.track(handle.pid)
        assert cgroup.current(handle.pid) == cgroup.current(os.getpid())
        await client.stop(handle.dir)
    finally:
        await launcher.close()
