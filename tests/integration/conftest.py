"""Fixtures that start cri-runtime itself against the rig's private containerd."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.cri_server import CriServer
from tests.pod_rig import PodRig
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.rig.network import TestNetwork


@pytest.fixture(scope="session")
def cri_server(containerd: PrivateContainerd) -> Iterator[CriServer]:
    """A session-wide cri-runtime on the private containerd (CRI plugin off)."""
    with CriServer(containerd.address, hosts_dir=str(containerd.hosts_dir),
                   runc_root=str(containerd.runc_root)) as server:
        yield server


@pytest.fixture
def make_cri_server(containerd: PrivateContainerd) -> Iterator[Callable[..., CriServer]]:
    """Factory for servers a test may kill, restart or configure differently."""
    made: list[CriServer] = []

    def make(**kwargs: object) -> CriServer:
        kwargs.setdefault("hosts_dir", str(containerd.hosts_dir))
        kwargs.setdefault("runc_root", str(containerd.runc_root))
        server = CriServer(containerd.address, **kwargs)  # type: ignore[arg-type]
        made.append(server)
        return server

    yield make
    for server in made:
        server.cleanup()


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
