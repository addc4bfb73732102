from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.defaults import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_MASKED_PATHS,
    OCI_VERSION,
    default_mounts,
)
from cri_runtime.oci.options import SpecOptions
from cri_runtime.oci.process import ImageConfig
from cri_runtime.oci.user import ImageAccounts
from tests.unit.oci.helpers import BuildFn, container_config, sandbox_config
from tests.unit.oci.spec_schema import check_spec

SP = api_pb2.SecurityProfile


def test_basic_spec_is_structurally_valid(build: BuildFn) -> None:
    cfg = container_config(envs=[api_pb2.KeyValue(key="A", value=b"1")], working_dir="/work", tty=True, stdin=True)
    cfg.linux.resources.memory_limit_in_bytes = 1 << 26
    cfg.linux.security_context.seccomp.profile_type = SP.RuntimeDefault
    spec = build(cfg)
    check_spec(spec)
    assert json.loads(json.dumps(spec)) == spec
    assert spec["ociVersion"] == OCI_VERSION
    assert spec["root"] == {"path": "rootfs"}
    proc = spec["process"]
    assert proc["args"] == ["/bin/sh", "-c", "true"]
    assert proc["cwd"] == "/work"
    assert proc["terminal"] is True
    assert proc["noNewPrivileges"] is False
    assert proc["env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM=xterm",
        "HOSTNAME=pod-host",
        "A=1",
    ]
    assert "rlimits" not in proc
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


def test_env_image_then_config_overrides(build: BuildFn) -> None:
    image = ImageConfig(cmd=["x"], env=["PATH=/img/bin", "A=img", "B=img"])
    cfg = container_config(envs=[api_pb2.KeyValue(key="B", value=b"cfg"), api_pb2.KeyValue(key="C", value=b"c")])
    assert build(cfg, image=image)["process"]["env"] == ["PATH=/img/bin", "HOSTNAME=pod-host", "A=img", "B=cfg", "C=c"]


def test_hostname_env_falls_back_to_node(build: BuildFn) -> None:
    pod = sandbox_config()
    pod.hostname = ""
    spec = build(container_config(), pod=pod, options=SpecOptions(host_devices=(), node_hostname="node1"))
    assert "HOSTNAME=node1" in spec["process"]["env"]


def test_working_dir_from_image(build: BuildFn) -> None:
    assert build(container_config(), image=ImageConfig(cmd=["x"], working_dir="/srv"))["process"]["cwd"] == "/srv"


def test_user_from_image_and_security_context(build: BuildFn, rootfs: Path) -> None:
    image = ImageConfig(cmd=["x"], user="www")
    spec = build(container_config(), image=image, rootfs=str(rootfs))
    assert spec["process"]["user"] == {"uid": 33, "gid": 33, "additionalGids": [29, 33]}  # www is in audio
    cfg = container_config()
    sc = cfg.linux.security_context
    sc.run_as_username = "alice"
    sc.supplemental_groups.extend([9])
    spec = build(cfg, image=image, rootfs=str(rootfs))
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [9, 33, 1000, 2000]}
    sc.supplemental_groups_policy = api_pb2.Strict
    assert build(cfg, image=image, rootfs=str(rootfs))["process"]["user"]["additionalGids"] == [9, 1000]
    cfg2 = container_config()
    cfg2.linux.security_context.run_as_group.value = 5
    with pytest.raises(InvalidArgument, match="run_as_group"):
        build(cfg2, rootfs=str(rootfs))


def _ns(spec: dict[str, Any]) -> dict[str, str | None]:
    return {ns["type"]: ns.get("path") for ns in spec["linux"]["namespaces"]}


