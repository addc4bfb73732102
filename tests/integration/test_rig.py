"""The test rig against the real thing: images built here pull and run in the private
containerd, registries enforce auth/TLS, cleanup leaves nothing behind."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc
from tests.rig import cleanup, paths, system
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImage, TestImages
from tests.rig.leaks import find_leaks, take_snapshot
from tests.rig.oci import ImageIndex, busybox_image, foreign_platform_image, write_oci_layout
from tests.rig.registry import LocalRegistry, RegistryClient, RegistryError


@pytest.fixture
def pulled(containerd: PrivateContainerd) -> Iterator[list[str]]:
    """Refs a test pulls into the session containerd; removed again afterwards."""
    refs: list[str] = []
    yield refs
    if refs:
        containerd.ctr("images", "rm", "--sync", *refs, check=False)


def _pull(containerd: PrivateContainerd, pulled: list[str], image: TestImage, *flags: str) -> None:
    containerd.ctr("images", "pull", "--plain-http", *flags, image.ref)
    pulled.append(image.ref)


def _run(containerd: PrivateContainerd, ref: str, *command: str) -> subprocess.CompletedProcess[str]:
    name = f"rig-{uuid.uuid4().hex[:12]}"
    return containerd.ctr("run", "--rm", *containerd.ctr_run_args(), ref, name, *command)


def _image_rows(containerd: PrivateContainerd) -> dict[str, list[str]]:
    lines = containerd.ctr("images", "ls").stdout.splitlines()[1:]
    return {line.split()[0]: line.split() for line in lines if line.strip()}


def test_pushed_image_pulls_lists_and_runs(
    containerd: PrivateContainerd, test_images: TestImages, pulled: list[str]
) -> None:
    img = test_images.busybox
    _pull(containerd, pulled, img)
    row = _image_rows(containerd)[img.ref]
    assert row[1] == "application/vnd.oci.image.manifest.v1+json"
    assert row[2] == img.digest
    assert _run(containerd, img.ref, "echo", "hello").stdout == "hello\n"


def test_image_user_resolves_from_etc_passwd(
    containerd: PrivateContainerd, test_images: TestImages, pulled: list[str]
) -> None:
    _pull(containerd, pulled, test_images.busybox_user)
    out = _run(containerd, test_images.busybox_user.ref, "sh", "-c", "id -u; id -g; pwd").stdout
    assert out.split() == ["33", "33", "/var/www"]


@pytest.mark.parametrize("name", ["busybox_docker", "busybox_plain"])
def test_docker_schema2_and_uncompressed_images_run(
    containerd: PrivateContainerd, test_images: TestImages, pulled: list[str], name: str
) -> None:
    img: TestImage = getattr(test_images, name)
    _pull(containerd, pulled, img)
    assert _image_rows(containerd)[img.ref][2] == img.digest
    assert _run(containerd, img.ref, "cat", "/etc/hostname").stdout == "busybox\n"


def test_multi_layer_image_applies_layers_and_whiteouts(
    containerd: PrivateContainerd, test_images: TestImages, pulled: list[str]
) -> None:
    _pull(containerd, pulled, test_images.layers)
    script = "cat /layer1 /layer2; test -e /etc/hostname && echo present || echo gone"
    assert _run(containerd, test_images.layers.ref, "sh", "-c", script).stdout == "one\ntwo\ngone\n"


def test_multi_arch_index_pulls_the_amd64_member(
    containerd: PrivateContainerd, test_images: TestImages, pulled: list[str]
) -> None:
    multi = test_images.multi
    _pull(containerd, pulled, multi)
    row = _image_rows(containerd)[multi.ref]
    assert row[1] == "application/vnd.oci.image.index.v1+json"
    assert row[2] == multi.digest
    platforms = row[-2]  # SIZE is two columns ("1013.3 KiB")
    assert "linux/amd64" in platforms and "linux/arm64/v8" in platforms
    content = set(containerd.ctr("content", "ls", "-q").stdout.split())
    amd64 = multi.image
    arm64 = multi.artifact.for_platform("arm64")  # type: ignore[union-attr]
    assert {multi.digest, amd64.digest, amd64.image_id} <= content
    assert arm64.digest not in content  # only the host platform was fetched
    assert _run(containerd, multi.ref, "uname", "-m").stdout == "x86_64\n"


def test_auth_registry_rejects_anonymous_and_accepts_credentials(
    containerd: PrivateContainerd, auth_registry: LocalRegistry, pulled: list[str]
) -> None:
    assert auth_registry.credentials is not None
    anonymous = auth_registry.client(authenticated=False)
    assert anonymous.ping() == 401
    with pytest.raises(RegistryError) as err:
        busybox_image().push(anonymous, "test/private", "latest")
    assert err.value.status == 401
    wrong = RegistryClient(auth_registry.host, username="tester", password="wrong")
    assert wrong.ping() == 401

    assert auth_registry.client().ping() == 200
    pushed = busybox_image().push(auth_registry, "test/private", "latest")

    refused = containerd.ctr("images", "pull", "--plain-http", pushed.ref, check=False)
    assert refused.returncode != 0
    user, password = auth_registry.credentials
    containerd.ctr("images", "pull", "--plain-http", "--user", f"{user}:{password}", pushed.ref)
    pulled.append(pushed.ref)
    assert _image_rows(containerd)[pushed.ref][2] == pushed.digest


def test_tls_registry_with_self_signed_ca(
    containerd: PrivateContainerd, tls_registry: LocalRegistry, pulled: list[str]
) -> None:
    """containerd talks plain HTTP to loopback registries unless hosts.toml says https."""
    assert tls_registry.url.startswith("https://") and tls_registry.ca_file is not None
    pushed = busybox_image(fmt="docker").push(tls_registry, "test/tls", "latest")
    hosts = str(containerd.hosts_dir)
    host_file = containerd.add_registry_host(tls_registry.host, tls_registry.url)
    try:
        untrusted = containerd.ctr("images", "pull", "--hosts-dir", hosts, pushed.ref, check=False)
        assert untrusted.returncode != 0 and "certificate" in untrusted.stderr
        containerd.add_registry_host(tls_registry.host, tls_registry.url, ca_file=tls_registry.ca_file)
        containerd.ctr("images", "pull", "--hosts-dir", hosts, pushed.ref)
        pulled.append(pushed.ref)
    finally:
        shutil.rmtree(host_file.parent)
    assert _image_rows(containerd)[pushed.ref][2] == pushed.digest


def test_chunked_push_round_trips_through_the_registry(registry: LocalRegistry) -> None:
    img = busybox_image(compression="none")
    pushed = img.push(registry, "test/chunked", "v1", chunk_size=256 * 1024)
    client = registry.client()
    resp = client.get_manifest("test/chunked", "v1")
    assert resp.status == 200 and resp.body == img.manifest_blob.data
    assert resp.headers["docker-content-digest"] == pushed.digest == img.digest
    layer = img.layers[0].blob
    got = client.request("GET", f"/v2/test/chunked/blobs/{layer.digest}")
    assert got.status == 200 and got.body == layer.data
    # A second push finds every blob present and uploads nothing but the manifest.
    assert img.push(registry, "test/chunked", "v2").digest == pushed.digest


def test_hosts_dir_mirror_redirects_a_registry_name(
    containerd: PrivateContainerd, test_images: TestImages, pulled: list[str]
) -> None:
    """A ref on a made-up registry name pulls from the local registry via hosts.toml."""
    containerd.add_registry_host("mirror.invalid", f"http://{test_images.registry_host}")
    ref = "mirror.invalid/test/busybox:latest"
    containerd.ctr("images", "pull", "--hosts-dir", str(containerd.hosts_dir), ref)
    pulled.append(ref)
    assert _image_rows(containerd)[ref][2] == test_images.busybox.digest


def test_default_containerd_has_no_cri_plugin(containerd: PrivateContainerd) -> None:
    plugins = containerd.ctr("plugins", "ls").stdout
    assert "io.containerd.grpc.v1.cri" not in plugins.replace("  ", " ")
    assert not any(line.split()[:2] == ["io.containerd.grpc.v1", "cri"] for line in plugins.splitlines())


def test_containerd_cri_fixture_answers(containerd_cri: PrivateContainerd) -> None:
    rows = [line.split() for line in containerd_cri.ctr("plugins", "ls").stdout.splitlines()]
    cri = [r for r in rows if r[:2] == ["io.containerd.grpc.v1", "cri"]]
    assert cri and cri[0][-1] == "ok"
    config = containerd_cri.config_path.read_text()
    assert "restrict_oom_score_adj = true" in config and str(containerd_cri.hosts_dir) in config
    # Its CRI endpoint is the same socket; answer a real CRI call.
    with grpc.insecure_channel(f"unix://{containerd_cri.address}") as channel:
        version = api_pb2_grpc.RuntimeServiceStub(channel).Version(api_pb2.VersionRequest(), timeout=10)
    assert version.runtime_name == "containerd" and version.runtime_api_version == "v1"


def _leftovers(ctrd: PrivateContainerd) -> list[str]:
    tmp = str(ctrd.tmpdir)
    procs = [p.describe() for p in system.list_processes().values() if tmp in p.cmdline or tmp in p.root]
    mounts = [m.describe() for m in system.list_mounts() if system.is_under(m.mount_point, tmp)]
    return procs + mounts + ([tmp] if ctrd.tmpdir.exists() else [])


@pytest.mark.parametrize("crash_containerd_first", [False, True])
def test_stop_kills_running_containers_and_shims(
    registry: LocalRegistry, test_images: TestImages, crash_containerd_first: bool
) -> None:
    """A detached container (shim + sleep) is gone after stop(), even if containerd died."""
    ctrd = PrivateContainerd().start()
    try:
        ctrd.ctr("images", "pull", "--plain-http", test_images.busybox.ref)
        ctrd.ctr("run", "-d", *ctrd.ctr_run_args(), test_images.busybox.ref, "sleeper", "sleep", "600")
        procs = system.list_processes().values()
        shims = [p for p in procs if p.comm.startswith("containerd-shim") and ctrd.address in p.cmdline]
        assert len(shims) == 1
        sleepers = [p for p in procs if p.ppid == shims[0].pid and p.cmdline == "sleep 600"]
        assert len(sleepers) == 1
        # The container's root mount names the rig dir: how leaks are attributed.
        assert str(ctrd.tmpdir) in sleepers[0].root
        if crash_containerd_first:
            assert ctrd.pid is not None
            os.kill(ctrd.pid, 9)
            time.sleep(0.2)
    finally:
        problems = ctrd.stop()
    assert problems == []
    assert _leftovers(ctrd) == []


def test_leak_check_sees_owned_process_and_mount() -> None:
    """The leak check reports a child process and a mount under the session dir, then not."""
    before = take_snapshot()
    sdir = paths.session_dir()
    target = paths.make_dir("leakprobe")
    child = subprocess.Popen(["sleep", "60"])
    subprocess.run(["mount", "-t", "tmpfs", "leakprobe", str(target)], check=True)
    try:
        leaks = find_leaks(before, take_snapshot(), session_dir=sdir, scope="session")
        assert any(f"pid {child.pid} " in leak for leak in leaks)
        assert any(str(target) in leak and leak.startswith("mount tmpfs") for leak in leaks)
        assert any(leak == f"file {target}" for leak in leaks)
    finally:
        child.kill()
        child.wait()
        system.unmount_under(target)
        target.rmdir()
    assert find_leaks(before, take_snapshot(), session_dir=sdir, scope="session") == []


def test_cleanup_removes_a_dead_sessions_processes_mounts_and_dir() -> None:
    """What a SIGKILLed test run leaves is found by its dead owner and removed."""
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    session = Path("/run") / f"{paths.NAME_PREFIX}-{secrets.token_hex(3)}"
    session.mkdir()
    (session / paths.OWNER_FILE).write_text(f"{dead_pid.pid}\n")
    (session / "mnt").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "deadsession", str(session / "mnt")], check=True)
    orphan = subprocess.Popen(["sh", "-c", "sleep 600; true", str(session / "marker")], start_new_session=True)
    try:
        deadline = time.monotonic() + 5  # the process table must show its command line first
        while str(session).encode() not in Path(f"/proc/{orphan.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert session in cleanup.dead_sessions()
        assert paths.session_dir() not in cleanup.dead_sessions()
        actions = cleanup.clean_session(session)
        assert any(f"pid {orphan.pid} " in a for a in actions)
        orphan.wait(timeout=10)  # already reaped by clean_session: only records it here
        leftovers = [p for p in system.list_processes().values() if p.pid == orphan.pid or p.ppid == orphan.pid]
        assert leftovers == []
        assert not session.exists()
        assert not [m for m in system.list_mounts() if system.is_under(m.mount_point, session)]
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
        system.unmount_under(session)
        shutil.rmtree(session, ignore_errors=True)


def test_cleanup_removes_bridges_and_forward_rules_of_dead_sessions() -> None:
    """A killed session's test bridge and its FORWARD drop rule are removed; live ones stay."""
    token = secrets.token_hex(3)
    bridge = f"crb{token}7"
    rule = ["FORWARD", "-s", "10.255.254.0/24", "!", "-o", bridge, "-j", "DROP"]
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        assert bridge in cleanup.stale_bridges()
        assert paths.test_bridge_name(0) not in cleanup.stale_bridges()
        actions = cleanup.remove_bridge(bridge)
        assert f"ip link del {bridge}" in actions and any("10.255.254.0/24" in a for a in actions)
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
        rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
        assert bridge not in links and bridge not in rules
    finally:
        subprocess.run(["iptables", "-D", *rule], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo")
def test_oci_layout_is_readable_by_skopeo(tmp_path: Path) -> None:
    img = busybox_image()
    index = ImageIndex([busybox_image(), foreign_platform_image("arm64", "v8")])
    write_oci_layout(tmp_path, {"busybox:latest": img, "multi:latest": index})
    single = json.loads(
        subprocess.run(
            ["skopeo", "inspect", f"oci:{tmp_path}:busybox:latest"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert single["Digest"] == img.digest and single["Architecture"] == "amd64"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{tmp_path}:multi:latest"], capture_output=True, check=True
    ).stdout
    assert raw == index.manifest_blob.data
