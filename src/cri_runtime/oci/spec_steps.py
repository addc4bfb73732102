"""Spec building as an ordered list of small steps (containerd's ``oci.SpecOpts``).

A builder starts from ``default_spec()`` and hands the spec to each step in
turn; a step reads the builder's input and changes the spec for one concern
(the args, the user, the CRI mounts, ...). One concern per function keeps each
rule testable on its own, and one list per builder keeps the order visible,
which matters: seccomp reads the capabilities chosen before it, the user
namespace step locks the flags of the mounts made before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

#: An OCI runtime spec as a JSON-ready dict.
Spec = dict[str, Any]

InputT = TypeVar("InputT")

#: One step: reads the builder's input, changes the spec in place (or raises a CRI error).
SpecStep = Callable[[InputT, Spec], None]


def apply_steps(spec: Spec, inp: InputT, steps: Iterable[SpecStep[InputT]]) -> Spec:
    """Run ``steps`` in order on ``spec``; return it."""
    for step in steps:
        step(inp, spec)
    return spec
