"""PodSandboxStatus(verbose) ``info`` in containerd's shape.

containerd's keys (its ``SandboxInfo``): ``pid``, ``processStatus``,
``netNamespaceClosed``, ``image``, ``snapshotKey``, ``snapshotter``,
``runtimeType``, ``runtimeOptions``, ``config``, ``runtimeSpec``,
``cniResult`` (go-cni's ``Result``: ``Interfaces``/``DNS``/``Routes``) and
``sandboxMetadata``. Our own keys keep their own names
(``netNamespacePath``, ``runtimeHandler``, ``podDir``, ``cniResultRaw``).
docs/verbose-info.md lists them all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.types.runc.options import oci_pb2
from cri_protos.containerd.types.task import task_pb2
from cri_runtime.containerd import objects
from cri_runtime.containerd.cached_state import Record
from cri_runtime.gojson import encode_members, go_json
from cri_runtime.network.cni.result import InvalidResult, parse_result
from cri_runtime.sandbox.model import Sandbox

_PROCESS_STATUS: dict[int, str] = {
    task_pb2.RUNNING: "running", task_pb2.CREATED: "created", task_pb2.STOPPED: "stopped",
    task_pb2.PAUSED: "paused", task_pb2.PAUSING: "pausing", task_pb2.UNKNOWN: "unknown"}


def runtime_options(record: containers_pb2.Container) -> dict[str, Any] | None:
    """The record's runc options as containerd's verbose info shows them (proto names), or None."""
    options = record.runtime.options
    if not options.value or options.type_url.rsplit("/", 1)[-1] != objects.RUNC_OPTIONS_TYPE_URL:
        return None
    return go_json(oci_pb2.Options.FromString(options.value))


def process_status(task: objects.TaskState | None) -> str:
    """containerd's ProcessStatus string; "deleted" when the task is gone (as containerd says)."""
    if task is None:
        return "deleted"
    return _PROCESS_STATUS.get(task.status, "unknown")


def go_cni_result(raw_results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """The CNI results as go-cni's ``Result`` marshals (what containerd shows as cniResult)."""
    if not raw_results:
        return None
    interfaces: dict[str, dict[str, Any]] = {}
    dns: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for raw in raw_results.values():
        try:
            res = parse_result(dict(raw))
        except InvalidResult:
            continue
        dns.append({k: v for k, v in (("nameservers", list(res.dns.nameservers)), ("domain", res.dns.domain),
                                      ("search", list(res.dns.search)), ("options", list(res.dns.options)))
                    if v})
        routes.extend({"dst": str(r.dst), **({"gw": str(r.gw)} if r.gw is not None else {})} for r in res.routes)
        for iface in res.interfaces:
            interfaces[iface.name] = {"IPConfigs": None, "Mac": iface.mac, "Sandbox": iface.sandbox}
        for ip in res.ips:
            if ip.interface is None:
                continue
            entry = interfaces[res.interfaces[ip.interface].name]
            entry["IPConfigs"] = [*(entry["IPConfigs"] or []),
                                  {"IP": str(ip.ip), "Gateway": str(ip.gateway) if ip.gateway else ""}]
    return {"Interfaces": interfaces, "DNS": dns, "Routes": routes}


def netns_closed(sandbox: Sandbox) -> bool:
    """containerd's netNamespaceClosed: the pod's netns is no longer pinned (False with host network)."""
    path = sandbox.metadata.netns_path
    if not path:
        return False
    return sandbox.status.network_torn_down or not os.path.exists(path)


def verbose_info_json(sandbox: Sandbox, *, record: Record | None, task: objects.TaskState | None,
                      cni: tuple[dict[str, Any] | None, dict[str, Any] | None], config: str) -> str:
    """The ``info`` document, encoded: containerd's keys, then ours.

    `record` is the pod's containerd record, `cni` its CNI results (raw, as `go_cni_result` shapes
    them), `config` the pod's config as `config_json` encodes it. The big members go in already
    encoded: the config (twice) and the runtime spec as containerd stores it on the record (what
    containerd hands runc in the bundle).
    """
    cni_raw, cni_result = cni
    md = sandbox.metadata
    container = record.container if record is not None else None
    dumps = json.dumps
    sandbox_metadata = encode_members([
        ("ID", dumps(md.id)), ("Name", dumps(md.name)), ("Config", config), ("NetNSPath", dumps(md.netns_path)),
        ("IP", dumps(md.ip)), ("AdditionalIPs", dumps(list(md.additional_ips) or None)),
        ("RuntimeHandler", dumps(md.reported_runtime_handler)),
    ])
    return encode_members([
        ("pid", dumps(sandbox.status.pid)),
        ("processStatus", dumps(process_status(task))),
        ("netNamespaceClosed", dumps(netns_closed(sandbox))),
        ("image", dumps(container.image if container is not None else "")),
        ("snapshotKey", dumps(container.snapshot_key if container is not None else "")),
        ("snapshotter", dumps(container.snapshotter if container is not None else "")),
        ("runtimeType", dumps(container.runtime.name if container is not None else "")),
        ("runtimeOptions", dumps(runtime_options(container) if container is not None else None)),
        ("config", config),
        ("runtimeSpec", record.spec_json if record is not None else "null"),
        ("cniResult", dumps(cni_result)),
        ("sandboxMetadata", sandbox_metadata),
        # Ours:
        ("netNamespacePath", dumps(md.netns_path)),
        ("runtimeHandler", dumps(md.runtime_handler)),
        ("imageID", dumps(md.image)),
        ("podDir", dumps(md.pod_dir)),
        ("cniResultRaw", dumps(cni_raw)),
    ])
