"""OpenTelemetry tracing for --enable-tracing, as upstream's pkg/tracing and main.go set it up.

One root span named after the command (attribute `command`), one client span per CRI call
named like otelgrpc names them (`runtime.v1.RuntimeService/ListContainers`), the trace
context sent to the runtime in the gRPC metadata (W3C traceparent, plus baggage), spans
exported over OTLP/gRPC to the collector address. The OpenTelemetry SDK and exporter (the
`tracing` extra) are imported here only, and this module only when tracing is on.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from crictl import connection
from crictl.errors import CliError

TRACER_NAME = "sigs.k8s.io/cri-tools/cmd/crictl"
SERVICE_NAME = "cri-tools"

_active: list[Tracer] = []


class Tracer:
    """The provider, the root span and the per-call hook installed on the CRI connections."""

    def __init__(self, endpoint: str, sampling_rate_per_million: int, command: str, timeout: float) -> None:
        try:
            from opentelemetry import context, propagate, trace
            from opentelemetry.baggage.propagation import W3CBaggagePropagator
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.propagators.composite import CompositePropagator
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError as exc:
            hint = "pip install 'cri-runtime[tracing]'"
            raise CliError(f"init tracing: OpenTelemetry is not installed ({hint}): {exc}") from exc
        self._trace, self._context = trace, context
        if sampling_rate_per_million > 0:
            root_sampler: Any = TraceIdRatioBased(sampling_rate_per_million / 1_000_000)
        elif sampling_rate_per_million < 0:
            root_sampler = ALWAYS_ON
        else:
            root_sampler = ALWAYS_OFF
        resource = Resource.create(
            {"service.name": SERVICE_NAME, "host.name": socket.gethostname(), "process.pid": os.getpid()}
        )
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=timeout)
        self.provider = TracerProvider(sampler=ParentBased(root_sampler), resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.timeout = timeout
        propagator = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
        propagate.set_global_textmap(propagator)
        self._propagator = propagator
        self.tracer = self.provider.get_tracer(TRACER_NAME)
        self.root = self.tracer.start_span(command, attributes={"command": command})
        self._root_context = trace.set_span_in_context(self.root)
        connection.set_call_hook(self.traced_call)

    def traced_call(self, full_method: str, invoke: Callable[[list[tuple[str, str]]], Any]) -> Any:
        """Run one CRI call inside a client span whose context travels in the call's metadata."""
        service, _, method = full_method.rpartition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        kind = self._trace.SpanKind.CLIENT
        with self.tracer.start_as_current_span(full_method, context=self._root_context, kind=kind,
                                               attributes=attributes, record_exception=False,
                                               set_status_on_exception=False) as span:  # fmt: skip
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier)
            try:
                result = invoke(sorted(carrier.items()))
            except Exception as exc:
                code = connection.rpc_code(exc)
                span.set_attribute("rpc.grpc.status_code", _code_number(code))
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(exc)))
                raise
            span.set_attribute("rpc.grpc.status_code", 0)
            return result

    def finish(self, error: str | None = None) -> None:
        """End the root span (with the command's error, if any) and flush every span."""
        connection.set_call_hook(None)
        if error:
            self.root.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
            self.root.add_event("exception", {"exception.message": error})
        self.root.end()
        if not self.provider.force_flush(int(self.timeout * 1000)):
            from crictl import log

            log.error("Unable to shutdown tracer provider: context deadline exceeded")
        self.provider.shutdown()


def _code_number(code: str | None) -> int:
    names = list(connection._GO_CODE_NAMES)
    return names.index(code) if code in names else 2


def start(endpoint: str, sampling_rate_per_million: int, command: str, timeout: float) -> Tracer:
    tracer = Tracer(endpoint, sampling_rate_per_million, command, timeout)
    _active.append(tracer)
    return tracer


def finish_active(error: str | None) -> None:
    """Called by main once the command returned or failed."""
    while _active:
        _active.pop().finish(error)
