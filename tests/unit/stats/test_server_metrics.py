"""The server's own Prometheus metrics: registry, exposition, HTTP endpoint, pull counting."""

from __future__ import annotations

import asyncio
import types
import urllib.error
import urllib.request

import pytest

from cri_runtime.config import ImageConfig
from cri_runtime.images.manager import ImageManager
from cri_runtime.metrics.http import MetricsHttpServer, split_address
from cri_runtime.metrics.server_metrics import ServerMetrics


def _sample(m: ServerMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_server_metrics_and_http_endpoint() -> None:
    m = ServerMetrics()
    m.observe_rpc("ListContainers", "OK", 0.002)
    m.observe_rpc("ListContainers", "NOT_FOUND", 0.001)
    m.observe_rpc("PullImage", "OK", 0.5)
    m.observe_rpc("GetContainerEvents", "CANCELLED", 3.0, stream=True, sent=4)
    m.track_objects(lambda: ["running", "running", "exited"], lambda: ["ready"])
    http = MetricsHttpServer("127.0.0.1:0", m.registry)
    http.start()
    try:
        bodies = []
        for path in ("/metrics", "/v1/metrics"):
            with urllib.request.urlopen(f"http://127.0.0.1:{http.port}{path}", timeout=5) as resp:
                assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                bodies.append(resp.read().decode())
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{http.port}/other", timeout=5)
    finally:
        http.stop()
    body = bodies[0]
    rt = {"grpc_service": "runtime.v1.RuntimeService", "grpc_method": "ListContainers", "grpc_type": "unary"}
    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="ListContainers",' \
           'grpc_service="runtime.v1.RuntimeService",grpc_type="unary"} 1.0' in body
    assert _sample(m, "grpc_server_handled_total", **rt, grpc_code="NOT_FOUND") == 1
    assert _sample(m, "grpc_server_started_total", **rt) == 2
    assert _sample(m, "grpc_server_handling_seconds_count", **rt) == 2
    assert _sample(m, "grpc_server_handled_total", grpc_service="runtime.v1.ImageService",
                   grpc_method="PullImage", grpc_type="unary", grpc_code="OK") == 1
    assert _sample(m, "grpc_server_msg_sent_total", grpc_service="runtime.v1.RuntimeService",
                   grpc_method="GetContainerEvents", grpc_type="server_stream") == 4
    assert _sample(m, "container_runtime_operations_total", operation="ListContainers") == 2
    assert _sample(m, "container_runtime_operations_errors_total", operation="ListContainers",
                   error="NOT_FOUND") == 1
    assert _sample(m, "container_runtime_operations_latency_seconds_count", operation="ListContainers") == 2
    assert 'container_runtime_containers{state="running"} 2.0' in body
    assert 'container_runtime_containers{state="exited"} 1.0' in body
    assert 'container_runtime_pod_sandboxes{state="ready"} 1.0' in body
    assert "process_resident_memory_bytes " in body and "process_cpu_seconds_total " in body
    assert "_created" not in body


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
    # Only the pull bookkeeping is under test: no containerd behind it, the pull itself faked.
    images = ImageManager(None, ImageConfig(), "overlayfs", on_pull=m.observe_pull)  # type: ignore[arg-type]
    images._pull = fake_pull  # type: ignore[method-assign,assignment]

    async def run() -> None:
        await images.pull("ok")
        with pytest.raises(RuntimeError):
            await images.pull("bad")

    asyncio.run(run())
    assert _sample(m, "container_runtime_image_pulls_success_total") == 1
    assert _sample(m, "container_runtime_image_pulls_failure_total") == 1
    assert _sample(m, "container_runtime_image_pulls_bytes_total") == 1234
    assert _sample(m, "container_runtime_image_pulls_duration_seconds_count") == 1


def test_stuck_shim_counters_are_exported_by_action() -> None:
    from prometheus_client import generate_latest

    from cri_runtime.containerd import shims
    from cri_runtime.metrics.server_metrics import SERVER

    before = shims.COUNTERS.stats_skipped
    shims.COUNTERS.stats_skipped += 2
    try:
        text = generate_latest(SERVER.registry).decode()
        assert f'container_runtime_stuck_shims_total{{action="stats_skipped"}} {float(before + 2)}' in text
        assert 'container_runtime_stuck_shims_total{action="shim_killed"}' in text
    finally:
        shims.COUNTERS.stats_skipped = before
