"""The one place where domain errors become gRPC status codes.

Every servicer method is wrapped with `@unary` (or `@server_stream`). The
wrapper waits for start-up recovery to finish, runs the handler, and maps
`cri_runtime.errors` classes to their codes. Anything else is a bug: it is
logged with its traceback and reported as INTERNAL naming the RPC, never as
UNKNOWN (which kubelet cannot act on).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from cri_runtime import errors, tracing
from cri_runtime.h2.status import StatusCode
from cri_runtime.metrics.server_metrics import SERVER, SERVICE_OF
from cri_runtime.rpc import ServicerContext

log = logging.getLogger("cri_runtime.rpc")

CODES: dict[type[errors.CriError], StatusCode] = {
    errors.NotFound: StatusCode.NOT_FOUND,
    errors.AlreadyExists: StatusCode.ALREADY_EXISTS,
    errors.InvalidArgument: StatusCode.INVALID_ARGUMENT,
    errors.FailedPrecondition: StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: StatusCode.UNAVAILABLE,
    errors.Unauthenticated: StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: StatusCode.PERMISSION_DENIED,
    errors.DataLoss: StatusCode.DATA_LOSS,
    errors.DeadlineExceeded: StatusCode.DEADLINE_EXCEEDED,
    errors.ResourceExhausted: StatusCode.RESOURCE_EXHAUSTED,
    errors.Unimplemented: StatusCode.UNIMPLEMENTED,
    errors.Internal: StatusCode.INTERNAL,
    errors.Aborted: StatusCode.ABORTED,
}


def code_for(exc: errors.CriError) -> StatusCode:
    """Status code of a domain error (the nearest mapped base class wins)."""
    for cls in type(exc).__mro__:
        code = CODES.get(cls)
        if code is not None:
            return code
    return StatusCode.INTERNAL


class Gate(Protocol):
    """What a servicer exposes so calls wait for start-up recovery."""

    async def wait_recovered(self) -> None: ...


Req = TypeVar("Req")
Resp = TypeVar("Resp")
S = TypeVar("S", bound=Gate)

UnaryHandler = Callable[[S, Req, ServicerContext], Awaitable[Resp]]
StreamHandler = Callable[[S, Req, ServicerContext], AsyncIterator[Resp]]


def _metadata(context: ServicerContext) -> tuple[tuple[str, str], ...]:
    """The caller's metadata, read only when tracing needs its `traceparent`."""
    return tuple(context.invocation_metadata() or ()) if tracing.enabled() else ()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unary(fn: Callable[[Any, Any, ServicerContext], Awaitable[Any]]) -> Any:
    """Wrap a unary servicer method: recovery gate, error mapping, access log, metrics, trace span."""
    name = fn.__name__
    service = SERVICE_OF.get(name, "runtime.v1.RuntimeService")

    @functools.wraps(fn)
    async def wrapper(self: Gate, request: Any, context: ServicerContext) -> Any:
        if tracing.enabled():
            return await tracing.in_own_context(traced(self, request, context))
        return await handle(self, request, context, None)

    async def traced(self: Gate, request: Any, context: ServicerContext) -> Any:
        with tracing.server_span(service, name, _metadata(context)) as span:
            return await handle(self, request, context, span)

    async def handle(self: Gate, request: Any, context: ServicerContext, span: Any) -> Any:
        started = time.monotonic()
        code, message = StatusCode.OK, ""
        try:
            await self.wait_recovered()
            return await fn(self, request, context)
        except errors.CriError as exc:
            code, message = code_for(exc), exc.message
        except asyncio.CancelledError:
            log.debug("%s cancelled by the caller", name)
            code = StatusCode.CANCELLED
            raise
        except Exception as exc:
            log.exception("%s failed unexpectedly", name)
            code, message = StatusCode.INTERNAL, f"{name}: internal error: {_describe(exc)}"
        finally:
            elapsed = time.monotonic() - started
            log.debug("rpc %s code=%s %.1fms", name, code.name, elapsed * 1000)
            SERVER.observe_rpc(name, code.name, elapsed, sent=int(code == StatusCode.OK))
            if span is not None:
                tracing.set_code(span, code.name, message)
        await context.abort(code, message)

    return wrapper


def server_stream(fn: Callable[[Any, Any, ServicerContext], AsyncIterator[Any]]) -> Any:
    """Wrap a server-streaming servicer method with the same mapping as `unary`."""
    name = fn.__name__
    service = SERVICE_OF.get(name, "runtime.v1.RuntimeService")

    @functools.wraps(fn)
    async def wrapper(
        self: Gate, request: Any, context: ServicerContext
    ) -> AsyncIterator[Any]:
        started = time.monotonic()
        code, message = StatusCode.OK, ""
        sent = 0
        with tracing.server_span(service, name, _metadata(context), current=False) as span:
            try:
                await self.wait_recovered()
                async for item in fn(self, request, context):
                    sent += 1
                    yield item
                return
            except errors.CriError as exc:
                code, message = code_for(exc), exc.message
            except asyncio.CancelledError:
                code = StatusCode.CANCELLED
                raise
            except Exception as exc:
                log.exception("%s failed unexpectedly", name)
                code, message = StatusCode.INTERNAL, f"{name}: internal error: {_describe(exc)}"
            finally:
                SERVER.observe_rpc(name, code.name, time.monotonic() - started, stream=True, sent=sent)
                tracing.set_code(span, code.name, message)
        await context.abort(code, message)

    return wrapper


def unimplemented(name: str, why: str = "not implemented by cri-runtime yet") -> Any:
    """A servicer method that answers UNIMPLEMENTED, naming the RPC."""

    async def handler(self: Any, request: Any, context: ServicerContext) -> Any:
        SERVER.observe_rpc(name, "UNIMPLEMENTED", 0.0, sent=0)
        await context.abort(StatusCode.UNIMPLEMENTED, f"{name}: {why}")

    handler.__name__ = name
    return handler


def unimplemented_stream(name: str, why: str = "not implemented by cri-runtime yet") -> Any:
    """Server-streaming variant of `unimplemented`."""

    async def handler(self: Any, request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        SERVER.observe_rpc(name, "UNIMPLEMENTED", 0.0, stream=True, sent=0)
        await context.abort(StatusCode.UNIMPLEMENTED, f"{name}: {why}")
        yield  # pragma: no cover  (makes this an async generator)

    handler.__name__ = name
    return handler
