"""Table tests of the sandbox (pause container) spec steps, each applied alone to the default spec."""

from __future__ import annotations

from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.defaults import DEFAULT_NAMESPACES, DEFAULT_PATH_ENV, default_mounts
from cri_runtime.oci.options import SpecOptions
from cri_runtime.oci.process import ImageConfig
from cri_runtime.oci.sandbox_input import SandboxSpecInput
from cri_runtime.oci.sandbox_steps import annotations, mounts, namespaces, process, resources
from tests.unit.oci.step_inputs import NS, POD_SC, applied, pod_config, sandbox_input

POD, CONTAINER, NODE, TARGET = api_pb2.POD, api_pb2.CONTAINER, api_pb2.NODE, api_pb2.TARGET
I64 = api_pb2.Int64Value
MAPPING = [api_pb2.IDMapping(container_id=0, host_id=65536, length=65536)]
USERNS = api_pb2.UserNamespace(mode=POD, uids=MAPPING, gids=MAPPING)
HOST_NET = pod_config(POD_SC(namespace_options=NS(network=NODE)))
HOST_IPC = pod_config(POD_SC(namespace_options=NS(ipc=NODE)))


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        pytest.param(ImageConfig(entrypoint=["/pause"]), ["/pause"], id="entrypoint"),
        pytest.param(ImageConfig(entrypoint=["/pause"], cmd=["-v"]), ["/pause", "-v"], id="entrypoint-and-cmd"),
        pytest.param(ImageConfig(cmd=["/pause"]), ["/pause"], id="cmd-only"),
    ],
)
def test_with_args(image: ImageConfig, expected: list[str]) -> None:
    assert applied(process.with_args, sandbox_input(image=image))["process"]["args"] == expected


def test_with_args_rejects_an_image_without_a_command() -> None:
    with pytest.raises(InvalidArgument, match="neither Entrypoint nor Cmd"):
        applied(process.with_args, sandbox_input(image=ImageConfig(env=["A=1"])))


@pytest.mark.parametrize(
    ("image", "env", "cwd"),
    [
        pytest.param(ImageConfig(cmd=["p"]), [DEFAULT_PATH_ENV], "/", id="image-without-env-or-dir"),
        pytest.param(ImageConfig(cmd=["p"], env=["PATH=/p", "X=1"], working_dir="/w"), ["PATH=/p", "X=1"], "/w",
                     id="image-env-and-dir"),
    ],
)  # fmt: skip
def test_with_env_and_cwd(image: ImageConfig, env: list[str], cwd: str) -> None:
    inp = sandbox_input(image=image)
    assert applied(process.with_env, inp)["process"]["env"] == env
    assert applied(process.with_cwd, inp)["process"]["cwd"] == cwd


@pytest.mark.parametrize(
    ("sc", "image_user", "expected"),
    [
        pytest.param(POD_SC(), "", {"uid": 0, "gid": 0, "additionalGids": [0]}, id="root"),
        pytest.param(POD_SC(), "65535:65535", {"uid": 65535, "gid": 65535, "additionalGids": [65535]},
                     id="image-user"),
        pytest.param(POD_SC(run_as_user=I64(value=1), run_as_group=I64(value=2), supplemental_groups=[7]), "65535",
                     {"uid": 1, "gid": 2, "additionalGids": [2, 7]}, id="pod-user-wins-groups-strict"),
    ],
)  # fmt: skip
def test_with_user(sc: api_pb2.LinuxSandboxSecurityContext, image_user: str, expected: dict[str, Any]) -> None:
    inp = sandbox_input(pod_config(sc), image=ImageConfig(cmd=["p"], user=image_user))
    assert applied(process.with_user, inp)["process"]["user"] == expected


