"""Fixtures that start cri-runtime itself against the rig's private containerd."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.cri_server import CriServer
from tests.rig.containerd import PrivateContainerd


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
