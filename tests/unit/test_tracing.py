"""Tracing's pure parts: off means no SDK import and no-op spans; context in and out."""

from __future__ import annotations

import subprocess
import sys

from cri_runtime import tracing
from cri_runtime.config import TracingConfig


def test_tracing_off_imports_no_sdk() -> None:
    code = ("import sys; import cri_runtime.server; from cri_runtime import tracing; "
            "from cri_runtime.config import TracingConfig; tracing.configure(TracingConfig()); "
            "print(any(m.startswith('opentelemetry') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert not tracing.enabled()
    with tracing.server_span("runtime.v1.RuntimeService", "Version", [("traceparent", "x")]) as span:
        assert span is None
    assert tracing.outgoing_metadata() == ()


def test_caller_trace_id_reaches_outgoing_metadata() -> None:
    # An unsampled caller: nothing is recorded or exported, but the trace ID still flows to containerd.
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    incoming = [("traceparent", f"00-{trace_id}-00f067aa0ba902b7-00")]
    tracing.configure(TracingConfig(endpoint="127.0.0.1:9", sampling_ratio=1.0))
    try:
        assert tracing.enabled()
        with tracing.server_span("runtime.v1.RuntimeService", "Version", incoming):
            with tracing.span("child") as child:
                assert child is None  # not recording: no client span
            out = dict(tracing.outgoing_metadata())
        version, out_trace, out_span, flags = out["traceparent"].split("-")
        assert (version, out_trace, flags) == ("00", trace_id, "00")
        assert out_span != "00f067aa0ba902b7"  # our span, not the caller's
    finally:
        tracing.shutdown()
    assert not tracing.enabled()
