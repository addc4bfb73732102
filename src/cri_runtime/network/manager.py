"""Pod networking: attach a sandbox's network namespace to the node's CNI network and back.

This is what the sandbox code calls. It mirrors how containerd's CRI plugin
drives CNI: two attachments per pod — the built-in loopback network on `lo`
(unless the caller brought `lo` up itself when creating the netns, which the
sandbox code does: one ioctl instead of a plugin run on ADD and on DEL)
and the default network (first valid config in the conf dir) on `eth0` —
with the K8S_POD_* CNI_ARGS and the portMappings / bandwidth / dns /
ipRanges / cgroupPath capability arguments. The pod's IPs are the ones on
`eth0`, IPv4 first.

Guarantees:
* setup either succeeds or leaves nothing behind (every attachment done so
  far is deleted again before the error is raised);
* teardown works from what setup recorded on disk, so it repeats exactly
  the config and arguments of ADD even after a restart of the server or a
  change of the config dir, and it is idempotent;
* operations on one sandbox never overlap (the spec forbids it), and a
  caller that gives up half-way (cancelled RPC) does not interrupt them:
  the operation finishes in the background and the next one waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cri_runtime import errors, tracing
from cri_runtime.config import NetworkConfig
from cri_runtime.network import netns
from cri_runtime.network.cni import attach, cache, config, result, template
from cri_runtime.network.cni import errors as cni_errors
from cri_runtime.network.cni.invoke import RuntimeConf

log = logging.getLogger("cri_runtime.network")

T = TypeVar("T")

#: Interface of the pod's default network inside the sandbox (containerd's "eth" prefix + index 0).
DEFAULT_IFNAME = "eth0"
LOOPBACK_IFNAME = "lo"
#: Reason of the NetworkReady=false condition (kubelet and containerd use this string).
NETWORK_NOT_READY_REASON = "NetworkPluginNotReady"
#: Capability under which containerd hands the pod's annotations to plugins.
POD_ANNOTATIONS_CAPABILITY = "io.kubernetes.cri.pod-annotations"


@dataclass(frozen=True)
class PortMapping:
    """A hostPort mapping (CRI PortMapping with host_port > 0)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def to_cni(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hostPort": self.host_port, "containerPort": self.container_port,
                               "protocol": self.protocol.lower()}
        if self.host_ip:
            out["hostIP"] = self.host_ip
        return out


@dataclass(frozen=True)
class Bandwidth:
    """Traffic shaping for the `bandwidth` plugin: rates in bit/s, bursts in bits; 0 = unset."""

    ingress_rate: int = 0
    ingress_burst: int = 0
    egress_rate: int = 0
    egress_burst: int = 0

    def to_cni(self) -> dict[str, int]:
        return {"ingressRate": self.ingress_rate, "ingressBurst": self.ingress_burst,
                "egressRate": self.egress_rate, "egressBurst": self.egress_burst}


@dataclass(frozen=True)
class DNSConfig:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def to_cni(self) -> dict[str, list[str]]:
        return {"servers": list(self.servers), "searches": list(self.searches), "options": list(self.options)}


@dataclass(frozen=True)
class IPRange:
    """One pool for host-local's `ipRanges` capability."""

    subnet: str
    range_start: str = ""
    range_end: str = ""
    gateway: str = ""

    def to_cni(self) -> dict[str, str]:
        out = {"subnet": self.subnet}
        if self.range_start:
            out["rangeStart"] = self.range_start
        if self.range_end:
            out["rangeEnd"] = self.range_end
        if self.gateway:
            out["gateway"] = self.gateway
        return out


@dataclass(frozen=True)
class NetworkStatus:
    """What setup produced: the pod's IPs and the raw CNI results per interface."""

    ip: str
    additional_ips: tuple[str, ...] = ()
    network_name: str = ""
    #: Raw final ADD result per interface name ("lo", "eth0").
    results: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkCondition:
    """The CRI NetworkReady condition."""

    ready: bool
    reason: str = ""
    message: str = ""


def pod_cni_args(sandbox_id: str, pod_name: str, pod_namespace: str, pod_uid: str) -> list[tuple[str, str]]:
    """CNI_ARGS as containerd passes them (IgnoreUnknown first so strict plugins accept the rest)."""
    return [
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", pod_namespace),
        ("K8S_POD_NAME", pod_name),
        ("K8S_POD_INFRA_CONTAINER_ID", sandbox_id),
        ("K8S_POD_UID", pod_uid),
    ]


