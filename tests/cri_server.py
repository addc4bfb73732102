"""Run the real `cri-runtime serve` as a subprocess for integration tests.

The server is started exactly as an operator would start it (console script,
TOML config file), against the rig's private containerd, with its socket,
root and state dirs under the rig's session directory so the leak check can
attribute anything left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc
from tests.rig import paths, system

CRI_RUNTIME = str(Path(sys.executable).with_name("cri-runtime"))


class CriServer:
    """One cri-runtime process; `.endpoint` is what crictl's `-r` takes."""

    def __init__(self, containerd_address: str, *, hosts_dir: str = "", extra_toml: str = "",
                 sandbox_image: str = "registry.k8s.io/pause:3.6", runc_root: str = "",
                 args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.dir = paths.make_dir("cri")
        self.socket = str(self.dir / "cri.sock")
        self.endpoint = f"unix://{self.socket}"
        self.cni_conf_dir = self.dir / "net.d"
        self.cni_conf_dir.mkdir()
        self.log_path = self.dir / "server.log"
        self.config_path = self.dir / "config.toml"
        # NRI on, as by default, but on a socket of this server's own (plugins dir likewise).
        self.nri_socket = str(self.dir / "nri.sock")
        nri_toml = "" if "[nri]" in extra_toml else (
            f'[nri]\nsocket_path = "{self.nri_socket}"\nplugin_path = "{self.dir}/nri-plugins"\n'
            f'plugin_config_path = "{self.dir}/nri-conf.d"\n')
        self.config_path.write_text(
            f'[server]\nsocket = "{self.socket}"\nroot_dir = "{self.dir}/root"\n'
            f'state_dir = "{self.dir}/state"\nlog_level = "debug"\n'
            f'[containerd]\naddress = "{containerd_address}"\n'
            f'[image]\nsandbox_image = "{sandbox_image}"\nregistry_config_path = "{hosts_dir}"\n'
            f'[network]\ncni_conf_dir = "{self.cni_conf_dir}"\n'
            + (f'[runtime.handlers.runc]\nroot = "{runc_root}"\n' if runc_root else "")
            + nri_toml + extra_toml
        )
        # Extra command-line arguments (e.g. --config-dir) and environment (e.g. NOTIFY_SOCKET).
        self.args, self.env = args, env
        self.proc: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None

    def start(self, timeout: float = 15.0) -> CriServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([CRI_RUNTIME, "serve", "--config", str(self.config_path),
                                      "--config-dir", str(self.dir / "config.d"), *self.args],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     env=None if self.env is None else {**os.environ, **self.env})
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cri-runtime exited with {self.proc.returncode}: {self.log()}")
            try:
                self.runtime().Version(api_pb2.VersionRequest(), timeout=1)
                return self
            except grpc.RpcError:
                time.sleep(0.05)
        raise RuntimeError(f"cri-runtime did not answer within {timeout}s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(
                self.endpoint, options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)])
        return self._channel

    def runtime(self) -> Any:
        return api_pb2_grpc.RuntimeServiceStub(self.channel())

    def images(self) -> Any:
        return api_pb2_grpc.ImageServiceStub(self.channel())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the server and wait for it (SIGKILL models a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def cleanup(self) -> None:
        """Stop the server and remove its dirs (incl. the netns pin mount it leaves for pods)."""
        self.stop()
        system.unmount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> CriServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()


def env_without_crictl_config() -> dict[str, str]:
    """Environment for CLI subprocesses that must not read /etc/crictl.yaml."""
    env = dict(os.environ)
    env.pop("CONTAINER_RUNTIME_ENDPOINT", None)
    env.pop("IMAGE_SERVICE_ENDPOINT", None)
    return env
