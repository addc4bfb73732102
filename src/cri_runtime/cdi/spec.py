"""Reading and validating one CDI spec file (JSON or YAML; PyYAML parses both).

Validation is strict, as in the reference implementation: unknown keys,
wrong types, an unknown ``cdiVersion``, a version older than the features the
file uses, bad names, empty devices: each is a ``SpecError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .names import check_device_name, check_kind

#: Versions we read, oldest first (0.1/0.2 used another layout; 1.1 adds netDevices and RDT schemata).
VERSIONS = ("0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0")
HOOK_NAMES = frozenset(
    {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"})
DEVICE_TYPES = frozenset({"", "b", "c", "u", "p"})

_EDIT_KEYS: dict[str, type] = {"env": list, "deviceNodes": list, "hooks": list, "mounts": list, "intelRdt": dict,
              "additionalGids": list}
_NODE_KEYS: dict[str, type] = {"path": str, "hostPath": str, "type": str, "major": int, "minor": int, "fileMode": int,
              "permissions": str, "uid": int, "gid": int}
_MOUNT_KEYS: dict[str, type] = {"hostPath": str, "containerPath": str, "options": list, "type": str}
_HOOK_KEYS: dict[str, type] = {"hookName": str, "path": str, "args": list, "env": list, "timeout": int}
_RDT_KEYS: dict[str, type] = {"closID": str, "l3CacheSchema": str, "memBwSchema": str}


class SpecError(Exception):
    """A spec file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class ContainerEdits:
    """Validated container edits (OCI-shaped plain data)."""

    env: tuple[str, ...] = ()
    device_nodes: tuple[dict[str, Any], ...] = ()
    hooks: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()
    intel_rdt: dict[str, Any] | None = None
    additional_gids: tuple[int, ...] = ()

    def empty(self) -> bool:
        return not (self.env or self.device_nodes or self.hooks or self.mounts or self.intel_rdt is not None
                    or self.additional_gids)


@dataclass(frozen=True)
class CdiSpec:
    path: str
    version: str
    kind: str
    devices: dict[str, ContainerEdits]
    edits: ContainerEdits = field(default_factory=ContainerEdits)
    #: Index of its directory in the registry's list (later directories win).
    priority: int = 0


