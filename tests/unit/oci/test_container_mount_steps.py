"""Table tests of the container filesystem steps, each applied alone to the default spec."""

from __future__ import annotations

from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument, NotFound
from cri_runtime.oci.container_input import ContainerSpecInput
from cri_runtime.oci.container_steps import mounts
from cri_runtime.oci.defaults import CGROUP_MOUNT, default_mounts, default_spec
from cri_runtime.oci.options import SpecOptions
from tests.unit.oci.step_inputs import NS, POD_SC, SC, applied, container_input, ctr_config, pod_config

M = api_pb2.Mount
DEFAULTS = [m["destination"] for m in default_mounts()]  # /proc /dev /dev/pts /dev/shm /dev/mqueue /sys
POD_FILES = {"hostname_path": "/pod/hostname", "hosts_path": "/pod/hosts", "resolv_conf_path": "/pod/resolv.conf",
             "shm_path": "/pod/shm"}  # fmt: skip
#: "/" shared, as on systemd hosts: host-to-container and bidirectional mounts of any path are possible.
SHARED_ROOT = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda rw\n"
PRIVILEGED_POD = pod_config(POD_SC(privileged=True))


@pytest.mark.parametrize(
    ("readonly", "expected"),
    [
        pytest.param(True, {"path": "rootfs", "readonly": True}, id="readonly"),
        pytest.param(False, {"path": "rootfs"}, id="writable"),
    ],
)
def test_with_readonly_rootfs(readonly: bool, expected: dict[str, Any]) -> None:
    inp = container_input(ctr_config(SC(readonly_rootfs=readonly)))
    assert applied(mounts.with_readonly_rootfs, inp)["root"] == expected


@pytest.mark.parametrize("privileged", [pytest.param(False, id="unprivileged"), pytest.param(True, id="privileged")])
def test_with_cgroup_mount_is_appended_read_only(privileged: bool) -> None:
    inp = container_input(ctr_config(SC(privileged=privileged)), pod=PRIVILEGED_POD)
    assert applied(mounts.with_cgroup_mount, inp)["mounts"] == [*default_mounts(), CGROUP_MOUNT]


@pytest.mark.parametrize(
    ("privileged", "expected"),
    [
        pytest.param(True, {"sysfs": ["nosuid", "noexec", "nodev", "rw"],
                            "cgroup": ["nosuid", "noexec", "nodev", "relatime", "rw"]}, id="privileged-rw"),
        pytest.param(False, {"sysfs": ["nosuid", "noexec", "nodev", "ro"],
                             "cgroup": ["nosuid", "noexec", "nodev", "relatime", "ro"]}, id="unprivileged-ro"),
    ],
)  # fmt: skip
def test_with_writable_sysfs_and_cgroupfs(privileged: bool, expected: dict[str, list[str]]) -> None:
    inp = container_input(ctr_config(SC(privileged=privileged)), pod=PRIVILEGED_POD)
    spec = default_spec()
    spec["mounts"].append(dict(CGROUP_MOUNT, options=list(CGROUP_MOUNT["options"])))
    mounts.with_writable_sysfs_and_cgroupfs(inp, spec)
    assert {m["type"]: m["options"] for m in spec["mounts"] if m["type"] in expected} == expected
    others = [m for m in spec["mounts"] if m["type"] not in expected]
    assert others == [m for m in default_mounts() if m["type"] not in expected]


@pytest.mark.parametrize(
    ("config", "files", "expected"),
    [
        pytest.param(ctr_config(), POD_FILES,
                     [("/etc/hostname", "/pod/hostname", False), ("/etc/hosts", "/pod/hosts", False),
                      ("/etc/resolv.conf", "/pod/resolv.conf", False), ("/dev/shm", "/pod/shm", False)],
                     id="all-pod-files"),
        pytest.param(ctr_config(SC(readonly_rootfs=True)), POD_FILES,
                     [("/etc/hostname", "/pod/hostname", True), ("/etc/hosts", "/pod/hosts", True),
                      ("/etc/resolv.conf", "/pod/resolv.conf", True), ("/dev/shm", "/pod/shm", False)],
                     id="readonly-rootfs-makes-etc-files-readonly"),
        pytest.param(ctr_config(SC(namespace_options=NS(ipc=api_pb2.NODE))), {},
                     [("/dev/shm", "/dev/shm", False)], id="host-ipc-uses-the-host-shm"),
        pytest.param(ctr_config(), {"hosts_path": "/pod/hosts"}, [("/etc/hosts", "/pod/hosts", False)],
                     id="missing-files-skipped"),
        pytest.param(ctr_config(mounts=[M(container_path="/etc/hosts/", host_path="/x"),
                                        M(container_path="/dev/shm", host_path="/y")]), POD_FILES,
                     [("/etc/hostname", "/pod/hostname", False), ("/etc/resolv.conf", "/pod/resolv.conf", False)],
                     id="config-mounts-win"),
        pytest.param(ctr_config(), {}, [], id="none"),
    ],
)  # fmt: skip
def test_pod_file_mounts(config: api_pb2.ContainerConfig, files: dict[str, str],
                         expected: list[tuple[str, str, bool]]) -> None:  # fmt: skip
    got = mounts.pod_file_mounts(container_input(config, pod_files=files))
    assert [(m.container_path, m.host_path, m.readonly) for m in got] == expected


def _bind(dst: str, src: str, *options: str) -> tuple[str, str, list[str]]:
    return (dst, src, ["rbind", *options])


