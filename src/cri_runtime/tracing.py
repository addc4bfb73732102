"""OpenTelemetry tracing of CRI calls, with the OpenTelemetry SDK and its OTLP exporters.

One server span per CRI call (parent taken from the caller's W3C
`traceparent`, which kubelet's KubeletTracing and crictl send), a client
span per containerd call and per CNI ADD/DEL beneath it, exported over OTLP
(grpc or http/protobuf) like containerd's tracing plugin. Off by default
(`[tracing] endpoint` empty): then the SDK is never imported, so start-up
cost is unchanged, and `span()` is a no-op context manager.

The provider is ours, not the global one, so a reload (SIGHUP) can replace
it: the old one is flushed and shut down first. Context travels in
contextvars, which asyncio copies into every task.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from cri_runtime.config import ConfigError, TracingConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)
T = TypeVar("T")

EXPORT_TIMEOUT = 5  # seconds per export; the SDK's default is 10
STOP_FLUSH_SECONDS = 3.0

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_settings: TracingConfig | None = None


def enabled() -> bool:
    return _tracer is not None


def _exporter(cfg: TracingConfig) -> Any:
    if cfg.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        return GrpcExporter(endpoint=cfg.endpoint, insecure=cfg.insecure, timeout=EXPORT_TIMEOUT)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
    return HttpExporter(endpoint=cfg.endpoint, timeout=EXPORT_TIMEOUT)


def configure(cfg: TracingConfig) -> None:
    """Start, replace or stop the exporter to match `cfg` (no-op when unchanged)."""
    global _provider, _tracer, _settings
    if _settings == cfg:
        return
    shutdown()
    _settings = TracingConfig(**vars(cfg))
    if not cfg.endpoint:
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:
        _settings = None
        raise ConfigError(f"tracing.endpoint: tracing needs the OpenTelemetry SDK "
                          f"(pip install 'cri-runtime[tracing]'): {exc}") from None

    from cri_runtime import __version__

    provider = TracerProvider(
        resource=Resource.create({"service.name": cfg.service_name, "service.version": __version__}),
        sampler=ParentBased(TraceIdRatioBased(cfg.sampling_ratio)))
    provider.add_span_processor(BatchSpanProcessor(_exporter(cfg), schedule_delay_millis=1000))
    _provider, _tracer = provider, provider.get_tracer("cri_runtime")
    log.info("tracing on", extra={"fields": {"endpoint": cfg.endpoint, "protocol": cfg.protocol,
                                             "sampling_ratio": cfg.sampling_ratio}})


def shutdown(wait: float = 0.0) -> None:
    """Flush and stop the exporter (at stop, and before a reload replaces it).

    The flush runs in a thread of its own: with the collector unreachable it
    can take the exporter's whole timeout, which must never stall the event
    loop. `wait` bounds how long the caller waits for it (at stop, so the
    last spans leave).
    """
    global _provider, _tracer, _settings
    provider, _provider, _tracer, _settings = _provider, None, None, None
    if provider is None:
        return
    flusher = threading.Thread(target=provider.shutdown, name="tracing-shutdown", daemon=True)
    flusher.start()
    if wait > 0:
        flusher.join(wait)


@contextlib.contextmanager
def server_span(service: str, method: str, metadata: Sequence[tuple[str, str]], *,
                current: bool = True) -> Iterator[Any]:
    """The span of one CRI call; its parent comes from the `traceparent` metadata, if any.

    `current=False` (server streams, whose generator may resume in another
    context) records the span without making it the parent of inner spans.
    """
    tracer = _tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {k: v for k, v in metadata if k in ("traceparent", "tracestate")}
    # Never the ambient context: a CRI call's parent is the caller's span or nothing.
    parent = TraceContextTextMapPropagator().extract(carrier, context=Context()) if carrier else Context()
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
    if not current:
        detached = tracer.start_span(f"{service}/{method}", context=parent, kind=SpanKind.SERVER,
                                     attributes=attributes)
        try:
            yield detached
        finally:
            detached.end()
        return
    with tracer.start_as_current_span(f"{service}/{method}", context=parent, kind=SpanKind.SERVER,
                                      attributes=attributes, record_exception=False,
                                      set_status_on_exception=False) as span:
        yield span


def set_code(span: Any, code: str, message: str = "") -> None:
    """Record the gRPC status of a finished call on its span (an error status unless OK)."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("rpc.grpc.status_code", code)
    if code != "OK":
        span.set_status(Status(StatusCode.ERROR, f"{code}: {message}" if message else code))


@contextlib.contextmanager
def span(name: str, **attributes: str | int | float | bool) -> Iterator[Any]:
    """A client span (containerd call, CNI plugin) under the current one; no-op when tracing is off."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind, get_current_span

    if not get_current_span().is_recording():  # background work outside any CRI call: no orphan spans
        yield None
        return
    with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as current:
        yield current


async def in_own_context(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` in a task with a fresh contextvars context.

    The RPC transport starts handlers eagerly in the connection's callback
    context and continues them in a task, so a span made current in the
    handler would leak into the next call on that connection and could not
    be detached. A task of its own (only while tracing is on) keeps each
    call's span current exactly for that call.
    """
    return await asyncio.create_task(work, context=contextvars.Context())


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """`traceparent` (and `tracestate`) of the current span, for a call to containerd.

    containerd's gRPC server continues the trace when it traces itself, so its
    own spans hang under ours, as they do under its built-in CRI plugin's.
    """
    if _tracer is None:
        return ()
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return tuple(carrier.items())
