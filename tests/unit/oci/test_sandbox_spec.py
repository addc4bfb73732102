from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.defaults import DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS
from cri_runtime.oci.options import SpecOptions
from cri_runtime.oci.process import ImageConfig
from cri_runtime.oci.sandbox_spec import build_sandbox_spec
from tests.unit.oci.helpers import sandbox_config
from tests.unit.oci.spec_schema import check_spec

PAUSE = ImageConfig(entrypoint=["/pause"], env=["PATH=/p", "X=1"], working_dir="/")


def build(config: api_pb2.PodSandboxConfig | None = None, **kw: Any) -> dict[str, Any]:
    options = kw.pop("options", SpecOptions())
    return build_sandbox_spec(
        "sb-id",
        config or sandbox_config(),
        kw.pop("image", PAUSE),
        options=options,
        netns_path=kw.pop("netns_path", "/var/run/netns/cni-1"),
        shm_path=kw.pop("shm_path", "/run/cri/sb-id/shm"),
        resolv_conf_path=kw.pop("resolv_conf_path", "/run/cri/sb-id/resolv.conf"),
        **kw,
    )


def _ns(spec: dict[str, Any]) -> dict[str, str | None]:
    return {ns["type"]: ns.get("path") for ns in spec["linux"]["namespaces"]}


def test_default_sandbox_spec() -> None:
    pod = sandbox_config()
    pod.linux.resources.cpu_shares = 256
    pod.linux.resources.memory_limit_in_bytes = 1 << 30
    spec = build(pod)
    check_spec(spec)
    assert spec["process"]["args"] == ["/pause"]
    assert spec["process"]["env"] == ["PATH=/p", "X=1"]
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["process"]["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert spec["process"]["oomScoreAdj"] == 0  # -998 clamped to our own (0)
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert spec["hostname"] == "pod-host"
    assert _ns(spec) == {"pid": None, "ipc": None, "uts": None, "mount": None, "network": "/var/run/netns/cni-1"}
    assert spec["linux"]["resources"]["cpu"] == {"shares": 2}
    assert spec["linux"]["cgroupsPath"] == "/kubepods/pod-uid/sb-id"
    assert spec["linux"]["maskedPaths"] == list(DEFAULT_MASKED_PATHS)
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert mounts["/dev/shm"] == {"destination": "/dev/shm", "type": "bind", "source": "/run/cri/sb-id/shm",
                                  "options": ["rbind", "ro"]}  # fmt: skip
    assert mounts["/etc/resolv.conf"]["source"] == "/run/cri/sb-id/resolv.conf"
    assert "/sys/fs/cgroup" not in mounts
    assert "seccomp" not in spec["linux"]
    assert spec["annotations"] == {
        "io.kubernetes.cri.sandbox-cpu-period": "0",
        "io.kubernetes.cri.sandbox-cpu-quota": "0",
        "io.kubernetes.cri.sandbox-cpu-shares": "256",
        "io.kubernetes.cri.sandbox-memory": str(1 << 30),
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-id": "sb-id",
        "io.kubernetes.cri.sandbox-namespace": "ns",
        "io.kubernetes.cri.sandbox-uid": "pod-uid",
        "io.kubernetes.cri.sandbox-name": "pod",
        "io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/x",
    }


def test_oom_unrestricted() -> None:
    assert build(options=SpecOptions(restrict_oom_score_adj=False))["process"]["oomScoreAdj"] == -998
    assert build(options=SpecOptions(current_oom_score_adj=-999))["process"]["oomScoreAdj"] == -998


def test_host_namespaces() -> None:
    pod = sandbox_config()
    ns = pod.linux.security_context.namespace_options
    ns.network, ns.pid, ns.ipc = api_pb2.NODE, api_pb2.NODE, api_pb2.NODE
    spec = build(pod)
    assert _ns(spec) == {"mount": None}
    assert "hostname" not in spec  # runc refuses a hostname without its own UTS namespace
    shm = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert shm[0]["source"] == "/dev/shm"


def test_pid_pod_mode_gets_new_pid_ns() -> None:
    pod = sandbox_config()
    pod.linux.security_context.namespace_options.pid = api_pb2.POD
    assert _ns(build(pod))["pid"] is None


def test_sysctls_validated_and_unprivileged_defaults() -> None:
    pod = sandbox_config()
    pod.linux.sysctls["net.ipv4.ip_local_port_range"] = "1024 65000"
    opts = SpecOptions(enable_unprivileged_ports=True, enable_unprivileged_icmp=True)
    assert build(pod, options=opts)["linux"]["sysctl"] == {
        "net.ipv4.ip_local_port_range": "1024 65000",
        "net.ipv4.ip_unprivileged_port_start": "0",
        "net.ipv4.ping_group_range": "0 2147483647",
    }
    pod.linux.security_context.namespace_options.network = api_pb2.NODE
    with pytest.raises(InvalidArgument, match="host network"):
        build(pod)
    plain = build(options=opts)
    assert plain["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"
    assert "sysctl" not in build()["linux"]


def test_seccomp_and_user(tmp_path: Path) -> None:
    pod = sandbox_config()
    pod.linux.security_context.seccomp.profile_type = api_pb2.SecurityProfile.RuntimeDefault
    pod.linux.security_context.run_as_user.value = 65535
    pod.linux.security_context.run_as_group.value = 65534
    pod.linux.security_context.supplemental_groups.extend([7])
    spec = build(pod)
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert spec["process"]["user"] == {"uid": 65535, "gid": 65534, "additionalGids": [7, 65534]}
    pod.linux.security_context.privileged = True
    assert "seccomp" not in build(pod)["linux"]


def test_image_user_and_errors() -> None:
    spec = build(image=ImageConfig(entrypoint=["/pause"], user="65535:65535"))
    assert spec["process"]["user"]["uid"] == 65535
    with pytest.raises(InvalidArgument, match="Entrypoint nor Cmd"):
        build(image=ImageConfig())
    pod = sandbox_config()
    pod.linux.security_context.namespace_options.userns_options.mode = api_pb2.POD
    with pytest.raises(InvalidArgument, match="exactly one mapping"):
        build(pod)


def test_systemd_cgroup_and_no_netns_path() -> None:
    pod = sandbox_config(cgroup_parent="/kubepods.slice/kubepods-besteffort.slice")
    spec = build(pod, options=SpecOptions(cgroup_driver="systemd"), netns_path="")
    assert spec["linux"]["cgroupsPath"] == "kubepods-besteffort.slice:cri-runtime:sb-id"
    assert _ns(spec)["network"] is None
