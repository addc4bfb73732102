"""Per-interface traffic counters of a pod's network namespace (for PodSandboxStats).

`/proc/net/dev` shows the namespace of the reading *thread* only through
`/proc/thread-self/net/dev`, so the file is read from a thread that entered
the pod's namespace (see `netns.run_in_netns`); no process is spawned.
"""

from __future__ import annotations

from dataclasses import dataclass

from cri_runtime.network import netns


@dataclass(frozen=True)
class InterfaceCounters:
    name: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


def parse_net_dev(text: str) -> dict[str, InterfaceCounters]:
    """Parse the /proc/net/dev table (two header lines, then `name: 16 counters`)."""
    out: dict[str, InterfaceCounters] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        values = [int(v) for v in rest.split()]
        if len(values) < 16:
            raise ValueError(f"unexpected /proc/net/dev line: {line!r}")
        name = name.strip()
        out[name] = InterfaceCounters(
            name=name, rx_bytes=values[0], rx_packets=values[1], rx_errors=values[2], rx_dropped=values[3],
            tx_bytes=values[8], tx_packets=values[9], tx_errors=values[10], tx_dropped=values[11])
    return out


def _read_own_net_dev() -> str:
    with open("/proc/thread-self/net/dev", encoding="ascii") as f:
        return f.read()


async def interface_counters(netns_path: str) -> dict[str, InterfaceCounters]:
    """Counters of every interface in the namespace at `netns_path` (NotFound if it is gone)."""
    return parse_net_dev(await netns.run_in_netns(netns_path, _read_own_net_dev))
