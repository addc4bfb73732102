"""VOLUMEs declared by an image config, on real containerd and runc (issue 15, item 1).

Default ``bind`` mode does what containerd (and Docker) do: a per-container
directory seeded with the image's content at that path, ownership kept,
bind-mounted, removed with the container. ``mkdir`` and ``ignore`` follow
CRI-O's option of the same name.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CRI_RUNTIME, CriServer
from tests.pod_rig import PodRig
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.rig.oci import ImageConfig, LayerBuilder, busybox_image, push
from tests.rig.registry import LocalRegistry

WWW = 33  # uid/gid of www-data in the busybox rootfs


@pytest.fixture(scope="module")
def volume_image(registry: LocalRegistry) -> str:
    """busybox plus /data (www-owned, mode 750, a file, a sub dir, a symlink); VOLUME /data and /cache."""
    layer = (LayerBuilder()
             .dir("/data", mode=0o750, uid=WWW, gid=WWW)
             .file("/data/hello", "seed\n", mode=0o640, uid=WWW, gid=WWW)
             .dir("/data/sub", mode=0o700, uid=WWW, gid=WWW)
             .file("/data/sub/deep", "deep\n", uid=WWW, gid=WWW)
             .symlink("/data/link", "hello"))
    image = busybox_image(ImageConfig(cmd=["sh"], volumes=["/data", "/cache"]), extra_layers=[layer])
    return push(image, registry, "test/volumes", "latest").ref


class Rig:
    def __init__(self, server: CriServer, image: str, tmp_path: Path, *, host_network: bool) -> None:
        self.server = server
        self.rt = server.runtime()
        self.image = image
        server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)), timeout=60)
        name = f"vol-{uuid.uuid4().hex[:8]}"
        self.pod_config = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace="vol", uid=uuid.uuid4().hex),
            hostname=name, log_directory=str(tmp_path / "logs"))
        if host_network:
            self.pod_config.linux.security_context.namespace_options.network = api_pb2.NODE
        self.pod_id = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=self.pod_config),
                                            timeout=60).pod_sandbox_id

    def run(self, name: str = "c", mounts: list[api_pb2.Mount] | None = None) -> str:
        cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=name),
                                      image=api_pb2.ImageSpec(image=self.image), command=["sleep", "300"],
                                      mounts=mounts or [])
        cid = str(self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod_id, config=cfg, sandbox_config=self.pod_config), timeout=60).container_id)
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        return cid

    def sh(self, cid: str, script: str) -> str:
        resp = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=10),
                                timeout=30)
        assert resp.exit_code == 0, resp.stderr.decode()
        return resp.stdout.decode()

    def remove(self, cid: str) -> None:
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)

    def close(self) -> None:
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=self.pod_id), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=self.pod_id), timeout=60)


def mount_points(rig: Rig, cid: str) -> set[str]:
    return {line.split()[1] for line in rig.sh(cid, "cat /proc/mounts").splitlines()}


def volumes_dir(server: CriServer, cid: str) -> Path:
    return server.dir / "root" / "containers" / cid / "volumes"


@pytest.fixture
def bind_rig(pod_rig: PodRig, volume_image: str, tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(pod_rig.server, volume_image, tmp_path, host_network=False)
    yield rig
    rig.close()


def test_bind_mode_seeds_a_per_container_volume_with_the_image_content(bind_rig: Rig) -> None:
    rig = bind_rig
    a = rig.run("a")
    assert {"/data", "/cache"} <= mount_points(rig, a)
    # Ownership and modes come with the copy, as containerd's copy-up keeps them.
    assert rig.sh(a, "stat -c '%u:%g %a' /data /data/hello /data/sub /data/sub/deep").split("\n")[:4] == [
        f"{WWW}:{WWW} 750", f"{WWW}:{WWW} 640", f"{WWW}:{WWW} 700", f"{WWW}:{WWW} 644"]
    assert rig.sh(a, "cat /data/hello; readlink /data/link; ls -A /cache | wc -l") == "seed\nhello\n0\n"
    rig.sh(a, "echo from-a > /data/new")

    # The volume lives in the container's own directory on the host (not in its rootfs layer).
    host_dirs = sorted(volumes_dir(rig.server, a).iterdir())
    assert len(host_dirs) == 2
    assert [(d / "new").read_text() for d in host_dirs if (d / "new").exists()] == ["from-a\n"]

    # A second container of the same image gets a fresh copy.
    b = rig.run("b")
    assert rig.sh(b, "cat /data/hello; test -e /data/new || echo absent") == "seed\nabsent\n"

    # The spec runc got binds the volume directories.
    spec = json.loads(rig.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=a, verbose=True),
                                             timeout=10).info["info"])["runtimeSpec"]
    binds = {m["destination"]: m["source"] for m in spec["mounts"] if m["destination"] in ("/data", "/cache")}
    assert {Path(s).parent for s in binds.values()} == {volumes_dir(rig.server, a)}

    # Removed with the container.
    rig.remove(a)
    deadline = time.monotonic() + 10
    while (rig.server.dir / "root" / "containers" / a).exists():
        assert time.monotonic() < deadline, "volume directory left after RemoveContainer"
        time.sleep(0.05)
    assert volumes_dir(rig.server, b).is_dir()
    rig.remove(b)


def test_a_cri_mount_at_the_same_path_wins(bind_rig: Rig, tmp_path: Path) -> None:
    host = tmp_path / "mine"
    host.mkdir()
    (host / "own").write_text("mine\n")
    rig = bind_rig
    cid = rig.run(mounts=[api_pb2.Mount(container_path="/data", host_path=str(host))])
    assert rig.sh(cid, "cat /data/own; test -e /data/hello || echo no-image-content") == "mine\nno-image-content\n"
    assert len(list(volumes_dir(rig.server, cid).iterdir())) == 1  # /cache still gets its volume
    rig.remove(cid)


@pytest.fixture
def mode_server(containerd: PrivateContainerd, test_images: TestImages,
                request: pytest.FixtureRequest) -> Iterator[CriServer]:
    server = CriServer(containerd.address, hosts_dir=str(containerd.hosts_dir),
                       runc_root=str(containerd.runc_root), sandbox_image=test_images.pause.ref)
    server.config_path.write_text(server.config_path.read_text().replace(
        "[image]\n", f'[image]\nimage_volumes = "{request.param}"\n'))
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.mark.parametrize("mode_server", ["mkdir"], indirect=True)
def test_mkdir_mode_only_creates_missing_paths_in_the_rootfs(mode_server: CriServer, volume_image: str,
                                                             tmp_path: Path) -> None:
    rig = Rig(mode_server, volume_image, tmp_path, host_network=True)
    try:
        cid = rig.run()
        assert not {"/data", "/cache"} & mount_points(rig, cid)
        assert rig.sh(cid, "cat /data/hello; test -d /cache && echo made") == "seed\nmade\n"
        assert not volumes_dir(mode_server, cid).exists()
        rig.remove(cid)
    finally:
        rig.close()


@pytest.mark.parametrize("mode_server", ["ignore"], indirect=True)
def test_ignore_mode_leaves_the_rootfs_alone(mode_server: CriServer, volume_image: str, tmp_path: Path) -> None:
    rig = Rig(mode_server, volume_image, tmp_path, host_network=True)
    try:
        cid = rig.run()
        assert not {"/data", "/cache"} & mount_points(rig, cid)
        assert rig.sh(cid, "cat /data/hello; test -e /cache || echo none") == "seed\nnone\n"
        rig.remove(cid)
    finally:
        rig.close()


def test_bad_mode_is_a_config_error(containerd: PrivateContainerd) -> None:
    server = CriServer(containerd.address)
    try:
        server.config_path.write_text(server.config_path.read_text().replace(
            "[image]\n", '[image]\nimage_volumes = "copy"\n'))
        proc = subprocess.run([CRI_RUNTIME, "serve", "--config", str(server.config_path)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1
        assert "image.image_volumes: must be bind, mkdir or ignore, got 'copy'" in proc.stderr
    finally:
        server.cleanup()
