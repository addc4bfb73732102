"""The server's own Prometheus metrics: registry, exposition, HTTP endpoint, pull counting."""

from __future__ import annotations

import asyncio
import types
import urllib.error
import urllib.request

import pytest

from cri_runtime.images.manager import ImageManager
from cri_runtime.metrics.http import MetricsHttpServer, split_address
from cri_runtime.metrics.registry import Counter, Histogram, Registry
from cri_runtime.metrics.server_metrics import ServerMetrics
from cri_runtime.stats import wiring


def test_exposition_format() -> None:
    reg = Registry()
    c = Counter("x_total", "Things.", ("method",))
    h = Histogram("lat_seconds", "Latency.", ("method",), buckets=(0.1, 1.0))
    reg.register(c)
    reg.register(h)
    c.inc("Version")
    c.inc("Version", amount=2)
    c.inc('we"ird\n')
    h.observe(0.05, "Version")
    h.observe(5.0, "Version")
    text = reg.expose()
    assert "# TYPE x_total counter" in text
    assert 'x_total{method="Version"} 3' in text
    assert 'x_total{method="we\\"ird\\n"} 1' in text
    assert 'lat_seconds_bucket{method="Version",le="0.1"} 1' in text
    assert 'lat_seconds_bucket{method="Version",le="1"} 1' in text
    assert 'lat_seconds_bucket{method="Version",le="+Inf"} 2' in text
    assert 'lat_seconds_count{method="Version"} 2' in text
    assert 'lat_seconds_sum{method="Version"} 5.05' in text
    with pytest.raises(ValueError):
        c.inc("a", "b")
    with pytest.raises(ValueError):
        reg.register(Counter("x_total", "dup"))


def test_server_metrics_and_http_endpoint() -> None:
    m = ServerMetrics()
    m.observe_rpc("ListContainers", "OK", 0.002)
    m.observe_rpc("ListContainers", "NOT_FOUND", 0.001)
    m.track_objects(lambda: ["running", "running", "exited"], lambda: ["ready"])
    http = MetricsHttpServer("127.0.0.1:0", m.registry)
    http.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http.port}/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = resp.read().decode()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{http.port}/other", timeout=5)
    finally:
        http.stop()
    assert 'cri_runtime_grpc_requests_total{method="ListContainers",code="OK"} 1' in body
    assert 'cri_runtime_grpc_requests_total{method="ListContainers",code="NOT_FOUND"} 1' in body
    assert 'cri_runtime_grpc_request_duration_seconds_count{method="ListContainers"} 2' in body
    assert 'cri_runtime_containers{state="running"} 2' in body
    assert 'cri_runtime_containers{state="exited"} 1' in body
    assert 'cri_runtime_pod_sandboxes{state="ready"} 1' in body


def test_split_address() -> None:
    assert split_address("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert split_address(":9100") == ("127.0.0.1", 9100)
    assert split_address("[::1]:9100") == ("::1", 9100)


def test_every_pull_of_the_image_manager_is_counted() -> None:
    async def fake_pull(ref: str, credentials: object, pinned: bool) -> object:
        if ref == "bad":
            raise RuntimeError("no")
        return types.SimpleNamespace(info=types.SimpleNamespace(size=1234))

    m = ServerMetrics()
    images = ImageManager.__new__(ImageManager)  # only the pull bookkeeping is under test
    images.pull_observers = []
    images._pull = fake_pull  # type: ignore[method-assign,assignment]
    wiring.count_pulls(images, m)
    wiring.count_pulls(images, m)  # idempotent: still counted once

    async def run() -> None:
        await images.pull("ok")
        with pytest.raises(RuntimeError):
            await images.pull("bad")

    asyncio.run(run())
    assert m.pulls.value("success") == 1 and m.pulls.value("failure") == 1
    assert m.pull_bytes.value() == 1234
