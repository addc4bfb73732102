"""The per-image users/groups cache goes when its image goes, also while we were down."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

from cri_protos.runtime.v1 import api_pb2
from tests.pod_rig import PodRig


def test_cached_accounts_follow_their_image(own_pod_rig: PodRig, tmp_path: Path) -> None:
    server, images = own_pod_rig.server, own_pod_rig.images
    rt, img = server.runtime(), server.images()
    accounts = server.dir / "state" / "image-accounts"
    image = images.busybox_user
    img.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image.ref)), timeout=60)
    name = f"acc-{uuid.uuid4().hex[:8]}"
    pod_cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="t", uid=uuid.uuid4().hex),
        hostname=name, log_directory=str(tmp_path))
    pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod_cfg), timeout=60).pod_sandbox_id
    try:
        cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, sandbox_config=pod_cfg,
            config=api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="c"),
                                           image=api_pb2.ImageSpec(image=image.ref), command=["true"])),
            timeout=60).container_id
        cached = accounts / image.image_id.removeprefix("sha256:")
        assert (cached / "etc" / "passwd").is_file()
        rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)
        img.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image.ref)), timeout=30)
        assert not cached.exists()

        # Left behind by an image removed while the server was down: pruned at recovery.
        stale = accounts / ("f" * 64)
        (stale / "etc").mkdir(parents=True)
        server.kill(signal.SIGKILL)
        server.start()
        server.runtime().ListContainers(api_pb2.ListContainersRequest(), timeout=30)  # waits for recovery
        assert not stale.exists()
    finally:
        rt = server.runtime()
        rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
