"""The servicer wrappers: domain errors map to codes, bugs become INTERNAL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cri_runtime import errors
from cri_runtime.h2.status import StatusCode
from cri_runtime.rpc.context import AbortError, ServicerContext
from cri_runtime.services import error_mapping


def call_context() -> ServicerContext:
    """The context our transport hands a handler, for a call with no deadline."""

    async def send_headers(metadata: Any) -> None:
        return None

    return ServicerContext("unix:test", {}, None, send_headers)


class Servicer:
    def __init__(self) -> None:
        self.recovered = asyncio.Event()
        self.recovered.set()

    async def wait_recovered(self) -> None:
        await self.recovered.wait()

    @error_mapping.unary
    async def Raise(self, request: Any, context: Any) -> Any:
        raise request

    @error_mapping.unary
    async def Echo(self, request: Any, context: Any) -> Any:
        return request

    @error_mapping.server_stream
    async def Stream(self, request: Any, context: Any) -> Any:
        yield 1
        raise request


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.NotFound("x"), StatusCode.NOT_FOUND),
        (errors.InvalidArgument("x"), StatusCode.INVALID_ARGUMENT),
        (errors.FailedPrecondition("x"), StatusCode.FAILED_PRECONDITION),
        (errors.AlreadyExists("x"), StatusCode.ALREADY_EXISTS),
        (errors.Unavailable("x"), StatusCode.UNAVAILABLE),
        (errors.Unauthenticated("x"), StatusCode.UNAUTHENTICATED),
        (errors.PermissionDenied("x"), StatusCode.PERMISSION_DENIED),
        (errors.DataLoss("x"), StatusCode.DATA_LOSS),
        (errors.DeadlineExceeded("x"), StatusCode.DEADLINE_EXCEEDED),
        (errors.ResourceExhausted("x"), StatusCode.RESOURCE_EXHAUSTED),
        (errors.Unimplemented("x"), StatusCode.UNIMPLEMENTED),
        (errors.Aborted("x"), StatusCode.ABORTED),
        (errors.Internal("x"), StatusCode.INTERNAL),
    ],
)
async def test_domain_errors_map_to_codes(exc: errors.CriError, code: StatusCode) -> None:
    with pytest.raises(AbortError) as info:
        await Servicer().Raise(exc, call_context())
    assert info.value.code == code
    assert info.value.details == "x"


async def test_every_domain_error_class_has_a_code() -> None:
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.CriError) and cls is not errors.CriError:
            assert cls in error_mapping.CODES, cls


async def test_mixin_subclasses_use_their_code_base() -> None:
    class PluginMixin(errors.CriError):
        pass

    class PluginTimeout(PluginMixin, errors.DeadlineExceeded):
        pass

    assert error_mapping.code_for(PluginTimeout("x")) == StatusCode.DEADLINE_EXCEEDED


async def test_unexpected_exception_is_internal_naming_the_rpc() -> None:
    with pytest.raises(AbortError) as info:
        await Servicer().Raise(KeyError("boom"), call_context())
    assert info.value.code == StatusCode.INTERNAL
    assert info.value.details == "Raise: internal error: KeyError: 'boom'"


async def test_success_passes_through() -> None:
    assert await Servicer().Echo("hello", call_context()) == "hello"


async def test_calls_wait_for_recovery() -> None:
    servicer = Servicer()
    servicer.recovered.clear()
    call = asyncio.ensure_future(servicer.Echo("x", call_context()))
    await asyncio.sleep(0.01)
    assert not call.done()
    servicer.recovered.set()
    assert await call == "x"


async def test_stream_errors_after_items() -> None:
    items = []
    with pytest.raises(AbortError) as info:
        async for item in Servicer().Stream(errors.NotFound("gone"), call_context()):
            items.append(item)
    assert items == [1]
    assert info.value.code == StatusCode.NOT_FOUND


async def test_unimplemented_names_the_rpc() -> None:
    handler = error_mapping.unimplemented("Frobnicate")
    with pytest.raises(AbortError) as info:
        await handler(None, None, call_context())
    assert info.value.code == StatusCode.UNIMPLEMENTED
    assert info.value.details.startswith("Frobnicate:")