def test_with_user_rejects_a_group_without_a_user() -> None:
    with pytest.raises(InvalidArgument, match="run_as_group"):
        applied(process.with_user, sandbox_input(pod_config(POD_SC(run_as_group=I64(value=2)))))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(SpecOptions(), 0, id="restricted-to-our-own"),
        pytest.param(SpecOptions(restrict_oom_score_adj=False), -998, id="unrestricted"),
        pytest.param(SpecOptions(current_oom_score_adj=-999), -998, id="ours-is-lower-already"),
    ],
)
def test_with_oom_score_adj(options: SpecOptions, expected: int) -> None:
    assert applied(process.with_oom_score_adj, sandbox_input(options=options))["process"]["oomScoreAdj"] == expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(pod_config(), "pod-host", id="own-uts"),
        pytest.param(HOST_NET, None, id="host-network-keeps-the-node's"),
        pytest.param(pod_config(hostname=""), None, id="none-given"),
    ],
)
def test_with_hostname(config: api_pb2.PodSandboxConfig, expected: str | None) -> None:
    assert applied(namespaces.with_hostname, sandbox_input(config)).get("hostname") == expected


def _ns(spec: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(ns["type"], ns.get("path")) for ns in spec["linux"]["namespaces"]]


@pytest.mark.parametrize(
    ("inp", "expected"),
    [
        pytest.param(sandbox_input(netns_path="/var/run/netns/cni-1"),
                     [("pid", None), ("ipc", None), ("uts", None), ("mount", None),
                      ("network", "/var/run/netns/cni-1")], id="pinned-netns"),
        pytest.param(sandbox_input(), [("pid", None), ("ipc", None), ("uts", None), ("mount", None),
                                       ("network", None)], id="runc-makes-the-netns"),
        pytest.param(sandbox_input(pod_config(POD_SC(namespace_options=NS(network=NODE, pid=NODE, ipc=NODE))),
                                   netns_path="/ignored"), [("mount", None)], id="all-host"),
        pytest.param(sandbox_input(HOST_IPC), [("pid", None), ("uts", None), ("mount", None), ("network", None)],
                     id="host-ipc"),
        pytest.param(sandbox_input(pod_config(POD_SC(namespace_options=NS(pid=TARGET)))),
                     [("pid", None), ("ipc", None), ("uts", None), ("mount", None), ("network", None)],
                     id="any-non-host-pid-mode-gets-a-new-one"),
    ],
)  # fmt: skip
def test_with_namespaces(inp: SandboxSpecInput, expected: list[tuple[str, str | None]]) -> None:
    assert _ns(applied(namespaces.with_namespaces, inp)) == expected


def test_with_namespaces_rejects_an_unknown_pid_mode() -> None:
    with pytest.raises(InvalidArgument, match="unknown mode 9"):
        applied(namespaces.with_namespaces, sandbox_input(pod_config(POD_SC(namespace_options=NS(pid=9)))))


@pytest.mark.parametrize(
    ("ns", "expected_ns", "expected_mappings"),
    [
        pytest.param(NS(), [*DEFAULT_NAMESPACES], None, id="none"),
        pytest.param(NS(userns_options=api_pb2.UserNamespace(mode=NODE)), [*DEFAULT_NAMESPACES], None, id="host's"),
        pytest.param(NS(userns_options=USERNS), [*DEFAULT_NAMESPACES, "user"],
                     [{"containerID": 0, "hostID": 65536, "size": 65536}], id="own"),
    ],
)  # fmt: skip
def test_with_userns(ns: api_pb2.NamespaceOption, expected_ns: list[str],
                     expected_mappings: list[dict[str, int]] | None) -> None:  # fmt: skip
    linux = applied(namespaces.with_userns, sandbox_input(pod_config(POD_SC(namespace_options=ns))))["linux"]
    assert [n["type"] for n in linux["namespaces"]] == expected_ns
    assert "path" not in linux["namespaces"][-1]  # runc makes it
    assert linux.get("uidMappings") == linux.get("gidMappings") == expected_mappings


