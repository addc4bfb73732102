"""Every RPC whose request has a validator calls `validation.check` before anything else."""

from __future__ import annotations

import inspect

import pytest

from cri_runtime.services.runtime import RuntimeServicer
from cri_runtime.validation import validated_types


@pytest.mark.parametrize("request_type", sorted(validated_types(), key=lambda t: t.__name__))
def test_handler_checks_first(request_type: type) -> None:
    rpc = request_type.__name__.removesuffix("Request")
    handler = inspect.unwrap(getattr(RuntimeServicer, rpc))
    body = [ln.strip() for ln in inspect.getsource(handler).splitlines()]
    start = next(i for i, ln in enumerate(body) if ln.endswith(":") and ln.startswith((")", "async def")))
    statements = [ln for ln in body[start + 1:] if ln and not ln.startswith(('"""', "#"))]
    assert statements[0] == "check(request)", f"{rpc} must validate its request first: {statements[:2]}"