def _typed(obj: Any, schema: Mapping[str, type], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
    for key, value in obj.items():
        want = schema.get(key)
        if want is None:
            raise ValueError(f"{where}: unknown field {key!r}")
        if value is None:
            continue
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if not ok:
            raise ValueError(f"{where}.{key}: expected {want.__name__}, got {type(value).__name__}")
    return {k: v for k, v in obj.items() if v is not None}


def _strings(values: list[Any], where: str) -> tuple[str, ...]:
    if any(not isinstance(v, str) for v in values):
        raise ValueError(f"{where}: expected a list of strings")
    return tuple(values)


def _env(values: list[Any], where: str) -> tuple[str, ...]:
    out = _strings(values, where)
    for v in out:
        if v.find("=") <= 0:
            raise ValueError(f"{where}: invalid environment variable {v!r} (want NAME=value)")
    return out


def _device_node(obj: Any, where: str) -> dict[str, Any]:
    node = _typed(obj, _NODE_KEYS, where)
    if not node.get("path"):
        raise ValueError(f"{where}: path is required")
    if node.get("type", "") not in DEVICE_TYPES:
        raise ValueError(f"{where}: invalid type {node['type']!r} (want b, c, u or p)")
    perms = node.get("permissions", "")
    if perms not in ("", "none") and (set(perms) - set("rwm")):
        raise ValueError(f"{where}: invalid permissions {perms!r} (want r, w, m or none)")
    for key in ("uid", "gid", "fileMode"):
        if key in node and node[key] < 0:
            raise ValueError(f"{where}.{key}: must not be negative")
    return node


def _mount(obj: Any, where: str) -> dict[str, Any]:
    mount = _typed(obj, _MOUNT_KEYS, where)
    if not mount.get("hostPath"):
        raise ValueError(f"{where}: hostPath is required")
    if not mount.get("containerPath"):
        raise ValueError(f"{where}: containerPath is required")
    mount["options"] = list(_strings(mount.get("options", []), f"{where}.options"))
    return mount


def _hook(obj: Any, where: str) -> dict[str, Any]:
    hook = _typed(obj, _HOOK_KEYS, where)
    if hook.get("hookName") not in HOOK_NAMES:
        raise ValueError(f"{where}: invalid hookName {hook.get('hookName')!r} (want one of {sorted(HOOK_NAMES)})")
    if not hook.get("path"):
        raise ValueError(f"{where}: path is required")
    _strings(hook.get("args", []), f"{where}.args")
    _env(hook.get("env", []), f"{where}.env")
    return hook


def _intel_rdt(obj: Any, where: str) -> dict[str, Any]:
    rdt = _typed(obj, _RDT_KEYS, where)
    clos = rdt.get("closID", "")
    if clos != "/" and (len(clos) >= 4096 or clos in (".", "..") or "/" in clos or "\n" in clos):
        raise ValueError(f"{where}: invalid closID {clos!r}")
    return rdt


def parse_edits(obj: Any, where: str) -> ContainerEdits:
    if obj is None:
        return ContainerEdits()
    raw = _typed(obj, _EDIT_KEYS, where)
    gids = raw.get("additionalGids", [])
    if any(not isinstance(g, int) or isinstance(g, bool) or not 0 <= g < 2**32 for g in gids):
        raise ValueError(f"{where}.additionalGids: expected a list of 32-bit unsigned integers")
    return ContainerEdits(
        env=_env(raw.get("env", []), f"{where}.env"),
        device_nodes=tuple(_device_node(d, f"{where}.deviceNodes[{i}]")
                           for i, d in enumerate(raw.get("deviceNodes", []))),
        hooks=tuple(_hook(h, f"{where}.hooks[{i}]") for i, h in enumerate(raw.get("hooks", []))),
        mounts=tuple(_mount(m, f"{where}.mounts[{i}]") for i, m in enumerate(raw.get("mounts", []))),
        intel_rdt=_intel_rdt(raw["intelRdt"], f"{where}.intelRdt") if "intelRdt" in raw else None,
        additional_gids=tuple(gids),
    )


def _required_version(raw: dict[str, Any], devices: list[dict[str, Any]], all_edits: list[ContainerEdits]) -> str:
    """The oldest spec version that has every feature the file uses (as the reference package decides)."""
    if any(e.intel_rdt is not None or e.additional_gids for e in all_edits):
        return "0.7.0"
    kind_class = raw["kind"].partition("/")[2]
    if raw.get("annotations") or any(d.get("annotations") for d in devices) or "." in kind_class:
        return "0.6.0"
    if any(str(d.get("name", "x"))[:1].isdigit() for d in devices) or any(
            n.get("hostPath") for e in all_edits for n in e.device_nodes):
        return "0.5.0"
    if any(m.get("type") for e in all_edits for m in e.mounts):
        return "0.4.0"
    return "0.3.0"


def _annotations(obj: Any, where: str) -> None:
    if obj is None:
        return
    if not isinstance(obj, dict) or any(not isinstance(k, str) or not isinstance(v, str) for k, v in obj.items()):
        raise ValueError(f"{where}: expected a map of strings")


def parse_spec(text: str, path: str, priority: int = 0) -> CdiSpec:
    """Parse and validate the text of spec file ``path``; SpecError on any problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"CDI spec {path}: not valid JSON or YAML: {exc}") from None
    try:
        return _build(raw, path, priority)
    except ValueError as exc:
        raise SpecError(f"CDI spec {path}: {exc}") from None


def _build(raw: Any, path: str, priority: int) -> CdiSpec:
    top = _typed(raw, {"cdiVersion": str, "kind": str, "annotations": dict, "devices": list,
                       "containerEdits": dict}, "spec")
    version = str(top.get("cdiVersion", "")).removeprefix("v")
    if version not in VERSIONS:
        raise ValueError(f"unsupported cdiVersion {top.get('cdiVersion')!r} (supported: {', '.join(VERSIONS)})")
    kind = top.get("kind", "")
    problem = check_kind(kind)
    if problem:
        raise ValueError(problem)
    _annotations(top.get("annotations"), "annotations")
    spec_edits = parse_edits(top.get("containerEdits"), "containerEdits")
    devices_raw = top.get("devices") or []
    if not devices_raw:
        raise ValueError("no devices (a spec needs at least one)")
    devices: dict[str, ContainerEdits] = {}
    for i, d in enumerate(devices_raw):
        where = f"devices[{i}]"
        dev = _typed(d, {"name": str, "annotations": dict, "containerEdits": dict}, where)
        name = dev.get("name", "")
        problem = check_device_name(name)
        if problem:
            raise ValueError(f"{where}: {problem}")
        if name in devices:
            raise ValueError(f"{where}: device {name!r} is defined twice")
        _annotations(dev.get("annotations"), f"{where}.annotations")
        edits = parse_edits(dev.get("containerEdits"), f"{where}.containerEdits")
        if edits.empty():
            raise ValueError(f"{where}: device {name!r} has no container edits")
        devices[name] = edits
    need = _required_version(top, devices_raw, [spec_edits, *devices.values()])
    if VERSIONS.index(need) > VERSIONS.index(version):
        raise ValueError(f"cdiVersion {version} is too old for the features used: needs at least {need}")
    return CdiSpec(path=path, version=version, kind=kind, devices=devices, edits=spec_edits, priority=priority)


def read_spec(path: str, priority: int = 0) -> CdiSpec:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"CDI spec {path}: cannot read: {exc}") from None
    return parse_spec(text, path, priority)
