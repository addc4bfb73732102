"""`cri-runtime ctr … ls` lists what Debian's ctr lists, byte for byte (AGE and task order aside)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.nodetools.helpers import cli, ctr, pod_config, pull, remove_pod, run_container, run_pod
from tests.pod_rig import PodRig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def populated(containerd: Any, pod_rig: PodRig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A running pod with one running container, and a lease of ctr's own (not ours)."""
    server = pod_rig.server
    rt = server.runtime()
    for image in (pod_rig.images.busybox, pod_rig.images.busybox_docker, pod_rig.images.multi):
        pull(server, image.ref)  # OCI, Docker schema 2 and a multi-platform index: SIZE and PLATFORMS differ
    cfg = pod_config("views", tmp_path_factory.mktemp("logs"))
    pod_id = run_pod(rt, cfg)
    cid = run_container(rt, pod_id, cfg, pod_rig.images.busybox.ref)
    ctr(containerd.address, "-n", "k8s.io", "leases", "create", "--id", "nodetools-foreign-lease", "purpose=test")
    try:
        yield {"address": containerd.address, "pod": pod_id, "container": cid, "pod_name": cfg.metadata.name}
    finally:
        ctr(containerd.address, "-n", "k8s.io", "leases", "rm", "nodetools-foreign-lease")
        remove_pod(rt, pod_id)


def ours(address: str, *args: str) -> str:
    return cli("ctr", "-a", address, *args).stdout


@pytest.mark.parametrize("args", [
    ("namespaces", "ls"), ("-n", "k8s.io", "containers", "ls"), ("-n", "k8s.io", "images", "ls"),
    ("-n", "k8s.io", "snapshots", "ls"), ("-n", "k8s.io", "leases", "ls"),
    ("namespaces", "ls", "-q"), ("-n", "k8s.io", "containers", "ls", "-q"), ("-n", "k8s.io", "images", "ls", "-q"),
    ("-n", "k8s.io", "leases", "ls", "-q"), ("-n", "k8s.io", "content", "ls", "-q"),
])
def test_same_table_as_ctr(populated: dict[str, str], args: tuple[str, ...]) -> None:
    theirs = ctr(populated["address"], *args).stdout
    mine = ours(populated["address"], *args)
    assert [line.split() for line in mine.splitlines()] == [line.split() for line in theirs.splitlines()]
    assert mine == theirs
    assert theirs.count("\n") >= 2 or args[-1] == "-q" or "leases" in args


def test_default_namespace_is_k8s_io(populated: dict[str, str]) -> None:
    assert ours(populated["address"], "containers", "ls") == ctr(populated["address"], "-n", "k8s.io",
                                                                 "containers", "ls").stdout


def test_tasks_same_rows_as_ctr(populated: dict[str, str]) -> None:
    """Task order is containerd's map order (random): compare header and the set of rows."""
    theirs = ctr(populated["address"], "-n", "k8s.io", "tasks", "ls").stdout.splitlines()
    mine = ours(populated["address"], "tasks", "ls").splitlines()
    assert mine[0].split() == theirs[0].split() == ["TASK", "PID", "STATUS"]
    assert sorted(line.split() for line in mine[1:]) == sorted(line.split() for line in theirs[1:])
    assert {populated["pod"], populated["container"]} <= {line.split()[0] for line in mine[1:]}
    theirs_q = ctr(populated["address"], "-n", "k8s.io", "tasks", "ls", "-q").stdout.split()
    assert sorted(ours(populated["address"], "tasks", "ls", "-q").split()) == sorted(theirs_q)


def test_content_same_rows_as_ctr_but_age(populated: dict[str, str]) -> None:
    theirs = ctr(populated["address"], "-n", "k8s.io", "content", "ls").stdout.splitlines()
    mine = ours(populated["address"], "content", "ls").splitlines()
    assert mine[0] == theirs[0]
    assert [c for c in mine[0].split("\t") if c] == ["DIGEST", "SIZE", "AGE", "LABELS"]

    def without_age(line: str) -> tuple[str, str, set[str]]:
        """ctr prints content labels in Go map order (random): compare them as a set."""
        cells = [c for c in line.split("\t") if c]
        return cells[0], cells[1], set(cells[3].split(","))

    assert [without_age(x) for x in mine[1:]] == [without_age(x) for x in theirs[1:]]
    assert len(mine) > 3


def test_cri_column_names_the_owner(populated: dict[str, str], pod_rig: PodRig) -> None:
    rows = {line.split()[0]: line.split() for line in ours(populated["address"], "containers", "ls", "--cri")
            .splitlines()[1:]}
    assert rows[populated["pod"]][-1] == f"cri-runtime:pod:nodetools/{populated['pod_name']}"
    assert rows[populated["container"]][-1] == "cri-runtime:container:sleeper"
    snaps = {line.split()[0]: line.split()[-1] for line in ours(populated["address"], "snapshots", "ls", "--cri")
             .splitlines()[1:]}
    assert snaps[populated["container"]] == "cri-runtime:container:sleeper"
    leases = {line.split()[0]: line.split()[-1] for line in ours(populated["address"], "leases", "ls", "--cri")
              .splitlines()[1:]}
    assert leases["nodetools-foreign-lease"] == "-"
    images = json.loads(ours(populated["address"], "images", "ls", "--cri", "-o", "json"))
    busybox = next(i for i in images if i["name"] == pod_rig.images.busybox.ref)
    assert busybox["cri"]["runtime"] == "cri-runtime"


def test_content_says_which_image_refers_to_each_blob(populated: dict[str, str], pod_rig: PodRig) -> None:
    blobs = json.loads(ours(populated["address"], "content", "ls", "--cri", "-o", "json"))
    image = next(i for i in json.loads(ours(populated["address"], "images", "ls", "-o", "json"))
                 if i["name"] == pod_rig.images.busybox.ref)
    by_digest = {b["digest"]: b for b in blobs}
    manifest = by_digest[image["target"]["digest"]]
    assert manifest["referenced"] and pod_rig.images.busybox.ref in manifest["images"]
    # Every blob an image refers to is listed as referenced; the table's IMAGES column agrees.
    table = ours(populated["address"], "content", "ls", "--cri").splitlines()
    assert [c for c in table[0].split("\t") if c][-2:] == ["CRI", "IMAGES"]
    for line in table[1:]:
        cells = [c for c in line.split("\t") if c]
        assert (cells[-1] != "unreferenced") == by_digest[cells[0]]["referenced"]


def test_yaml_and_json_agree(populated: dict[str, str]) -> None:
    import yaml

    as_json = json.loads(ours(populated["address"], "containers", "ls", "-o", "json"))
    as_yaml = yaml.safe_load(ours(populated["address"], "containers", "ls", "-o", "yaml"))
    assert as_json == as_yaml
    assert {c["id"] for c in as_json} >= {populated["pod"], populated["container"]}


def test_unreachable_containerd_is_one_line(tmp_path: Path) -> None:
    result = cli("ctr", "-a", str(tmp_path / "nothing.sock"), "containers", "ls", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("cri-runtime: ") and "Traceback" not in result.stderr
