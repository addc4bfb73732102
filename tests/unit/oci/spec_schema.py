"""A structural check of OCI runtime-spec 1.0 documents (types and required keys).

Not the full JSON schema: enough to catch a wrong type or a missing required
field before runc does.
"""

from __future__ import annotations

from typing import Any

_NS_TYPES = {"pid", "network", "mount", "ipc", "uts", "user", "cgroup"}


def _fail(path: str, why: str) -> None:
    raise AssertionError(f"{path}: {why}")


def _check_type(value: Any, kind: type | tuple[type, ...], path: str) -> None:
    if isinstance(value, bool) and kind is int:
        _fail(path, "bool where int expected")
    if not isinstance(value, kind):
        _fail(path, f"expected {kind}, got {type(value).__name__}")


def _str_list(value: Any, path: str) -> None:
    _check_type(value, list, path)
    for i, v in enumerate(value):
        _check_type(v, str, f"{path}[{i}]")


def check_spec(spec: dict[str, Any]) -> None:
    """Raise AssertionError describing the first structural problem of ``spec``."""
    _check_type(spec.get("ociVersion"), str, "ociVersion")
    _check_type(spec.get("root"), dict, "root")
    root = spec["root"]
    _check_type(root["path"], str, "root.path")
    _check_type(root.get("readonly", False), bool, "root.readonly")
    proc = spec["process"]
    _check_type(proc.get("cwd"), str, "process.cwd")
    if not proc["cwd"].startswith("/"):
        _fail("process.cwd", "must be absolute")
    _str_list(proc.get("args"), "process.args")
    if not proc["args"]:
        _fail("process.args", "must not be empty")
    _str_list(proc.get("env", []), "process.env")
    user = proc["user"]
    _check_type(user["uid"], int, "process.user.uid")
    _check_type(user["gid"], int, "process.user.gid")
    for g in user.get("additionalGids", []):
        _check_type(g, int, "process.user.additionalGids[]")
    for key, caps in proc.get("capabilities", {}).items():
        if key not in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            _fail(f"process.capabilities.{key}", "unknown set")
        _str_list(caps, f"process.capabilities.{key}")
    for key in ("terminal", "noNewPrivileges"):
        _check_type(proc.get(key, False), bool, f"process.{key}")
    if "oomScoreAdj" in proc:
        _check_type(proc["oomScoreAdj"], int, "process.oomScoreAdj")
    for i, m in enumerate(spec.get("mounts", [])):
        _check_type(m.get("destination"), str, f"mounts[{i}].destination")
        if not m["destination"].startswith("/"):
            _fail(f"mounts[{i}].destination", "must be absolute")
        _check_type(m.get("type", ""), str, f"mounts[{i}].type")
        _check_type(m.get("source", ""), str, f"mounts[{i}].source")
        _str_list(m.get("options", []), f"mounts[{i}].options")
    linux = spec["linux"]
    for i, ns in enumerate(linux.get("namespaces", [])):
        if ns.get("type") not in _NS_TYPES:
            _fail(f"linux.namespaces[{i}].type", f"unknown {ns.get('type')!r}")
        _check_type(ns.get("path", ""), str, f"linux.namespaces[{i}].path")
    types = [ns["type"] for ns in linux.get("namespaces", [])]
    if len(types) != len(set(types)):
        _fail("linux.namespaces", "duplicate type")
    _str_list(linux.get("maskedPaths", []), "linux.maskedPaths")
    _str_list(linux.get("readonlyPaths", []), "linux.readonlyPaths")
    _check_type(linux.get("cgroupsPath", ""), str, "linux.cgroupsPath")
    res = linux.get("resources", {})
    for i, rule in enumerate(res.get("devices", [])):
        _check_type(rule.get("allow"), bool, f"linux.resources.devices[{i}].allow")
    for key, kind in (("shares", int), ("quota", int), ("period", int), ("cpus", str), ("mems", str)):
        if key in res.get("cpu", {}):
            _check_type(res["cpu"][key], kind, f"linux.resources.cpu.{key}")
    for key in ("limit", "swap"):
        if key in res.get("memory", {}):
            _check_type(res["memory"][key], int, f"linux.resources.memory.{key}")
    for i, dev in enumerate(linux.get("devices", [])):
        _check_type(dev.get("path"), str, f"linux.devices[{i}].path")
        if dev.get("type") not in ("c", "b", "u", "p"):
            _fail(f"linux.devices[{i}].type", "must be c, b, u or p")
        _check_type(dev.get("major"), int, f"linux.devices[{i}].major")
        _check_type(dev.get("minor"), int, f"linux.devices[{i}].minor")
    seccomp = linux.get("seccomp")
    if seccomp is not None:
        _check_type(seccomp.get("defaultAction"), str, "linux.seccomp.defaultAction")
        _str_list(seccomp.get("architectures", []), "linux.seccomp.architectures")
        for i, rule in enumerate(seccomp.get("syscalls", [])):
            _str_list(rule.get("names"), f"linux.seccomp.syscalls[{i}].names")
            _check_type(rule.get("action"), str, f"linux.seccomp.syscalls[{i}].action")
    for key, value in spec.get("annotations", {}).items():
        _check_type(key, str, "annotations key")
        _check_type(value, str, f"annotations[{key}]")
    for key, value in linux.get("sysctl", {}).items():
        _check_type(value, str, f"linux.sysctl[{key}]")
