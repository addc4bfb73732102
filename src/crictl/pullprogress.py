"""Progress of an image pull on a terminal, from containerd's content ingests.

A CRI PullImage call says nothing until it is done. When the CLI can reach
containerd's socket (the runtime's, usually /run/containerd/containerd.sock,
or $CONTAINERD_ADDRESS), the active ingests of the namespace show what is
being downloaded — bytes so far of the expected total, and how many layers;
otherwise only the elapsed time is shown. Nothing is printed when stderr is
not a terminal.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

DEFAULT_CONTAINERD = "/run/containerd/containerd.sock"
DEFAULT_NAMESPACE = "k8s.io"


@dataclass(frozen=True)
class IngestTotals:
    active: int
    offset: int
    total: int


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.1f}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1000
    return f"{value:.1f}GB"


def render(image: str, elapsed: float, frame: str, totals: IngestTotals | None) -> str:
    """The one status line (without carriage return)."""
    if totals is None or totals.active == 0:
        return f"{frame} Pulling {image} ... {elapsed:5.1f}s"
    size = f"{_human(totals.offset)}/{_human(totals.total)}" if totals.total else _human(totals.offset)
    layers = "layer" if totals.active == 1 else "layers"
    return f"{frame} Pulling {image}: {size}, {totals.active} {layers} downloading ... {elapsed:5.1f}s"


def containerd_ingests(address: str, namespace: str) -> Callable[[], IngestTotals | None] | None:
    """A poller of the namespace's active ingests, or None when containerd is not reachable."""
    path = address.removeprefix("unix://")
    if not os.path.exists(path):
        return None
    from cri_protos.containerd.services.content.v1 import content_pb2
    from cri_runtime.grpc_client.blocking import Channel
    from cri_runtime.grpc_client.status import RpcError

    channel = Channel(path)  # its own connection: polled from the progress thread
    method = "/containerd.services.content.v1.Content/ListStatuses"
    request = content_pb2.ListStatusesRequest().SerializeToString()
    metadata = (("containerd-namespace", namespace),)

    def poll() -> IngestTotals | None:
        try:
            resp = content_pb2.ListStatusesResponse.FromString(
                channel.unary(method, request, timeout=0.5, metadata=metadata)
            )
        except RpcError:
            return None
        statuses = list(resp.statuses)
        return IngestTotals(len(statuses), sum(s.offset for s in statuses), sum(s.total for s in statuses))

    return poll


class PullProgress:
    """Context manager showing the progress line while a pull runs."""

    def __init__(
        self,
        image: str,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        poller: Callable[[], IngestTotals | None] | None = None,
        interval: float = 0.2,
    ) -> None:
        self.image = image
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self._poller = poller
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()
        self.lines: list[str] = []

    def __enter__(self) -> PullProgress:
        if self.enabled:
            if self._poller is None:
                address = os.environ.get("CONTAINERD_ADDRESS", DEFAULT_CONTAINERD)
                namespace = os.environ.get("CONTAINERD_NAMESPACE", DEFAULT_NAMESPACE)
                self._poller = containerd_ingests(address, namespace)
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        frames = "|/-\\"
        tick = 0
        while not self._stop.wait(self.interval):
            totals = self._poller() if self._poller is not None else None
            line = render(self.image, time.monotonic() - self._start, frames[tick % 4], totals)
            self.lines.append(line)
            self.stream.write(f"\r\x1b[K{line}")
            self.stream.flush()
            tick += 1

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\r\x1b[K")
            self.stream.flush()
