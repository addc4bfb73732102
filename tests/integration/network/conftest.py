"""A private, host-only CNI network for the network integration tests.

One per session: a bridge named by the rig (`crb<token><n>`, watched by the
leak check), a free /24 in 10.99.0.0/16 (never 10.88/16, the conformance
harness's), ipMasq off, and an iptables FORWARD drop rule so nothing from the
subnet can leave through another interface. The rule, the bridge and all
directories are removed at the end of the session.

Per test: a conf dir, a cache dir, a bin dir (fake plugins first, then
Debian's plugins), and a snapshot of what the network owns on the host
(pins, nsfs mounts, IP allocations, veths, NAT rules) that must be identical
after the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from cri_runtime.network import netns
from tests.integration.network.cninet import (
    NEEDED_PLUGINS,
    SYSTEM_CNI_BIN,
    HostNetwork,
    NetEnv,
    free_subnet_index,
    run,
)
from tests.rig import paths
from tests.unit.network.fakes import install_fake_plugins


@pytest.fixture(scope="session")
def host_network() -> Iterator[HostNetwork]:
    missing = [p for p in NEEDED_PLUGINS if not os.access(os.path.join(SYSTEM_CNI_BIN, p), os.X_OK)]
    if missing:
        pytest.skip(f"CNI plugins missing in {SYSTEM_CNI_BIN}: {', '.join(missing)}")
    index = free_subnet_index()
    base = paths.make_dir("cninet")
    net = HostNetwork(bridge=paths.test_bridge_name(8), subnet=f"10.99.{index}.0/24",
                      gateway=f"10.99.{index}.1", network_name=paths.test_network_name(f"n{index}"),
                      data_dir=base / "ipam", netns_dir=base / "netns", index=index)
    drop_rule = ["FORWARD", "-s", net.subnet, "!", "-o", net.bridge, "-j", "DROP"]
    run("iptables", "-I", *drop_rule)
    try:
        yield net
    finally:
        run("iptables", "-D", *drop_rule, check=False)
        run("ip", "link", "del", net.bridge, check=False)
        netns.release_pin_dir(str(net.netns_dir))
        paths.remove_tree(base)


@pytest.fixture
def net_env(host_network: HostNetwork) -> Iterator[NetEnv]:
    """Per-test dirs; asserts the network's host state is the same after the test as before."""
    root = paths.make_dir("cnitest")
    env = NetEnv(net=host_network, root=root, conf_dir=root / "net.d", bin_dir=root / "bin",
                 cache_dir=root / "cache")
    env.conf_dir.mkdir()
    install_fake_plugins(env.bin_dir, "failer", "hanger")
    before = host_network.state()
    try:
        yield env
        after = host_network.state()
        assert after == before, f"network state leaked: before={before} after={after}"
        assert not env.cache_dir.exists() or os.listdir(env.cache_dir) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
