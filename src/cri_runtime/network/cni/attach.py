"""ADD and DEL of a whole network configuration list (SPEC.md section 3).

ADD runs the plugins in order, each getting the previous plugin's result as
`prevResult`; DEL runs them in reverse, each getting the final ADD result
(for configs of version 0.4.0 and later, as libcni does). If a plugin fails
during ADD, the plugins that ran (the failing one included) get a DEL in
reverse order before the error is raised, so a failed sandbox leaves no IP allocation, veth or
iptables chain behind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cri_runtime import errors
from cri_runtime.network.cni import errors as cni_errors
from cri_runtime.network.cni import invoke, result, version
from cri_runtime.network.cni.config import InvalidConfig, NetworkConfigList, validate_name

log = logging.getLogger("cri_runtime.network.cni")

#: Substrings of DEL errors that mean "already gone" when the netns no longer exists
#: (plugins are not consistent about this; containerd tolerates the same two).
_GONE_MARKERS = ("no such file or directory", "not found")


async def _run(network: NetworkConfigList, index: int, command: str, rt: invoke.RuntimeConf,
               prev_result: Mapping[str, Any] | None, bin_dirs: Sequence[str],
               timeout: float) -> dict[str, Any] | None:
    plugin = network.plugins[index]
    path = invoke.find_plugin(plugin.type, bin_dirs)
    conf = invoke.build_plugin_config(network, plugin, prev_result, rt.capability_args)
    env = invoke.build_env(command, rt, bin_dirs)
    return await invoke.exec_plugin(path, command, conf, env, timeout, plugin.type)


def _validate_runtime_conf(rt: invoke.RuntimeConf) -> None:
    try:
        validate_name(rt.container_id, "container ID")
    except InvalidConfig as exc:
        raise errors.InvalidArgument(str(exc)) from None
    if not rt.ifname or len(rt.ifname) > 15 or rt.ifname in (".", "..") or any(
            c in rt.ifname for c in "/: \t\n"):
        raise errors.InvalidArgument(f"invalid interface name {rt.ifname!r}")


async def add_network_list(network: NetworkConfigList, rt: invoke.RuntimeConf, bin_dirs: Sequence[str],
                           timeout: float) -> result.Result:
    """ADD every plugin in order; on failure roll back and raise the plugin's error."""
    _validate_runtime_conf(rt)
    prev: dict[str, Any] | None = None
    for index, plugin in enumerate(network.plugins):
        try:
            out = await _run(network, index, "ADD", rt, prev, bin_dirs, timeout)
            if out is None:
                raise cni_errors.make_error(
                    cni_errors.PluginFailed,
                    f'plugin type="{plugin.type}" failed (add): returned no result', plugin=plugin.type,
                    command="ADD")
            parsed = result.parse_result(out, network.cni_version)
        except (cni_errors.PluginError, result.InvalidResult) as exc:
            error = exc if isinstance(exc, cni_errors.PluginError) else cni_errors.make_error(
                cni_errors.PluginFailed, f'plugin type="{plugin.type}" failed (add): invalid result: {exc}',
                plugin=plugin.type, command="ADD")
            # Undo the plugins that ran, this one included (it may have done part of its work);
            # plugins after it never ran, and one that could not even be found did nothing.
            last = index - 1 if isinstance(error, cni_errors.PluginNotFound) else index
            await _roll_back(network, rt, prev, bin_dirs, timeout, error, last)
            raise error from None
        prev = out
    return parsed


async def _roll_back(network: NetworkConfigList, rt: invoke.RuntimeConf, partial: dict[str, Any] | None,
                     bin_dirs: Sequence[str], timeout: float, error: cni_errors.PluginError,
                     last: int) -> None:
    """DEL plugins `last`..0 after a failed ADD; record the outcome on `error`."""
    try:
        await del_network_list(network, rt, partial, bin_dirs, timeout, last=last)
    except errors.CriError as exc:
        log.warning("rollback of network %s for %s failed: %s", network.name, rt.container_id, exc)
        error.rolled_back = False
        error.rollback_error = exc
        error.message = f"{error.message} (rollback failed too: {exc})"
        error.args = (error.message,)
        return
    error.rolled_back = True


async def del_network_list(network: NetworkConfigList, rt: invoke.RuntimeConf,
                           prev_result: Mapping[str, Any] | None, bin_dirs: Sequence[str],
                           timeout: float, last: int | None = None) -> None:
    """DEL the plugins in reverse order (from `last`, default all); stops at the first real failure."""
    _validate_runtime_conf(rt)
    if not version.at_least(network.cni_version, "0.4.0"):
        prev_result = None
    start = len(network.plugins) - 1 if last is None else min(last, len(network.plugins) - 1)
    for index in range(start, -1, -1):
        plugin = network.plugins[index]
        try:
            await _run(network, index, "DEL", rt, prev_result, bin_dirs, timeout)
        except cni_errors.PluginError as exc:
            if exc.code == cni_errors.ERR_UNKNOWN_CONTAINER:
                continue
            lowered = exc.message.lower()
            if not rt.netns and any(marker in lowered for marker in _GONE_MARKERS):
                log.info("ignoring DEL error of plugin %s for %s with netns gone: %s",
                         plugin.type, rt.container_id, exc)
                continue
            raise
