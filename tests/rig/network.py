"""A host-only CNI network for tests: bridge + host-local (+ portmap).

Pod traffic must never leave the machine: ipMasq is off and a FORWARD DROP
rule keeps the subnet from being routed anywhere but its own bridge. IP
allocations live under the session dir (host-local ``dataDir``) so tests can
count them and the leak check attributes them. ``close()`` removes the rule,
the bridge and the files.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

from . import paths


def free_subnet_index(candidates: range = range(1, 100)) -> int:
    """A third octet n such that nothing on the host uses 10.99.n.0/24 yet.

    Networks of this and other sessions show up as addresses, routes or their
    FORWARD drop rule. TestNetwork draws from 1-99, the CNI library's own
    tests from 100-249, so two networks of one session never share a subnet.
    """
    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout

    in_use = run("ip", "-4", "-o", "addr") + run("ip", "-4", "route", "show", "table", "all") + \
        run("iptables", "-S", "FORWARD")
    choices = list(candidates)
    random.shuffle(choices)
    for n in choices:
        if f"10.99.{n}." not in in_use:
            return n
    raise RuntimeError("no free 10.99.n.0/24 subnet on this host")


class TestNetwork:
    """Write a conflist into `conf_dir`; one per server under test.

    `index` names the bridge (`crb<token><index>`): 0-7 for these networks,
    8 is the CNI library tests' own network.
    """

    __test__ = False

    def __init__(self, conf_dir: Path, index: int = 0, *, portmap: bool = True) -> None:
        self.subnet = f"10.99.{free_subnet_index()}.0/24"
        self.bridge = paths.test_bridge_name(index)
        self.name = paths.test_network_name(f"pods{index}")
        self.data_dir = paths.make_dir("ipam")
        self.conf_path = Path(conf_dir) / "10-test.conflist"
        plugins: list[dict[str, object]] = [{
            "type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.data_dir)},
        }]
        if portmap:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True}})
        self.conf_path.write_text(json.dumps({"cniVersion": "1.0.0", "name": self.name, "plugins": plugins}))
        self._rule = ["FORWARD", "-s", self.subnet, "!", "-o", self.bridge, "-j", "DROP"]
        subprocess.run(["iptables", "-I", *self._rule], check=True)

    def allocations(self) -> list[str]:
        """IPs host-local currently holds for this network."""
        d = self.data_dir / self.name
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.name[0].isdigit() or ":" in p.name)

    def close(self) -> None:
        subprocess.run(["iptables", "-D", *self._rule], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)
        self.conf_path.unlink(missing_ok=True)
        paths.remove_tree(self.data_dir)
