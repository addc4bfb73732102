"""Standard metrics, JSON logs and OpenTelemetry spans of a real server running a real pod.

The OTLP receiver is a real gRPC server implementing the collector's
TraceService (opentelemetry-proto's generated service), so spans travel the
exporter's real wire path.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.containers.relay import cgroup as relay_cgroup
from tests.cri_server import CriServer
from tests.rig import paths
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.rig.network import TestNetwork

RELAY_CGROUP = f"/crirt-{paths.session_token()}-obs-relays"


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Collects every exported span (name, ids, kind) in memory."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request: Any, context: Any) -> Any:
        with self._lock:
            for rs in request.resource_spans:
                self.resources.append({a.key: a.value.string_value for a in rs.resource.attributes})
                for ss in rs.scope_spans:
                    self.spans.extend(ss.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.spans)

    def stop(self) -> None:
        self.server.stop(grace=None)


class OtlpHttpReceiver:
    """OTLP/HTTP: POSTs of a protobuf ExportTraceServiceRequest to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        received = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf":
                    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                    received.extend(s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def observed(containerd: PrivateContainerd, test_images: TestImages,
             receiver: OtlpReceiver) -> Iterator[tuple[CriServer, int]]:
    """A server with metrics, JSON logs and tracing on, and a network for one pod."""
    port = free_port()
    server = CriServer(containerd.address, hosts_dir=str(containerd.hosts_dir),
                       runc_root=str(containerd.runc_root), sandbox_image=test_images.pause.ref,
                       extra_toml=f'[tracing]\nendpoint = "127.0.0.1:{receiver.port}"\nprotocol = "grpc"\n'
                                  f'service_name = "cri-runtime-test"\n'
                                  f'[runtime]\nrelay_cgroup = "{RELAY_CGROUP}"\n')
    drop = server.dir / "config.d"
    drop.mkdir()
    # metrics and JSON logs come from a drop-in: [server] keys merge with the main file's
    (drop / "10-observe.toml").write_text(f'[server]\nmetrics_address = "127.0.0.1:{port}"\nlog_format = "json"\n')
    network = TestNetwork(server.cni_conf_dir, index=3)
    try:
        server.start()
        yield server, port
    finally:
        server.cleanup()
        network.close()
        wait_for(lambda: _relay_cgroup_removed(), f"cgroup {RELAY_CGROUP} to empty", timeout=15)


def _relay_cgroup_removed() -> bool:
    relay_cgroup.remove(RELAY_CGROUP)
    return not any((m / RELAY_CGROUP.lstrip("/")).exists() for m in relay_cgroup.hierarchies())


def pod_config() -> api_pb2.PodSandboxConfig:
    name = f"obs-{uuid.uuid4().hex[:8]}"
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="obs", uid=uuid.uuid4().hex), hostname=name)


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return str(resp.read().decode())


def sample(body: str, name: str) -> float:
    return float(next(line for line in body.splitlines() if line.startswith(name + " ")).split()[1])


