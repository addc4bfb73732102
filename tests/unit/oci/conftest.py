"""Fixtures for the OCI spec builder tests: a pod's host files and a fake image rootfs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.oci.container_spec import SandboxContext, build_container_spec
from cri_runtime.oci.options import SpecOptions
from cri_runtime.oci.process import ImageConfig
from tests.unit.oci.helpers import BuildFn, sandbox_config

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
www:x:33:33:www:/var/www:/bin/sh
alice:x:1000:1000::/home/alice:/bin/sh
broken line
bad:x:notanumber:1::/:/bin/sh
"""
GROUP = """root:x:0:
daemon:x:1:
www:x:33:alice
alice:x:1000:alice
dev:x:2000:alice,bob
audio:x:29:www
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


@pytest.fixture
def pod_files(tmp_path: Path) -> dict[str, str]:
    pod = tmp_path / "pod"
    pod.mkdir()
    for name in ("hostname", "hosts", "resolv.conf"):
        (pod / name).write_text("")
    (pod / "shm").mkdir()
    return {name: str(pod / name) for name in ("hostname", "hosts", "resolv.conf", "shm")}




@pytest.fixture
def build(pod_files: dict[str, str]) -> BuildFn:
    """build(config, image=..., sandbox_config=..., options=..., **kwargs) → spec dict."""

    def _build(
        config: api_pb2.ContainerConfig,
        *,
        image: ImageConfig | None = None,
        pod: api_pb2.PodSandboxConfig | None = None,
        options: SpecOptions | None = None,
        pod_files_override: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        files = pod_files if pod_files_override is None else pod_files_override
        sandbox = SandboxContext(
            id="sandbox-id",
            config=pod or sandbox_config(),
            pid=4242,
            hostname_path=files.get("hostname", ""),
            hosts_path=files.get("hosts", ""),
            resolv_conf_path=files.get("resolv.conf", ""),
            shm_path=files.get("shm", ""),
        )
        return build_container_spec(
            "ctr-id",
            config,
            image or ImageConfig(entrypoint=["/bin/sh"], cmd=["-c", "true"]),
            image_name="docker.io/library/busybox:latest",
            sandbox=sandbox,
            options=options or SpecOptions(host_devices=()),
            **kwargs,
        )

    return _build
