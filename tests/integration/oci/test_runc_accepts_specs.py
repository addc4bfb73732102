"""runc 1.1.5 runs the specs the builders make, and applies what they say.

A bundle with Debian's static busybox as rootfs is run directly with
``runc run`` (no containerd): the process reports its ids and
/proc/self/status, which shows the capability bounding set, the seccomp mode
and no_new_privs as the kernel applied them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.oci.container_spec import SandboxContext, build_container_spec
from cri_runtime.oci.defaults import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from cri_runtime.oci.options import SpecOptions
from cri_runtime.oci.process import ImageConfig
from cri_runtime.oci.sandbox_spec import build_sandbox_spec
from tests.rig.paths import make_dir, remove_tree

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "cat", "id", "true")


@pytest.fixture
def bundle(root_only: None) -> Iterator[Path]:
    if not BUSYBOX.exists():
        pytest.skip("needs busybox-static (/bin/busybox)")
    base = make_dir("oci-runc")
    rootfs = base / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", rootfs / "bin" / applet)
    for d in ("etc", "proc", "sys", "dev", "tmp"):
        (rootfs / d).mkdir(exist_ok=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:3000:app\n")
    pod = base / "pod"
    pod.mkdir()
    for name in ("hostname", "hosts", "resolv.conf"):
        (pod / name).write_text("# test\n")
    (pod / "shm").mkdir()
    yield base
    remove_tree(base)


def _options() -> SpecOptions:
    return SpecOptions(current_oom_score_adj=int(Path("/proc/self/oom_score_adj").read_text()))


def _run(bundle: Path, spec: dict[str, Any]) -> str:
    (bundle / "config.json").write_text(json.dumps(spec))
    state = bundle / "runc-state"
    cid = f"crirt-oci-{secrets.token_hex(4)}"
    try:
        done = subprocess.run(
            ["runc", "--root", str(state), "run", "--bundle", str(bundle), cid],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(["runc", "--root", str(state), "delete", "-f", cid], capture_output=True, timeout=30)
    assert done.returncode == 0, f"runc failed ({done.returncode}): {done.stderr}"
    return done.stdout


def _status(output: str) -> dict[str, str]:
    fields = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _cap_mask(names: tuple[str, ...] | list[str]) -> int:
    return sum(1 << ALL_CAPABILITIES.index(n) for n in names)


def test_container_spec_runs_with_seccomp_caps_user_and_nnp(bundle: Path) -> None:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="probe"),
        image=api_pb2.ImageSpec(image="busybox"),
        command=["/bin/sh", "-c", "id; cat /proc/self/status"],
    )
    sc = config.linux.security_context
    sc.namespace_options.pid = api_pb2.CONTAINER
    sc.run_as_user.value = 1000
    sc.no_new_privs = True
    sc.seccomp.profile_type = api_pb2.SecurityProfile.RuntimeDefault
    sc.capabilities.drop_capabilities.append("NET_RAW")
    sc.masked_paths.append("/proc/kcore")
    config.linux.resources.oom_score_adj = -999  # must be clamped to ours
    config.linux.resources.memory_limit_in_bytes = 64 << 20
    pod = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(name="p", uid="u", namespace="n"))
    pod.linux.cgroup_parent = "/"
    files = bundle / "pod"
    sandbox = SandboxContext(
        id="sb",
        config=pod,
        pid=os.getpid(),  # join this process's (host) net/ipc/uts namespaces
        hostname_path=str(files / "hostname"),
        hosts_path=str(files / "hosts"),
        resolv_conf_path=str(files / "resolv.conf"),
        shm_path=str(files / "shm"),
    )
    spec = build_container_spec(
        f"crirt-oci-{secrets.token_hex(4)}",
        config,
        ImageConfig(),
        image_name="busybox",
        sandbox=sandbox,
        options=_options(),
        rootfs=str(bundle / "rootfs"),
    )
    out = _run(bundle, spec)
    assert "uid=1000(app) gid=1000(app) groups=1000(app),3000(extra)" in out
    status = _status(out)
    expected_caps = [c for c in DEFAULT_CAPABILITIES if c != "CAP_NET_RAW"]
    assert int(status["CapBnd"], 16) == _cap_mask(expected_caps)
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == "1"


def test_sandbox_spec_runs(bundle: Path) -> None:
    pod = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="p", uid="u", namespace="n"), hostname="sandbox-host"
    )
    pod.linux.cgroup_parent = "/"
    pod.linux.security_context.seccomp.profile_type = api_pb2.SecurityProfile.RuntimeDefault
    pod.linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "1000"
    script = "cat /proc/self/status /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/hostname"
    spec = build_sandbox_spec(
        f"crirt-oci-{secrets.token_hex(4)}",
        pod,
        ImageConfig(entrypoint=["/bin/sh", "-c", script]),
        options=_options(),
        shm_path=str(bundle / "pod" / "shm"),
        resolv_conf_path=str(bundle / "pod" / "resolv.conf"),
    )
    out = _run(bundle, spec)
    status = _status(out)
    assert int(status["CapEff"], 16) == _cap_mask(list(DEFAULT_CAPABILITIES))
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == "1"
    lines = out.strip().splitlines()
    assert lines[-2:] == ["1000", "sandbox-host"]
