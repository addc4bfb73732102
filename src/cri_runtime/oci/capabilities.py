"""Capability sets from a CRI ``Capability`` request.

The kubelet sends names without the ``CAP_`` prefix ("NET_ADMIN") or "ALL";
other clients send "cap_net_admin". Both normalise to "CAP_NET_ADMIN".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cri_protos.runtime.v1 import api_pb2

from ..errors import InvalidArgument

_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def normalize_capability(name: str) -> str:
    """``"net_admin"`` / ``"CAP_NET_ADMIN"`` → ``"CAP_NET_ADMIN"``; InvalidArgument if malformed."""
    upper = name.strip().upper()
    if upper.startswith("CAP_"):
        upper = upper[4:]
    if not _NAME.match(upper):
        raise InvalidArgument(f"invalid capability name {name!r}")
    return "CAP_" + upper


def _is_all(name: str) -> bool:
    return name.strip().upper() == "ALL"


def apply_capability_request(
    base: Sequence[str], request: api_pb2.Capability | None, all_capabilities: Sequence[str]
) -> list[str]:
    """Bounding/effective/permitted set after the request's add and drop.

    "ALL" in add starts from every capability, "ALL" in drop from none; named
    adds then named drops are applied on top (so drop ALL + add X gives [X]).
    """
    caps = list(base)
    if request is None:
        return caps
    if any(_is_all(c) for c in request.add_capabilities):
        caps = list(all_capabilities)
    if any(_is_all(c) for c in request.drop_capabilities):
        caps = []
    for name in request.add_capabilities:
        if not _is_all(name):
            cap = normalize_capability(name)
            if cap not in caps:
                caps.append(cap)
    dropped = {normalize_capability(n) for n in request.drop_capabilities if not _is_all(n)}
    return [c for c in caps if c not in dropped]


def capabilities_section(caps: Sequence[str], ambient: Sequence[str] = ()) -> dict[str, Any]:
    """``process.capabilities``; ambient capabilities must also be inheritable and permitted."""
    section: dict[str, Any] = {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)}
    if ambient:
        for key in ("bounding", "effective", "permitted"):
            section[key] += [c for c in ambient if c not in section[key]]
        section["inheritable"] = list(ambient)
        section["ambient"] = list(ambient)
    return section
