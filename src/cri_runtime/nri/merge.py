"""Combining the adjustments and updates of several NRI plugins, as containerd/nri's result.go does.

Each adjustable field is owned by the first plugin that sets it; a later
plugin that sets the same field again is a conflict and fails the call, so
two resource policies can never silently overwrite each other. Removals are
marked by a leading "-" on the key (annotation, env name, mount destination).
Adjustments cri-runtime cannot apply yet are refused by name, never ignored.
"""

from __future__ import annotations

from google.protobuf.message import Message

from cri_protos.nri.v1alpha1 import api_pb2 as api

from .plugin import PluginError

#: LinuxContainerAdjustment fields we apply; any other one set by a plugin is refused.
_SUPPORTED_LINUX = {"devices", "resources", "cgroups_path", "oom_score_adj"}
_SUPPORTED = {"annotations", "mounts", "env", "hooks", "linux", "rlimits", "args", "CDI_devices"}


class _Owners:
    def __init__(self, event: str) -> None:
        self._event = event
        self._owner: dict[str, str] = {}

    def claim(self, plugin: str, path: str) -> None:
        owner = self._owner.get(path)
        if owner is not None and owner != plugin:
            raise PluginError(plugin, self._event, f"conflict: plugins {owner} and {plugin} both set {path}")
        self._owner[path] = plugin


def _merge_resources(owners: _Owners, plugin: str, target: api.LinuxResources, source: api.LinuxResources,
                     prefix: str) -> None:  # fmt: skip
    """Copy every field `source` sets into `target`, claiming each one."""
    for desc, value in source.ListFields():
        path = f"{prefix}.{desc.name}"
        if desc.name in ("memory", "cpu", "pids"):
            sub_target = getattr(target, desc.name)
            for sub_desc, sub_value in value.ListFields():
                owners.claim(plugin, f"{path}.{sub_desc.name}")
                if isinstance(sub_value, Message):
                    getattr(sub_target, sub_desc.name).CopyFrom(sub_value)
                else:
                    setattr(sub_target, sub_desc.name, sub_value)
        elif desc.name == "hugepage_limits":
            for limit in value:
                owners.claim(plugin, f"{path}.{limit.page_size}")
                kept = [h for h in target.hugepage_limits if h.page_size != limit.page_size]
                del target.hugepage_limits[:]
                target.hugepage_limits.extend([*kept, limit])
        elif desc.name == "unified":
            for key, item in value.items():
                owners.claim(plugin, f"{path}.{key}")
                target.unified[key] = item
        elif desc.name == "devices":
            target.devices.extend(value)
        else:  # blockio_class, rdt_class
            owners.claim(plugin, path)
            getattr(target, desc.name).CopyFrom(value)


