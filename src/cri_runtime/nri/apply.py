"""Applying a merged NRI ContainerAdjustment to the OCI spec of a container being created.

Mirrors what containerd's spec generator does with an adjustment: removals
(keys marked with a leading "-") first, then additions; hooks and devices are
appended; Linux resources override the CRI-derived ones field by field.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from cri_protos.nri.v1alpha1 import api_pb2 as api

_HOOK_KINDS = ("prestart", "create_runtime", "create_container", "start_container", "poststart", "poststop")
_OCI_HOOK_NAMES = {"prestart": "prestart", "create_runtime": "createRuntime", "create_container": "createContainer",
                   "start_container": "startContainer", "poststart": "poststart", "poststop": "poststop"}


def apply_adjustment(spec: dict[str, Any], adjust: api.ContainerAdjustment) -> None:
    process = spec.setdefault("process", {})
    annotations = spec.setdefault("annotations", {})
    for key, value in adjust.annotations.items():
        if key.startswith("-"):
            annotations.pop(key[1:], None)
        else:
            annotations[key] = value
    env = list(process.get("env") or [])
    for kv in adjust.env:
        name = kv.key.removeprefix("-")
        env = [e for e in env if e.split("=", 1)[0] != name]
        if not kv.key.startswith("-"):
            env.append(f"{name}={kv.value}")
    process["env"] = env
    mounts = list(spec.get("mounts") or [])
    for m in adjust.mounts:
        dest = m.destination.removeprefix("-")
        mounts = [x for x in mounts if x.get("destination") != dest]
        if not m.destination.startswith("-"):
            mounts.append({"destination": dest, "type": m.type, "source": m.source, "options": list(m.options)})
    spec["mounts"] = mounts
    if adjust.args:
        process["args"] = [a for a in adjust.args if a]
    for r in adjust.rlimits:
        rlimits = [x for x in process.get("rlimits") or [] if x.get("type") != r.type]
        process["rlimits"] = [*rlimits, {"type": r.type, "hard": r.hard, "soft": r.soft}]
    if adjust.HasField("hooks"):
        hooks = spec.setdefault("hooks", {})
        for kind in _HOOK_KINDS:
            for hook in getattr(adjust.hooks, kind):
                entry: dict[str, Any] = {"path": hook.path}
                if hook.args:
                    entry["args"] = list(hook.args)
                if hook.env:
                    entry["env"] = list(hook.env)
                if hook.HasField("timeout"):
                    entry["timeout"] = hook.timeout.value
                hooks.setdefault(_OCI_HOOK_NAMES[kind], []).append(entry)
    _apply_linux(spec, adjust.linux)


def _apply_linux(spec: dict[str, Any], linux: api.LinuxContainerAdjustment) -> None:
    spec_linux = spec.setdefault("linux", {})
    for device in linux.devices:
        _add_device(spec_linux, device)
    if linux.cgroups_path:
        spec_linux["cgroupsPath"] = linux.cgroups_path
    if linux.HasField("oom_score_adj"):
        spec.setdefault("process", {})["oomScoreAdj"] = linux.oom_score_adj.value
    if linux.HasField("resources"):
        apply_resources(spec_linux.setdefault("resources", {}), linux.resources)


def _add_device(spec_linux: dict[str, Any], device: api.LinuxDevice) -> None:
    entry: dict[str, Any] = {"path": device.path, "type": device.type, "major": device.major, "minor": device.minor}
    if not device.type:  # as containerd does, fill what the plugin left out from the host's node
        st = os.stat(device.path)
        entry.update(type="c" if stat.S_ISCHR(st.st_mode) else "b",
                     major=os.major(st.st_rdev), minor=os.minor(st.st_rdev))  # fmt: skip
    if device.HasField("file_mode"):
        entry["fileMode"] = device.file_mode.value
    if device.HasField("uid"):
        entry["uid"] = device.uid.value
    if device.HasField("gid"):
        entry["gid"] = device.gid.value
    devices = [d for d in spec_linux.get("devices") or [] if d.get("path") != device.path]
    spec_linux["devices"] = [*devices, entry]
    allowed = spec_linux.setdefault("resources", {}).setdefault("devices", [])
    allowed.append({"allow": True, "type": entry["type"], "major": entry["major"], "minor": entry["minor"],
                    "access": "rwm"})  # fmt: skip


def apply_resources(res: dict[str, Any], r: api.LinuxResources) -> None:
    mem = res.setdefault("memory", {})
    for name, key in (("limit", "limit"), ("reservation", "reservation"), ("swap", "swap"),
                      ("kernel", "kernel"), ("kernel_tcp", "kernelTCP"), ("swappiness", "swappiness")):  # fmt: skip
        if r.memory.HasField(name):
            mem[key] = getattr(r.memory, name).value
    if r.memory.HasField("disable_oom_killer"):
        mem["disableOOMKiller"] = r.memory.disable_oom_killer.value
    cpu = res.setdefault("cpu", {})
    for name, key in (("shares", "shares"), ("quota", "quota"), ("period", "period"),
                      ("realtime_runtime", "realtimeRuntime"), ("realtime_period", "realtimePeriod")):  # fmt: skip
        if r.cpu.HasField(name):
            cpu[key] = getattr(r.cpu, name).value
    if r.cpu.cpus:
        cpu["cpus"] = r.cpu.cpus
    if r.cpu.mems:
        cpu["mems"] = r.cpu.mems
    for h in r.hugepage_limits:
        limits = [x for x in res.get("hugepageLimits") or [] if x.get("pageSize") != h.page_size]
        res["hugepageLimits"] = [*limits, {"pageSize": h.page_size, "limit": h.limit}]
    if r.unified:
        res.setdefault("unified", {}).update(r.unified)
    if r.HasField("pids"):
        res["pids"] = {"limit": r.pids.limit}
    for d in r.devices:
        entry: dict[str, Any] = {"allow": d.allow, "type": d.type, "access": d.access}
        if d.HasField("major"):
            entry["major"] = d.major.value
        if d.HasField("minor"):
            entry["minor"] = d.minor.value
        res.setdefault("devices", []).append(entry)
    for key in ("memory", "cpu"):
        if not res[key]:
            del res[key]
