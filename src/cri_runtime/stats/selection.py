"""Which containers and pods a stats/metrics request is about (CRI filter semantics).

IDs in filters may be unique prefixes, as everywhere in the CRI; a filter
naming an unknown object selects nothing (List* RPCs never fail on that).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containers.model import Container
from cri_runtime.sandbox.model import Sandbox
from cri_runtime.store.index import IdIndex


def _resolve(index: IdIndex[Container] | IdIndex[Sandbox], id_or_prefix: str) -> str | None:
    try:
        return index.resolve(id_or_prefix)
    except errors.CriError:
        return None


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(k in labels and labels[k] == v for k, v in selector.items())


def select_containers(index: IdIndex[Container], flt: api_pb2.ContainerStatsFilter | None,
                      sandboxes: IdIndex[Sandbox] | None = None) -> list[Container]:
    """Containers matching a ContainerStatsFilter (all of them without one), oldest first."""
    candidates: Iterable[Container] = index
    pod_id = ""
    if flt is not None:
        if flt.id:
            full = _resolve(index, flt.id)
            candidates = [index.get(full)] if full else []
        if flt.pod_sandbox_id:
            resolved = _resolve(sandboxes, flt.pod_sandbox_id) if sandboxes is not None else None
            pod_id = resolved or flt.pod_sandbox_id
    out = []
    for c in candidates:
        if flt is not None:
            if pod_id and c.metadata.sandbox_id != pod_id:
                continue
            if not labels_match(flt.label_selector, c.config.labels):
                continue
        out.append(c)
    out.sort(key=lambda c: c.metadata.created_at)
    return out


def select_pods(index: IdIndex[Sandbox], flt: api_pb2.PodSandboxStatsFilter | None,
                *, ready_only: bool = True) -> list[Sandbox]:
    """Pods matching a PodSandboxStatsFilter; stats exist only for ready pods."""
    candidates: Iterable[Sandbox] = index
    if flt is not None and flt.id:
        full = _resolve(index, flt.id)
        candidates = [index.get(full)] if full else []
    out = []
    for sb in candidates:
        if ready_only and not sb.ready:
            continue
        if flt is not None and not labels_match(flt.label_selector, sb.config.labels):
            continue
        out.append(sb)
    out.sort(key=lambda sb: sb.metadata.created_at)
    return out


def containers_of(index: IdIndex[Container], sandbox_id: str) -> list[Container]:
    out = [c for c in index if c.metadata.sandbox_id == sandbox_id]
    out.sort(key=lambda c: c.metadata.created_at)
    return out
