"""AppArmor profile selection (``process.apparmorProfile``)."""

from __future__ import annotations

from cri_protos.runtime.v1 import api_pb2

from ..errors import InvalidArgument
from .seccomp import profile_from_deprecated_path

SecurityProfile = api_pb2.SecurityProfile
_LOCALHOST_PREFIX = "localhost/"


def apparmor_profile(
    profile: SecurityProfile | None,
    deprecated: str,
    *,
    privileged: bool,
    enabled: bool,
    default_profile: str,
) -> str:
    """The profile name for the spec, or "" for none.

    Without AppArmor on the node only "unconfined" (or nothing) is accepted, so a
    pod asking for confinement fails loudly instead of running unconfined.
    """
    if profile is None and deprecated:
        profile = profile_from_deprecated_path(deprecated)
    if not enabled:
        if profile is not None and profile.profile_type != SecurityProfile.Unconfined:
            raise InvalidArgument("apparmor is not supported on this node")
        return ""
    if profile is None:
        profile = SecurityProfile(profile_type=SecurityProfile.RuntimeDefault)
    if profile.profile_type != SecurityProfile.Localhost and profile.localhost_ref:
        raise InvalidArgument("apparmor: localhost_ref must only be set with profile_type Localhost")
    if profile.profile_type == SecurityProfile.Unconfined:
        return ""
    if profile.profile_type == SecurityProfile.RuntimeDefault:
        return "" if privileged else default_profile
    if profile.profile_type == SecurityProfile.Localhost:
        name = profile.localhost_ref
        if name.startswith(_LOCALHOST_PREFIX):
            name = name[len(_LOCALHOST_PREFIX) :]
        if not name:
            raise InvalidArgument("apparmor: Localhost profile without a name")
        return name
    raise InvalidArgument(f"apparmor: unknown profile_type {profile.profile_type}")
