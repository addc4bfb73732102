"""PodNetworkManager with fake plugins: ordering, rollback, cache-driven teardown, status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cri_runtime import errors
from cri_runtime.config import NetworkConfig
from cri_runtime.network import manager as manager_mod
from cri_runtime.network import netns
from cri_runtime.network.cni import config, template
from cri_runtime.network.cni import errors as cni_errors
from cri_runtime.network.manager import Bandwidth, DNSConfig, IPRange, PodNetworkManager, PortMapping

NETNS = "/run/netns/fake-pod"


class Env:
    """A conf dir, a bin dir of fake plugins and a call log."""

    def __init__(self, tmp_path: Path, bin_dir: Path) -> None:
        self.tmp = tmp_path
        self.bin_dir = bin_dir
        self.conf_dir = tmp_path / "net.d"
        self.conf_dir.mkdir()
        self.log = tmp_path / "calls.jsonl"
        self.cache_dir = tmp_path / "cache"

    def write_network(self, plugins: list[dict[str, Any]], name: str = "testnet", version: str = "1.0.0",
                      filename: str = "10-test.conflist") -> None:
        for p in plugins:
            p.setdefault("fakeLog", str(self.log))
        (self.conf_dir / filename).write_text(json.dumps({"cniVersion": version, "name": name, "plugins": plugins}))

    def manager(self, **cfg: Any) -> PodNetworkManager:
        net_cfg = NetworkConfig(cni_bin_dirs=[str(self.bin_dir)], cni_conf_dir=str(self.conf_dir),
                                cni_plugin_timeout_seconds=cfg.pop("timeout", 20.0), **cfg)
        return PodNetworkManager(net_cfg, str(self.cache_dir))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def summary(self) -> list[tuple[str, str, str]]:
        return [(c["command"], c["plugin"], c["env"]["CNI_IFNAME"]) for c in self.calls()]

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)


@pytest.fixture
def env(tmp_path: Path, fake_bin: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Env:
    bin_dir = fake_bin("main", "chain", "loopback")
    # The built-in loopback network must log too: give it the log path through its config.
    lo = config.parse_conflist({"cniVersion": "0.3.1", "name": "cni-loopback",
                                            "plugins": [{"type": "loopback", "fakeLog": str(tmp_path / "calls.jsonl"),
                                                         "fakeIP": "127.0.0.1/8"}]})
    monkeypatch.setattr(config, "LOOPBACK_NETWORK", lo)
    monkeypatch.setattr(netns, "is_netns", lambda path: path == NETNS)
    return Env(tmp_path, bin_dir)


async def setup_pod(mgr: PodNetworkManager, sandbox_id: str = "sb1", **kwargs: Any) -> manager_mod.NetworkStatus:
    return await mgr.setup(sandbox_id, NETNS, pod_name="web", pod_namespace="default", pod_uid="uid-1",
                           **kwargs)


async def test_setup_and_teardown_order_args_and_results(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24"},
                       {"type": "chain", "capabilities": {"portMappings": True, "bandwidth": True}}])
    mgr = env.manager()
    status = await setup_pod(mgr, port_mappings=[PortMapping(8080, 80, "TCP", "127.0.0.1"), PortMapping(0, 81)],
                             bandwidth=Bandwidth(ingress_rate=1000, ingress_burst=2000),
                             dns=DNSConfig(servers=("10.96.0.10",)))
    assert status.ip == "10.0.0.5"
    assert status.additional_ips == ()
    assert status.network_name == "testnet"
    assert set(status.results) == {"lo", "eth0"}
    assert env.summary() == [("ADD", "loopback", "lo"), ("ADD", "main", "eth0"), ("ADD", "chain", "eth0")]
    lo, main, chain = env.calls()
    assert main["env"]["CNI_ARGS"] == ("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
                                       "K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1")
    assert main["env"]["CNI_CONTAINERID"] == "sb1"
    assert main["env"]["CNI_NETNS"] == NETNS
    assert main["env"]["CNI_PATH"] == str(env.bin_dir)
    assert "prevResult" not in main["conf"]
    assert "runtimeConfig" not in main["conf"]
    assert chain["conf"]["prevResult"]["ips"] == [{"address": "10.0.0.5/24", "interface": 0}]
    assert chain["conf"]["runtimeConfig"] == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}],
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 2000, "egressRate": 0, "egressBurst": 0},
    }
    assert lo["conf"]["cniVersion"] == "0.3.1"

    env.clear()
    await mgr.teardown("sb1", NETNS)
    assert env.summary() == [("DEL", "chain", "eth0"), ("DEL", "main", "eth0"), ("DEL", "loopback", "lo")]
    final = status.results["eth0"]
    assert all(c["conf"]["prevResult"] == final for c in env.calls()[:2])
    assert "prevResult" not in env.calls()[2]["conf"]  # loopback network is 0.3.1: DEL gets none
    assert not env.cache_dir.joinpath("sb1").exists()

    env.clear()
    await mgr.teardown("sb1", NETNS)  # idempotent: nothing on record, nothing to do
    assert env.calls() == []


async def test_teardown_after_restart_uses_cached_config(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24", "marker": "old"}])
    await setup_pod(env.manager(), port_mappings=[PortMapping(8080, 80)])
    # The operator replaces the config, then the server restarts.
    (env.conf_dir / "10-test.conflist").unlink()
    env.write_network([{"type": "chain", "marker": "new"}], name="othernet", filename="05-new.conflist")
    env.clear()
    restarted = env.manager()
    cached = restarted.cached_status("sb1")
    assert cached is not None and cached.ip == "10.0.0.5"
    assert restarted.cached_sandboxes() == ["sb1"]
    await restarted.teardown("sb1", NETNS)
    assert env.summary() == [("DEL", "main", "eth0"), ("DEL", "loopback", "lo")]
    main = env.calls()[0]
    assert main["conf"]["name"] == "testnet"
    assert main["conf"]["marker"] == "old"
    assert "K8S_POD_NAME=web" in main["env"]["CNI_ARGS"]
    assert restarted.cached_sandboxes() == []


async def test_failed_plugin_rolls_back_everything(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24"},
                       {"type": "chain", "fakeAdd": "fail", "fakeCode": 7, "fakeMsg": "bad config"}])
    mgr = env.manager()
    with pytest.raises(cni_errors.PluginConfigError, match=r'plugin type="chain" failed \(add\): bad config') as info:
        await setup_pod(mgr)
    assert info.value.rolled_back
    assert isinstance(info.value, errors.FailedPrecondition)
    assert env.summary() == [
        ("ADD", "loopback", "lo"), ("ADD", "main", "eth0"), ("ADD", "chain", "eth0"),
        ("DEL", "chain", "eth0"), ("DEL", "main", "eth0"),  # rollback of eth0, reverse order
        ("DEL", "loopback", "lo"),  # and of the attachment made before
    ]
    partial = env.calls()[3]["conf"]["prevResult"]
    assert partial["ips"] == [{"address": "10.0.0.5/24", "interface": 0}]
    assert mgr.cached_sandboxes() == []
    # The sandbox can be set up again once the config is fixed.
    env.write_network([{"type": "main", "fakeIP": "10.0.0.6/24"}])
    assert (await setup_pod(mgr)).ip == "10.0.0.6"
    await mgr.teardown("sb1", NETNS)


async def test_failed_rollback_keeps_record_for_teardown(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24", "fakeDel": "crash"},
                       {"type": "chain", "fakeAdd": "crash"}])
    mgr = env.manager()
    with pytest.raises(cni_errors.PluginFailed, match="rollback failed too") as info:
        await setup_pod(mgr)
    assert not info.value.rolled_back
    assert mgr.cached_sandboxes() == ["sb1"]
    with pytest.raises(cni_errors.PluginFailed, match=r'type="main" failed \(del\)'):
        await mgr.teardown("sb1", NETNS)
    assert mgr.cached_sandboxes() == ["sb1"]  # kept so a later teardown can retry
    # Simulate the operator fixing the plugin: teardown retries from the record and succeeds.
    record_path = env.cache_dir / "sb1" / "eth0.json"
    record = json.loads(record_path.read_text())
    record["config"]["plugins"][0]["fakeDel"] = "ok"
    record_path.write_text(json.dumps(record))
    await mgr.teardown("sb1", NETNS)
    assert mgr.cached_sandboxes() == []


async def test_hanging_plugin_times_out_and_rolls_back(env: Env, tmp_path: Path) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24"},
                       {"type": "chain", "fakeAdd": "hang", "fakePidFile": str(tmp_path / "pids")}])
    mgr = env.manager(timeout=1.0)
    with pytest.raises(cni_errors.PluginTimeout) as info:
        await setup_pod(mgr)
    assert isinstance(info.value, errors.DeadlineExceeded)
    assert info.value.rolled_back
    assert [c for c in env.summary() if c[0] == "DEL"] == [
        ("DEL", "chain", "eth0"), ("DEL", "main", "eth0"), ("DEL", "loopback", "lo")]
    assert mgr.cached_sandboxes() == []


async def test_missing_netns_on_teardown(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24"},
                       {"type": "chain", "fakeDel": "fail", "fakeCode": 999, "fakeMsg": "link eth0 not found"}])
    mgr = env.manager()
    await setup_pod(mgr)
    env.clear()
    await mgr.teardown("sb1", "/run/netns/already-gone")
    assert [c["env"]["CNI_NETNS"] for c in env.calls()] == ["", "", ""]
    assert env.summary() == [("DEL", "chain", "eth0"), ("DEL", "main", "eth0"), ("DEL", "loopback", "lo")]
    assert mgr.cached_sandboxes() == []


async def test_not_found_error_with_netns_present_is_an_error(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24", "fakeDel": "fail", "fakeCode": 999,
                        "fakeMsg": "thing not found"}])
    mgr = env.manager()
    await setup_pod(mgr)
    with pytest.raises(cni_errors.PluginFailed, match="thing not found"):
        await mgr.teardown("sb1", NETNS)


async def test_unknown_container_on_del_is_success(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24", "fakeDel": "fail", "fakeCode": 3}])
    mgr = env.manager()
    await setup_pod(mgr)
    await mgr.teardown("sb1", NETNS)
    assert mgr.cached_sandboxes() == []


async def test_old_versions_get_no_prev_result_on_del(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24"}], version="0.3.1")
    mgr = env.manager()
    status = await setup_pod(mgr)
    assert status.ip == "10.0.0.5"
    assert status.results["eth0"]["ips"][0]["version"] == "4"
    env.clear()
    await mgr.teardown("sb1", NETNS)
    assert all("prevResult" not in c["conf"] for c in env.calls())


async def test_ip_ranges_cgroup_and_annotations_capabilities(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24",
                        "capabilities": {"ipRanges": True, "cgroupPath": True,
                                         "io.kubernetes.cri.pod-annotations": True, "dns": True}}])
    mgr = env.manager()
    await setup_pod(mgr, ip_ranges=[[IPRange("10.1.0.0/24", gateway="10.1.0.1")]], cgroup_parent="/kubepods/pod1",
                    annotations={"a": "b"}, dns=DNSConfig(("10.96.0.10",), ("svc.local",), ("ndots:5",)))
    rc = env.calls()[1]["conf"]["runtimeConfig"]
    assert rc == {"ipRanges": [[{"subnet": "10.1.0.0/24", "gateway": "10.1.0.1"}]],
                  "cgroupPath": "/kubepods/pod1", "io.kubernetes.cri.pod-annotations": {"a": "b"},
                  "dns": {"servers": ["10.96.0.10"], "searches": ["svc.local"], "options": ["ndots:5"]}}
    await mgr.teardown("sb1", NETNS)


async def test_dual_stack_primary_is_ipv4(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "fd00::5/64"}, {"type": "chain", "fakeIP": "10.0.0.5/24"}])
    mgr = env.manager()
    status = await setup_pod(mgr)
    assert (status.ip, status.additional_ips) == ("10.0.0.5", ("fd00::5",))
    await mgr.teardown("sb1", NETNS)


async def test_no_ip_on_eth0_fails_and_rolls_back(env: Env) -> None:
    env.write_network([{"type": "main"}])
    mgr = env.manager()
    with pytest.raises(errors.Internal, match="failed to find network info for sandbox sb1"):
        await setup_pod(mgr)
    assert [c for c in env.summary() if c[0] == "DEL"] == [("DEL", "main", "eth0"), ("DEL", "loopback", "lo")]
    assert mgr.cached_sandboxes() == []


async def test_setup_twice_is_refused(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24"}])
    mgr = env.manager()
    await setup_pod(mgr)
    with pytest.raises(errors.AlreadyExists):
        await setup_pod(mgr)
    await mgr.teardown("sb1", NETNS)


async def test_setup_needs_config_and_netns(env: Env) -> None:
    mgr = env.manager()
    with pytest.raises(errors.FailedPrecondition, match="cni config not initialized"):
        await setup_pod(mgr)
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24"}])
    with pytest.raises(errors.FailedPrecondition, match="network namespace /run/netns/nope does not exist"):
        await mgr.setup("sb1", "/run/netns/nope", pod_name="p", pod_namespace="n", pod_uid="u")
    with pytest.raises(errors.InvalidArgument, match="invalid characters in container ID"):
        await setup_pod(mgr, sandbox_id="-bad")
    assert env.calls() == []
    assert mgr.cached_sandboxes() == []


async def test_missing_plugin_binary(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24"}, {"type": "nonexistent"}])
    mgr = env.manager()
    with pytest.raises(cni_errors.PluginNotFound, match='failed to find plugin "nonexistent"') as info:
        await setup_pod(mgr)
    assert info.value.rolled_back
    assert [c for c in env.summary() if c[0] == "DEL"] == [("DEL", "main", "eth0"), ("DEL", "loopback", "lo")]
    assert mgr.cached_sandboxes() == []


async def test_cancelled_caller_does_not_interrupt_setup(env: Env, tmp_path: Path) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24", "fakeSleep": 0.5}])
    mgr = env.manager()
    task = asyncio.ensure_future(setup_pod(mgr))
    while ("ADD", "main", "eth0") not in env.summary():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Teardown waits for the setup that is still running, then undoes it from the record.
    await mgr.teardown("sb1", NETNS)
    assert env.summary() == [("ADD", "loopback", "lo"), ("ADD", "main", "eth0"),
                             ("DEL", "main", "eth0"), ("DEL", "loopback", "lo")]
    assert mgr.cached_sandboxes() == []


async def test_unreadable_record_falls_back_to_current_config(env: Env) -> None:
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24"}])
    mgr = env.manager()
    await setup_pod(mgr)
    (env.cache_dir / "sb1" / "eth0.json").write_text("{garbage")
    env.clear()
    await mgr.teardown("sb1", NETNS)
    assert env.summary() == [("DEL", "main", "eth0"), ("DEL", "loopback", "lo")]
    assert mgr.cached_sandboxes() == []


def test_status_reports_not_ready_until_config_appears(env: Env) -> None:
    mgr = env.manager()
    cond = mgr.status()
    assert not cond.ready
    assert cond.reason == "NetworkPluginNotReady"
    assert cond.message.startswith("Network plugin returns error: cni plugin not initialized: no network config")
    (env.conf_dir / "01-bad.conf").write_text("{}")
    assert "01-bad.conf: config: missing 'type'" in mgr.status().message
    env.write_network([{"type": "main"}])
    assert mgr.status().ready


def test_update_pod_cidr_renders_template_only_when_needed(env: Env, tmp_path: Path) -> None:
    assert env.manager().update_pod_cidr("10.5.0.0/24") is None  # no template configured
    tpl = tmp_path / "tpl"
    tpl.write_text('{"cniVersion": "1.0.0", "name": "tpl", "plugins": [{"type": "main", '
                   '"ipam": {"type": "host-local", "subnet": "{{.PodCIDR}}"}}]}')
    mgr = env.manager(cni_conf_template=str(tpl))
    assert not mgr.status().ready
    with pytest.raises(errors.InvalidArgument):
        mgr.update_pod_cidr("garbage")
    path = mgr.update_pod_cidr("10.5.0.0/24")
    assert path == str(env.conf_dir / template.CONF_FILE_NAME)
    assert mgr.status().ready
    network = mgr.current_network()
    assert network is not None and network.plugins[0].raw["ipam"]["subnet"] == "10.5.0.0/24"
    assert mgr.update_pod_cidr("10.6.0.0/24") is None  # a usable config exists: leave it alone
    assert mgr.pod_cidrs == ["10.6.0.0/24"]
    assert mgr.update_pod_cidr("") is None


async def test_rollback_skips_plugins_that_never_ran(env: Env, fake_bin: Callable[..., Path]) -> None:
    fake_bin("third")
    env.write_network([{"type": "main", "fakeIP": "10.0.0.5/24"}, {"type": "chain", "fakeAdd": "crash"},
                       {"type": "third"}])
    with pytest.raises(cni_errors.PluginFailed, match=r'type="chain" failed \(add\): panic: something broke'):
        await setup_pod(env.manager())
    assert ("ADD", "third", "eth0") not in env.summary()
    assert ("DEL", "third", "eth0") not in env.summary()
    assert [c for c in env.summary() if c[0] == "DEL"] == [
        ("DEL", "chain", "eth0"), ("DEL", "main", "eth0"), ("DEL", "loopback", "lo")]