@pytest.mark.parametrize(
    ("sc", "match"),
    [
        pytest.param(POD_SC(privileged=True, namespace_options=NS(userns_options=USERNS)), "privileged pod",
                     id="privileged"),
        pytest.param(POD_SC(namespace_options=NS(network=NODE, userns_options=USERNS)), "host's network",
                     id="host-network"),
        pytest.param(POD_SC(namespace_options=NS(userns_options=api_pb2.UserNamespace(mode=POD))),
                     "exactly one mapping", id="no-mappings"),
        pytest.param(POD_SC(namespace_options=NS(userns_options=api_pb2.UserNamespace(mode=CONTAINER))),
                     "not supported", id="container-mode"),
    ],
)  # fmt: skip
def test_with_userns_errors(sc: api_pb2.LinuxSandboxSecurityContext, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        applied(namespaces.with_userns, sandbox_input(pod_config(sc)))


@pytest.mark.parametrize("config", [pytest.param(pod_config(), id="ordinary"),
                                    pytest.param(pod_config(POD_SC(privileged=True)), id="privileged")])  # fmt: skip
def test_with_readonly_rootfs_always(config: api_pb2.PodSandboxConfig) -> None:
    assert applied(mounts.with_readonly_rootfs, sandbox_input(config))["root"] == {"path": "rootfs", "readonly": True}


DEFAULT_SHM = next(m for m in default_mounts() if m["destination"] == "/dev/shm")
NO_SHM = [m for m in default_mounts() if m["destination"] != "/dev/shm"]


def _shm_bind(source: str) -> dict[str, Any]:
    return {"destination": "/dev/shm", "type": "bind", "source": source, "options": ["rbind", "ro"]}


@pytest.mark.parametrize(
    ("inp", "expected"),
    [
        pytest.param(sandbox_input(shm_path="/run/sb/shm"), [*NO_SHM, _shm_bind("/run/sb/shm")], id="pod-shm"),
        pytest.param(sandbox_input(HOST_IPC, shm_path="/ignored"), [*NO_SHM, _shm_bind("/dev/shm")], id="host-ipc"),
        pytest.param(sandbox_input(), default_mounts(), id="none-keeps-the-default-tmpfs"),
    ],
)
def test_with_shm(inp: SandboxSpecInput, expected: list[dict[str, Any]]) -> None:
    assert applied(mounts.with_shm, inp)["mounts"] == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/run/sb/resolv.conf", [*default_mounts(), {"destination": "/etc/resolv.conf", "type": "bind",
                     "source": "/run/sb/resolv.conf", "options": ["rbind", "ro"]}], id="bound"),
        pytest.param("", default_mounts(), id="none"),
    ],
)  # fmt: skip
def test_with_resolv_conf(path: str, expected: list[dict[str, Any]]) -> None:
    assert applied(mounts.with_resolv_conf, sandbox_input(resolv_conf_path=path))["mounts"] == expected


@pytest.mark.parametrize(
    ("sc", "expected"),
    [
        pytest.param(POD_SC(privileged=True), ["nosuid", "noexec", "nodev", "rw"], id="privileged-own-netns"),
        pytest.param(POD_SC(privileged=True, namespace_options=NS(network=NODE)), ["nosuid", "noexec", "nodev", "ro"],
                     id="privileged-host-network"),
        pytest.param(POD_SC(), ["nosuid", "noexec", "nodev", "ro"], id="unprivileged"),
    ],
)  # fmt: skip
def test_with_writable_sysfs(sc: api_pb2.LinuxSandboxSecurityContext, expected: list[str]) -> None:
    spec = applied(mounts.with_writable_sysfs, sandbox_input(pod_config(sc)))
    assert [m["options"] for m in spec["mounts"] if m["type"] == "sysfs"] == [expected]
    assert [m for m in spec["mounts"] if m["type"] != "sysfs"] == [m for m in default_mounts() if m["type"] != "sysfs"]


PORTS = {"net.ipv4.ip_unprivileged_port_start": "0"}
ICMP = {"net.ipv4.ping_group_range": "0 2147483647"}
BOTH = SpecOptions(enable_unprivileged_ports=True, enable_unprivileged_icmp=True)


@pytest.mark.parametrize(
    ("config", "options", "expected"),
    [
        pytest.param(pod_config(), SpecOptions(), None, id="none"),
        pytest.param(pod_config(sysctls={"net.ipv4.ip_local_port_range": "1024 65000"}), SpecOptions(),
                     {"net.ipv4.ip_local_port_range": "1024 65000"}, id="pod-sysctl"),
        pytest.param(pod_config(), BOTH, {**PORTS, **ICMP}, id="unprivileged-ports-and-icmp"),
        pytest.param(pod_config(sysctls={"net.ipv4.ip_unprivileged_port_start": "80"}), BOTH,
                     {"net.ipv4.ip_unprivileged_port_start": "80", **ICMP}, id="pod-value-wins"),
        pytest.param(pod_config(POD_SC(namespace_options=NS(network=NODE)), sysctls={"kernel.msgmax": "1"}), BOTH,
                     {"kernel.msgmax": "1"}, id="host-network-gets-no-net-defaults"),
    ],
)  # fmt: skip
def test_with_sysctls(config: api_pb2.PodSandboxConfig, options: SpecOptions, expected: dict[str, str] | None) -> None:
    assert applied(resources.with_sysctls, sandbox_input(config, options=options))["linux"].get("sysctl") == expected


