"""Running one CNI plugin binary: environment, stdin config, timeout, errors.

The execution protocol (SPEC.md section 2/3): the plugin gets its parameters
in `CNI_*` environment variables and its configuration on stdin: the plugin's
object from the network list with `name`, `cniVersion`, `prevResult` and a
`runtimeConfig` holding the capability arguments the plugin declared. It
answers with a result (ADD) or nothing (DEL) on stdout, or with an error
object and a non-zero exit.

Every call is bounded: the plugin runs in its own session (process group),
and on timeout or cancellation the whole group is killed. That matters
because plugins delegate (bridge runs host-local); killing only the top
process would leave the delegate holding our pipes open.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cri_runtime.network.cni import errors as cni_errors
from cri_runtime.network.cni.config import NetworkConfigList, PluginConf

log = logging.getLogger("cri_runtime.network.cni")

#: How long to wait for a killed plugin's process group to go away.
_REAP_TIMEOUT = 5.0


@dataclass(frozen=True)
class RuntimeConf:
    """The per-attachment parameters (SPEC.md "Attachment Parameters")."""

    container_id: str
    netns: str
    ifname: str
    #: CNI_ARGS as ordered key/value pairs.
    args: tuple[tuple[str, str], ...] = ()
    #: Capability arguments by capability name (portMappings, bandwidth, …).
    capability_args: Mapping[str, Any] = field(default_factory=dict)


def cni_args_string(args: Sequence[tuple[str, str]]) -> str:
    """`K=V;K=V` as CNI_ARGS wants it."""
    return ";".join(f"{k}={v}" for k, v in args)


def find_plugin(plugin_type: str, bin_dirs: Sequence[str]) -> str:
    """Path of the executable for `plugin_type` in the first bin dir that has one."""
    for directory in bin_dirs:
        path = os.path.join(directory, plugin_type)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise cni_errors.make_error(
        cni_errors.PluginNotFound,
        f'failed to find plugin "{plugin_type}" in path [{", ".join(bin_dirs)}]',
        plugin=plugin_type, command="")


#: Our environment minus CNI_*, and the raw environment it was made from: decoding every
#: variable again for each plugin run cost more than the rest of building the request.
_inherited: tuple[dict[bytes, bytes], dict[str, str]] | None = None


def _inherited_env() -> dict[str, str]:
    global _inherited
    raw = dict(os.environb)  # ~12 us: the public view, compared instead of decoding every variable again
    if _inherited is None or _inherited[0] != raw:
        _inherited = (raw, {k: v for k, v in os.environ.items() if not k.startswith("CNI_")})
    return dict(_inherited[1])


def build_env(command: str, rt: RuntimeConf | None, bin_dirs: Sequence[str],
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The plugin's environment: ours (plugins need PATH for iptables etc.) plus the CNI_* parameters."""
    env = _inherited_env() if base is None else {k: v for k, v in base.items() if not k.startswith("CNI_")}
    env["CNI_COMMAND"] = command
    env["CNI_PATH"] = os.pathsep.join(bin_dirs)
    if rt is not None:
        env["CNI_CONTAINERID"] = rt.container_id
        env["CNI_NETNS"] = rt.netns
        env["CNI_IFNAME"] = rt.ifname
        env["CNI_ARGS"] = cni_args_string(rt.args)
    return env


def build_plugin_config(network: NetworkConfigList, plugin: PluginConf, prev_result: Mapping[str, Any] | None,
                        capability_args: Mapping[str, Any]) -> dict[str, Any]:
    """The request configuration for one plugin (SPEC.md "Deriving request configuration")."""
    conf = dict(plugin.raw)
    conf.pop("capabilities", None)
    conf["name"] = network.name
    conf["cniVersion"] = network.cni_version
    if prev_result is not None:
        conf["prevResult"] = prev_result
    runtime_config = {cap: capability_args[cap] for cap in sorted(plugin.capabilities)
                      if cap in capability_args and capability_args[cap] is not None}
    if runtime_config:
        conf["runtimeConfig"] = runtime_config
    return conf


def _plugin_error(plugin: str, command: str, returncode: int, stdout: bytes,
                  stderr: bytes) -> cni_errors.PluginError:
    """Turn a failed run into a PluginError, preferring the plugin's JSON error object."""
    code, msg, details = 0, "", ""
    try:
        data = json.loads(stdout)
    except ValueError:
        data = None
    if isinstance(data, dict) and ("code" in data or "msg" in data):
        raw_code = data.get("code", 0)
        code = raw_code if isinstance(raw_code, int) else 0
        msg = str(data.get("msg", "") or "")
        details = str(data.get("details", "") or "")
    else:
        text = (stderr or stdout).decode(errors="replace").strip()
        msg = text[-2000:] if text else f"exited with status {returncode}"
    return cni_errors.make_error(
        cni_errors.class_for_code(code),
        f'plugin type="{plugin}" failed ({command.lower()}): {cni_errors.describe(code, msg, details)}',
        plugin=plugin, command=command, code=code, msg=msg, details=details)


