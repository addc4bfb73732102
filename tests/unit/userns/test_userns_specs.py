"""User namespaces: mapping validation and what the pause and container specs get."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.options import SpecOptions
from cri_runtime.oci.process import ImageConfig
from cri_runtime.oci.sandbox_spec import build_sandbox_spec
from cri_runtime.userns import IdMap, PodUserns, pod_userns, support
from cri_runtime.userns.copyup import remap_tree
from cri_runtime.userns.mappings import keep_locked_flags
from cri_runtime.userns.rootfs import idmap_volumes
from tests.unit.oci.conftest import build, pod_files  # noqa: F401 (fixtures)
from tests.unit.oci.helpers import BuildFn, container_config, sandbox_config


def mapping(container_id: int = 0, host_id: int = 65536, length: int = 65536) -> api_pb2.IDMapping:
    return api_pb2.IDMapping(container_id=container_id, host_id=host_id, length=length)


def ns(uids: list[api_pb2.IDMapping] | None = None, gids: list[api_pb2.IDMapping] | None = None,
       mode: int = api_pb2.POD, **kw: int) -> api_pb2.NamespaceOption:
    opts = api_pb2.UserNamespace(mode=mode, uids=[mapping()] if uids is None else uids,  # type: ignore[arg-type]
                                 gids=[mapping()] if gids is None else gids)
    return api_pb2.NamespaceOption(userns_options=opts, **kw)  # type: ignore[arg-type]


def test_kubelet_mapping_is_accepted() -> None:
    userns = pod_userns(ns([mapping(host_id=1000, length=100000)], [mapping(host_id=2000, length=65536)]))
    assert userns == PodUserns(IdMap(0, 1000, 100000), IdMap(0, 2000, 65536))
    assert userns.host_root == (1000, 2000)
    assert userns.spec_mappings() == {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 100000}],
                                      "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 65536}]}


def test_node_mode_and_absent_mean_host_userns() -> None:
    assert pod_userns(api_pb2.NamespaceOption()) is None
    assert pod_userns(ns([], [], mode=api_pb2.NODE)) is None
    with pytest.raises(InvalidArgument, match="mode NODE"):
        pod_userns(ns(mode=api_pb2.NODE))


@pytest.mark.parametrize(
    ("options", "message"),
    [(ns(mode=api_pb2.CONTAINER, uids=[], gids=[]), "CONTAINER is not supported"),
     (ns(mode=api_pb2.TARGET, uids=[], gids=[]), "TARGET is not supported"),
     (ns([mapping(), mapping(host_id=200000)]), "uids: exactly one mapping"),
     (ns(gids=[]), "gids: exactly one mapping"),
     (ns([mapping(container_id=1)]), "container ID 0"),
     (ns([mapping(length=0)]), "length must be positive"),
     (ns([mapping(host_id=0)]), "host ID 0"),
     (ns([mapping(host_id=2**32 - 10, length=65536)]), "exceeds the ID space"),
     (ns(network=api_pb2.NODE), "host's network"),
     (ns(pid=api_pb2.NODE), "host's pid"),
     (ns(ipc=api_pb2.NODE), "host's ipc")],
)
def test_bad_options(options: api_pb2.NamespaceOption, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        pod_userns(options)


def userns_pod() -> api_pb2.PodSandboxConfig:
    pod = sandbox_config()
    pod.linux.security_context.namespace_options.CopyFrom(ns())
    return pod


def test_pause_spec_creates_the_user_namespace(tmp_path: Path) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    spec = build_sandbox_spec("sb", userns_pod(), ImageConfig(entrypoint=["/pause"]), options=SpecOptions(),
                              netns_path="", shm_path=str(shm))
    kinds = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}
    assert kinds["user"] is None and kinds["network"] is None  # both made by runc, the netns owned by the userns
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 65536, "size": 65536}]
    pod = userns_pod()
    pod.linux.security_context.privileged = True
    with pytest.raises(InvalidArgument, match="privileged pod"):
        build_sandbox_spec("sb", pod, ImageConfig(entrypoint=["/pause"]), options=SpecOptions())


def test_container_joins_the_pause_user_namespace(build: BuildFn) -> None:  # noqa: F811
    cfg = container_config()
    cfg.linux.security_context.namespace_options.CopyFrom(ns())
    spec = build(cfg, pod=userns_pod())
    assert {"type": "user", "path": "/proc/4242/ns/user"} in spec["linux"]["namespaces"]
    assert spec["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 65536, "size": 65536}]
    # A container of a userns pod that does not repeat the options still joins it.
    assert "uidMappings" in build(container_config(), pod=userns_pod())["linux"]
    cfg.linux.security_context.privileged = True
    with pytest.raises(InvalidArgument, match="privileged container"):
        build(cfg, pod=userns_pod())


def test_locked_flags_are_kept_on_binds(tmp_path: Path) -> None:
    flags = os.statvfs("/proc").f_flag
    expected = {name for bit, name in ((os.ST_NOSUID, "nosuid"), (os.ST_NODEV, "nodev"), (os.ST_NOEXEC, "noexec"))
                if flags & bit}
    mounts: list[dict[str, Any]] = [
        {"destination": "/x", "type": "bind", "source": "/proc", "options": ["rbind", "ro"]},
        {"destination": "/p", "type": "proc", "source": "proc", "options": []}]
    keep_locked_flags(mounts)
    assert mounts[0]["options"][:2] == ["rbind", "ro"]
    assert expected <= set(mounts[0]["options"]) and len(mounts[0]["options"]) == len(set(mounts[0]["options"]))
    assert mounts[1]["options"] == []


def test_only_asked_volumes_are_idmapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "_result", support.UsernsSupport(True, "test", method=support.IDMAP))
    state = tmp_path / "containers" / "c1"
    state.mkdir(parents=True)
    cfg = container_config()
    cfg.mounts.add(container_path="/data", host_path="/srv/data")
    spec = {"mounts": [{"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
                       {"destination": "/etc/hosts", "type": "bind", "source": "/run/pod/hosts", "options": ["rbind"]}]}
    idmap_volumes(spec, cfg, state)
    # Mounted outside the container's state dir, so removing that never recurses into a volume.
    assert spec["mounts"][0]["source"] == str(tmp_path / "idmap" / "containers-c1" / "v0")
    assert spec["mounts"][1]["source"] == "/run/pod/hosts"
    assert (state / "idmap-volumes.json").exists()
    monkeypatch.setattr(support, "_result", support.UsernsSupport(True, "test", method=support.COPY))
    spec["mounts"][0]["source"] = "/srv/data"
    idmap_volumes(spec, cfg, state)
    assert spec["mounts"][0]["source"] == "/srv/data"  # the copy-up fallback leaves volumes alone


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_remap_tree_shifts_owners_and_keeps_setuid(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    tool = root / "bin" / "su"
    tool.write_text("")
    os.chmod(tool, 0o4755)
    os.symlink("su", root / "bin" / "link")
    other = root / "owned-by-high-id"
    other.write_text("")
    os.chown(other, 70000, 70000)  # outside a 65536 range: left alone
    os.chown(root / "bin", 33, 33)
    userns = PodUserns(IdMap(0, 100000, 65536), IdMap(0, 200000, 65536))
    assert remap_tree(str(root), userns) == 4
    assert (os.stat(root).st_uid, os.stat(root).st_gid) == (100000, 200000)
    assert (os.stat(root / "bin").st_uid, os.stat(root / "bin").st_gid) == (100033, 200033)
    assert os.stat(tool).st_mode & 0o7777 == 0o4755 and os.stat(tool).st_uid == 100000
    assert os.lstat(root / "bin" / "link").st_uid == 100000
    assert os.stat(other).st_uid == 70000
