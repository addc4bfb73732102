"""Manifests, platform selection, chain IDs, GC labels."""

from __future__ import annotations

import hashlib
import json

import pytest

from cri_runtime import errors
from cri_runtime.images import manifest as m
from cri_runtime.images.platform import Matcher, Platform


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def desc(mt: str, n: int, plat: dict[str, str] | None = None) -> dict[str, object]:
    d: dict[str, object] = {"mediaType": mt, "digest": sha(str(n).encode()), "size": n}
    if plat:
        d["platform"] = plat
    return d


def index(*plats: dict[str, str]) -> m.Index:
    raw = json.dumps({"schemaVersion": 2, "mediaType": m.MT_OCI_INDEX,
                      "manifests": [desc(m.MT_OCI_MANIFEST, i + 1, p) for i, p in enumerate(plats)]})
    return m.Index.parse(raw.encode(), "index")


def test_chain_ids() -> None:
    d1, d2, d3 = (sha(b"1"), sha(b"2"), sha(b"3"))
    c2 = sha(f"{d1} {d2}".encode())
    c3 = sha(f"{c2} {d3}".encode())
    assert m.chain_ids([d1, d2, d3]) == [d1, c2, c3]
    assert m.chain_ids([]) == []


def test_select_platform_prefers_exact_then_index_order() -> None:
    idx = index({"os": "linux", "architecture": "arm64", "variant": "v8"},
                {"os": "windows", "architecture": "amd64"},
                {"os": "linux", "architecture": "amd64"},
                {"os": "linux", "architecture": "amd64"},
                {"os": "unknown", "architecture": "unknown"})
    chosen = idx.select(Matcher(Platform("linux", "amd64")))
    assert chosen is not None and chosen.size == 3
    arm = idx.select(Matcher(Platform("linux", "aarch64")))
    assert arm is not None and arm.size == 1
    assert idx.select(Matcher(Platform("linux", "s390x"))) is None
    assert idx.platforms() == ["linux/amd64", "linux/arm64/v8", "unknown/unknown", "windows/amd64"]


def test_arm_variants_fall_back_to_older() -> None:
    idx = index({"os": "linux", "architecture": "arm", "variant": "v6"},
                {"os": "linux", "architecture": "arm", "variant": "v7"})
    v7 = idx.select(Matcher(Platform("linux", "arm", "v7")))
    assert v7 is not None and v7.size == 2
    v6 = index({"os": "linux", "architecture": "arm", "variant": "v6"}).select(
        Matcher(Platform("linux", "arm", "v7")))
    assert v6 is not None
    assert index({"os": "linux", "architecture": "arm", "variant": "v7"}).select(
        Matcher(Platform("linux", "arm", "v6"))) is None


def test_amd64_variants() -> None:
    matcher = Matcher(Platform("linux", "amd64"))
    assert matcher.matches(Platform("linux", "amd64", "v1"))
    assert not matcher.matches(Platform("linux", "amd64", "v3"))
    assert Matcher(Platform("linux", "amd64", "v3")).matches(Platform("linux", "amd64", "v2"))


def test_manifest_and_gc_labels() -> None:
    raw = json.dumps({"schemaVersion": 2, "mediaType": m.MT_DOCKER_MANIFEST,
                      "config": desc(m.MT_DOCKER_CONFIG, 10),
                      "layers": [desc(m.MT_DOCKER_LAYER_GZIP, 11), desc(m.MT_OCI_LAYER_ZSTD, 12)]}).encode()
    man = m.Manifest.parse(raw, "man")
    assert m.manifest_gc_labels(man) == {
        "containerd.io/gc.ref.content.config": sha(b"10"),
        "containerd.io/gc.ref.content.l.0": sha(b"11"),
        "containerd.io/gc.ref.content.l.1": sha(b"12"),
    }
    idx = index({"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"})
    assert m.index_gc_labels(idx) == {"containerd.io/gc.ref.content.m.0": sha(b"1"),
                                      "containerd.io/gc.ref.content.m.1": sha(b"2")}


def test_unsupported_layer_and_schema1() -> None:
    raw = json.dumps({"schemaVersion": 2, "config": desc(m.MT_OCI_CONFIG, 1),
                      "layers": [desc("application/x-weird", 2)]}).encode()
    with pytest.raises(errors.InvalidArgument):
        m.Manifest.parse(raw, "man")
    with pytest.raises(errors.InvalidArgument):
        m.Manifest.parse(b'{"schemaVersion": 1}', "man")
    with pytest.raises(errors.DataLoss):
        m.Manifest.parse(b"not json", "man")


def test_detect_media_type() -> None:
    assert m.detect_media_type(b'{"manifests": []}', "") == m.MT_OCI_INDEX
    assert m.detect_media_type(b'{"config": {}, "layers": []}', "") == m.MT_OCI_MANIFEST
    assert m.detect_media_type(b"{}", m.MT_DOCKER_LIST + "; charset=utf-8") == m.MT_DOCKER_LIST
    assert m.detect_media_type(json.dumps({"mediaType": m.MT_DOCKER_MANIFEST}).encode(), "") == \
        m.MT_DOCKER_MANIFEST


def test_config_parse_and_user() -> None:
    raw = json.dumps({"architecture": "amd64", "os": "linux", "config": {"User": "www-data:users"},
                      "rootfs": {"type": "layers", "diff_ids": [sha(b"a")]}}).encode()
    cfg = m.ImageConfig.parse(raw, "cfg")
    assert cfg.diff_ids == (sha(b"a"),)
    assert cfg.platform == Platform("linux", "amd64")
    assert cfg.user == "www-data:users"
    with pytest.raises(errors.DataLoss):
        m.ImageConfig.parse(b'{"rootfs": {}}', "cfg")


@pytest.mark.parametrize(("user", "uid", "name"), [
    ("", None, ""), ("1002", 1002, ""), ("1003:users", 1003, ""), ("www-data", None, "www-data"),
    ("www-data:users", None, "www-data"), ("0", 0, "")])
def test_user_to_uid_username(user: str, uid: int | None, name: str) -> None:
    assert m.user_to_uid_username(user) == (uid, name)
