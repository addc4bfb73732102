"""Table tests of the container namespace, user namespace and annotation steps, each applied alone."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.container_input import ContainerSpecInput
from cri_runtime.oci.container_steps import annotations, namespaces
from cri_runtime.oci.defaults import DEFAULT_NAMESPACES, default_mounts, default_spec
from cri_runtime.oci.options import SpecOptions
from cri_runtime.userns.mappings import keep_locked_flags
from tests.unit.oci.step_inputs import NS, POD_SC, SC, applied, container_input, ctr_config, pod_config

POD, CONTAINER, NODE, TARGET = api_pb2.POD, api_pb2.CONTAINER, api_pb2.NODE, api_pb2.TARGET
MAPPING = [api_pb2.IDMapping(container_id=0, host_id=65536, length=65536)]
USERNS_POD = pod_config(POD_SC(namespace_options=NS(userns_options=api_pb2.UserNamespace(
    mode=POD, uids=MAPPING, gids=MAPPING))))  # fmt: skip
DEFAULT_NS = [{"type": t} for t in DEFAULT_NAMESPACES]


def _ns(spec: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(ns["type"], ns.get("path")) for ns in spec["linux"]["namespaces"]]


@pytest.mark.parametrize(
    ("ns", "privileged", "options", "expected"),
    [
        pytest.param(NS(pid=CONTAINER), False, SpecOptions(),
                     [("pid", None), ("ipc", "/proc/4242/ns/ipc"), ("uts", "/proc/4242/ns/uts"), ("mount", None),
                      ("network", "/proc/4242/ns/net")], id="kubelet-default-own-pid"),
        pytest.param(NS(pid=POD), False, SpecOptions(),
                     [("pid", "/proc/4242/ns/pid"), ("ipc", "/proc/4242/ns/ipc"), ("uts", "/proc/4242/ns/uts"),
                      ("mount", None), ("network", "/proc/4242/ns/net")], id="shared-pid"),
        pytest.param(NS(pid=TARGET, target_id="other"), False, SpecOptions(),
                     [("pid", "/proc/777/ns/pid"), ("ipc", "/proc/4242/ns/ipc"), ("uts", "/proc/4242/ns/uts"),
                      ("mount", None), ("network", "/proc/4242/ns/net")], id="target-pid"),
        pytest.param(NS(network=NODE, pid=NODE, ipc=NODE), False, SpecOptions(), [("mount", None)],
                     id="all-host"),
        pytest.param(NS(network=NODE, pid=CONTAINER), False, SpecOptions(),
                     [("pid", None), ("ipc", "/proc/4242/ns/ipc"), ("mount", None)], id="host-network-no-uts"),
        pytest.param(NS(pid=CONTAINER, ipc=NODE), False, SpecOptions(),
                     [("pid", None), ("uts", "/proc/4242/ns/uts"), ("mount", None), ("network", "/proc/4242/ns/net")],
                     id="host-ipc"),
        pytest.param(NS(pid=CONTAINER, network=NODE, ipc=NODE), False, SpecOptions(cgroup_namespace=True),
                     [("pid", None), ("mount", None), ("cgroup", None)], id="cgroup-v2-own-cgroup-ns"),
        pytest.param(NS(pid=CONTAINER, network=NODE, ipc=NODE), True, SpecOptions(cgroup_namespace=True),
                     [("pid", None), ("mount", None)], id="cgroup-v2-privileged-sees-the-host's"),
    ],
)  # fmt: skip
def test_with_namespaces(ns: api_pb2.NamespaceOption, privileged: bool, options: SpecOptions,
                         expected: list[tuple[str, str | None]]) -> None:  # fmt: skip
    inp = container_input(ctr_config(SC(namespace_options=ns, privileged=privileged)),
                          pod=pod_config(POD_SC(privileged=True)), options=options, target_pid=777)  # fmt: skip
    assert _ns(applied(namespaces.with_namespaces, inp)) == expected


@pytest.mark.parametrize(
    ("ns", "match"),
    [
        pytest.param(NS(pid=TARGET, target_id="other"), "no target container pid", id="target-without-its-pid"),
        pytest.param(NS(pid=7), "unknown mode 7", id="unknown-pid-mode"),
    ],
)
def test_with_namespaces_errors(ns: api_pb2.NamespaceOption, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        applied(namespaces.with_namespaces, container_input(ctr_config(SC(namespace_options=ns))))


@pytest.mark.parametrize(
    ("inp", "expected_ns", "expected_mappings"),
    [
        pytest.param(container_input(), DEFAULT_NS, None, id="no-user-namespace"),
        pytest.param(container_input(ctr_config(SC(namespace_options=NS(
            userns_options=api_pb2.UserNamespace(mode=NODE))))), DEFAULT_NS, None, id="container-asks-for-the-host's"),
        pytest.param(container_input(pod=USERNS_POD), [*DEFAULT_NS, {"type": "user", "path": "/proc/4242/ns/user"}],
                     [{"containerID": 0, "hostID": 65536, "size": 65536}], id="joins-the-pod's"),
    ],
)  # fmt: skip
def test_with_pod_userns(inp: ContainerSpecInput, expected_ns: list[dict[str, str]],
                         expected_mappings: list[dict[str, int]] | None) -> None:  # fmt: skip
    linux = applied(namespaces.with_pod_userns, inp)["linux"]
    assert linux["namespaces"] == expected_ns
    assert linux.get("uidMappings") == linux.get("gidMappings") == expected_mappings


@pytest.mark.parametrize(
    ("inp", "match"),
    [
        pytest.param(container_input(ctr_config(SC(namespace_options=NS(
            userns_options=api_pb2.UserNamespace(mode=POD))))), "pod has none", id="asks-for-a-pod-userns-not-there"),
        pytest.param(container_input(ctr_config(SC(privileged=True)), pod=USERNS_POD), "privileged",
                     id="privileged-in-a-userns-pod"),
        pytest.param(container_input(pod=pod_config(POD_SC(namespace_options=NS(
            userns_options=api_pb2.UserNamespace(mode=POD, uids=MAPPING))))), "exactly one mapping",
            id="pod-without-gid-mapping"),
    ],
)  # fmt: skip
def test_with_pod_userns_errors(inp: ContainerSpecInput, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        applied(namespaces.with_pod_userns, inp)


def test_with_pod_userns_gives_bind_mounts_their_source_flags() -> None:
    """The flags come from the source's mount (/proc has some everywhere); non-bind mounts are left alone."""
    spec = default_spec()
    spec["mounts"].append({"destination": "/p", "type": "bind", "source": "/proc", "options": ["rbind", "ro"]})
    expected = copy.deepcopy(spec["mounts"])
    keep_locked_flags(expected)
    assert expected[-1]["options"] != ["rbind", "ro"]
    namespaces.with_pod_userns(container_input(pod=USERNS_POD), spec)
    assert spec["mounts"] == expected
    assert spec["mounts"][:-1] == default_mounts()


