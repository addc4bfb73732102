"""Platform matching: which manifest of a multi-arch index this node runs.

Rules follow containerd's default matcher: OS and architecture must be equal
after normalisation (x86_64 → amd64, aarch64 → arm64, arm64's "v8" and
amd64's "v1" are the default variants); a manifest with a lower variant of
the same architecture also runs (armv6 code runs on armv7), ranked after an
exact match.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from typing import Any

_ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
    "i386": "386", "i686": "386",
}
_DEFAULT_VARIANT = {"arm64": "v8", "amd64": "v1"}
# Variants in increasing capability; a lower one runs where a higher one does.
_VARIANT_ORDER = {
    "arm": ["v5", "v6", "v7", "v8"],
    "arm64": ["v8", "v8.1", "v8.2", "v8.3", "v8.4", "v8.5", "v8.6", "v8.7", "v8.8", "v8.9", "v9",
              "v9.1", "v9.2", "v9.3", "v9.4", "v9.5"],
    "amd64": ["v1", "v2", "v3", "v4"],
}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def normalized(self) -> Platform:
        arch = _ARCH_ALIASES.get(self.architecture.lower(), self.architecture.lower())
        variant = self.variant.lower()
        if arch == "arm" and not variant:
            variant = "v7"
        if variant == _DEFAULT_VARIANT.get(arch):
            variant = ""
        return Platform(self.os.lower(), arch, variant)

    @classmethod
    def from_dict(cls, data: Any) -> Platform | None:
        if not isinstance(data, dict):
            return None
        return cls(str(data.get("os", "")), str(data.get("architecture", "")), str(data.get("variant", "")))


def host_platform() -> Platform:
    """The platform of this machine (Linux only)."""
    machine = _platform.machine()
    arch = _ARCH_ALIASES.get(machine, machine)
    variant = ""
    if arch == "arm":
        variant = "v" + machine[len("armv"):len("armv") + 1] if machine.startswith("armv") else "v7"
    return Platform("linux", arch, variant).normalized()


class Matcher:
    """Decides whether a manifest's platform runs here, and ranks candidates."""

    def __init__(self, target: Platform) -> None:
        self.target = target.normalized()

    def _variant_rank(self, variant: str) -> int | None:
        """0 for the exact variant, higher for older compatible ones, None if incompatible."""
        t = self.target
        if variant == t.variant:
            return 0
        order = _VARIANT_ORDER.get(t.architecture)
        if not order:
            return None
        default = _DEFAULT_VARIANT.get(t.architecture, "")
        want = t.variant or default
        have = variant or default
        if want not in order or have not in order:
            return None
        diff = order.index(want) - order.index(have)
        return diff if diff >= 0 else None

    def rank(self, candidate: Platform) -> int | None:
        c = candidate.normalized()
        if c.os != self.target.os or c.architecture != self.target.architecture:
            return None
        return self._variant_rank(c.variant)

    def matches(self, candidate: Platform) -> bool:
        return self.rank(candidate) is not None
