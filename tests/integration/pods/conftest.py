"""A cri-runtime with a pause image and a host-only CNI network, for pod tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.cri_server import CriServer
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.rig.network import TestNetwork


@dataclass
class PodRig:
    server: CriServer
    network: TestNetwork
    images: TestImages


@pytest.fixture(scope="session")
def pod_rig(containerd: PrivateContainerd, test_images: TestImages) -> Iterator[PodRig]:
    server = CriServer(containerd.address, hosts_dir=str(containerd.hosts_dir),
                       runc_root=str(containerd.runc_root), sandbox_image=test_images.pause.ref)
    network = TestNetwork(server.cni_conf_dir)
    try:
        server.start()
        yield PodRig(server, network, test_images)
    finally:
        server.cleanup()
        network.close()


@pytest.fixture
def own_pod_rig(containerd: PrivateContainerd, test_images: TestImages) -> Iterator[PodRig]:
    """A server of the test's own (it may kill and restart it), with its own network."""
    server = CriServer(containerd.address, hosts_dir=str(containerd.hosts_dir),
                       runc_root=str(containerd.runc_root), sandbox_image=test_images.pause.ref)
    network = TestNetwork(server.cni_conf_dir, index=1)
    try:
        server.start()
        yield PodRig(server, network, test_images)
    finally:
        server.cleanup()
        network.close()
