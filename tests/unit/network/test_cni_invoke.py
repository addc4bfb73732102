"""Running one plugin: environment, stdin config, error mapping, timeouts."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cri_runtime import errors
from cri_runtime.network.cni import config, invoke
from cri_runtime.network.cni import errors as cni_errors

RT = invoke.RuntimeConf(container_id="sb1", netns="/run/netns/x", ifname="eth0",
                        args=(("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", "web")),
                        capability_args={"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                                         "bandwidth": {"ingressRate": 1000}, "dns": None})


def test_cni_args_string() -> None:
    assert invoke.cni_args_string(RT.args) == "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"
    assert invoke.cni_args_string([]) == ""


def test_env_has_cni_parameters_and_keeps_path() -> None:
    env = invoke.build_env("ADD", RT, ["/a", "/b"], base={"PATH": "/usr/bin", "CNI_STALE": "x"})
    assert env == {
        "PATH": "/usr/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "sb1", "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
        "CNI_PATH": "/a:/b",
    }


def test_env_follows_changes_of_our_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRIRT_TEST_VAR", "one")
    monkeypatch.setenv("CNI_LEFTOVER", "x")
    first = invoke.build_env("ADD", RT, ["/a"])
    assert first["CRIRT_TEST_VAR"] == "one" and first["CNI_COMMAND"] == "ADD" and "CNI_LEFTOVER" not in first
    first["CRIRT_TEST_VAR"] = "changed by a caller"  # each call gets its own copy
    monkeypatch.setenv("CRIRT_TEST_VAR", "two")
    assert invoke.build_env("DEL", RT, ["/a"])["CRIRT_TEST_VAR"] == "two"
    monkeypatch.delenv("CRIRT_TEST_VAR")
    assert "CRIRT_TEST_VAR" not in invoke.build_env("DEL", RT, ["/a"])


def test_version_env_has_no_attachment_parameters() -> None:
    env = invoke.build_env("VERSION", None, ["/a"], base={})
    assert env == {"CNI_COMMAND": "VERSION", "CNI_PATH": "/a"}


NETWORK = config.parse_conflist({
    "cniVersion": "1.0.0", "name": "net",
    "plugins": [
        {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},
        {"type": "portmap", "capabilities": {"portMappings": True, "ipRanges": True}, "snat": True},
        {"type": "bandwidth", "capabilities": {"bandwidth": True}, "runtimeConfig": {"bandwidth": {"x": 1}}},
        {"type": "other", "capabilities": {"dns": True}, "runtimeConfig": {"keep": True}},
    ],
})


def test_plugin_config_injects_name_version_and_only_declared_capabilities() -> None:
    first = invoke.build_plugin_config(NETWORK, NETWORK.plugins[0], None, RT.capability_args)
    assert first == {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"},
                     "name": "net", "cniVersion": "1.0.0"}
    prev = {"cniVersion": "1.0.0", "ips": []}
    second = invoke.build_plugin_config(NETWORK, NETWORK.plugins[1], prev, RT.capability_args)
    assert second["prevResult"] == prev
    assert second["runtimeConfig"] == {"portMappings": RT.capability_args["portMappings"]}
    assert "capabilities" not in second
    assert second["snat"] is True
    third = invoke.build_plugin_config(NETWORK, NETWORK.plugins[2], prev, RT.capability_args)
    assert third["runtimeConfig"] == {"bandwidth": {"ingressRate": 1000}}
    # A declared capability the runtime does not provide leaves the file's runtimeConfig alone.
    fourth = invoke.build_plugin_config(NETWORK, NETWORK.plugins[3], prev, RT.capability_args)
    assert fourth["runtimeConfig"] == {"keep": True}
    # The source config is not modified.
    assert "prevResult" not in NETWORK.plugins[1].raw


def test_find_plugin_searches_dirs_in_order(tmp_path: Path, fake_bin: Callable[..., Path]) -> None:
    bin_dir = fake_bin("bridge")
    other = tmp_path / "other"
    other.mkdir()
    (other / "bridge").write_text("not executable")
    assert invoke.find_plugin("bridge", [str(other), str(bin_dir)]) == str(bin_dir / "bridge")
    with pytest.raises(cni_errors.PluginNotFound, match='failed to find plugin "nope" in path') as info:
        invoke.find_plugin("nope", [str(bin_dir)])
    assert isinstance(info.value, errors.FailedPrecondition)


async def run_fake(bin_dir: Path, conf: dict[str, Any], command: str = "ADD",
                   timeout: float = 20.0) -> dict[str, Any] | None:
    conf = {"cniVersion": "1.0.0", "name": "net", **conf}
    env = invoke.build_env(command, RT, [str(bin_dir)])
    return await invoke.exec_plugin(str(bin_dir / "fake"), command, conf, env, timeout, "fake")


async def test_success_returns_parsed_output(tmp_path: Path, fake_bin: Callable[..., Path]) -> None:
    bin_dir = fake_bin("fake")
    log = tmp_path / "log"
    out = await run_fake(bin_dir, {"fakeIP": "10.0.0.2/24", "fakeLog": str(log)})
    assert out is not None and out["ips"] == [{"address": "10.0.0.2/24", "interface": 0}]
    call = json.loads(log.read_text())
    assert call["env"]["CNI_ARGS"] == invoke.cni_args_string(RT.args)
    assert call["conf"]["fakeIP"] == "10.0.0.2/24"
    assert await run_fake(bin_dir, {}, command="DEL") is None


@pytest.mark.parametrize(("code", "cls", "base"), [
    (7, cni_errors.PluginConfigError, errors.FailedPrecondition),
    (1, cni_errors.PluginConfigError, errors.FailedPrecondition),
    (11, cni_errors.PluginUnavailable, errors.Unavailable),
    (50, cni_errors.PluginUnavailable, errors.Unavailable),
    (5, cni_errors.PluginFailed, errors.Internal),
    (123, cni_errors.PluginFailed, errors.Internal),
])
async def test_error_object_maps_to_domain_error(fake_bin: Callable[..., Path], code: int,
                                                 cls: type[Exception], base: type[Exception]) -> None:
    bin_dir = fake_bin("fake")
    with pytest.raises(cls) as info:
        await run_fake(bin_dir, {"fakeAdd": "fail", "fakeCode": code, "fakeMsg": "no addresses left"})
    exc = info.value
    assert isinstance(exc, base)
    assert isinstance(exc, cni_errors.PluginError)
    assert (exc.plugin, exc.command, exc.code, exc.msg) == ("fake", "ADD", code, "no addresses left")
    assert str(exc) == f'plugin type="fake" failed (add): no addresses left: asked to fail (code {code})'


async def test_crash_uses_stderr(fake_bin: Callable[..., Path]) -> None:
    bin_dir = fake_bin("fake")
    with pytest.raises(cni_errors.PluginFailed, match=r'type="fake" failed \(del\): panic: something broke'):
        await run_fake(bin_dir, {"fakeDel": "crash"}, command="DEL")


async def test_non_json_output_is_an_error(fake_bin: Callable[..., Path]) -> None:
    bin_dir = fake_bin("fake")
    with pytest.raises(cni_errors.PluginFailed, match="output is not JSON"):
        await run_fake(bin_dir, {"fakeAdd": "garbage"})


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_timeout_kills_plugin_and_its_children(tmp_path: Path, fake_bin: Callable[..., Path]) -> None:
    bin_dir = fake_bin("fake")
    pid_file = tmp_path / "pids"
    start = time.monotonic()
    with pytest.raises(cni_errors.PluginTimeout, match=r"timed out after 1.5s and was killed") as info:
        await run_fake(bin_dir, {"fakeAdd": "hang", "fakePidFile": str(pid_file)}, timeout=1.5)
    assert isinstance(info.value, errors.DeadlineExceeded)
    assert time.monotonic() - start < 10
    pids = [int(p) for p in pid_file.read_text().split()]
    for _ in range(50):
        if all(_gone(p) for p in pids):
            break
        await asyncio.sleep(0.1)
    assert all(_gone(p) for p in pids), f"plugin processes still running: {pids}"


async def test_cancellation_kills_plugin(tmp_path: Path, fake_bin: Callable[..., Path]) -> None:
    bin_dir = fake_bin("fake")
    pid_file = tmp_path / "pids"
    task = asyncio.ensure_future(run_fake(bin_dir, {"fakeAdd": "hang", "fakePidFile": str(pid_file)}))
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pids = [int(p) for p in pid_file.read_text().split()]
    for _ in range(50):
        if all(_gone(p) for p in pids):
            break
        await asyncio.sleep(0.1)
    assert all(_gone(p) for p in pids)


async def test_version_info(fake_bin: Callable[..., Path]) -> None:
    bin_dir = fake_bin("fake")
    assert await invoke.get_version_info("fake", [str(bin_dir)], 10) == ["0.3.1", "0.4.0", "1.0.0"]


def test_plugin_error_is_not_left_in_environment() -> None:
    assert not any(k.startswith("CNI_") for k in os.environ)
