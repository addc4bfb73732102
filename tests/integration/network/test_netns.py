"""Pinned network namespaces against the real kernel."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from cri_runtime import errors
from cri_runtime.network import netns
from tests.integration.network.cninet import HostNetwork


def read_net_dev() -> str:
    """Interface table of the calling thread's network namespace."""
    with open("/proc/thread-self/net/dev") as f:
        return f.read()


def mountinfo_lines(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if line.split()[4] == path]


async def test_create_inspect_remove(host_network: HostNetwork) -> None:
    directory = str(host_network.netns_dir)
    path = await netns.create(directory, netns.new_name())
    try:
        assert netns.is_netns(path)
        assert netns.inode(path) != os.stat("/proc/self/ns/net").st_ino
        # The pin is an nsfs bind mount; the pin dir is a shared mount point like /run/netns.
        (pin,) = mountinfo_lines(path)
        assert " - nsfs " in pin
        (pin_dir,) = mountinfo_lines(os.path.realpath(directory))
        assert "shared:" in pin_dir
        # Only loopback inside, and it is down until the loopback plugin brings it up.
        links = netns.run_in_netns_sync(path, read_net_dev)
        assert [line.split(":")[0].strip() for line in links.splitlines()[2:]] == ["lo"]
        rc, out, _ = await netns.exec_in_netns(path, ["ip", "-o", "link"])
        assert rc == 0 and out.decode().count(": lo:") == 1
        # The calling thread never changed namespace.
        assert read_net_dev() != links
        # And no thread of ours was left behind in the pod's namespace.
        host = os.readlink("/proc/self/ns/net")
        assert {os.readlink(f"/proc/self/task/{t}/ns/net") for t in os.listdir("/proc/self/task")} == {host}
    finally:
        await netns.remove(path)
    assert not os.path.exists(path)
    assert mountinfo_lines(path) == []
    assert not netns.is_netns(path)
    await netns.remove(path)  # idempotent
    netns.remove_sync(path)


async def test_name_clash_and_bad_names(host_network: HostNetwork) -> None:
    directory = str(host_network.netns_dir)
    name = netns.new_name()
    path = netns.create_sync(directory, name)
    try:
        with pytest.raises(errors.AlreadyExists):
            netns.create_sync(directory, name)
        assert netns.is_netns(path)  # the failed attempt did not disturb the existing pin
    finally:
        netns.remove_sync(path)
    with pytest.raises(errors.InvalidArgument):
        netns.create_sync(directory, "../escape")


async def test_socket_opened_inside_stays_inside(host_network: HostNetwork) -> None:
    path = netns.create_sync(str(host_network.netns_dir), netns.new_name())
    try:
        def listen() -> socket.socket:
            # A child process inherits the calling thread's namespace: lo comes up inside.
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen()
            return s

        server = netns.run_in_netns_sync(path, listen)
        port = server.getsockname()[1]
        try:
            with socket.socket() as client, pytest.raises(ConnectionRefusedError):
                client.connect(("127.0.0.1", port))  # the host's loopback: nobody listens there

            def connect() -> bool:
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    return True

            assert netns.run_in_netns_sync(path, connect)
        finally:
            server.close()
    finally:
        netns.remove_sync(path)


def test_not_a_netns() -> None:
    assert not netns.is_netns("/nonexistent")
    assert not netns.is_netns("/proc/self/status")
    with pytest.raises(errors.NotFound):
        netns.run_in_netns_sync("/nonexistent", lambda: None)


def test_pin_dir_with_foreign_pins_is_left_alone(host_network: HostNetwork) -> None:
    """A plain directory already holding another runtime's pins is not bound over (would hide them)."""
    foreign_dir = host_network.netns_dir.parent / "foreign-netns"
    foreign_dir.mkdir()
    foreign = foreign_dir / "theirs"
    foreign.touch()
    subprocess.run(["mount", "--bind", "/proc/self/ns/net", str(foreign)], check=True)
    try:
        ours = netns.create_sync(str(foreign_dir), netns.new_name())
        netns.remove_sync(ours)
        assert mountinfo_lines(str(foreign_dir)) == []  # no bind of the directory onto itself
        assert len(mountinfo_lines(str(foreign))) == 1
        netns.release_pin_dir(str(foreign_dir))  # nothing of ours to undo
        assert len(mountinfo_lines(str(foreign))) == 1
    finally:
        subprocess.run(["umount", str(foreign)], check=False)
        foreign.unlink()
        foreign_dir.rmdir()


async def test_create_with_loopback_up(host_network: HostNetwork) -> None:
    path = await netns.create(str(host_network.netns_dir), netns.new_name(), loopback_up=True)
    try:
        rc, out, _ = await netns.exec_in_netns(path, ["ip", "-o", "addr", "show", "dev", "lo"])
        assert rc == 0 and "inet 127.0.0.1/8" in out.decode()
        # The loopback works: a listener inside is reachable from inside.
        def connect() -> None:
            with socket.socket() as listener:
                listener.bind(("127.0.0.1", 0))
                listener.listen()
                socket.create_connection(listener.getsockname(), 5).close()

        netns.run_in_netns_sync(path, connect)
    finally:
        await netns.remove(path)
