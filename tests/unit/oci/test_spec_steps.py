"""apply_steps: the steps run in their order, each seeing what the earlier ones made."""

from __future__ import annotations

import pytest

from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.spec_steps import Spec, SpecStep, apply_steps


def _append(tag: str) -> SpecStep[str]:
    def step(inp: str, spec: Spec) -> None:
        spec.setdefault("seen", []).append(f"{tag}:{inp}:{len(spec['seen']) if 'seen' in spec else 0}")

    return step


def _fail(inp: str, spec: Spec) -> None:
    raise InvalidArgument("no")


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([], {}, id="no-steps-leave-the-spec"),
        pytest.param([_append("a"), _append("b")], {"seen": ["a:x:0", "b:x:1"]}, id="in-order-each-sees-the-last"),
        pytest.param([_append("b"), _append("a")], {"seen": ["b:x:0", "a:x:1"]}, id="order-is-the-list's"),
    ],
)
def test_apply_steps(steps: list[SpecStep[str]], expected: Spec) -> None:
    spec: Spec = {}
    assert apply_steps(spec, "x", steps) is spec
    assert spec == expected


def test_the_first_error_stops_the_build() -> None:
    spec: Spec = {}
    with pytest.raises(InvalidArgument):
        apply_steps(spec, "x", [_append("a"), _fail, _append("b")])
    assert spec == {"seen": ["a:x:0"]}
