"""Pull progress: rendered from containerd's content ingests, elapsed time otherwise."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri_protos.containerd.services.content.v1 import content_pb2, content_pb2_grpc
from crictl import pullprogress
from tests.waiting import wait_until


class FakeContent(content_pb2_grpc.ContentServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.namespaces: list[str] = []

    def ListStatuses(self, request: Any, context: Any) -> Any:
        self.namespaces.append(dict(context.invocation_metadata()).get("containerd-namespace", ""))
        return content_pb2.ListStatusesResponse(
            statuses=[
                content_pb2.Status(ref="layer-1", offset=5_000_000, total=10_000_000),
                content_pb2.Status(ref="layer-2", offset=1_500_000, total=20_000_000),
            ]
        )


@pytest.fixture
def fake_containerd(tmp_path: Path) -> Iterator[tuple[str, FakeContent]]:
    servicer = FakeContent()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    content_pb2_grpc.add_ContentServicer_to_server(servicer, server)
    sock = str(tmp_path / "c.sock")
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    yield sock, servicer
    server.stop(0)


def test_render_with_and_without_ingests() -> None:
    assert pullprogress.render("busybox", 1.25, "|", None) == "| Pulling busybox ...   1.2s"
    line = pullprogress.render("busybox", 2.0, "/", pullprogress.IngestTotals(2, 6_500_000, 30_000_000))
    assert line == "/ Pulling busybox: 6.5MB/30.0MB, 2 layers downloading ...   2.0s"


def test_ingests_are_read_from_containerd(fake_containerd: tuple[str, FakeContent]) -> None:
    sock, servicer = fake_containerd
    poll = pullprogress.containerd_ingests(sock, "k8s.io")
    assert poll is not None
    assert poll() == pullprogress.IngestTotals(2, 6_500_000, 30_000_000)
    assert servicer.namespaces == ["k8s.io"]


def test_unreachable_containerd_means_elapsed_time_only(tmp_path: Path) -> None:
    assert pullprogress.containerd_ingests(str(tmp_path / "none.sock"), "k8s.io") is None


def test_progress_lines_on_a_terminal(fake_containerd: tuple[str, FakeContent]) -> None:
    out = io.StringIO()
    poll = pullprogress.containerd_ingests(fake_containerd[0], "k8s.io")
    with pullprogress.PullProgress("busybox", stream=out, enabled=True, poller=poll, interval=0.01) as p:
        wait_until(lambda: p.lines, "a progress line")
    assert p.lines and "6.5MB/30.0MB, 2 layers downloading" in p.lines[-1]
    assert out.getvalue().endswith("\r\x1b[K")


def test_silent_when_not_a_terminal() -> None:
    out = io.StringIO()
    with pullprogress.PullProgress("busybox", stream=out, interval=0.01):
        time.sleep(0.05)
    assert out.getvalue() == ""