CRI = {
    "io.kubernetes.cri.container-type": "container",
    "io.kubernetes.cri.sandbox-id": "sandbox-id",
    "io.kubernetes.cri.sandbox-namespace": "ns",
    "io.kubernetes.cri.sandbox-uid": "pod-uid",
    "io.kubernetes.cri.sandbox-name": "pod",
    "io.kubernetes.cri.container-name": "ctr",
    "io.kubernetes.cri.image-name": "docker.io/library/busybox:latest",
}


@pytest.mark.parametrize(
    ("pod_ann", "ctr_ann", "patterns", "expected"),
    [
        pytest.param({"io.x/p": "p"}, {"io.x/c": "c"}, (), CRI, id="none-passed-through-by-default"),
        pytest.param({"io.x/p": "p", "other": "o"}, {"io.x/c": "c"}, ("io.x/*",),
                     {"io.x/p": "p", "io.x/c": "c", **CRI}, id="matching-ones-passed"),
        pytest.param({"io.x/a": "pod"}, {"io.x/a": "ctr"}, ("io.x/*",), {"io.x/a": "ctr", **CRI},
                     id="container-wins-over-pod"),
        pytest.param({"io.kubernetes.cri.sandbox-id": "forged"}, {}, ("*",), CRI, id="cri-ones-cannot-be-forged"),
    ],
)  # fmt: skip
def test_with_annotations(pod_ann: dict[str, str], ctr_ann: dict[str, str], patterns: tuple[str, ...],
                          expected: dict[str, str]) -> None:  # fmt: skip
    inp = container_input(ctr_config(annotations=ctr_ann), pod=pod_config(annotations=pod_ann),
                          options=SpecOptions(passthrough_annotations=patterns))  # fmt: skip
    assert applied(annotations.with_annotations, inp)["annotations"] == expected
