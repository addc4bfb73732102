from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from cri_runtime.oci.mounts import bind_mount, ensure_host_paths, lookup_mount, parse_mountinfo
from cri_runtime.oci.options import SpecOptions
from tests.unit.oci.helpers import BuildFn, container_config

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /mnt/shared rw shared:5 - tmpfs tmpfs rw
31 22 0:26 / /mnt/slave rw master:5 - tmpfs tmpfs rw
32 22 0:27 / /mnt/private rw - tmpfs tmpfs rw
33 30 0:28 / /mnt/shared/inner\\040dir rw - tmpfs tmpfs rw
garbage line
"""


def test_parse_mountinfo() -> None:
    table = parse_mountinfo(MOUNTINFO)
    assert [m.mount_point for m in table] == ["/", "/mnt/shared", "/mnt/slave", "/mnt/private", "/mnt/shared/inner dir"]
    assert table[1].shared and not table[1].slave
    assert table[2].slave and not table[2].shared
    assert table[3].optional == ()
    assert table[0].fs_type == "ext4" and table[0].source == "/dev/sda1"


@pytest.mark.parametrize(
    ("path", "mount_point"),
    [
        ("/mnt/shared/x/y", "/mnt/shared"),
        ("/mnt/shared", "/mnt/shared"),
        ("/mnt/sharedness", "/"),  # prefix of the name, not of the path
        ("/mnt/shared/inner dir/f", "/mnt/shared/inner dir"),
        ("/etc", "/"),
    ],
)
def test_lookup_mount(path: str, mount_point: str) -> None:
    assert lookup_mount(path, parse_mountinfo(MOUNTINFO)).mount_point == mount_point


def _mount(host: str, propagation: int = api_pb2.PROPAGATION_PRIVATE, **kw: Any) -> api_pb2.Mount:
    return api_pb2.Mount(container_path="/data", host_path=host, propagation=propagation, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "propagation", "option", "rootfs"),
    [
        ("/mnt/private/d", api_pb2.PROPAGATION_PRIVATE, "rprivate", None),
        ("/mnt/shared/d", api_pb2.PROPAGATION_BIDIRECTIONAL, "rshared", "rshared"),
        ("/mnt/shared/d", api_pb2.PROPAGATION_HOST_TO_CONTAINER, "rslave", "rslave"),
        ("/mnt/slave/d", api_pb2.PROPAGATION_HOST_TO_CONTAINER, "rslave", "rslave"),
    ],
)
def test_propagation_accepted(host: str, propagation: int, option: str, rootfs: str | None) -> None:
    spec, needs = bind_mount(
        _mount(host, propagation), mountinfo=parse_mountinfo(MOUNTINFO), rro_supported=False, resolve=lambda p: p
    )
    assert spec == {"destination": "/data", "type": "bind", "source": host, "options": ["rbind", option, "rw"]}
    assert needs == rootfs


@pytest.mark.parametrize(
    ("host", "propagation", "match"),
    [
        ("/mnt/slave/d", api_pb2.PROPAGATION_BIDIRECTIONAL, "not a shared mount"),
        ("/mnt/private/d", api_pb2.PROPAGATION_BIDIRECTIONAL, "not a shared mount"),
        ("/mnt/private/d", api_pb2.PROPAGATION_HOST_TO_CONTAINER, "not a shared or slave mount"),
    ],
)
def test_propagation_rejected(host: str, propagation: int, match: str) -> None:
    with pytest.raises(FailedPrecondition, match=match):
        bind_mount(
            _mount(host, propagation), mountinfo=parse_mountinfo(MOUNTINFO), rro_supported=False, resolve=lambda p: p
        )


def test_unknown_propagation_rejected() -> None:
    with pytest.raises(InvalidArgument, match="propagation"):
        bind_mount(_mount("/x", 9), mountinfo=[], rro_supported=False, resolve=lambda p: p)


@pytest.mark.parametrize(
    ("readonly", "rro", "propagation", "supported", "result"),
    [
        (True, False, api_pb2.PROPAGATION_PRIVATE, False, "ro"),
        (False, False, api_pb2.PROPAGATION_PRIVATE, False, "rw"),
        (True, True, api_pb2.PROPAGATION_PRIVATE, True, "rro"),
        (True, True, api_pb2.PROPAGATION_PRIVATE, False, "does not support recursive"),
        (True, True, api_pb2.PROPAGATION_HOST_TO_CONTAINER, True, "needs private propagation"),
        (False, True, api_pb2.PROPAGATION_PRIVATE, True, "requires readonly"),
    ],
)
def test_readonly_and_recursive_readonly(
    readonly: bool, rro: bool, propagation: int, supported: bool, result: str
) -> None:
    m = _mount("/mnt/shared/d", propagation, readonly=readonly, recursive_read_only=rro)
    table = parse_mountinfo(MOUNTINFO)
    if result in ("ro", "rw", "rro"):
        spec, _ = bind_mount(m, mountinfo=table, rro_supported=supported, resolve=lambda p: p)
        assert spec["options"][-1] == result
    else:
        with pytest.raises(InvalidArgument, match=result):
            bind_mount(m, mountinfo=table, rro_supported=supported, resolve=lambda p: p)


def test_host_path_symlinks_are_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    spec, _ = bind_mount(_mount(str(tmp_path / "link")), mountinfo=[], rro_supported=False)
    assert spec["source"] == str(real)


def test_missing_host_path_and_dangling_link(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="missing"):
        bind_mount(_mount(str(tmp_path / "missing")), mountinfo=[], rro_supported=False)
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(NotFound, match="dangling"):
        bind_mount(_mount(str(tmp_path / "dangling")), mountinfo=[], rro_supported=False)
    ensure_host_paths([_mount(str(tmp_path / "missing" / "deep"))])
    assert (tmp_path / "missing" / "deep").is_dir()


def test_idmapped_mount_mappings() -> None:
    m = _mount("/x", uidMappings=[api_pb2.IDMapping(host_id=100000, container_id=0, length=65536)])
    spec, _ = bind_mount(m, mountinfo=[], rro_supported=False, resolve=lambda p: p)
    assert spec["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert "gidMappings" not in spec


def _destinations(spec: dict[str, Any]) -> list[str]:
    return [m["destination"] for m in spec["mounts"]]


def test_container_mounts_default_order_and_pod_files(build: BuildFn, pod_files: dict[str, str]) -> None:
    spec = build(container_config())
    assert _destinations(spec) == [
        "/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
        "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm",
    ]  # fmt: skip
    by_dst = {m["destination"]: m for m in spec["mounts"]}
    assert by_dst["/etc/hosts"] == {
        "destination": "/etc/hosts", "type": "bind", "source": pod_files["hosts"],
        "options": ["rbind", "rprivate", "rw"],
    }  # fmt: skip
    assert by_dst["/dev/shm"]["source"] == pod_files["shm"]
    assert by_dst["/sys/fs/cgroup"]["options"][-1] == "ro"
    assert "rootfsPropagation" not in spec["linux"]


def test_pod_files_readonly_with_readonly_rootfs(build: BuildFn) -> None:
    cfg = container_config()
    cfg.linux.security_context.readonly_rootfs = True
    spec = build(cfg)
    by_dst = {m["destination"]: m for m in spec["mounts"]}
    assert by_dst["/etc/hosts"]["options"][-1] == "ro"
    assert by_dst["/dev/shm"]["options"][-1] == "rw"
    assert spec["root"]["readonly"] is True


def test_config_mounts_override_pod_files_and_defaults(build: BuildFn, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "hosts").write_text("")
    cfg = container_config(
        mounts=[
            api_pb2.Mount(container_path="/etc/hosts", host_path=str(mine / "hosts"), readonly=True),
            api_pb2.Mount(container_path="/dev", host_path=str(mine)),
            api_pb2.Mount(container_path="/a/b/c", host_path=str(mine)),
        ]
    )
    spec = build(cfg)
    dsts = _destinations(spec)
    # /dev from the config replaces the default /dev and every default mount below it; the
    # pod's /dev/shm is still bound on top (as containerd does). Parents sort before children.
    assert dsts == ["/proc", "/sys", "/sys/fs/cgroup", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
                    "/dev/shm", "/a/b/c"]
    hosts = [m for m in spec["mounts"] if m["destination"] == "/etc/hosts"]
    assert len(hosts) == 1 and hosts[0]["source"] == str(mine / "hosts") and hosts[0]["options"][-1] == "ro"


def test_host_ipc_uses_host_dev_shm(build: BuildFn) -> None:
    cfg = container_config()
    cfg.linux.security_context.namespace_options.ipc = api_pb2.NODE
    spec = build(cfg)
    shm = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert shm[0]["source"] == "/dev/shm"


def test_hostname_file_skipped_when_pod_has_none(build: BuildFn, pod_files: dict[str, str]) -> None:
    files = dict(pod_files)
    del files["hostname"]
    assert "/etc/hostname" not in _destinations(build(container_config(), pod_files_override=files))


def test_rootfs_propagation_strongest_wins(build: BuildFn, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    mountinfo = f"1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n2 1 0:1 / {tmp_path} rw master:3 - tmpfs t rw\n"
    cfg = container_config(
        mounts=[
            api_pb2.Mount(container_path="/a", host_path=str(a), propagation=api_pb2.PROPAGATION_HOST_TO_CONTAINER),
        ]
    )
    spec = build(cfg, options=SpecOptions(host_devices=(), mountinfo=mountinfo))
    assert spec["linux"]["rootfsPropagation"] == "rslave"
    with pytest.raises(FailedPrecondition, match="not a shared mount"):
        cfg.mounts.append(
            api_pb2.Mount(container_path="/b", host_path=str(b), propagation=api_pb2.PROPAGATION_BIDIRECTIONAL)
        )
        build(cfg, options=SpecOptions(host_devices=(), mountinfo=mountinfo))
    shared = mountinfo.replace("master:3", "shared:3")
    assert build(cfg, options=SpecOptions(host_devices=(), mountinfo=shared))["linux"]["rootfsPropagation"] == "rshared"


def test_image_mounts_left_to_caller_and_extra_mounts(build: BuildFn, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    cfg = container_config(mounts=[api_pb2.Mount(container_path="/img", image=api_pb2.ImageSpec(image="x"))])
    spec = build(cfg, extra_mounts=[api_pb2.Mount(container_path="/img", host_path=str(vol), readonly=True)])
    img = [m for m in spec["mounts"] if m["destination"] == "/img"]
    assert img == [{"destination": "/img", "type": "bind", "source": str(vol), "options": ["rbind", "rprivate", "ro"]}]