@pytest.mark.parametrize(
    ("network", "pid", "ipc", "expected"),
    [
        (api_pb2.POD, api_pb2.CONTAINER, api_pb2.POD,
         {"pid": None, "ipc": "/proc/4242/ns/ipc", "uts": "/proc/4242/ns/uts", "mount": None,
          "network": "/proc/4242/ns/net"}),
        (api_pb2.POD, api_pb2.POD, api_pb2.POD,
         {"pid": "/proc/4242/ns/pid", "ipc": "/proc/4242/ns/ipc", "uts": "/proc/4242/ns/uts", "mount": None,
          "network": "/proc/4242/ns/net"}),
        (api_pb2.NODE, api_pb2.NODE, api_pb2.NODE, {"mount": None}),
        (api_pb2.NODE, api_pb2.CONTAINER, api_pb2.POD, {"pid": None, "ipc": "/proc/4242/ns/ipc", "mount": None}),
        (api_pb2.POD, api_pb2.TARGET, api_pb2.POD,
         {"pid": "/proc/777/ns/pid", "ipc": "/proc/4242/ns/ipc", "uts": "/proc/4242/ns/uts", "mount": None,
          "network": "/proc/4242/ns/net"}),
    ],
)  # fmt: skip
def test_namespaces(build: BuildFn, network: int, pid: int, ipc: int, expected: dict[str, str | None]) -> None:
    cfg = container_config()
    ns = cfg.linux.security_context.namespace_options
    ns.network, ns.pid, ns.ipc = network, pid, ipc  # type: ignore[assignment]
    ns.target_id = "other" if pid == api_pb2.TARGET else ""
    assert _ns(build(cfg, target_pid=777)) == expected


def test_target_without_pid_and_userns(build: BuildFn) -> None:
    cfg = container_config()
    cfg.linux.security_context.namespace_options.pid = api_pb2.TARGET
    with pytest.raises(InvalidArgument, match="TARGET"):
        build(cfg)
    cfg2 = container_config()
    cfg2.linux.security_context.namespace_options.userns_options.mode = api_pb2.POD
    with pytest.raises(InvalidArgument, match="pod has none"):
        build(cfg2)
    cfg2.linux.security_context.namespace_options.userns_options.mode = api_pb2.NODE
    assert "user" not in _ns(build(cfg2))


def test_cgroup_namespace_on_v2_unless_privileged(build: BuildFn) -> None:
    opts = SpecOptions(host_devices=(), cgroup_namespace=True)
    assert "cgroup" in _ns(build(container_config(), options=opts))
    cfg = container_config()
    cfg.linux.security_context.privileged = True
    pod = sandbox_config(privileged=True)
    assert "cgroup" not in _ns(build(cfg, pod=pod, options=opts))


def test_capabilities_in_spec(build: BuildFn) -> None:
    cfg = container_config()
    cfg.linux.security_context.capabilities.add_capabilities.append("SYS_ADMIN")
    cfg.linux.security_context.capabilities.drop_capabilities.append("net_raw")
    cfg.linux.security_context.seccomp.profile_type = SP.RuntimeDefault
    spec = build(cfg)
    caps = spec["process"]["capabilities"]
    assert "CAP_SYS_ADMIN" in caps["bounding"] and "CAP_NET_RAW" not in caps["effective"]
    assert "ambient" not in caps
    # seccomp follows the final bounding set: SYS_ADMIN unlocks mount
    allowed = {n for r in spec["linux"]["seccomp"]["syscalls"] if not r.get("args") for n in r["names"]}
    assert "mount" in allowed


