"""Parsing CNI results of every spec version and picking the pod's IPs."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cri_runtime.network.cni import result

NETNS = "/run/netns/cni-1"


def current(version: str, with_ip_version: bool) -> dict[str, Any]:
    ips: list[dict[str, Any]] = [
        {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 2},
        {"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2},
        {"address": "192.168.7.1/24", "interface": 0},
    ]
    if with_ip_version:
        for ip in ips:
            ip["version"] = "6" if ":" in ip["address"] else "4"
    return {
        "cniVersion": version,
        "interfaces": [{"name": "cni0", "mac": "00:11:22:33:44:55"},
                       {"name": "veth1", "mac": "55:44:33:22:11:11"},
                       {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": NETNS, "mtu": 1500}],
        "ips": ips,
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.2.0.0/16", "gw": "10.1.0.254"}],
        "dns": {"nameservers": ["10.1.0.1"], "domain": "example", "search": ["a.example"], "options": ["ndots:2"]},
    }


@pytest.mark.parametrize(("version", "with_ip_version"), [
    ("0.3.0", True), ("0.3.1", True), ("0.4.0", True), ("1.0.0", False), ("1.1.0", False),
])
def test_current_formats(version: str, with_ip_version: bool) -> None:
    raw = current(version, with_ip_version)
    parsed = result.parse_result(raw)
    assert parsed.cni_version == version
    assert [i.name for i in parsed.interfaces] == ["cni0", "veth1", "eth0"]
    assert parsed.interfaces[2].sandbox == NETNS
    assert parsed.interfaces[2].mtu == 1500
    eth0 = parsed.ips_on("eth0")
    assert [str(i.address) for i in eth0] == ["fd00::5/64", "10.1.0.5/24"]
    assert eth0[1].gateway == ipaddress.ip_address("10.1.0.1")
    assert parsed.routes[1].gw == ipaddress.ip_address("10.1.0.254")
    assert parsed.dns.nameservers == ("10.1.0.1",)
    assert parsed.dns.search == ("a.example",)
    assert parsed.raw is raw
    assert result.select_pod_ips(eth0) == ("10.1.0.5", ["fd00::5"])


def test_legacy_0_2_0() -> None:
    parsed = result.parse_result({
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.1.0.7/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "ip6": {"ip": "fd00::7/64"},
        "dns": {"nameservers": ["8.8.8.8"]},
    })
    ips = parsed.ips_on("eth0")  # no interface index: they belong to the default interface
    assert [str(i.ip) for i in ips] == ["10.1.0.7", "fd00::7"]
    assert str(parsed.routes[0].dst) == "0.0.0.0/0"


def test_expected_version_used_when_result_has_none() -> None:
    parsed = result.parse_result({"ips": [{"address": "10.0.0.2/24"}]}, "1.0.0")
    assert parsed.cni_version == "1.0.0"
    assert [str(i.ip) for i in parsed.ips_on("eth0")] == ["10.0.0.2"]


def test_ips_of_other_interfaces_are_not_the_pods() -> None:
    parsed = result.parse_result({"cniVersion": "1.0.0",
                                  "interfaces": [{"name": "lo", "sandbox": NETNS}],
                                  "ips": [{"address": "127.0.0.1/8", "interface": 0}]})
    assert parsed.ips_on("eth0") == []
    assert len(parsed.ips_on("lo")) == 1


@pytest.mark.parametrize(("raw", "error"), [
    ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24", "interface": 3}]}, "out of range"),
    ({"cniVersion": "1.0.0", "ips": [{"address": "nope"}]}, "invalid address"),
    ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24", "gateway": "x"}]}, "invalid IP address"),
    ({"cniVersion": "1.0.0", "routes": [{"gw": "10.0.0.1"}]}, "dst: missing"),
    ({"cniVersion": "1.0.0", "interfaces": {}}, "interfaces: expected a list"),
    ({"cniVersion": "1.0.0", "dns": {"nameservers": "8.8.8.8"}}, "list of strings"),
    ({"cniVersion": "3.0.0"}, "unsupported result cniVersion"),
    ({"cniVersion": "x"}, "invalid cniVersion"),
    ("text", "expected a JSON object"),
])
def test_invalid_results(raw: Any, error: str) -> None:
    with pytest.raises(result.InvalidResult, match=error):
        result.parse_result(raw)


def _ips(*addresses: str) -> list[result.IPConfig]:
    return [result.IPConfig(address=ipaddress.ip_interface(a)) for a in addresses]


@pytest.mark.parametrize(("addresses", "expected"), [
    ((), ("", [])),
    (("10.0.0.1/24",), ("10.0.0.1", [])),
    (("fd00::1/64", "10.0.0.1/24", "fd00::2/64"), ("10.0.0.1", ["fd00::1", "fd00::2"])),
    (("fd00::1/64", "fd00::2/64"), ("fd00::1", ["fd00::2"])),
    (("10.0.0.1/24", "10.0.0.2/24"), ("10.0.0.1", ["10.0.0.2"])),
])
def test_select_pod_ips(addresses: tuple[str, ...], expected: tuple[str, list[str]]) -> None:
    assert result.select_pod_ips(_ips(*addresses)) == expected