def _binds(spec: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    return [(m["destination"], m["source"], m["options"]) for m in spec["mounts"] if m["type"] == "bind"]


@pytest.mark.parametrize(
    ("inp", "kept_defaults", "binds", "propagation"),
    [
        pytest.param(container_input(), DEFAULTS, [], None, id="nothing-asked"),
        pytest.param(container_input(ctr_config(mounts=[M(container_path="/data", host_path="/")])), DEFAULTS,
                     [_bind("/data", "/", "rprivate", "rw")], None, id="rw-bind"),
        pytest.param(container_input(ctr_config(mounts=[M(container_path="/data", host_path="/", readonly=True)])),
                     DEFAULTS, [_bind("/data", "/", "rprivate", "ro")], None, id="ro-bind"),
        pytest.param(container_input(ctr_config(mounts=[M(container_path="/data", host_path="/", readonly=True,
                                                          recursive_read_only=True)]),
                                     options=SpecOptions(recursive_read_only_mounts=True)),
                     DEFAULTS, [_bind("/data", "/", "rprivate", "rro")], None, id="recursive-read-only"),
        pytest.param(container_input(ctr_config(mounts=[M(container_path="/dev/shm/", host_path="/")])),
                     [d for d in DEFAULTS if d != "/dev/shm"], [_bind("/dev/shm/", "/", "rprivate", "rw")], None,
                     id="replaces-the-default-at-its-destination"),
        pytest.param(container_input(ctr_config(mounts=[M(container_path="/dev", host_path="/")])),
                     ["/proc", "/sys"], [_bind("/dev", "/", "rprivate", "rw")], None,
                     id="dev-replaces-everything-below-it"),
        pytest.param(container_input(ctr_config(mounts=[M(container_path="/data/sub", host_path="/etc"),
                                                        M(container_path="/data", host_path="/")])), DEFAULTS,
                     [_bind("/data", "/", "rprivate", "rw"), _bind("/data/sub", "/etc", "rprivate", "rw")], None,
                     id="parents-before-children"),
        pytest.param(container_input(ctr_config(mounts=[M(container_path="/data", host_path="/")]),
                                     extra_mounts=[M(container_path="/data", host_path="/etc"),
                                                   M(container_path="/vol", host_path="/etc")]), DEFAULTS,
                     [_bind("/data", "/", "rprivate", "rw"), _bind("/vol", "/etc", "rprivate", "rw")], None,
                     id="config-mount-beats-extra-mount"),
        pytest.param(container_input(ctr_config(mounts=[M(container_path="/img", image=api_pb2.ImageSpec(image="i"))])),
                     DEFAULTS, [], None, id="image-mounts-left-to-the-caller"),
        pytest.param(container_input(pod_files={"hosts_path": "/etc/hosts", "shm_path": "/etc"}),
                     [d for d in DEFAULTS if d != "/dev/shm"],
                     [_bind("/etc/hosts", "/etc/hosts", "rprivate", "rw"), _bind("/dev/shm", "/etc", "rprivate", "rw")],
                     None, id="pod-files"),
        pytest.param(container_input(ctr_config(mounts=[M(container_path="/a", host_path="/",
                                                          propagation=api_pb2.PROPAGATION_HOST_TO_CONTAINER)]),
                                     options=SpecOptions(mountinfo=SHARED_ROOT)), DEFAULTS,
                     [_bind("/a", "/", "rslave", "rw")], "rslave", id="host-to-container-makes-rootfs-rslave"),
        pytest.param(container_input(ctr_config(mounts=[M(container_path="/a", host_path="/",
                                                          propagation=api_pb2.PROPAGATION_BIDIRECTIONAL),
                                                        M(container_path="/b", host_path="/",
                                                          propagation=api_pb2.PROPAGATION_HOST_TO_CONTAINER)]),
                                     options=SpecOptions(mountinfo=SHARED_ROOT)), DEFAULTS,
                     [_bind("/a", "/", "rshared", "rw"), _bind("/b", "/", "rslave", "rw")], "rshared",
                     id="bidirectional-wins-over-rslave"),
    ],
)  # fmt: skip
def test_with_cri_mounts(inp: ContainerSpecInput, kept_defaults: list[str], binds: list[tuple[str, str, list[str]]],
                         propagation: str | None) -> None:  # fmt: skip
    spec = applied(mounts.with_cri_mounts, inp)
    assert [m["destination"] for m in spec["mounts"] if m["type"] != "bind"] == kept_defaults
    assert _binds(spec) == binds
    assert spec["linux"].get("rootfsPropagation") == propagation


@pytest.mark.parametrize(
    ("mount", "error", "match"),
    [
        pytest.param(M(container_path="/a", host_path="/nonexistent/x"), NotFound, "does not exist",
                     id="missing-host-path"),
        pytest.param(M(container_path="/a", host_path="relative"), InvalidArgument, "absolute",
                     id="relative-host-path"),
        pytest.param(M(container_path="/a", host_path="/", readonly=True, recursive_read_only=True), InvalidArgument,
                     "does not support recursive read-only", id="rro-unsupported"),
        pytest.param(M(container_path="/a", host_path="/", recursive_read_only=True), InvalidArgument,
                     "requires readonly", id="rro-without-readonly"),
    ],
)  # fmt: skip
def test_with_cri_mounts_errors(mount: api_pb2.Mount, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        applied(mounts.with_cri_mounts, container_input(ctr_config(mounts=[mount])))
