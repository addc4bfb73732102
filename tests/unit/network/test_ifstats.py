"""Parsing /proc/net/dev."""

from __future__ import annotations

import pytest

from cri_runtime.network.ifstats import InterfaceCounters, parse_net_dev

SAMPLE = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls"
    " carrier compressed\n"
    "    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0"
    "       0          0\n"
    "  eth0: 1061290    1046    1    3    0     0          0         0    86912     987    4    5    0     0"
    "       0          0\n"
)


def test_parse_net_dev() -> None:
    counters = parse_net_dev(SAMPLE)
    assert set(counters) == {"lo", "eth0"}
    assert counters["eth0"] == InterfaceCounters(
        name="eth0", rx_bytes=1061290, rx_packets=1046, rx_errors=1, rx_dropped=3,
        tx_bytes=86912, tx_packets=987, tx_errors=4, tx_dropped=5)


def test_truncated_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="unexpected"):
        parse_net_dev(SAMPLE.splitlines()[0] + "\n" + SAMPLE.splitlines()[1] + "\n  eth0: 1 2 3\n")