def test_pod_lifecycle_is_measured_traced_and_logged_as_json(observed: tuple[CriServer, int],
                                                             receiver: OtlpReceiver, test_images: TestImages) -> None:
    server, port = observed
    rt = server.runtime()
    trace_id, parent_id = os.urandom(16), os.urandom(8)
    traceparent = f"00-{trace_id.hex()}-{parent_id.hex()}-01"
    pod_id = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod_config()), timeout=60,
                              metadata=[("traceparent", traceparent)]).pod_sandbox_id
    try:
        body = scrape(port)
        assert ('grpc_server_handled_total{grpc_code="OK",grpc_method="RunPodSandbox",'
                'grpc_service="runtime.v1.RuntimeService",grpc_type="unary"} 1.0') in body
        assert 'grpc_server_handling_seconds_count{grpc_method="RunPodSandbox",' in body
        assert 'container_runtime_operations_total{operation="RunPodSandbox"} 1.0' in body
        assert 'container_runtime_pod_sandboxes{state="ready"} 1.0' in body
        rss = next(line for line in body.splitlines() if line.startswith("process_resident_memory_bytes "))
        assert float(rss.split()[1]) > 10 * 1024 * 1024
        assert "process_cpu_seconds_total " in body and "process_open_fds " in body
        v1 = scrape(port, "/v1/metrics")
        assert 'grpc_method="RunPodSandbox"' in v1
    finally:
        rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60,
                          metadata=[("traceparent", traceparent)])
        rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)

    # Image pulls: successes with their bytes and duration, and failures.
    server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=test_images.busybox.ref)),
                              timeout=120)
    with pytest.raises(grpc.RpcError):
        server.images().PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=f"{test_images.registry_host}/test/no-such-image:1")), timeout=120)
    body = scrape(port)
    assert sample(body, "container_runtime_image_pulls_success_total") >= 1
    assert sample(body, "container_runtime_image_pulls_failure_total") >= 1
    assert sample(body, "container_runtime_image_pulls_bytes_total") > 1000
    assert sample(body, "container_runtime_image_pulls_duration_seconds_count") >= 1

    # Errors are counted by code too (the caller's mistake: no such pod).
    with pytest.raises(grpc.RpcError):
        rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id="nosuchpod"), timeout=10)
    body = scrape(port)
    assert ('grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="PodSandboxStatus",'
            'grpc_service="runtime.v1.RuntimeService",grpc_type="unary"} 1.0') in body
    assert 'container_runtime_operations_errors_total{error="NOT_FOUND",operation="PodSandboxStatus"} 1.0' in body

    # Spans: the CRI call is a child of the caller's span, containerd calls and CNI ADD/DEL children of it.
    def run_span() -> Any:
        return next((s for s in receiver.snapshot() if s.name == "runtime.v1.RuntimeService/RunPodSandbox"
                     and s.trace_id == trace_id), None)

    run = wait_for(run_span, "the RunPodSandbox span at the OTLP receiver")
    assert run.parent_span_id == parent_id
    assert run.kind == 2  # SPAN_KIND_SERVER
    attributes = {a.key: a.value.string_value for a in run.attributes}
    assert attributes["rpc.method"] == "RunPodSandbox"

    def children_of(span: Any) -> list[Any]:
        return [s for s in receiver.snapshot() if s.trace_id == trace_id and s.parent_span_id == span.span_id]

    def run_children() -> list[Any]:
        kids = children_of(run)
        names = {s.name for s in kids}
        return kids if "CNI ADD" in names and "containerd.services.tasks.v1.Tasks/Create" in names else []

    kids = wait_for(run_children, "CNI ADD and containerd child spans of RunPodSandbox")
    assert all(k.kind == 3 for k in kids)  # SPAN_KIND_CLIENT
    assert "containerd.services.containers.v1.Containers/Create" in {k.name for k in kids}

    def stop_span() -> Any:
        return next((s for s in receiver.snapshot() if s.name == "runtime.v1.RuntimeService/StopPodSandbox"
                     and s.trace_id == trace_id), None)

    stop = wait_for(stop_span, "the StopPodSandbox span")
    assert stop.parent_span_id == parent_id
    wait_for(lambda: "CNI DEL" in {k.name for k in children_of(stop)}, "the CNI DEL child span")

    # Every span of the trace has a parent inside it: nothing leaked in from or out to other calls.
    def settled() -> list[Any]:
        spans = [s for s in receiver.snapshot() if s.trace_id == trace_id]
        return spans if any(s.name == "runtime.v1.RuntimeService/PodSandboxStatus" for s in receiver.snapshot()) \
            else []

    spans = wait_for(settled, "the later calls' spans")
    ids = {s.span_id for s in spans} | {parent_id}
    assert all(s.parent_span_id in ids for s in spans)
    assert {s.name for s in spans if s.kind == 2} == {"runtime.v1.RuntimeService/RunPodSandbox",
                                                      "runtime.v1.RuntimeService/StopPodSandbox"}
    remove = next(s for s in receiver.snapshot() if s.name == "runtime.v1.RuntimeService/RemovePodSandbox")
    assert remove.trace_id != trace_id and not remove.parent_span_id
    assert any(s.parent_span_id == remove.span_id for s in receiver.snapshot())

    # A call without traceparent starts a new trace (a root span).
    rt.Version(api_pb2.VersionRequest(), timeout=10)
    root = wait_for(lambda: next((s for s in receiver.snapshot() if s.name == "runtime.v1.RuntimeService/Version"
                                  and not s.parent_span_id), None), "a root Version span")
    assert root.trace_id != trace_id
    assert {"service.name": "cri-runtime-test"}.items() <= receiver.resources[0].items()

    # Every log line is one JSON object with logrus' field names.
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    assert len(lines) > 5
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "msg"} <= entry.keys(), line
        assert entry["time"].endswith("Z") and entry["level"] in ("debug", "info", "warning", "error")
    assert any(json.loads(line)["msg"] == "serving" for line in lines)


