"""Container steps for the security context: privileged, capabilities, masked paths, AppArmor."""

from __future__ import annotations

from ...errors import InvalidArgument
from ..apparmor import apparmor_profile
from ..capabilities import apply_capability_request, capabilities_section, normalize_capability
from ..container_input import ContainerSpecInput
from ..defaults import DEFAULT_CAPABILITIES
from ..protofields import sub_message
from ..spec_steps import Spec


def require_privileged_pod(inp: ContainerSpecInput, spec: Spec) -> None:
    """A privileged container only in a privileged pod (the kubelet's rule, checked again here)."""
    if inp.privileged and not inp.sandbox.config.linux.security_context.privileged:
        raise InvalidArgument("privileged container is not allowed in a sandbox that is not privileged")


def with_capabilities(inp: ContainerSpecInput, spec: Spec) -> None:
    """The default set with the config's add/drop; privileged gets every capability (add/drop ignored)."""
    request = sub_message(inp.security_context, "capabilities")
    caps = apply_capability_request(DEFAULT_CAPABILITIES, request, inp.options.all_capabilities)
    ambient: list[str] = []
    if request is not None:
        ambient = [normalize_capability(c) for c in request.add_ambient_capabilities]
    if inp.privileged:
        caps = list(inp.options.all_capabilities)
    spec["process"]["capabilities"] = capabilities_section(caps, ambient)


def with_masked_paths(inp: ContainerSpecInput, spec: Spec) -> None:
    """The kubelet's masked and read-only /proc paths; none for privileged containers."""
    sc = inp.security_context
    linux = spec["linux"]
    if inp.privileged:
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
    else:
        linux["maskedPaths"] = list(sc.masked_paths)
        linux["readonlyPaths"] = list(sc.readonly_paths)


def with_apparmor(inp: ContainerSpecInput, spec: Spec) -> None:
    """The AppArmor profile asked for; RuntimeDefault (the default) gives none to privileged containers."""
    sc = inp.security_context
    profile = apparmor_profile(
        sub_message(sc, "apparmor"),
        sc.apparmor_profile,
        privileged=inp.privileged,
        enabled=inp.options.apparmor_enabled,
        default_profile=inp.options.apparmor_default_profile,
    )
    if profile:
        spec["process"]["apparmorProfile"] = profile