def capability_args(port_mappings: Sequence[PortMapping] = (), bandwidth: Bandwidth | None = None,
                    dns: DNSConfig | None = None, ip_ranges: Sequence[Sequence[IPRange]] = (),
                    cgroup_parent: str = "", annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The capability arguments offered to plugins; each plugin gets those it declares."""
    caps: dict[str, Any] = {}
    if annotations is not None:
        caps[POD_ANNOTATIONS_CAPABILITY] = dict(annotations)
    mappings = [m.to_cni() for m in port_mappings if m.host_port > 0]
    if mappings:
        caps["portMappings"] = mappings
    if bandwidth is not None:
        caps["bandwidth"] = bandwidth.to_cni()
    if dns is not None:
        caps["dns"] = dns.to_cni()
    if ip_ranges:
        caps["ipRanges"] = [[r.to_cni() for r in pool] for pool in ip_ranges]
    if cgroup_parent:
        caps["cgroupPath"] = cgroup_parent
    return caps


class PodNetworkManager:
    """CNI setup/teardown of pod sandboxes, NetworkReady status, and the pod CIDR template."""

    def __init__(self, cfg: NetworkConfig, cache_dir: str, *, use_loopback_plugin: bool = True,
                 ifname: str = DEFAULT_IFNAME) -> None:
        self.cfg = cfg
        self.cache = cache.AttachmentCache(cache_dir)
        self.use_loopback_plugin = use_loopback_plugin
        self.ifname = ifname
        self._scan: config.ConfDirScan | None = None
        self._fingerprint: tuple[tuple[str, int, int, int], ...] | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.pod_cidrs: list[str] = []

    # ----- configuration -----

    def current_scan(self) -> config.ConfDirScan:
        """The default-network scan of the conf dir, reloaded when its files changed."""
        fingerprint = config.conf_dir_fingerprint(self.cfg.cni_conf_dir)
        if self._scan is None or fingerprint != self._fingerprint:
            scan = config.load_default_network(self.cfg.cni_conf_dir)
            for path, why in scan.skipped:
                log.warning("skipping CNI config %s: %s", path, why)
            if scan.network is not None and (self._scan is None or self._scan.network != scan.network):
                log.info("CNI network %r (cniVersion %s) from %s", scan.network.name,
                         scan.network.cni_version, scan.network.source)
            self._scan, self._fingerprint = scan, fingerprint
        return self._scan

    def current_network(self) -> config.NetworkConfigList | None:
        return self.current_scan().network

    def status(self) -> NetworkCondition:
        """NetworkReady: true once a valid network config is loaded."""
        scan = self.current_scan()
        if scan.network is not None:
            return NetworkCondition(ready=True)
        return NetworkCondition(
            ready=False, reason=NETWORK_NOT_READY_REASON,
            message=f"Network plugin returns error: cni plugin not initialized: {scan.not_ready_reason()}")

    def update_pod_cidr(self, pod_cidr: str) -> str | None:
        """Apply kubelet's pod CIDR(s); renders the conf template if one is set and no config is usable.

        Returns the path of the config written, or None when nothing had to be written.
        """
        if not pod_cidr.strip():
            return None
        cidrs = template.parse_pod_cidrs(pod_cidr)
        self.pod_cidrs = cidrs
        if not self.cfg.cni_conf_template:
            log.info("no cni_conf_template set; waiting for another component to install a CNI config")
            return None
        if self.current_network() is not None:
            log.info("CNI network already configured; not rendering %s", self.cfg.cni_conf_template)
            return None
        path = template.write_conf_from_template(self.cfg.cni_conf_template, self.cfg.cni_conf_dir, cidrs)
        log.info("generated CNI config %s from %s for pod CIDR(s) %s", path, self.cfg.cni_conf_template,
                 ", ".join(cidrs))
        self.current_scan()
        return path

    # ----- setup / teardown -----

    async def _serialized(self, sandbox_id: str, work: Awaitable[T]) -> T:
        """Run `work` under the sandbox's lock, immune to the caller's cancellation."""
        lock = self._locks.setdefault(sandbox_id, asyncio.Lock())
        self._lock_users[sandbox_id] = self._lock_users.get(sandbox_id, 0) + 1

        async def locked() -> T:
            try:
                async with lock:
                    return await work
            finally:
                # Forget the lock once nobody holds or waits for it (sandbox IDs are not reused).
                self._lock_users[sandbox_id] -= 1
                if not self._lock_users[sandbox_id]:
                    del self._lock_users[sandbox_id]
                    del self._locks[sandbox_id]

        task = asyncio.ensure_future(locked())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return await asyncio.shield(task)

    async def setup(self, sandbox_id: str, netns_path: str, *, pod_name: str, pod_namespace: str,
                    pod_uid: str, port_mappings: Sequence[PortMapping] = (),
                    bandwidth: Bandwidth | None = None, dns: DNSConfig | None = None,
                    ip_ranges: Sequence[Sequence[IPRange]] = (), cgroup_parent: str = "",
                    annotations: Mapping[str, str] | None = None,
                    loopback_plugin: bool | None = None) -> NetworkStatus:
        """CNI ADD of the pod's attachments; all or nothing.

        `loopback_plugin=False` skips the loopback attachment for a namespace
        whose `lo` the caller already brought up (see `netns.create`); None
        follows `use_loopback_plugin`.
        """
        args = pod_cni_args(sandbox_id, pod_name, pod_namespace, pod_uid)
        caps = capability_args(port_mappings, bandwidth, dns, ip_ranges, cgroup_parent, annotations)
        with_loopback = self.use_loopback_plugin if loopback_plugin is None else loopback_plugin
        return await self._serialized(sandbox_id, self._setup(sandbox_id, netns_path, args, caps, with_loopback))

    def _attachments(self, network: config.NetworkConfigList,
                     with_loopback: bool) -> list[tuple[config.NetworkConfigList, str]]:
        out = []
        if with_loopback:
            out.append((config.LOOPBACK_NETWORK, LOOPBACK_IFNAME))
        out.append((network, self.ifname))
        return out

    async def _setup(self, sandbox_id: str, netns_path: str, args: list[tuple[str, str]],
                     caps: dict[str, Any], with_loopback: bool) -> NetworkStatus:
        network = self.current_network()
        if network is None:
            raise errors.FailedPrecondition(f"cni config not initialized: {self.current_scan().not_ready_reason()}")
        if not netns.is_netns(netns_path):
            raise errors.FailedPrecondition(f"network namespace {netns_path} does not exist")
        existing, broken = self.cache.load(sandbox_id)
        if existing or broken:
            raise errors.AlreadyExists(f"network of sandbox {sandbox_id} is already set up; tear it down first")
        done: list[cache.AttachmentRecord] = []
        results: dict[str, result.Result] = {}
        for order, (net, ifname) in enumerate(self._attachments(network, with_loopback)):
            record = cache.AttachmentRecord(
                container_id=sandbox_id, ifname=ifname, network_name=net.name, netns=netns_path,
                config=net.to_dict(), cni_args=list(args), capability_args=dict(caps), order=order)
            # Written before ADD: if we die during ADD, teardown still knows what to undo.
            self.cache.save(record)
            rt = RuntimeConf(sandbox_id, netns_path, ifname, tuple(args), caps)
            try:
                with tracing.span("CNI ADD", network=net.name, ifname=ifname):
                    res = await attach.add_network_list(net, rt, self.cfg.cni_bin_dirs,
                                                        self.cfg.cni_plugin_timeout_seconds)
            except cni_errors.PluginError as exc:
                if exc.rolled_back:
                    self.cache.remove(sandbox_id, ifname)
                await self._undo(sandbox_id, netns_path, done)
                raise
            except errors.CriError:
                self.cache.remove(sandbox_id, ifname)
                await self._undo(sandbox_id, netns_path, done)
                raise
            record.result = res.raw
            self.cache.save(record)
            done.append(record)
            results[ifname] = res
        ips = results[self.ifname].ips_on(self.ifname)
        if not ips:
            await self._undo(sandbox_id, netns_path, done)
            raise errors.Internal(f"failed to find network info for sandbox {sandbox_id}: "
                                  f"network {network.name!r} assigned no IP to {self.ifname}")
        primary, others = result.select_pod_ips(ips)
        return NetworkStatus(ip=primary, additional_ips=tuple(others), network_name=network.name,
                             results={name: r.raw for name, r in results.items()})

    async def _undo(self, sandbox_id: str, netns_path: str, done: list[cache.AttachmentRecord]) -> None:
        """Best-effort DEL of attachments made by a setup that failed; failures stay cached for teardown."""
        for record in reversed(done):
            try:
                await self._delete(record, netns_path)
            except errors.CriError as exc:
                log.warning("rollback of %s for sandbox %s failed (teardown will retry): %s",
                            record.ifname, sandbox_id, exc)

    async def _delete(self, record: cache.AttachmentRecord, netns_path: str) -> None:
        try:
            network = config.parse_conflist(record.config, source=f"cache of {record.container_id}")
        except config.InvalidConfig as exc:
            raise errors.DataLoss(f"cached CNI config of sandbox {record.container_id} "
                                  f"({record.ifname}) is unusable: {exc}") from None
        rt = RuntimeConf(record.container_id, netns_path, record.ifname, tuple(record.cni_args),
                         record.capability_args)
        with tracing.span("CNI DEL", network=network.name, ifname=record.ifname):
            await attach.del_network_list(network, rt, record.result, self.cfg.cni_bin_dirs,
                                          self.cfg.cni_plugin_timeout_seconds)
        self.cache.remove(record.container_id, record.ifname)

    async def teardown(self, sandbox_id: str, netns_path: str) -> None:
        """CNI DEL of everything setup attached, from the on-disk record; idempotent."""
        await self._serialized(sandbox_id, self._teardown(sandbox_id, netns_path))

    async def _teardown(self, sandbox_id: str, netns_path: str) -> None:
        records, broken = self.cache.load(sandbox_id)
        for item in broken:
            records.append(self._record_for_unreadable(item))
        # The spec allows DEL without a namespace: plugins then clean up what they can on the host.
        usable_netns = netns_path if netns_path and netns.is_netns(netns_path) else ""
        if netns_path and not usable_netns:
            log.info("netns %s of sandbox %s is gone; CNI DEL runs without it", netns_path, sandbox_id)
        for record in sorted(records, key=lambda r: r.order, reverse=True):
            await self._delete(record, usable_netns)

    def _record_for_unreadable(self, item: cache.UnreadableRecord) -> cache.AttachmentRecord:
        """A damaged record: fall back to the network that interface is set up from today."""
        log.warning("CNI cache record %s is unreadable (%s); deleting with the current config",
                    item.path, item.reason)
        if item.ifname == LOOPBACK_IFNAME:
            network: config.NetworkConfigList | None = config.LOOPBACK_NETWORK
        else:
            network = self.current_network()
        if network is None:
            raise errors.DataLoss(f"CNI cache record {item.path} is unreadable ({item.reason}) "
                                  "and no CNI config is loaded to delete the attachment with")
        return cache.AttachmentRecord(
            container_id=item.container_id, ifname=item.ifname, network_name=network.name, netns="",
            config=network.to_dict(), cni_args=pod_cni_args(item.container_id, "", "", ""),
            order=0 if item.ifname == LOOPBACK_IFNAME else 1)

    # ----- recovery -----

    def cached_status(self, sandbox_id: str) -> NetworkStatus | None:
        """The NetworkStatus of a set-up sandbox, rebuilt from the cache (after a restart)."""
        records, _ = self.cache.load(sandbox_id)
        raw_results = {r.ifname: r.result for r in records if r.result is not None}
        main = next((r for r in records if r.ifname == self.ifname and r.result is not None), None)
        if main is None or main.result is None:
            return None
        try:
            parsed = result.parse_result(main.result, str(main.config.get("cniVersion", "")))
        except result.InvalidResult:
            return None
        primary, others = result.select_pod_ips(parsed.ips_on(self.ifname))
        return NetworkStatus(ip=primary, additional_ips=tuple(others), network_name=main.network_name,
                             results={k: v for k, v in raw_results.items() if v is not None})

    def cached_sandboxes(self) -> list[str]:
        """Sandboxes with attachments on record (set up, or torn down only partly)."""
        return self.cache.sandboxes()
