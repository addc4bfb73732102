"""CNI spec versions: parsing, comparison, and which ones this library speaks.

Config files, plugin results and cached records each carry a `cniVersion`;
the rules that depend on it (whether DEL gets a `prevResult`, how a result
is shaped) all go through these helpers so the comparisons stay consistent.
"""

from __future__ import annotations

import re

#: Spec versions this library can drive (send configs in and parse results of).
SUPPORTED_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

#: The newest spec version we implement.
CURRENT_VERSION = SUPPORTED_VERSIONS[-1]

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


class VersionError(ValueError):
    """A `cniVersion` value that is not a semantic version."""


def parse_version(text: str) -> tuple[int, int, int]:
    """`"0.4.0"` → `(0, 4, 0)`; an empty version means 0.1.0 as in the spec's first release."""
    if text == "":
        return (0, 1, 0)
    match = _SEMVER.match(text)
    if match is None:
        raise VersionError(f"invalid cniVersion {text!r}: expected MAJOR.MINOR.PATCH")
    major, minor, patch = match.groups()
    return (int(major), int(minor), int(patch))


def at_least(version: str, minimum: str) -> bool:
    """True when `version` >= `minimum` (both semantic versions)."""
    return parse_version(version) >= parse_version(minimum)


def is_supported(version: str) -> bool:
    """True when this library can drive a config of `version`."""
    return (version or "0.1.0") in SUPPORTED_VERSIONS


def highest_supported(candidates: list[str]) -> str | None:
    """The newest of `candidates` this library supports (spec: pick the highest common version)."""
    usable = [v for v in candidates if is_supported(v)]
    if not usable:
        return None
    return max(usable, key=parse_version)
