"""`composition.build` wires every part at construction: the hooks it passes reach the parts built after."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri_runtime import composition
from cri_runtime.config import Config
from cri_runtime.metrics.server_metrics import SERVER
from cri_runtime.oci.user import ImageAccounts

IMAGE_ID = "sha256:" + "a" * 64


@pytest.fixture
async def runtime(tmp_path: Path) -> composition.Runtime:
    """Built on a running loop, as the server builds it (some parts bind to the loop)."""
    config = Config()
    config.server.root_dir = str(tmp_path / "root")
    config.server.state_dir = str(tmp_path / "state")
    return composition.build(config)


def test_building_makes_nothing_on_disk(runtime: composition.Runtime, tmp_path: Path) -> None:
    assert list(tmp_path.iterdir()) == []


def test_the_image_store_keeps_its_copy_only_while_the_event_monitor_is_subscribed(
        runtime: composition.Runtime) -> None:
    assert runtime.images.store.events_live() is False
    runtime.events.subscribed.set()
    assert runtime.images.store.events_live() is True
    runtime.events.subscribed.clear()
    assert runtime.images.store.events_live() is False


def test_a_removed_image_is_forgotten_by_the_container_manager(runtime: composition.Runtime) -> None:
    runtime.containers._accounts[IMAGE_ID] = ImageAccounts.from_rootfs(None)
    assert runtime.images.on_removed is not None
    runtime.images.on_removed(IMAGE_ID)
    assert IMAGE_ID not in runtime.containers._accounts


def test_pulls_are_counted_by_the_server_metrics(runtime: composition.Runtime) -> None:
    assert runtime.images.on_pull == SERVER.observe_pull
