"""On-disk record of every CNI attachment, so DEL repeats exactly what ADD did.

The spec requires DEL to get the same configuration and parameters as ADD
and the ADD result as `prevResult`; after a restart of the server (or after
the operator edited `/etc/cni/net.d`) memory and the config dir cannot give
that. So each attachment gets one small JSON file under
`<root>/<sandbox id>/<ifname>.json` holding the config list, CNI_ARGS,
capability arguments, netns path and (once ADD finished) the result.

The record is written *before* ADD runs (result `null`) and rewritten with the
result after: a server killed in the middle of ADD still leaves what is needed
to undo it. Files are replaced atomically (temp file, rename), without fsync:
that is what a kill -9 needs, and libcni's own cache does no more for a power
loss (after which the netns is gone anyway and a torn record still gets a DEL
from the current config, see `UnreadableRecord`).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from cri_runtime import errors
from cri_runtime.store.atomic import read_json, write_bytes

RECORD_KIND = "criRuntimeCniAttachmentV1"


@dataclass
class AttachmentRecord:
    """What one attachment (network + interface of a sandbox) was set up with."""

    container_id: str
    ifname: str
    network_name: str
    netns: str
    #: The network config list as conflist JSON.
    config: dict[str, Any]
    cni_args: list[tuple[str, str]] = field(default_factory=list)
    capability_args: dict[str, Any] = field(default_factory=dict)
    #: The final ADD result; None while ADD runs or if it never finished.
    result: dict[str, Any] | None = None
    #: Position in the sandbox's attachment order (teardown runs in reverse).
    order: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": RECORD_KIND,
            "containerId": self.container_id,
            "ifName": self.ifname,
            "networkName": self.network_name,
            "netns": self.netns,
            "config": self.config,
            "cniArgs": [list(kv) for kv in self.cni_args],
            "capabilityArgs": self.capability_args,
            "result": self.result,
            "order": self.order,
        }

    @classmethod
    def from_json(cls, data: Any) -> AttachmentRecord:
        if not isinstance(data, dict) or data.get("kind") != RECORD_KIND:
            raise ValueError("not a cri-runtime CNI attachment record")
        args = data.get("cniArgs") or []
        result = data.get("result")
        config = data.get("config")
        if not isinstance(config, dict):
            raise ValueError("record has no config")
        return cls(
            container_id=str(data["containerId"]),
            ifname=str(data["ifName"]),
            network_name=str(data["networkName"]),
            netns=str(data.get("netns", "")),
            config=config,
            cni_args=[(str(k), str(v)) for k, v in args],
            capability_args=dict(data.get("capabilityArgs") or {}),
            result=result if isinstance(result, dict) else None,
            order=int(data.get("order", 0)),
        )


@dataclass(frozen=True)
class UnreadableRecord:
    """A record file that exists but cannot be parsed; teardown must still deal with it."""

    container_id: str
    ifname: str
    path: str
    reason: str


class AttachmentCache:
    """Records under `root`, one directory per sandbox."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _dir(self, container_id: str) -> str:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise errors.InvalidArgument(f"invalid sandbox id {container_id!r}")
        return os.path.join(self.root, container_id)

    def _path(self, container_id: str, ifname: str) -> str:
        return os.path.join(self._dir(container_id), f"{ifname}.json")

    def save(self, record: AttachmentRecord) -> None:
        """Write (or replace) the record atomically."""
        directory = self._dir(record.container_id)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            # json.dumps, not json.dump: only the one-shot form uses the C encoder.
            write_bytes(self._path(record.container_id, record.ifname), json.dumps(record.to_json()).encode())
        except OSError as exc:
            raise errors.Internal(f"cannot write CNI cache for sandbox {record.container_id}: {exc}") from None

    def load(self, container_id: str) -> tuple[list[AttachmentRecord], list[UnreadableRecord]]:
        """All records of a sandbox in attachment order, plus any that cannot be read."""
        directory = self._dir(container_id)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return [], []
        records: list[AttachmentRecord] = []
        broken: list[UnreadableRecord] = []
        for name in names:
            if not name.endswith(".json") or name.startswith("."):
                continue
            path = os.path.join(directory, name)
            ifname = name[: -len(".json")]
            try:
                data = read_json(path)
                if data is None:  # removed meanwhile
                    continue
                records.append(AttachmentRecord.from_json(data))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                broken.append(UnreadableRecord(container_id, ifname, path, str(exc)))
        records.sort(key=lambda r: r.order)
        return records, broken

    def remove(self, container_id: str, ifname: str) -> None:
        """Drop one record; the sandbox directory goes with its last record."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(container_id, ifname))
        self._remove_dir_if_empty(container_id)

    def _remove_dir_if_empty(self, container_id: str) -> None:
        directory = self._dir(container_id)
        try:
            leftovers = [n for n in os.listdir(directory) if not n.startswith(".tmp-")]
        except FileNotFoundError:
            return
        if leftovers:
            return
        for name in os.listdir(directory):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(directory)

    def sandboxes(self) -> list[str]:
        """Sandbox IDs that still have records (for start-up recovery and leak checks)."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if os.path.isdir(os.path.join(self.root, n)))
