"""Container steps for devices: the config's devices, the host's for privileged containers."""

from __future__ import annotations

import os
from typing import Any

from ..container_input import ContainerSpecInput
from ..devices import cgroup_rule, devices_under, host_devices, parse_permissions
from ..spec_steps import Spec


def with_cri_devices(inp: ContainerSpecInput, spec: Spec) -> None:
    """Each config device (a directory: every node under it), allowed in the devices cgroup."""
    linux = spec["linux"]
    devices: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for d in inp.config.devices:
        access = parse_permissions(d.permissions, f"device {d.container_path!r}")
        for dev in devices_under(os.path.realpath(d.host_path), d.container_path):
            devices.append(dev)
            rules.append(cgroup_rule(dev, access))
    if devices:
        linux.setdefault("devices", []).extend(devices)
    linux["resources"]["devices"] = [*linux["resources"]["devices"], *rules]


def with_host_devices(inp: ContainerSpecInput, spec: Spec) -> None:
    """Privileged containers get every host device and access to all (unless the handler says not)."""
    options = inp.options
    if not inp.privileged or options.privileged_without_host_devices:
        return
    linux = spec["linux"]
    node_devices = options.host_devices if options.host_devices is not None else tuple(host_devices())
    if node_devices:
        linux.setdefault("devices", []).extend(dict(dev) for dev in node_devices)
    linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
