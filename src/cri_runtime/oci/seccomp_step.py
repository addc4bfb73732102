"""The seccomp step, the same for pause and application containers."""

from __future__ import annotations

from typing import Any, Protocol

from .options import SpecOptions
from .protofields import sub_message
from .seccomp import requested_profile, seccomp_section
from .spec_steps import Spec


class SecuredInput(Protocol):
    """A builder input with a CRI Linux security context (pod's or container's)."""

    @property
    def security_context(self) -> Any: ...

    @property
    def options(self) -> SpecOptions: ...


def with_seccomp(inp: SecuredInput, spec: Spec) -> None:
    """The requested seccomp profile; it must run after the capabilities are final.

    RuntimeDefault allows the syscalls the bounding set unlocks (containerd's
    rule), so the profile follows whatever capabilities the spec has by now.
    """
    sc = inp.security_context
    options = inp.options
    seccomp = seccomp_section(
        requested_profile(sub_message(sc, "seccomp"), sc.seccomp_profile_path, options.unset_seccomp_profile),
        privileged=sc.privileged,
        seccomp_enabled=options.seccomp_enabled,
        bounding_caps=spec["process"]["capabilities"]["bounding"],
        arch=options.arch,
        kernel_version=options.kernel_version,
    )
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