def test_sighup_moves_tracing_to_otlp_http(observed: tuple[CriServer, int]) -> None:
    server, _ = observed
    http = OtlpHttpReceiver()
    try:
        (server.dir / "config.d" / "20-trace-http.toml").write_text(
            f'[tracing]\nprotocol = "http/protobuf"\nendpoint = "http://127.0.0.1:{http.port}/v1/traces"\n'
            'sampling_ratio = 0.0\n')
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)

        def reloaded() -> bool:
            return any(json.loads(line).get("msg") == "configuration reloaded"
                       and "tracing.protocol" in json.loads(line).get("applied", "")
                       for line in server.log_path.read_text().splitlines() if line.strip())

        wait_for(reloaded, "the tracing reload")
        trace_id, parent_id = os.urandom(16), os.urandom(8)
        # sampling_ratio 0 starts no trace of its own, but a sampled caller is always followed.
        server.runtime().Version(api_pb2.VersionRequest(), timeout=10)
        server.runtime().Version(api_pb2.VersionRequest(), timeout=10,
                                 metadata=[("traceparent", f"00-{trace_id.hex()}-{parent_id.hex()}-01")])
        span = wait_for(lambda: next((s for s in http.spans if s.trace_id == trace_id), None),
                        "the Version span at the OTLP/HTTP receiver")
        assert span.name == "runtime.v1.RuntimeService/Version" and span.parent_span_id == parent_id
        assert all(s.trace_id == trace_id for s in http.spans)  # the unsampled call exported nothing
    finally:
        (server.dir / "config.d" / "20-trace-http.toml").unlink(missing_ok=True)
        http.stop()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry))
    return out


def test_container_relay_runs_in_the_relay_cgroup(observed: tuple[CriServer, int], test_images: TestImages) -> None:
    server, port = observed
    rt = server.runtime()
    pod_cfg = pod_config()
    pod_id = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod_cfg), timeout=60).pod_sandbox_id
    try:
        server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=test_images.busybox.ref)),
                                  timeout=120)
        cid = rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, sandbox_config=pod_cfg, config=api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name="relayed"),
                image=api_pb2.ImageSpec(image=test_images.busybox.ref),
                command=["sh", "-c", "echo up; sleep 300"])), timeout=60).container_id
        rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        state_dir = str(server.dir / "state")
        zygote = next(int(p) for p in os.listdir("/proc") if p.isdigit() and _cmdline(int(p)).endswith(
            f"--for\0{state_dir}/containers"))
        relays = _children(zygote)
        assert relays, "the zygote forked no relay"
        assert server.proc is not None
        server_cgroups = relay_cgroup.current(server.proc.pid)
        for pid in (zygote, *relays):
            placed = relay_cgroup.current(pid)
            assert set(placed.values()) == {RELAY_CGROUP}, placed
        assert RELAY_CGROUP not in server_cgroups.values()
        body = scrape(port)
        assert 'container_runtime_containers{state="running"} 1.0' in body
    finally:
        rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().rstrip("\0")
    except OSError:
        return ""
