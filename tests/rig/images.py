"""The standard test image set, built from busybox and pushed to a local registry.

=====================  ==========================================================
``test/busybox:latest``  OCI, gzip, one layer, no entrypoint, ``Cmd ["sh"]``
``test/busybox:user``    same rootfs, ``User www`` (uid/gid 33), ``WorkingDir /var/www``
``test/busybox:docker``  Docker schema 2 manifest + config, gzip layer
``test/busybox:plain``   OCI with an *uncompressed* layer
``test/config:latest``   every config field: Entrypoint, Cmd, Env, WorkingDir, Labels,
                         StopSignal, ExposedPorts, Volumes
``test/layers:latest``   3 layers: rootfs; ``/layer1``; ``/layer2`` plus a whiteout of
                         ``/etc/hostname``
``test/multi:latest``    OCI index: linux/amd64 (busybox) + linux/arm64/v8 (stand-in)
``test/pause:latest``    a pause stand-in: sleeps until SIGTERM/SIGINT (the sandbox image)
=====================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from .oci import (
    Artifact,
    Image,
    ImageConfig,
    ImageIndex,
    LayerBuilder,
    PushResult,
    busybox_image,
    foreign_platform_image,
    push,
)
from .registry import LocalRegistry

CONFIG_IMAGE_CONFIG = ImageConfig(
    entrypoint=["/bin/sh", "-c"],
    cmd=["echo configured"],
    env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello", "EMPTY="],
    working_dir="/tmp",
    labels={"org.example.test": "config", "tier": "rig"},
    stop_signal="SIGINT",
    exposed_ports=["80/tcp", "53/udp"],
    volumes=["/data"],
)


@dataclass(frozen=True)
class TestImage:
    """One pushed image: ``ref`` to pull, ``digest`` (manifest/index), ``image_id`` (config)."""

    __test__ = False  # not a pytest test class

    ref: str
    digest: str
    image_id: str
    artifact: Artifact

    @property
    def ref_by_digest(self) -> str:
        return f"{self.ref.rsplit(':', 1)[0]}@{self.digest}"

    @property
    def image(self) -> Image:
        """The single-platform image (the amd64 member for an index)."""
        a = self.artifact
        return a.for_platform("amd64") if isinstance(a, ImageIndex) else a


@dataclass(frozen=True)
class TestImages:
    """The standard set; attribute per image, ``by_name["test/busybox:user"]`` for all."""

    __test__ = False

    registry_host: str
    busybox: TestImage
    busybox_user: TestImage
    busybox_docker: TestImage
    busybox_plain: TestImage
    config: TestImage
    layers: TestImage
    multi: TestImage
    pause: TestImage

    @property
    def by_name(self) -> dict[str, TestImage]:
        host = self.registry_host + "/"
        return {
            img.ref.removeprefix(host): img
            for img in (
                self.busybox,
                self.busybox_user,
                self.busybox_docker,
                self.busybox_plain,
                self.config,
                self.layers,
                self.multi,
                self.pause,
            )
        }


def layered_image() -> Image:
    """busybox + two layers; the top one also deletes /etc/hostname (whiteout)."""
    layer1 = LayerBuilder().file("layer1", "one\n")
    layer2 = LayerBuilder().file("layer2", "two\n").whiteout("etc/hostname")
    return busybox_image(ImageConfig(cmd=["sh"]), extra_layers=[layer1, layer2])


PAUSE_IMAGE_CONFIG = ImageConfig(
    entrypoint=["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"],
)


def multi_arch_index() -> ImageIndex:
    return ImageIndex([busybox_image(), foreign_platform_image("arm64", "v8")])


def _push(registry: LocalRegistry, artifact: Artifact, name: str) -> TestImage:
    repo, tag = name.rsplit(":", 1)
    res: PushResult = push(artifact, registry, repo, tag)
    return TestImage(res.ref, res.digest, res.image_id, artifact)


def push_standard_images(registry: LocalRegistry) -> TestImages:
    """Build every standard image and push it to ``registry``."""
    return TestImages(
        registry_host=registry.host,
        busybox=_push(registry, busybox_image(), "test/busybox:latest"),
        busybox_user=_push(
            registry,
            busybox_image(ImageConfig(cmd=["sh"], user="www", working_dir="/var/www")),
            "test/busybox:user",
        ),
        busybox_docker=_push(registry, busybox_image(fmt="docker"), "test/busybox:docker"),
        busybox_plain=_push(registry, busybox_image(compression="none"), "test/busybox:plain"),
        config=_push(registry, busybox_image(CONFIG_IMAGE_CONFIG), "test/config:latest"),
        layers=_push(registry, layered_image(), "test/layers:latest"),
        multi=_push(registry, multi_arch_index(), "test/multi:latest"),
        pause=_push(registry, busybox_image(PAUSE_IMAGE_CONFIG), "test/pause:latest"),
    )
