"""PodNetworkManager with Debian's real CNI plugins (bridge, host-local, portmap, loopback)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cri_runtime.network import ifstats, netns
from cri_runtime.network.cni import errors as cni_errors
from cri_runtime.network.manager import NetworkStatus, PodNetworkManager, PortMapping
from tests.integration.network.cninet import NetEnv, run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ip_json(path: str, *args: str) -> list[dict[str, Any]]:
    rc, out, err = await netns.exec_in_netns(path, ["ip", "-j", *args])
    assert rc == 0, err
    return list(json.loads(out))


async def setup(mgr: PodNetworkManager, sandbox_id: str, path: str, **kwargs: Any) -> NetworkStatus:
    return await mgr.setup(sandbox_id, path, pod_name=f"pod-{sandbox_id}", pod_namespace="nettest",
                           pod_uid=f"uid-{sandbox_id}", **kwargs)


async def test_setup_inspect_teardown(net_env: NetEnv) -> None:
    net = net_env.net
    net_env.write_conflist(net.conflist())
    mgr = net_env.manager()
    assert mgr.status().ready
    path = net_env.new_netns()
    try:
        status = await setup(mgr, "sb-basic", path)
        ip = ipaddress.ip_address(status.ip)
        assert ip in ipaddress.ip_network(net.subnet) and str(ip) != net.gateway
        assert status.additional_ips == ()
        # Inside the pod: eth0 has the IP, lo is up (loopback plugin), default route via the bridge.
        addrs = {a["ifname"]: a for a in await ip_json(path, "addr")}
        assert [i["local"] for i in addrs["eth0"]["addr_info"] if i["family"] == "inet"] == [status.ip]
        assert "UP" in addrs["lo"]["flags"]
        routes = {r["dst"]: r for r in await ip_json(path, "route")}
        assert routes["default"]["gateway"] == net.gateway
        assert routes["default"]["dev"] == "eth0"
        # On the host: one IP allocated for this sandbox, one veth on the bridge.
        assert net.allocations() == {status.ip}
        owner = (net.data_dir / net.network_name / status.ip).read_text().split()
        assert owner == ["sb-basic", "eth0"]
        assert len(net.bridge_ports()) == 1
        # The pod reaches the host side of the bridge, and sees its own IP as the peer's source.
        with socket.socket() as listener:
            listener.bind((net.gateway, 0))
            listener.listen()
            port = listener.getsockname()[1]
            client = netns.run_in_netns_sync(path, lambda: socket.create_connection((net.gateway, port), 5))
            with client:
                peer, (source, _) = listener.accept()
                peer.close()
            assert source == status.ip

        await mgr.teardown("sb-basic", path)
        assert net.allocations() == set()
        assert net.bridge_ports() == set()
        assert [a["ifname"] for a in await ip_json(path, "link")] == ["lo"]
        await mgr.teardown("sb-basic", path)  # idempotent
    finally:
        await mgr.teardown("sb-basic", path)
        netns.remove_sync(path)


@pytest.fixture
async def echo_server_in(net_env: NetEnv) -> AsyncIterator[tuple[str, int]]:
    """A netns with a TCP echo server listening on 0.0.0.0:<port> inside it."""
    path = net_env.new_netns()

    def listen() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 0))
        s.listen()
        s.setblocking(False)
        return s

    sock = netns.run_in_netns_sync(path, listen)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, sock=sock)
    try:
        yield path, int(sock.getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
        netns.remove_sync(path)


async def talk(host: str, port: int) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    try:
        writer.write(b"hello pod\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


async def test_host_port_mapping(net_env: NetEnv, echo_server_in: tuple[str, int]) -> None:
    net = net_env.net
    path, container_port = echo_server_in
    net_env.write_conflist(net.conflist())
    mgr = net_env.manager()
    host_port = free_port()
    status = await setup(mgr, "sb-ports", path, port_mappings=[PortMapping(host_port, container_port, "TCP")])
    try:
        assert await talk(status.ip, container_port) == b"hello pod\n"  # direct, over the bridge
        # portmap's DNAT in OUTPUT plus its SNAT/route_localnet handling makes localhost work.
        assert await talk("127.0.0.1", host_port) == b"hello pod\n"
        assert await talk(net.gateway, host_port) == b"hello pod\n"
        assert any(f"--dport {host_port}" in rule for rule in net.nat_rules())
        counters = await ifstats.interface_counters(path)
        assert counters["eth0"].rx_packets > 0 and counters["eth0"].tx_bytes > 0
    finally:
        await mgr.teardown("sb-ports", path)
    assert net.nat_rules() == []
    with pytest.raises(OSError):
        await talk("127.0.0.1", host_port)


async def test_host_port_on_host_ip(net_env: NetEnv, echo_server_in: tuple[str, int]) -> None:
    """A mapping restricted to one host IP answers there only."""
    net = net_env.net
    path, container_port = echo_server_in
    net_env.write_conflist(net.conflist())
    mgr = net_env.manager()
    host_port = free_port()
    await setup(mgr, "sb-hostip", path, port_mappings=[PortMapping(host_port, container_port, "tcp", net.gateway)])
    try:
        assert await talk(net.gateway, host_port) == b"hello pod\n"
        with pytest.raises(OSError):
            await talk("127.0.0.1", host_port)
    finally:
        await mgr.teardown("sb-hostip", path)


async def test_failing_plugin_rolls_back(net_env: NetEnv) -> None:
    net = net_env.net
    net_env.write_conflist(net.conflist({"type": "failer", "fakeAdd": "fail", "fakeCode": 7,
                                         "fakeMsg": "refusing this pod"}))
    mgr = net_env.manager()
    path = net_env.new_netns()
    try:
        with pytest.raises(cni_errors.PluginConfigError,
                           match=r'plugin type="failer" failed \(add\): refusing this pod') as info:
            await setup(mgr, "sb-fail", path, port_mappings=[PortMapping(free_port(), 80)])
        assert info.value.rolled_back
        assert net.allocations() == set()
        assert net.bridge_ports() == set()
        assert net.nat_rules() == []
        assert [a["ifname"] for a in await ip_json(path, "link")] == ["lo"]
        assert mgr.cached_sandboxes() == []
    finally:
        netns.remove_sync(path)


async def test_hanging_plugin_times_out_and_rolls_back(net_env: NetEnv) -> None:
    net = net_env.net
    pid_file = net_env.root / "hanger.pids"
    net_env.write_conflist(net.conflist({"type": "hanger", "fakeAdd": "hang", "fakePidFile": str(pid_file)}))
    mgr = net_env.manager(timeout=3.0)
    path = net_env.new_netns()
    try:
        with pytest.raises(cni_errors.PluginTimeout, match=r'plugin type="hanger" failed.*timed out after 3s'):
            await setup(mgr, "sb-hang", path)
        assert net.allocations() == set()
        assert net.bridge_ports() == set()
        for pid in (int(p) for p in pid_file.read_text().split()):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except FileNotFoundError:
                pass
    finally:
        netns.remove_sync(path)


async def test_teardown_after_restart_with_netns_gone(net_env: NetEnv) -> None:
    """The server restarts and the pod's netns disappeared: DEL still frees the IP and host-side state."""
    net = net_env.net
    net_env.write_conflist(net.conflist())
    path = net_env.new_netns()
    status = await setup(net_env.manager(), "sb-restart", path, port_mappings=[PortMapping(free_port(), 80)])
    assert net.allocations() == {status.ip}
    netns.remove_sync(path)  # the namespace is gone (its veth end with it)
    (net_env.conf_dir / "10-test.conflist").unlink()  # and so is the config
    restarted = net_env.manager()
    assert not restarted.status().ready
    assert restarted.cached_status("sb-restart") is not None
    await restarted.teardown("sb-restart", path)
    assert net.allocations() == set()
    assert net.bridge_ports() == set()
    assert net.nat_rules() == []
    assert restarted.cached_sandboxes() == []