@pytest.mark.parametrize(
    ("config", "match"),
    [
        pytest.param(pod_config(POD_SC(namespace_options=NS(network=NODE)), sysctls={"net.ipv4.ip_forward": "1"}),
                     "host network", id="net-sysctl-with-host-network"),
        pytest.param(pod_config(POD_SC(namespace_options=NS(ipc=NODE)), sysctls={"kernel.msgmax": "1"}),
                     "host IPC", id="ipc-sysctl-with-host-ipc"),
        pytest.param(pod_config(sysctls={"vm.swappiness": "1"}), "not namespaced", id="node-wide-sysctl"),
    ],
)  # fmt: skip
def test_with_sysctls_errors(config: api_pb2.PodSandboxConfig, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        applied(resources.with_sysctls, sandbox_input(config))


@pytest.mark.parametrize(
    "config",
    [pytest.param(pod_config(), id="no-pod-resources"),
     pytest.param(pod_config(resources=api_pb2.LinuxContainerResources(cpu_shares=4096)), id="pod-resources")],
)  # fmt: skip
def test_with_cpu_shares_is_the_minimum(config: api_pb2.PodSandboxConfig) -> None:
    assert applied(resources.with_cpu_shares, sandbox_input(config))["linux"]["resources"]["cpu"] == {"shares": 2}


@pytest.mark.parametrize(
    ("parent", "options", "expected"),
    [
        pytest.param("/kubepods/pod-uid", SpecOptions(), "/kubepods/pod-uid/sb-id", id="cgroupfs"),
        pytest.param("/kubepods.slice/kubepods-besteffort.slice", SpecOptions(cgroup_driver="systemd"),
                     "kubepods-besteffort.slice:cri-runtime:sb-id", id="systemd"),
    ],
)  # fmt: skip
def test_with_cgroups_path(parent: str, options: SpecOptions, expected: str) -> None:
    inp = sandbox_input(pod_config(cgroup_parent=parent), options=options)
    assert applied(resources.with_cgroups_path, inp)["linux"]["cgroupsPath"] == expected


CRI = {
    "io.kubernetes.cri.container-type": "sandbox",
    "io.kubernetes.cri.sandbox-id": "sb-id",
    "io.kubernetes.cri.sandbox-namespace": "ns",
    "io.kubernetes.cri.sandbox-uid": "pod-uid",
    "io.kubernetes.cri.sandbox-name": "pod",
    "io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/x",
}


@pytest.mark.parametrize(
    ("config", "patterns", "expected"),
    [
        pytest.param(pod_config(annotations={"io.x/a": "1"}), (), CRI, id="cri-only"),
        pytest.param(pod_config(annotations={"io.x/a": "1", "b": "2"}), ("io.x/*",), {"io.x/a": "1", **CRI},
                     id="passthrough"),
        pytest.param(pod_config(resources=api_pb2.LinuxContainerResources(cpu_shares=256, memory_limit_in_bytes=1024)),
                     (), {"io.kubernetes.cri.sandbox-cpu-period": "0", "io.kubernetes.cri.sandbox-cpu-quota": "0",
                          "io.kubernetes.cri.sandbox-cpu-shares": "256", "io.kubernetes.cri.sandbox-memory": "1024",
                          **CRI}, id="pod-resources"),
    ],
)  # fmt: skip
def test_with_annotations(config: api_pb2.PodSandboxConfig, patterns: tuple[str, ...],
                          expected: dict[str, str]) -> None:  # fmt: skip
    inp = sandbox_input(config, options=SpecOptions(passthrough_annotations=patterns))
    assert applied(annotations.with_annotations, inp)["annotations"] == expected
