"""Image config VOLUMEs side by side with containerd's built-in CRI (issue 15, item 1).

The same image (VOLUME /data with www-owned content, VOLUME /cache absent from the
image) runs on containerd's CRI and on ours; what the container sees must match:
both paths are mounts, the content and its ownership are copied up, and a write
stays in that container's volume.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc
from tests.integration.crictl.conftest import LiveCri
from tests.pod_rig import PodRig
from tests.rig.oci import ImageConfig, LayerBuilder, busybox_image, push
from tests.rig.registry import LocalRegistry

WWW = 33
PROBE = ("grep -E ' /(data|cache) ' /proc/mounts | cut -d' ' -f2 | sort; "
         "stat -c '%n %u:%g %a' /data /data/hello /data/sub; cat /data/hello; readlink /data/link; "
         "ls -A /cache | wc -l; echo x > /data/new && cat /data/new")


@pytest.fixture(scope="module")
def volume_image(registry: LocalRegistry) -> str:
    layer = (LayerBuilder()
             .dir("/data", mode=0o750, uid=WWW, gid=WWW)
             .file("/data/hello", "seed\n", mode=0o640, uid=WWW, gid=WWW)
             .dir("/data/sub", mode=0o700, uid=WWW, gid=WWW)
             .symlink("/data/link", "hello"))
    image = busybox_image(ImageConfig(cmd=["sh"], volumes=["/data", "/cache"]), extra_layers=[layer])
    return push(image, registry, "test/volumes-side", "latest").ref


def probe(endpoint: str, image: str, log_dir: Path) -> str:
    """Run a container of `image` on `endpoint` and return what PROBE prints inside it."""
    channel = grpc.insecure_channel(endpoint)
    rt = api_pb2_grpc.RuntimeServiceStub(channel)
    api_pb2_grpc.ImageServiceStub(channel).PullImage(
        api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)), timeout=60)
    name = f"vols-{uuid.uuid4().hex[:8]}"
    pod_cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="vols", uid=uuid.uuid4().hex),
        log_directory=str(log_dir / name))
    pod_cfg.linux.security_context.namespace_options.network = api_pb2.NODE
    pod_id = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod_cfg), timeout=60).pod_sandbox_id
    try:
        cid = rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, sandbox_config=pod_cfg, config=api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name="c"), image=api_pb2.ImageSpec(image=image),
                command=["sleep", "60"])), timeout=60).container_id
        rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        resp = rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", PROBE], timeout=10),
                           timeout=30)
        assert resp.exit_code == 0, resp.stderr.decode()
        return str(resp.stdout.decode())
    finally:
        rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        channel.close()


@pytest.fixture(scope="module")
def outputs(live_cri: LiveCri, pod_rig: PodRig, volume_image: str) -> Iterator[tuple[str, str]]:
    yield (probe(live_cri.endpoint, volume_image, live_cri.log_dir),
           probe(pod_rig.server.endpoint, volume_image, live_cri.log_dir))


def test_the_container_sees_the_same_volumes_as_on_containerd(outputs: tuple[str, str]) -> None:
    theirs, ours = outputs
    assert ours == theirs
    assert ours.splitlines() == ["/cache", "/data", f"/data {WWW}:{WWW} 750", f"/data/hello {WWW}:{WWW} 640",
                                 f"/data/sub {WWW}:{WWW} 700", "seed", "hello", "0", "x"]
