"""Applying CDI container edits to an OCI runtime spec (a JSON-ready dict).

Semantics of the reference implementation (pkg/cdi/container-edits.go): a
spec's own edits are applied once when any of its devices is requested, then
each device's; env entries replace same-named ones; a device node replaces a
node at the same path and gets a device-cgroup allow rule (``rwm`` unless
``permissions`` says otherwise, nothing for ``none``); type, major/minor and
file mode missing from the spec are read from the host node; mounts replace a
mount at the same destination and are re-sorted parents first; hooks go to
their lifecycle phase; additional GIDs (except 0) join the process's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidArgument
from .registry import ResolvedDevice
from .spec import ContainerEdits


def _host_node(node: dict[str, Any], device: str, path: str) -> dict[str, Any]:
    """The OCI device of a CDI device node, completed from the host node."""
    dev = dict(node)
    host = dev.pop("hostPath", "") or dev["path"]
    kind = dev.get("type", "")
    minimal = bool(kind) and (dev.get("major", 0) != 0 or kind == "p")
    try:
        st = os.lstat(host)
    except OSError as exc:
        if not minimal:
            raise InvalidArgument(
                f"CDI device {device} (spec {path}): host device {host!r} cannot be read: {exc.strerror}") from None
        st = None
    if st is not None:
        mode = st.st_mode
        host_kind = "b" if stat.S_ISBLK(mode) else "c" if stat.S_ISCHR(mode) else "p" if stat.S_ISFIFO(mode) else ""
        if not host_kind and not minimal:
            raise InvalidArgument(f"CDI device {device} (spec {path}): {host!r} is not a device node")
        dev.setdefault("fileMode", stat.S_IMODE(mode))
        if not minimal:
            if not kind:
                kind = dev["type"] = host_kind
            if kind != host_kind and not (kind == "u" and host_kind == "c"):
                raise InvalidArgument(f"CDI device {device} (spec {path}): {dev['path']!r} is of type {kind!r} "
                                      f"but host node {host!r} is of type {host_kind!r}")
            if kind != "p" and dev.get("major", 0) == 0:
                dev["major"], dev["minor"] = os.major(st.st_rdev), os.minor(st.st_rdev)
    dev.pop("permissions", None)
    if dev.get("type") in ("b", "c", "u"):
        dev.setdefault("major", 0)
        dev.setdefault("minor", 0)
    return dev


def _set_env(process: dict[str, Any], env: Sequence[str]) -> None:
    current = list(process.get("env") or [])
    for entry in env:
        name = entry.split("=", 1)[0]
        current = [e for e in current if e.split("=", 1)[0] != name]
        current.append(entry)
    process["env"] = current


def _apply_one(spec: dict[str, Any], edits: ContainerEdits, device: str, path: str) -> None:
    process = spec.setdefault("process", {})
    linux = spec.setdefault("linux", {})
    if edits.env:
        _set_env(process, edits.env)
    user = process.setdefault("user", {"uid": 0, "gid": 0})
    for node in edits.device_nodes:
        dev = _host_node(node, device, path)
        if "uid" not in dev and user.get("uid", 0) > 0:
            dev["uid"] = user["uid"]
        if "gid" not in dev and user.get("gid", 0) > 0:
            dev["gid"] = user["gid"]
        devices = [d for d in linux.get("devices") or [] if d.get("path") != dev["path"]]
        devices.append(dev)
        linux["devices"] = devices
        if dev.get("type") in ("b", "c"):
            access = node.get("permissions", "") or "rwm"
            rule = {"allow": True, "type": dev["type"], "major": dev["major"], "minor": dev["minor"],
                    "access": "" if access == "none" else access}
            linux.setdefault("resources", {}).setdefault("devices", []).append(rule)
    if edits.mounts:
        mounts = list(spec.get("mounts") or [])
        for m in edits.mounts:
            dst = m["containerPath"]
            mounts = [x for x in mounts if os.path.normpath(x.get("destination", "")) != os.path.normpath(dst)]
            oci: dict[str, Any] = {"destination": dst, "source": m["hostPath"], "options": list(m["options"])}
            if m.get("type"):
                oci["type"] = m["type"]
            mounts.append(oci)
        mounts.sort(key=lambda x: os.path.normpath(x["destination"]).count("/"))  # stable: parents first
        spec["mounts"] = mounts
    for hook in edits.hooks:
        oci_hook = {k: hook[k] for k in ("path", "args", "env", "timeout") if k in hook}
        spec.setdefault("hooks", {}).setdefault(hook["hookName"], []).append(oci_hook)
    if edits.intel_rdt is not None:
        linux["intelRdt"] = {k: v for k, v in edits.intel_rdt.items() if v}
    if edits.additional_gids:
        gids = list(user.get("additionalGids") or [])
        gids += [g for g in edits.additional_gids if g != 0 and g not in gids]
        user["additionalGids"] = gids


def apply_edits(spec: dict[str, Any], devices: Sequence[ResolvedDevice]) -> None:
    """Apply the edits of ``devices`` (and, once each, of their specs) to ``spec`` in place."""
    seen: set[str] = set()
    for dev in devices:
        if dev.spec.path not in seen:
            seen.add(dev.spec.path)
            _apply_one(spec, dev.spec.edits, dev.name, dev.spec.path)
        _apply_one(spec, dev.edits, dev.name, dev.spec.path)
