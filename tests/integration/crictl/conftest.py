"""A containerd with its built-in CRI, a pause stand-in, a host-only network and both crictls.

`live_cri` is private to the crictl tests: its sandbox image is the rig's pause stand-in (the
default `registry.k8s.io/pause:3.6` cannot be pulled here), its CNI config is a `TestNetwork`,
and every pod it runs gets a cgroup parent of its own so `statsp` works on containerd 1.6
(which fails pod stats for pods without one). Teardown removes pods, network, cgroups, dirs.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rig import paths
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.rig.network import TestNetwork
from tests.rig.registry import LocalRegistry
from tests.upstream import OUR_CRICTL, SRC, UPSTREAM_CRICTL

CGROUP_ROOT = Path("/sys/fs/cgroup")
NETWORK_INDEX = 6  # distinct bridge/subnet from other suites' TestNetworks


def run_crictl(
    binary: list[str], endpoint: str, *args: str, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "CONTAINER_RUNTIME_ENDPOINT": endpoint}
    return subprocess.run([*binary, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd="/",
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)  # fmt: skip


@dataclass
class LiveCri:
    """Endpoint, images and config writers for pod/container tests."""

    ctrd: PrivateContainerd
    endpoint: str
    images: TestImages
    log_dir: Path
    config_dir: Path
    cgroup_parent: str

    def ours(self, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_crictl(OUR_CRICTL, self.endpoint, *args, timeout=timeout, input=input)

    def upstream(self, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Upstream crictl: only where it is installed (see tests/upstream.py for what runs elsewhere)."""
        return run_crictl([str(UPSTREAM_CRICTL)], self.endpoint, *args, timeout=timeout, input=input)

    def pod_config(self, name: str, *, namespace: str = "crictl-test", attempt: int = 0) -> str:
        config = {
            "metadata": {"name": name, "namespace": namespace, "attempt": attempt, "uid": f"{name}-uid"},
            "log_directory": str(self.log_dir / name),
            "labels": {"app": name, "suite": "crictl"},
            "annotations": {"example.com/note": "crictl test"},
            "linux": {"cgroup_parent": self.cgroup_parent},
        }
        return self._write(f"pod-{name}.json", config)

    def container_config(self, name: str, command: list[str], *, image: str | None = None) -> str:
        config = {
            "metadata": {"name": name},
            "image": {"image": image or self.images.busybox.ref},
            "command": command,
            "log_path": f"{name}.log",
            "labels": {"tier": "test", "ctr": name},
            "linux": {},
        }
        return self._write(f"ctr-{name}.json", config)

    def _write(self, filename: str, config: dict[str, object]) -> str:
        path = self.config_dir / filename
        path.write_text(json.dumps(config))
        return str(path)


def _remove_cgroup_parent(name: str) -> None:
    for controller in CGROUP_ROOT.iterdir():
        target = controller / name.lstrip("/")
        if target.is_dir():
            with contextlib.suppress(OSError):  # still populated: nothing of ours to remove
                target.rmdir()


@pytest.fixture(scope="module")
def live_cri(registry: LocalRegistry, test_images: TestImages) -> Iterator[LiveCri]:
    ctrd = PrivateContainerd(with_cri=True, sandbox_image=test_images.pause.ref)
    ctrd.add_registry_host(registry.host, "http://" + registry.host)
    ctrd.start()
    network = TestNetwork(ctrd.cni_conf_dir, NETWORK_INDEX)
    log_dir = paths.make_dir("crictl-logs")
    config_dir = paths.make_dir("crictl-configs")
    cgroup_parent = f"/{paths.NAME_PREFIX}-{paths.session_token()}-crictl"
    live = LiveCri(ctrd, "unix://" + ctrd.address, test_images, log_dir, config_dir, cgroup_parent)
    try:
        pulled = live.ours("pull", test_images.busybox.ref)
        assert pulled.returncode == 0, pulled.stderr
        yield live
    finally:
        problems = []
        removed = live.ours("rmp", "-fa")
        if removed.returncode != 0:
            problems.append(f"rmp -fa: {removed.stderr.strip()}")
        network.close()
        problems += ctrd.stop()
        _remove_cgroup_parent(cgroup_parent)
        paths.remove_tree(log_dir)
        paths.remove_tree(config_dir)
        if problems:
            pytest.fail("crictl live rig cleanup: " + "; ".join(problems))
