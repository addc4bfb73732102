"""CNI ADD results of every spec version, normalised to one shape.

Plugins answer in the version they were asked for: 0.1.0/0.2.0 results carry
`ip4`/`ip6` objects; 0.3.x and 0.4.0 carry `interfaces` and `ips` (with a
`version` field per IP); 1.x drop `version`. The pod's IPs are then picked
as containerd picks them: the addresses on the sandbox interface (`eth0`),
IPv4 first. The raw JSON is kept unchanged because it is what the next
plugin's `prevResult` and the cache need.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from cri_runtime.network.cni import version

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidResult(ValueError):
    """A plugin's output that is not a valid CNI result."""


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str = ""
    sandbox: str = ""
    mtu: int | None = None


@dataclass(frozen=True)
class IPConfig:
    address: IPInterface
    gateway: IPAddress | None = None
    #: Index into the result's interfaces; None when the plugin did not say.
    interface: int | None = None

    @property
    def ip(self) -> IPAddress:
        return self.address.ip


@dataclass(frozen=True)
class Route:
    dst: IPNetwork
    gw: IPAddress | None = None


@dataclass(frozen=True)
class DNS:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    """A parsed ADD result; `raw` is the plugin's JSON as received."""

    cni_version: str
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def ips_on(self, ifname: str) -> list[IPConfig]:
        """IPs of the interface called `ifname`; IPs naming no interface count as the default one."""
        out = []
        for ipc in self.ips:
            if ipc.interface is None or self.interfaces[ipc.interface].name == ifname:
                out.append(ipc)
        return out


def _str(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidResult(f"{where}.{key}: expected a string, got {type(value).__name__}")
    return value


def _str_list(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidResult(f"{where}.{key}: expected a list of strings")
    return tuple(value)


def _ip_interface(text: Any, where: str) -> IPInterface:
    if not isinstance(text, str):
        raise InvalidResult(f"{where}: expected an address in CIDR notation, got {text!r}")
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise InvalidResult(f"{where}: invalid address {text!r}") from None


def _ip_address(text: Any, where: str) -> IPAddress | None:
    if text in (None, ""):
        return None
    if not isinstance(text, str):
        raise InvalidResult(f"{where}: expected an IP address, got {text!r}")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidResult(f"{where}: invalid IP address {text!r}") from None


def _route(raw: Any, where: str) -> Route:
    if not isinstance(raw, dict):
        raise InvalidResult(f"{where}: expected an object")
    dst = raw.get("dst")
    if not isinstance(dst, str):
        raise InvalidResult(f"{where}.dst: missing")
    try:
        network = ipaddress.ip_network(dst, strict=False)
    except ValueError:
        raise InvalidResult(f"{where}.dst: invalid network {dst!r}") from None
    return Route(dst=network, gw=_ip_address(raw.get("gw"), f"{where}.gw"))


def _dns(raw: Any) -> DNS:
    if raw is None:
        return DNS()
    if not isinstance(raw, dict):
        raise InvalidResult("dns: expected an object")
    return DNS(
        nameservers=_str_list(raw, "nameservers", "dns"),
        domain=_str(raw, "domain", "dns"),
        search=_str_list(raw, "search", "dns"),
        options=_str_list(raw, "options", "dns"),
    )


def _parse_legacy(raw: dict[str, Any], cni_version: str) -> Result:
    """0.1.0/0.2.0: `ip4`/`ip6` objects with their own routes, no interfaces."""
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for key in ("ip4", "ip6"):
        block = raw.get(key)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise InvalidResult(f"{key}: expected an object")
        ips.append(IPConfig(address=_ip_interface(block.get("ip"), f"{key}.ip"),
                            gateway=_ip_address(block.get("gateway"), f"{key}.gateway")))
        for i, r in enumerate(block.get("routes") or []):
            routes.append(_route(r, f"{key}.routes[{i}]"))
    return Result(cni_version=cni_version, ips=tuple(ips), routes=tuple(routes),
                  dns=_dns(raw.get("dns")), raw=raw)


def _parse_current(raw: dict[str, Any], cni_version: str) -> Result:
    """0.3.0 and later: interfaces, ips (with an interface index), routes, dns."""
    interfaces: list[Interface] = []
    raw_ifs = raw.get("interfaces")
    if raw_ifs is None:
        raw_ifs = []
    if not isinstance(raw_ifs, list):
        raise InvalidResult("interfaces: expected a list")
    for i, item in enumerate(raw_ifs):
        if not isinstance(item, dict):
            raise InvalidResult(f"interfaces[{i}]: expected an object")
        mtu = item.get("mtu")
        interfaces.append(Interface(
            name=_str(item, "name", f"interfaces[{i}]"),
            mac=_str(item, "mac", f"interfaces[{i}]"),
            sandbox=_str(item, "sandbox", f"interfaces[{i}]"),
            mtu=mtu if isinstance(mtu, int) else None,
        ))
    ips: list[IPConfig] = []
    raw_ips = raw.get("ips")
    if raw_ips is None:
        raw_ips = []
    if not isinstance(raw_ips, list):
        raise InvalidResult("ips: expected a list")
    for i, item in enumerate(raw_ips):
        where = f"ips[{i}]"
        if not isinstance(item, dict):
            raise InvalidResult(f"{where}: expected an object")
        index = item.get("interface")
        if index is not None:
            if not isinstance(index, int) or isinstance(index, bool):
                raise InvalidResult(f"{where}.interface: expected an integer index")
            if not 0 <= index < len(interfaces):
                raise InvalidResult(f"{where}.interface: index {index} out of range "
                                    f"(result has {len(interfaces)} interfaces)")
        ips.append(IPConfig(address=_ip_interface(item.get("address"), f"{where}.address"),
                            gateway=_ip_address(item.get("gateway"), f"{where}.gateway"),
                            interface=index))
    raw_routes = raw.get("routes")
    if raw_routes is None:
        raw_routes = []
    if not isinstance(raw_routes, list):
        raise InvalidResult("routes: expected a list")
    routes = [_route(r, f"routes[{i}]") for i, r in enumerate(raw_routes)]
    return Result(cni_version=cni_version, interfaces=tuple(interfaces), ips=tuple(ips),
                  routes=tuple(routes), dns=_dns(raw.get("dns")), raw=raw)


def parse_result(raw: Any, expected_version: str = "") -> Result:
    """Parse a plugin's ADD output; its own `cniVersion` wins over `expected_version`."""
    if not isinstance(raw, dict):
        raise InvalidResult(f"expected a JSON object, got {type(raw).__name__}")
    declared = raw.get("cniVersion", "") or expected_version or "0.1.0"
    if not isinstance(declared, str):
        raise InvalidResult("cniVersion: expected a string")
    try:
        is_current = version.at_least(declared, "0.3.0")
    except version.VersionError as exc:
        raise InvalidResult(str(exc)) from None
    if not version.is_supported(declared):
        raise InvalidResult(f"unsupported result cniVersion {declared!r}")
    if is_current:
        return _parse_current(raw, declared)
    return _parse_legacy(raw, declared)


def select_pod_ips(ips: list[IPConfig]) -> tuple[str, list[str]]:
    """Primary IP and the others, as containerd picks them: the first IPv4 leads, order kept otherwise."""
    if not ips:
        return "", []
    texts = [str(ipc.ip) for ipc in ips]
    for i, ipc in enumerate(ips):
        if ipc.ip.version == 4:
            return texts[i], texts[:i] + texts[i + 1:]
    return texts[0], texts[1:]
