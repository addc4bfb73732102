"""The on-disk attachment records."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cri_runtime import errors
from cri_runtime.network.cni import cache


def record(ifname: str = "eth0", order: int = 1, result: dict[str, object] | None = None) -> cache.AttachmentRecord:
    return cache.AttachmentRecord(
        container_id="sb1", ifname=ifname, network_name="net", netns="/run/netns/x",
        config={"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge"}]},
        cni_args=[("IgnoreUnknown", "1"), ("K8S_POD_NAME", "p")],
        capability_args={"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]},
        result=result, order=order)


def test_round_trip(tmp_path: Path) -> None:
    c = cache.AttachmentCache(str(tmp_path))
    c.save(record("eth0", 1, {"cniVersion": "1.0.0", "ips": []}))
    c.save(record("lo", 0))
    records, broken = c.load("sb1")
    assert broken == []
    assert [r.ifname for r in records] == ["lo", "eth0"]  # attachment order, not file order
    assert records[1] == record("eth0", 1, {"cniVersion": "1.0.0", "ips": []})
    assert records[0].result is None
    assert c.sandboxes() == ["sb1"]
    assert sorted(os.listdir(tmp_path / "sb1")) == ["eth0.json", "lo.json"]  # no temp files
    assert oct(os.stat(tmp_path / "sb1").st_mode & 0o777) == "0o700"


def test_save_replaces(tmp_path: Path) -> None:
    c = cache.AttachmentCache(str(tmp_path))
    c.save(record())
    c.save(record(result={"cniVersion": "1.0.0"}))
    records, _ = c.load("sb1")
    assert len(records) == 1
    assert records[0].result == {"cniVersion": "1.0.0"}


def test_remove_last_record_removes_sandbox_dir(tmp_path: Path) -> None:
    c = cache.AttachmentCache(str(tmp_path))
    c.save(record("eth0"))
    c.save(record("lo", 0))
    c.remove("sb1", "eth0")
    assert (tmp_path / "sb1").is_dir()
    c.remove("sb1", "lo")
    c.remove("sb1", "lo")  # idempotent
    assert not (tmp_path / "sb1").exists()
    assert c.load("sb1") == ([], [])
    assert c.sandboxes() == []


def test_unreadable_records_are_reported(tmp_path: Path) -> None:
    c = cache.AttachmentCache(str(tmp_path))
    c.save(record("lo", 0))
    (tmp_path / "sb1" / "eth0.json").write_text("{truncated")
    (tmp_path / "sb1" / "net1.json").write_text('{"kind": "somethingElse"}')
    records, broken = c.load("sb1")
    assert [r.ifname for r in records] == ["lo"]
    assert [(b.ifname, b.container_id) for b in broken] == [("eth0", "sb1"), ("net1", "sb1")]


@pytest.mark.parametrize("bad", ["", "..", "a/b"])
def test_sandbox_id_cannot_escape(tmp_path: Path, bad: str) -> None:
    c = cache.AttachmentCache(str(tmp_path))
    with pytest.raises(errors.InvalidArgument):
        c.load(bad)
