"""The session's private host-only CNI network and per-test environments (used by conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cri_runtime.config import NetworkConfig
from cri_runtime.network import netns
from cri_runtime.network.manager import PodNetworkManager
from tests.rig import network as rig_network

SYSTEM_CNI_BIN = "/usr/lib/cni"
NEEDED_PLUGINS = ("bridge", "host-local", "portmap", "loopback")


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=check)


def free_subnet_index() -> int:
    """A third octet n such that nothing on the host uses 10.99.n.0/24 (from 100-249)."""
    return rig_network.free_subnet_index(range(100, 250))


@dataclass
class HostNetwork:
    """The session's private CNI network."""

    bridge: str
    subnet: str
    gateway: str
    network_name: str
    data_dir: Path
    netns_dir: Path
    index: int

    def plugin_list(self, *extra: dict[str, Any], portmap: bool = True) -> list[dict[str, Any]]:
        plugins: list[dict[str, Any]] = [{
            "type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
            "ipam": {"type": "host-local", "dataDir": str(self.data_dir),
                     "ranges": [[{"subnet": self.subnet}]], "routes": [{"dst": "0.0.0.0/0"}]},
        }]
        if portmap:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True}})
        plugins.extend(extra)
        return plugins

    def conflist(self, *extra: dict[str, Any], portmap: bool = True, version: str = "1.0.0") -> dict[str, Any]:
        return {"cniVersion": version, "name": self.network_name, "plugins": self.plugin_list(*extra, portmap=portmap)}

    def allocations(self) -> set[str]:
        """host-local's per-IP files (not its lock / last_reserved_ip bookkeeping)."""
        directory = self.data_dir / self.network_name
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return set()
        return {n for n in names if n != "lock" and not n.startswith("last_reserved_ip")}

    def bridge_ports(self) -> set[str]:
        out = run("ip", "-j", "link", "show", "master", self.bridge, check=False).stdout
        return {entry["ifname"] for entry in json.loads(out or "[]")}

    def nat_rules(self) -> list[str]:
        """NAT rules that mention our subnet (portmap's per-pod DNAT/SNAT rules do)."""
        prefix = f"10.99.{self.index}."
        return [line for line in run("iptables-save", "-t", "nat").stdout.splitlines() if prefix in line]

    def pins(self) -> set[str]:
        return set(os.listdir(self.netns_dir))

    def nsfs_mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as f:
            return [line for line in f if f" {self.netns_dir}/" in line]

    def state(self) -> dict[str, Any]:
        return {"allocations": self.allocations(), "ports": self.bridge_ports(), "nat": self.nat_rules(),
                "pins": self.pins(), "mounts": self.nsfs_mounts()}


@dataclass
class NetEnv:
    """One test's conf dir, bin dir and cache dir on the session network."""

    net: HostNetwork
    root: Path
    conf_dir: Path
    bin_dir: Path
    cache_dir: Path

    def write_conflist(self, conf: dict[str, Any], filename: str = "10-test.conflist") -> None:
        (self.conf_dir / filename).write_text(json.dumps(conf))

    def manager(self, timeout: float = 30.0, template: str = "") -> PodNetworkManager:
        cfg = NetworkConfig(cni_bin_dirs=[str(self.bin_dir), SYSTEM_CNI_BIN], cni_conf_dir=str(self.conf_dir),
                            cni_conf_template=template, cni_plugin_timeout_seconds=timeout)
        return PodNetworkManager(cfg, str(self.cache_dir))

    def new_netns(self) -> str:
        return netns.create_sync(str(self.net.netns_dir), netns.new_name())


