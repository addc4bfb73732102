"""The pod's user-namespace mappings: validated once, used by the pause and every container spec."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cri_protos.runtime.v1 import api_pb2

from ..errors import InvalidArgument

MAX_ID = 2**32 - 1  # (uid_t)-1 is never a valid ID


@dataclass(frozen=True)
class IdMap:
    container_id: int
    host_id: int
    length: int

    def to_spec(self) -> dict[str, int]:
        return {"containerID": self.container_id, "hostID": self.host_id, "size": self.length}

    def to_host(self, container_id: int) -> int:
        return self.host_id + container_id - self.container_id


@dataclass(frozen=True)
class PodUserns:
    uids: IdMap
    gids: IdMap

    def spec_mappings(self) -> dict[str, Any]:
        """``linux.uidMappings`` / ``linux.gidMappings`` of an OCI spec."""
        return {"uidMappings": [self.uids.to_spec()], "gidMappings": [self.gids.to_spec()]}

    @property
    def host_root(self) -> tuple[int, int]:
        """The host uid and gid of root in the pod."""
        return self.uids.to_host(0), self.gids.to_host(0)


def _one(mappings: Any, kind: str) -> IdMap:
    where = f"userns_options.{kind}"
    if len(mappings) != 1:
        raise InvalidArgument(f"{where}: exactly one mapping is supported, got {len(mappings)}")
    m = mappings[0]
    if m.container_id != 0:
        raise InvalidArgument(f"{where}: the mapping must start at container ID 0 (root), got {m.container_id}")
    if m.length < 1:
        raise InvalidArgument(f"{where}: mapping length must be positive")
    if m.host_id == 0:
        raise InvalidArgument(f"{where}: host ID 0 must not be mapped into a pod's user namespace")
    if m.host_id + m.length > MAX_ID:
        raise InvalidArgument(f"{where}: host range {m.host_id}+{m.length} exceeds the ID space")
    return IdMap(m.container_id, m.host_id, m.length)


def pod_userns(ns: api_pb2.NamespaceOption) -> PodUserns | None:
    """The pod's mappings for user-namespace mode POD, None for NODE; InvalidArgument otherwise.

    Rules (kubelet sends one 0-based mapping per kind of 65536 IDs or a multiple):
    one mapping per kind starting at container ID 0, never host ID 0; no other
    namespace shared with the host (kubelet forbids hostUsers: false with them).
    """
    if not ns.HasField("userns_options"):
        return None
    opts = ns.userns_options
    if opts.mode == api_pb2.NODE:
        if opts.uids or opts.gids:
            raise InvalidArgument("userns_options: mappings given with mode NODE (the host's user namespace)")
        return None
    if opts.mode != api_pb2.POD:
        mode = api_pb2.NamespaceMode.Name(opts.mode) if opts.mode in api_pb2.NamespaceMode.values() else opts.mode
        raise InvalidArgument(f"userns_options.mode {mode} is not supported: a user namespace is per pod (POD) "
                              "or the host's (NODE)")
    userns = PodUserns(_one(opts.uids, "uids"), _one(opts.gids, "gids"))
    for kind in ("network", "pid", "ipc"):
        if getattr(ns, kind) == api_pb2.NODE:
            raise InvalidArgument(f"a pod with its own user namespace cannot use the host's {kind} namespace")
    return userns


_LOCKED_FLAGS = ((os.ST_NOSUID, "nosuid"), (os.ST_NODEV, "nodev"), (os.ST_NOEXEC, "noexec"),
                 (os.ST_NOATIME, "noatime"), (os.ST_NODIRATIME, "nodiratime"), (os.ST_RELATIME, "relatime"))


def keep_locked_flags(mounts: list[dict[str, Any]]) -> None:
    """Add to each bind mount the flags its source mount has (nosuid, nodev, noexec, atime).

    Inside a user namespace those flags are locked: runc's read-only remount of
    a bind mount that omits them fails with EPERM (runc 1.1.5 does not add them
    itself, later runc versions do).
    """
    for m in mounts:
        options = m.get("options") or []
        if m.get("type") != "bind" and "bind" not in options and "rbind" not in options:
            continue
        try:
            flags = os.statvfs(m["source"]).f_flag
        except (OSError, KeyError):
            continue
        wanted = [name for bit, name in _LOCKED_FLAGS if flags & bit and name not in options]
        if "relatime" in wanted and ("noatime" in options or "strictatime" in options):
            wanted.remove("relatime")
        m["options"] = [*options, *wanted]
