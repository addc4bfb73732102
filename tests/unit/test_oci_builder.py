"""The OCI image builder of the test rig: digests, JSON shapes, layer contents, indexes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.rig import oci
from tests.rig.oci import Image, ImageConfig, ImageIndex, LayerBuilder, MediaType

needs_busybox = pytest.mark.skipif(not oci.BUSYBOX.exists(), reason="needs busybox-static (/bin/busybox)")


def _members(tar_bytes: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {m.name: m for m in tar.getmembers()}


def _read(tar_bytes: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def _small_image(**kwargs: object) -> Image:
    layer = LayerBuilder().file("/hello.txt", "hi\n")
    return Image([layer], ImageConfig(cmd=["sh"]), **kwargs)  # type: ignore[arg-type]


def test_layer_tar_has_parents_modes_and_fixed_metadata() -> None:
    tar = (
        LayerBuilder()
        .file("/a/b/c.txt", "data", mode=0o600, uid=33, gid=33)
        .symlink("/a/link", "b/c.txt")
        .dir("/tmp", 0o1777)
        .tar()
    )
    members = _members(tar)
    assert sorted(members) == ["a", "a/b", "a/b/c.txt", "a/link", "tmp"]
    assert members["a"].isdir() and members["a/b"].isdir()
    assert members["a/b/c.txt"].mode == 0o600 and (members["a/b/c.txt"].uid, members["a/b/c.txt"].gid) == (33, 33)
    assert members["a/link"].issym() and members["a/link"].linkname == "b/c.txt"
    assert members["tmp"].mode == 0o1777
    assert {m.mtime for m in members.values()} == {oci.LAYER_MTIME}
    assert _read(tar, "a/b/c.txt") == b"data"


def test_layer_tar_is_deterministic_regardless_of_insertion_order() -> None:
    one = LayerBuilder().file("x", "1").file("y", "2").tar()
    two = LayerBuilder().file("y", "2").file("x", "1").tar()
    assert one == two


def test_whiteout_entry_name() -> None:
    members = _members(LayerBuilder().whiteout("/etc/hostname").whiteout("/top").tar())
    assert "etc/.wh.hostname" in members and ".wh.top" in members


def test_layer_rejects_escaping_paths() -> None:
    with pytest.raises(ValueError):
        LayerBuilder().file("../etc/passwd", "x")


@pytest.mark.parametrize(
    ("fmt", "compression", "manifest_type", "config_type", "layer_type"),
    [
        ("oci", "gzip", MediaType.OCI_MANIFEST, MediaType.OCI_CONFIG, MediaType.OCI_LAYER_GZIP),
        ("oci", "none", MediaType.OCI_MANIFEST, MediaType.OCI_CONFIG, MediaType.OCI_LAYER),
        ("docker", "gzip", MediaType.DOCKER_MANIFEST, MediaType.DOCKER_CONFIG, MediaType.DOCKER_LAYER_GZIP),
        ("docker", "none", MediaType.DOCKER_MANIFEST, MediaType.DOCKER_CONFIG, MediaType.DOCKER_LAYER),
    ],
)
def test_manifest_shape_and_digests(
    fmt: str, compression: str, manifest_type: str, config_type: str, layer_type: str
) -> None:
    img = _small_image(fmt=fmt, compression=compression)
    manifest = json.loads(img.manifest_blob.data)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == manifest_type == img.manifest_blob.media_type
    assert manifest["config"] == {
        "mediaType": config_type,
        "digest": "sha256:" + hashlib.sha256(img.config_blob.data).hexdigest(),
        "size": len(img.config_blob.data),
    }
    (layer_desc,) = manifest["layers"]
    layer = img.layers[0]
    assert layer_desc == {
        "mediaType": layer_type,
        "digest": "sha256:" + hashlib.sha256(layer.blob.data).hexdigest(),
        "size": len(layer.blob.data),
    }
    uncompressed = gzip.decompress(layer.blob.data) if compression == "gzip" else layer.blob.data
    assert layer.diff_id == "sha256:" + hashlib.sha256(uncompressed).hexdigest()
    assert img.digest == "sha256:" + hashlib.sha256(img.manifest_blob.data).hexdigest()
    assert img.image_id == manifest["config"]["digest"]


def test_gzip_layer_differs_from_uncompressed_but_same_diff_id() -> None:
    gz, plain = _small_image(compression="gzip"), _small_image(compression="none")
    assert gz.layers[0].blob.digest != plain.layers[0].blob.digest
    assert gz.diff_ids == plain.diff_ids
    # Same config bytes (diff IDs, not blob digests, go into the config) -> same image ID.
    assert gz.image_id == plain.image_id


def test_builds_are_reproducible() -> None:
    assert _small_image().digest == _small_image().digest


def test_config_json_fields() -> None:
    cfg = ImageConfig(
        user="www",
        env=["A=1"],
        entrypoint=["/bin/sh", "-c"],
        cmd=["echo hi"],
        working_dir="/var/www",
        labels={"k": "v"},
        stop_signal="SIGINT",
        exposed_ports=["80/tcp"],
        volumes=["/data"],
    )
    img = Image([LayerBuilder().file("f", "x"), LayerBuilder().file("g", "y")], cfg)
    config = json.loads(img.config_blob.data)
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["config"] == {
        "User": "www",
        "Env": ["A=1"],
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo hi"],
        "WorkingDir": "/var/www",
        "Labels": {"k": "v"},
        "StopSignal": "SIGINT",
        "ExposedPorts": {"80/tcp": {}},
        "Volumes": {"/data": {}},
    }
    assert config["rootfs"] == {"type": "layers", "diff_ids": img.diff_ids}
    assert len(config["history"]) == 2


def test_default_config_has_path_and_no_entrypoint() -> None:
    config = json.loads(_small_image().config_blob.data)["config"]
    assert config["Cmd"] == ["sh"]
    assert "Entrypoint" not in config and "User" not in config
    assert config["Env"][0].startswith("PATH=")


def test_chain_id() -> None:
    img = Image([LayerBuilder().file("a", "1"), LayerBuilder().file("b", "2")])
    d1, d2 = img.diff_ids
    assert img.chain_id() == "sha256:" + hashlib.sha256(f"{d1} {d2}".encode()).hexdigest()
    assert Image([LayerBuilder().file("a", "1")]).chain_id() == d1


@pytest.mark.parametrize(("fmt", "index_type"), [("oci", MediaType.OCI_INDEX), ("docker", MediaType.DOCKER_LIST)])
def test_index_lists_platforms(fmt: str, index_type: str) -> None:
    amd64 = _small_image(fmt=fmt)
    arm64 = oci.foreign_platform_image("arm64", "v8", fmt=fmt)  # type: ignore[arg-type]
    index = ImageIndex([amd64, arm64], fmt=fmt)  # type: ignore[arg-type]
    body = json.loads(index.manifest_blob.data)
    assert body["mediaType"] == index_type and body["schemaVersion"] == 2
    assert [(m["digest"], m["platform"]) for m in body["manifests"]] == [
        (amd64.digest, {"architecture": "amd64", "os": "linux"}),
        (arm64.digest, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
    ]
    assert body["manifests"][0]["size"] == amd64.manifest_blob.size
    assert index.for_platform("arm64") is arm64
    assert index.image_id == amd64.image_id
    assert json.loads(arm64.config_blob.data)["variant"] == "v8"
    with pytest.raises(KeyError):
        index.for_platform("s390x")


@needs_busybox
def test_busybox_rootfs_contents() -> None:
    img = oci.busybox_image()
    (layer,) = img.layers
    members = _members(layer.tar)
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert _read(layer.tar, "bin/busybox") == oci.BUSYBOX.read_bytes()
    for applet in ("sh", "ls", "cat", "sleep", "echo", "id"):
        assert members[f"bin/{applet}"].issym() and members[f"bin/{applet}"].linkname == "busybox"
    passwd = _read(layer.tar, "etc/passwd").decode()
    assert "www:x:33:33:" in passwd and passwd.startswith("root:x:0:0:")
    assert "nobody:x:65534:65534:" in passwd
    assert "www:x:33:" in _read(layer.tar, "etc/group").decode()
    assert members["tmp"].mode == 0o1777
    assert (members["var/www"].uid, members["var/www"].gid) == (33, 33)


@needs_busybox
def test_busybox_extra_layers() -> None:
    img = oci.busybox_image(extra_layers=[LayerBuilder().file("layer1", "1")])
    assert len(img.layers) == 2 and len(json.loads(img.manifest_blob.data)["layers"]) == 2
    assert "layer1" in _members(img.layers[1].tar)


def test_oci_layout(tmp_path: Path) -> None:
    img = _small_image()
    index = ImageIndex([img, oci.foreign_platform_image("arm64")])
    oci.write_oci_layout(tmp_path, {"single:latest": img, "multi:latest": index})
    assert json.loads((tmp_path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    top = json.loads((tmp_path / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in top["manifests"]}
    assert refs == {"single:latest": img.digest, "multi:latest": index.digest}
    blobs = tmp_path / "blobs" / "sha256"
    for path in blobs.iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    expected = {img.digest, img.image_id, index.digest, *(lyr.blob.digest for lyr in img.layers)}
    expected |= {m.digest for m in index.images} | {m.image_id for m in index.images}
    expected |= {lyr.blob.digest for m in index.images for lyr in m.layers}
    assert {f"sha256:{p.name}" for p in blobs.iterdir()} == expected