def test_privileged(build: BuildFn) -> None:
    cfg = container_config()
    sc = cfg.linux.security_context
    sc.privileged = True
    sc.capabilities.drop_capabilities.append("ALL")
    sc.masked_paths.extend(DEFAULT_MASKED_PATHS)
    sc.seccomp.profile_type = SP.RuntimeDefault
    with pytest.raises(InvalidArgument, match="privileged"):
        build(cfg)
    host_dev = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644, "uid": 0, "gid": 0}
    spec = build(cfg, pod=sandbox_config(privileged=True), options=SpecOptions(host_devices=(host_dev,)))
    check_spec(spec)
    linux = spec["linux"]
    assert spec["process"]["capabilities"]["bounding"] == list(ALL_CAPABILITIES)
    assert linux["maskedPaths"] == [] and linux["readonlyPaths"] == []
    assert "seccomp" not in linux
    assert linux["devices"] == [host_dev]
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    by_type = {m["type"]: m for m in spec["mounts"]}
    assert "rw" in by_type["sysfs"]["options"] and "ro" not in by_type["sysfs"]["options"]
    assert "rw" in by_type["cgroup"]["options"] and "ro" not in by_type["cgroup"]["options"]
    without = build(
        cfg,
        pod=sandbox_config(privileged=True),
        options=SpecOptions(host_devices=(host_dev,), privileged_without_host_devices=True),
    )
    assert "devices" not in without["linux"]
    assert without["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]


def test_unprivileged_defaults(build: BuildFn) -> None:
    spec = build(container_config())
    assert spec["process"]["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert spec["linux"]["maskedPaths"] == []  # what the config asks: nothing
    assert "seccomp" not in spec["linux"]  # no profile requested: unconfined, as containerd
    by_type = {m["type"]: m for m in spec["mounts"]}
    assert "ro" in by_type["sysfs"]["options"] and "ro" in by_type["cgroup"]["options"]


def test_masked_and_readonly_paths_from_config(build: BuildFn) -> None:
    cfg = container_config()
    cfg.linux.security_context.masked_paths.extend(["/proc/kcore", "/sys/firmware"])
    cfg.linux.security_context.readonly_paths.extend(["/proc/sys"])
    spec = build(cfg)
    assert spec["linux"]["maskedPaths"] == ["/proc/kcore", "/sys/firmware"]
    assert spec["linux"]["readonlyPaths"] == ["/proc/sys"]


def test_no_new_privs(build: BuildFn) -> None:
    cfg = container_config()
    cfg.linux.security_context.no_new_privs = True
    assert build(cfg)["process"]["noNewPrivileges"] is True


def test_seccomp_deprecated_and_unset_default(build: BuildFn, tmp_path: Path) -> None:
    cfg = container_config()
    cfg.linux.security_context.seccomp_profile_path = "runtime/default"
    assert "seccomp" in build(cfg)["linux"]
    cfg.linux.security_context.seccomp_profile_path = "unconfined"
    assert "seccomp" not in build(cfg)["linux"]
    opts = SpecOptions(host_devices=(), unset_seccomp_profile="runtime/default")
    assert "seccomp" in build(container_config(), options=opts)["linux"]
    profile = tmp_path / "p.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    cfg.linux.security_context.seccomp_profile_path = f"localhost/{profile}"
    assert build(cfg)["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_ALLOW"}


def test_apparmor(build: BuildFn) -> None:
    cfg = container_config()
    assert "apparmorProfile" not in build(cfg)["process"]
    cfg.linux.security_context.apparmor.profile_type = SP.Unconfined
    assert "apparmorProfile" not in build(cfg)["process"]
    cfg.linux.security_context.apparmor.profile_type = SP.RuntimeDefault
    with pytest.raises(InvalidArgument, match="apparmor is not supported"):
        build(cfg)
    enabled = SpecOptions(host_devices=(), apparmor_enabled=True)
    assert build(cfg, options=enabled)["process"]["apparmorProfile"] == "cri-containerd.apparmor.d"
    cfg.linux.security_context.apparmor.profile_type = SP.Localhost
    cfg.linux.security_context.apparmor.localhost_ref = "localhost/my-prof"
    assert build(cfg, options=enabled)["process"]["apparmorProfile"] == "my-prof"
    cfg2 = container_config()
    cfg2.linux.security_context.apparmor_profile = "localhost/x"
    with pytest.raises(InvalidArgument, match="apparmor"):
        build(cfg2)


def test_devices(build: BuildFn) -> None:
    null = os.stat("/dev/null")
    cfg = container_config(devices=[api_pb2.Device(container_path="/dev/mynull", host_path="/dev/null",
                                                    permissions="rw")])  # fmt: skip
    spec = build(cfg)
    (dev,) = spec["linux"]["devices"]
    assert dev["path"] == "/dev/mynull" and dev["type"] == "c"
    assert (dev["major"], dev["minor"]) == (os.major(null.st_rdev), os.minor(null.st_rdev))
    assert spec["linux"]["resources"]["devices"] == [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": dev["major"], "minor": dev["minor"], "access": "rw"},
    ]
    cfg.devices[0].permissions = "rwx"
    with pytest.raises(InvalidArgument, match="permissions"):
        build(cfg)


def test_device_errors(build: BuildFn, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    cfg = container_config(devices=[api_pb2.Device(container_path="/dev/x", host_path=str(tmp_path / "f"),
                                                   permissions="r")])  # fmt: skip
    with pytest.raises(InvalidArgument, match="not a device"):
        build(cfg)
    cfg.devices[0].host_path = str(tmp_path / "none")
    from cri_runtime.errors import NotFound

    with pytest.raises(NotFound):
        build(cfg)


def test_resources_oom_and_cgroups_path(build: BuildFn) -> None:
    cfg = container_config()
    res = cfg.linux.resources
    res.cpu_shares, res.cpu_quota, res.cpu_period = 1024, 20000, 100000
    res.memory_limit_in_bytes = 64 << 20
    res.oom_score_adj = -500
    spec = build(cfg, options=SpecOptions(host_devices=(), current_oom_score_adj=-100))
    assert spec["process"]["oomScoreAdj"] == -100
    assert spec["linux"]["resources"]["cpu"] == {"shares": 1024, "quota": 20000, "period": 100000}
    assert spec["linux"]["resources"]["memory"] == {"limit": 64 << 20}
    assert spec["linux"]["cgroupsPath"] == "/kubepods/pod-uid/ctr-id"
    free = build(cfg, options=SpecOptions(host_devices=(), restrict_oom_score_adj=False, current_oom_score_adj=-100))
    assert free["process"]["oomScoreAdj"] == -500
    assert "oomScoreAdj" not in build(container_config())["process"]
    pod = sandbox_config(cgroup_parent="/kubepods.slice/kubepods-pod1.slice")
    systemd = build(cfg, pod=pod, options=SpecOptions(host_devices=(), cgroup_driver="systemd"))
    assert systemd["linux"]["cgroupsPath"] == "kubepods-pod1.slice:cri-runtime:ctr-id"


def test_annotations(build: BuildFn) -> None:
    pod = sandbox_config()
    pod.annotations["io.example/pod"] = "p"
    pod.annotations["other"] = "x"
    cfg = container_config(annotations={"io.example/ctr": "c"})
    spec = build(cfg, pod=pod, options=SpecOptions(host_devices=(), passthrough_annotations=("io.example/*",)))
    assert spec["annotations"] == {
        "io.example/pod": "p",
        "io.example/ctr": "c",
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": "sandbox-id",
        "io.kubernetes.cri.sandbox-namespace": "ns",
        "io.kubernetes.cri.sandbox-uid": "pod-uid",
        "io.kubernetes.cri.sandbox-name": "pod",
        "io.kubernetes.cri.container-name": "ctr",
        "io.kubernetes.cri.image-name": "docker.io/library/busybox:latest",
    }


def test_accounts_read_once_give_the_same_spec_as_the_rootfs(build: BuildFn, rootfs: Path) -> None:
    """CreateContainer passes an image's users and groups parsed once instead of a path."""
    image = ImageConfig(user="www", cmd=["sh"])
    cfg = container_config()
    cfg.linux.security_context.supplemental_groups.append(9)
    assert build(cfg, image=image, rootfs=ImageAccounts.from_rootfs(str(rootfs))) == \
        build(cfg, image=image, rootfs=str(rootfs))


def test_default_mounts_are_independent_copies(build: BuildFn) -> None:
    first = default_mounts()
    first[0]["options"].append("changed")
    first[1]["destination"] = "/elsewhere"
    assert default_mounts() != first
    assert "changed" not in build(container_config())["mounts"][0]["options"]