class AdjustmentResult:
    """The merged outcome of a CreateContainer event."""

    def __init__(self, container: api.Container) -> None:
        self._container = api.Container()
        self._container.CopyFrom(container)
        self.adjust = api.ContainerAdjustment()
        self.updates: list[api.ContainerUpdate] = []
        self.evictions: list[api.ContainerEviction] = []
        self._owners = _Owners("CreateContainer")
        self._update_owners = _Owners("CreateContainer")

    def apply(self, plugin: str, adjust: api.ContainerAdjustment, updates: list[api.ContainerUpdate],
              evictions: list[api.ContainerEviction]) -> None:  # fmt: skip
        for desc, _ in adjust.ListFields():
            if desc.name not in _SUPPORTED:
                raise PluginError(plugin, "CreateContainer", f"adjusting {desc.name} is not supported by cri-runtime")
        for desc, _ in adjust.linux.ListFields():
            if desc.name not in _SUPPORTED_LINUX:
                raise PluginError(plugin, "CreateContainer",
                                  f"adjusting linux.{desc.name} is not supported by cri-runtime")  # fmt: skip
        self._annotations(plugin, adjust)
        self._env(plugin, adjust)
        self._mounts(plugin, adjust)
        if adjust.HasField("hooks"):
            self.adjust.hooks.MergeFrom(adjust.hooks)
            self._container.hooks.MergeFrom(adjust.hooks)
        for cdi_device in adjust.CDI_devices:
            self._owners.claim(plugin, f"CDI_devices.{cdi_device.name}")
            self.adjust.CDI_devices.append(cdi_device)
            self._container.CDI_devices.append(cdi_device)
        for rlimit in adjust.rlimits:
            self._owners.claim(plugin, f"rlimits.{rlimit.type}")
            self.adjust.rlimits.append(rlimit)
        if adjust.args:
            self._owners.claim(plugin, "args")
            del self.adjust.args[:]
            self.adjust.args.extend(adjust.args)
            del self._container.args[:]
            self._container.args.extend(a for a in adjust.args if a)
        linux = adjust.linux
        for device in linux.devices:
            self._owners.claim(plugin, f"linux.devices.{device.path}")
            self.adjust.linux.devices.append(device)
            self._container.linux.devices.append(device)
        if linux.HasField("resources"):
            _merge_resources(self._owners, plugin, self.adjust.linux.resources, linux.resources, "linux.resources")
            _merge_resources(_Owners("copy"), plugin, self._container.linux.resources, linux.resources, "r")
        if linux.cgroups_path:
            self._owners.claim(plugin, "linux.cgroups_path")
            self.adjust.linux.cgroups_path = self._container.linux.cgroups_path = linux.cgroups_path
        if linux.HasField("oom_score_adj"):
            self._owners.claim(plugin, "linux.oom_score_adj")
            self.adjust.linux.oom_score_adj.CopyFrom(linux.oom_score_adj)
            self._container.linux.oom_score_adj.CopyFrom(linux.oom_score_adj)
        for update in updates:
            self._claim_update(plugin, update)
        self.evictions.extend(evictions)

    def _claim_update(self, plugin: str, update: api.ContainerUpdate) -> None:
        merged = next((u for u in self.updates if u.container_id == update.container_id), None)
        if merged is None:
            merged = api.ContainerUpdate(container_id=update.container_id, ignore_failure=update.ignore_failure)
            self.updates.append(merged)
        merged.ignore_failure = merged.ignore_failure and update.ignore_failure
        _merge_resources(self._update_owners, plugin, merged.linux.resources, update.linux.resources,
                         f"{update.container_id}.resources")  # fmt: skip

    def _annotations(self, plugin: str, adjust: api.ContainerAdjustment) -> None:
        for key, value in adjust.annotations.items():
            name = key.removeprefix("-")
            self._owners.claim(plugin, f"annotations.{name}")
            self.adjust.annotations[key] = value
            if key.startswith("-"):
                self._container.annotations.pop(name, None)
            else:
                self._container.annotations[name] = value

    def _env(self, plugin: str, adjust: api.ContainerAdjustment) -> None:
        for kv in adjust.env:
            name = kv.key.removeprefix("-")
            self._owners.claim(plugin, f"env.{name}")
            self.adjust.env.append(kv)
            kept = [e for e in self._container.env if e.split("=", 1)[0] != name]
            if not kv.key.startswith("-"):
                kept.append(f"{name}={kv.value}")
            del self._container.env[:]
            self._container.env.extend(kept)

    def _mounts(self, plugin: str, adjust: api.ContainerAdjustment) -> None:
        for mount in adjust.mounts:
            dest = mount.destination.removeprefix("-")
            self._owners.claim(plugin, f"mounts.{dest}")
            self.adjust.mounts.append(mount)
            kept = [m for m in self._container.mounts if m.destination != dest]
            if not mount.destination.startswith("-"):
                kept.append(mount)
            del self._container.mounts[:]
            self._container.mounts.extend(kept)

    def adjusted_container(self) -> api.Container:
        """The container as plugins will see it in later events and a Synchronize set."""
        return self._container


class UpdateResult:
    """The merged outcome of an UpdateContainer event: the resources to apply, and other containers' updates."""

    def __init__(self, container_id: str, resources: api.LinuxResources) -> None:
        self.container_id = container_id
        self.resources = api.LinuxResources()
        self.resources.CopyFrom(resources)
        self.updates: list[api.ContainerUpdate] = []
        self.evictions: list[api.ContainerEviction] = []
        self._owners = _Owners("UpdateContainer")

    def apply(self, plugin: str, updates: list[api.ContainerUpdate], evictions: list[api.ContainerEviction]) -> None:
        for update in updates:
            if update.container_id == self.container_id:
                _merge_resources(self._owners, plugin, self.resources, update.linux.resources, "resources")
            else:
                self.updates.append(update)
        self.evictions.extend(evictions)