#: Threads that run plugins: each waits on one plugin process (so they mostly sleep).
#: Sized for many pods set up at once; plugin runs beyond that queue.
_PLUGIN_THREADS = 32
_executor = concurrent.futures.ThreadPoolExecutor(_PLUGIN_THREADS, thread_name_prefix="cni-plugin")


class _PluginRun:
    """One plugin process run from a worker thread, killable from the event loop.

    Spawning and waiting happen in a plain thread with blocking calls: that
    costs about half the CPU of asyncio's subprocess transports and child
    watcher thread per process, and keeps fork/exec off the event loop.
    """

    def __init__(self, path: str, data: bytes, env: Mapping[str, str], timeout: float) -> None:
        self.path = path
        self.data = data
        self.env = dict(env)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._abandoned = False

    def run(self) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, stderr); _TimedOut after killing the group on timeout."""
        with self._lock:
            if self._abandoned:
                raise _Abandoned()
            proc = self._proc = subprocess.Popen(
                [self.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=self.env, cwd="/", start_new_session=True)
        try:
            stdout, stderr = proc.communicate(self.data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(proc)
            raise _TimedOut() from None
        except BaseException:
            self._kill_group(proc)
            raise
        return proc.returncode, stdout, stderr

    def abandon(self) -> None:
        """The caller gave up: never start the plugin, or kill its whole group (delegates too)."""
        with self._lock:
            self._abandoned = True
            proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.communicate(timeout=_REAP_TIMEOUT)


class _Abandoned(Exception):
    """The run was given up before its plugin started."""


class _TimedOut(Exception):
    """The plugin ran past its timeout and was killed."""


async def _run_in_thread(run: _PluginRun) -> tuple[int, bytes, bytes]:
    future = _executor.submit(run.run)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        # Cancelled by our caller: never leave a plugin (or its delegates) running behind us.
        if not future.cancelled():
            run.abandon()
            with contextlib.suppress(BaseException):
                await asyncio.shield(asyncio.wrap_future(future))
        raise


async def exec_plugin(path: str, command: str, stdin_conf: Mapping[str, Any], env: Mapping[str, str],
                      timeout: float, plugin: str = "") -> dict[str, Any] | None:
    """Run one plugin; return its parsed stdout (None when empty), or raise a PluginError."""
    plugin = plugin or os.path.basename(path)
    data = json.dumps(stdin_conf).encode()
    try:
        returncode, stdout, stderr = await _run_in_thread(_PluginRun(path, data, env, timeout))
    except OSError as exc:
        raise cni_errors.make_error(cni_errors.PluginFailed,
                                    f'plugin type="{plugin}" failed ({command.lower()}): cannot run {path}: {exc}',
                                    plugin=plugin, command=command) from None
    except _TimedOut:
        raise cni_errors.make_error(
            cni_errors.PluginTimeout,
            f'plugin type="{plugin}" failed ({command.lower()}): timed out after {timeout:g}s and was killed',
            plugin=plugin, command=command) from None
    if stderr:
        log.debug("plugin %s %s stderr: %s", plugin, command, stderr.decode(errors="replace").strip())
    if returncode != 0:
        raise _plugin_error(plugin, command, returncode, stdout, stderr)
    if not stdout.strip():
        return None
    try:
        parsed = json.loads(stdout)
    except ValueError:
        raise cni_errors.make_error(
            cni_errors.PluginFailed,
            f'plugin type="{plugin}" failed ({command.lower()}): output is not JSON: '
            f'{stdout[:200].decode(errors="replace")!r}',
            plugin=plugin, command=command) from None
    if not isinstance(parsed, dict):
        raise cni_errors.make_error(
            cni_errors.PluginFailed,
            f'plugin type="{plugin}" failed ({command.lower()}): output is not a JSON object',
            plugin=plugin, command=command)
    return parsed


async def get_version_info(plugin_type: str, bin_dirs: Sequence[str], timeout: float,
                           cni_version: str = "1.0.0") -> list[str]:
    """The spec versions a plugin supports (the VERSION command)."""
    path = find_plugin(plugin_type, bin_dirs)
    env = build_env("VERSION", None, bin_dirs)
    out = await exec_plugin(path, "VERSION", {"cniVersion": cni_version}, env, timeout, plugin_type)
    versions = (out or {}).get("supportedVersions")
    if not isinstance(versions, list):
        # 0.1.0-era plugins answer nothing useful: they speak 0.1.0 only.
        return ["0.1.0"]
    return [str(v) for v in versions]
