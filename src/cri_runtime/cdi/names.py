"""CDI device names (``vendor.com/class=name``) and the devices a container asks for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import InvalidArgument

#: Annotation keys with this prefix carry comma-separated qualified device names.
ANNOTATION_PREFIX = "cdi.k8s.io/"


def _alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def _check_vendor_or_class(name: str, what: str) -> str | None:
    if not name:
        return f"empty {what}"
    if not (name[0].isascii() and name[0].isalpha()):
        return f"{what} {name!r} should start with a letter"
    if any(not (_alnum(c) or c in "_-.") for c in name[1:-1]):
        return f"{what} {name!r} has a character other than letters, digits, '_', '-' and '.'"
    if not _alnum(name[-1]):
        return f"{what} {name!r} should end with a letter or digit"
    return None


def check_device_name(name: str) -> str | None:
    """Why ``name`` is not a valid device name (None: it is)."""
    if not name:
        return "empty device name"
    if not _alnum(name[0]):
        return f"device name {name!r} should start with a letter or digit"
    if any(not (_alnum(c) or c in "_-.:") for c in name[1:-1]):
        return f"device name {name!r} has a character other than letters, digits, '_', '-', '.' and ':'"
    if not _alnum(name[-1]):
        return f"device name {name!r} should end with a letter or digit"
    return None


def check_kind(kind: str) -> str | None:
    """Why ``kind`` (``vendor.com/class``) is not valid (None: it is)."""
    vendor, sep, cls = kind.partition("/")
    if not sep or not vendor or not cls:
        return f"kind {kind!r} is not of the form vendor.com/class"
    return _check_vendor_or_class(vendor, "vendor") or _check_vendor_or_class(cls, "class")


def parse_qualified_name(device: str) -> tuple[str, str]:
    """``vendor.com/class=name`` → (kind, name); InvalidArgument if it is not one."""
    kind, sep, name = device.partition("=")
    problem = None
    if not sep or device.startswith("/"):
        problem = "not a qualified CDI device name (vendor.com/class=name)"
    else:
        problem = check_kind(kind) or check_device_name(name)
    if problem is not None:
        raise InvalidArgument(f"CDI device {device!r}: {problem}")
    return kind, name


def requested_devices(cdi_devices: Iterable[str], annotations: Mapping[str, str]) -> list[str]:
    """Qualified names asked for by ``CDI_devices`` and ``cdi.k8s.io/*`` annotations, first ask first.

    Annotation keys are taken in sorted order so the result does not depend on map order.
    """
    out: list[str] = []
    for name in cdi_devices:
        parse_qualified_name(name)
        if name not in out:
            out.append(name)
    for key in sorted(annotations):
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        for name in annotations[key].split(","):
            name = name.strip()
            try:
                parse_qualified_name(name)
            except InvalidArgument as exc:
                raise InvalidArgument(f"annotation {key}: {exc.message}") from None
            if name not in out:
                out.append(name)
    return out
