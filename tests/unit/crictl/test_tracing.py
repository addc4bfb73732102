"""--enable-tracing end to end: crictl against a real OTLP/gRPC receiver and a CRI endpoint.

The receiver is a grpc server implementing the collector's TraceService (the OTLP protocol an
OpenTelemetry collector speaks); the CRI endpoint records the metadata each call carried. Our
span tree must be upstream crictl's: live where it is installed, else as recorded from it
(tests/golden/crictl/live/tracing.json).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

pytest.importorskip("opentelemetry.sdk", reason="the tracing extra is not installed")

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from cri_protos.runtime.v1 import api_pb2_grpc
from tests.golden.crictl.fake_cri import EmptyImages, EmptyRuntime
from tests.golden.crictl.live import Recording
from tests.upstream import SRC, UPSTREAM_CRICTL
from tests.waiting import wait_until


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, Any]


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.service_names: set[str] = set()
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        with self.lock:
            for resource_spans in request.resource_spans:
                for attr in resource_spans.resource.attributes:
                    if attr.key == "service.name":
                        self.service_names.add(attr.value.string_value)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attributes = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
                        self.spans.append(Span(span.name, span.trace_id.hex(), span.span_id.hex(),
                                               span.parent_span_id.hex(), attributes))  # fmt: skip
        return trace_service_pb2.ExportTraceServiceResponse()


class RecordingRuntime(EmptyRuntime):
    def __init__(self) -> None:
        self.traceparents: list[str] = []

    def _record(self, context: Any) -> None:
        self.traceparents += [v for k, v in context.invocation_metadata() if k == "traceparent"]

    def Version(self, request: Any, context: Any) -> Any:
        self._record(context)
        return super().Version(request, context)

    def ListContainers(self, request: Any, context: Any) -> Any:
        self._record(context)
        return super().ListContainers(request, context)


@dataclass
class Rig:
    receiver: Receiver
    runtime: RecordingRuntime
    collector: str
    endpoint: str


@pytest.fixture
def rig() -> Iterator[Rig]:
    tmp = tempfile.mkdtemp(prefix="crictl-trace-")
    sock = os.path.join(tmp, "cri.sock")
    receiver, runtime = Receiver(), RecordingRuntime()
    collector = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, collector)
    port = collector.add_insecure_port("127.0.0.1:0")
    cri = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(runtime, cri)
    api_pb2_grpc.add_ImageServiceServicer_to_server(EmptyImages(), cri)
    cri.add_insecure_port("unix:" + sock)
    collector.start()
    cri.start()
    try:
        yield Rig(receiver, runtime, f"127.0.0.1:{port}", "unix://" + sock)
    finally:
        cri.stop(None).wait()
        collector.stop(None).wait()
        if os.path.exists(sock):
            os.unlink(sock)
        os.rmdir(tmp)


def _run(binary: list[str], rig: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as config:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": SRC}
        argv = [*binary, "-c", config.name, "-r", rig.endpoint, "--enable-tracing", "--tracing-endpoint",
                rig.collector, *args]  # fmt: skip
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def _wait_for_spans(receiver: Receiver, count: int) -> list[Span]:
    def arrived() -> list[Span] | None:
        with receiver.lock:
            return list(receiver.spans) if len(receiver.spans) >= count else None

    return wait_until(arrived, f"{count} spans arrived")


def _tree(spans: list[Span]) -> tuple[str, list[str]]:
    """The root span's name and its children's names; checks ids and parentage on the way."""
    roots = [s for s in spans if not s.parent]
    assert len(roots) == 1, spans
    root = roots[0]
    children = [s for s in spans if s is not root]
    assert all(s.parent == root.span_id and s.trace_id == root.trace_id for s in children), spans
    return root.name, sorted(s.name for s in children)


def test_ps_exports_a_root_span_with_one_child_per_cri_call(rig: Rig) -> None:
    ours = [sys.executable, "-m", "crictl"]
    result = _run(ours, rig, "ps", "-a")
    assert result.returncode == 0, result.stderr
    spans = _wait_for_spans(rig.receiver, 4)
    name, children = _tree(spans)
    assert name == "ps"
    assert children == [
        "runtime.v1.ImageService/ImageFsInfo", "runtime.v1.RuntimeService/ListContainers",
        "runtime.v1.RuntimeService/Version",
    ]  # fmt: skip
    root = next(s for s in spans if not s.parent)
    assert root.attributes["command"] == "ps"
    assert rig.receiver.service_names == {"cri-tools"}
    # The runtime saw each call's own span as the parent in the W3C traceparent header.
    child_ids = {s.span_id for s in spans if s.parent}
    assert len(rig.runtime.traceparents) == 2
    for header in rig.runtime.traceparents:
        version, trace_id, span_id, flags = header.split("-")
        assert (version, trace_id) == ("00", root.trace_id) and span_id in child_ids
        assert int(flags, 16) & 1, "sampled"


def test_failed_command_marks_the_root_span(rig: Rig) -> None:
    result = _run([sys.executable, "-m", "crictl"], rig, "inspect", "nosuch")
    assert result.returncode == 1
    spans = _wait_for_spans(rig.receiver, 3)
    name, children = _tree(spans)
    assert name == "inspect"
    assert "runtime.v1.RuntimeService/ContainerStatus" in children


def test_without_the_flag_nothing_is_exported_or_imported(rig: Rig) -> None:
    code = ("import sys; from crictl.main import main; sys.argv=['crictl','ps'];\n"
            "try:\n    main([sys.argv[1]])\nexcept SystemExit: pass\n"
            "print('opentelemetry' in sys.modules)")  # fmt: skip
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": SRC, "CONTAINER_RUNTIME_ENDPOINT": rig.endpoint,
           "CRI_CONFIG_FILE": "/dev/null"}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("False")
    assert rig.receiver.spans == []


def test_same_span_tree_as_upstream(rig: Rig) -> None:
    def upstream_tree() -> tuple[str, list[str]]:
        result = _run([str(UPSTREAM_CRICTL)], rig, "ps", "-a")
        assert result.returncode == 0, result.stderr
        tree = _tree(_wait_for_spans(rig.receiver, 4))
        rig.receiver.spans.clear()
        return tree

    command = ["crictl", "-c", "<CONFIG>", "-r", "<CRI>", "--enable-tracing", "--tracing-endpoint", "<COLLECTOR>",
               "ps", "-a"]  # fmt: skip
    name, children = Recording("tracing").value("ps -a span tree", command, upstream_tree, list)
    result = _run([sys.executable, "-m", "crictl"], rig, "ps", "-a")
    assert result.returncode == 0, result.stderr
    assert _tree(_wait_for_spans(rig.receiver, 4)) == (name, list(children))