async def test_template_rendered_for_pod_cidr(net_env: NetEnv) -> None:
    net = net_env.net
    conf = net.conflist()
    conf["plugins"][0]["ipam"]["ranges"] = "RANGES"
    template_text = json.dumps(conf).replace(
        '"RANGES"', '[{{range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$r}}"}]{{end}}]')
    template_path = net_env.root / "template.conflist"
    template_path.write_text(template_text)
    mgr = net_env.manager(template=str(template_path))
    cond = mgr.status()
    assert not cond.ready and cond.reason == "NetworkPluginNotReady"
    assert "cni plugin not initialized" in cond.message
    assert mgr.update_pod_cidr(net.subnet) is not None
    assert mgr.status().ready
    path = net_env.new_netns()
    try:
        status = await setup(mgr, "sb-tpl", path)
        assert ipaddress.ip_address(status.ip) in ipaddress.ip_network(net.subnet)
        await mgr.teardown("sb-tpl", path)
    finally:
        netns.remove_sync(path)


async def test_many_pods_in_parallel(net_env: NetEnv) -> None:
    net = net_env.net
    net_env.write_conflist(net.conflist())
    mgr = net_env.manager()
    paths = [net_env.new_netns() for _ in range(6)]
    try:
        statuses = await asyncio.gather(*(setup(mgr, f"sb-par{i}", p) for i, p in enumerate(paths)))
        ips = {s.ip for s in statuses}
        assert len(ips) == 6
        assert net.allocations() == ips
        await asyncio.gather(*(mgr.teardown(f"sb-par{i}", p) for i, p in enumerate(paths)))
        assert net.allocations() == set()
    finally:
        for p in paths:
            netns.remove_sync(p)
    assert run("ip", "link", "show", net.bridge).returncode == 0


async def test_setup_without_loopback_plugin(net_env: NetEnv) -> None:
    """A netns created with lo up needs no loopback attachment; teardown follows the records."""
    net_env.write_conflist(net_env.net.conflist())
    mgr = net_env.manager()
    path = netns.create_sync(str(net_env.net.netns_dir), netns.new_name(), loopback_up=True)
    try:
        status = await setup(mgr, "sb-nolo", path, loopback_plugin=False)
        assert set(status.results) == {"eth0"}
        assert [r.ifname for r in mgr.cache.load("sb-nolo")[0]] == ["eth0"]
        addrs = {a["ifname"]: a for a in await ip_json(path, "addr")}
        assert "UP" in addrs["lo"]["flags"]
        assert net_env.net.allocations() == {status.ip}
        await mgr.teardown("sb-nolo", path)
        assert net_env.net.allocations() == set()
        assert mgr.cached_sandboxes() == []
    finally:
        await mgr.teardown("sb-nolo", path)
        netns.remove_sync(path)
