"""Which CRI implementation owns a containerd object, read from its labels alone.

Ours carry `io.cri-runtime.*` labels (see containerd/objects.py and
images/store.py); containerd's built-in CRI plugin labels its containers
`io.cri-containerd.kind` and its images `io.cri-containerd.image`, and copies
kubelet's `io.kubernetes.*` labels onto containers. Anything else belongs to
neither (ctr, docker/moby, a test) and the doctor never touches it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_runtime.containerd.connection import LEASE_OWNER_LABEL
from cri_runtime.containerd.objects import KIND_LABEL, LABEL_PREFIX, SANDBOX_ID_LABEL, SNAPSHOT_OWNER_LABEL
from cri_runtime.images.store import LABEL_MANAGED

OURS = "cri-runtime"
CONTAINERD_CRI = "containerd-cri"

CONTAINERD_CRI_KIND_LABEL = "io.cri-containerd.kind"
CONTAINERD_CRI_IMAGE_LABEL = "io.cri-containerd.image"
K8S_POD_NAME = "io.kubernetes.pod.name"
K8S_POD_NAMESPACE = "io.kubernetes.pod.namespace"
K8S_CONTAINER_NAME = "io.kubernetes.container.name"
K8S_SANDBOX_ID = "io.kubernetes.sandbox.id"  # not set by containerd 1.6; kept for later versions
POD_NAME_LABEL = f"{LABEL_PREFIX}.pod.name"
POD_NAMESPACE_LABEL = f"{LABEL_PREFIX}.pod.namespace"
CONTAINER_NAME_LABEL = f"{LABEL_PREFIX}.container.name"


@dataclass(frozen=True)
class CriOwner:
    """The CRI object behind a containerd object."""

    runtime: str  # OURS, CONTAINERD_CRI or ""
    kind: str  # "pod", "container", "image", "lease", "snapshot" or ""
    name: str  # "namespace/pod" for pods, the container name for containers
    sandbox_id: str = ""

    def text(self) -> str:
        if not self.runtime:
            return "-"
        return f"{self.runtime}:{self.kind}" + (f":{self.name}" if self.name else "")

    def to_json(self) -> dict[str, str]:
        return {"runtime": self.runtime, "kind": self.kind, "name": self.name, "sandboxId": self.sandbox_id}


NONE = CriOwner("", "", "")


def _pod_name(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace or name else ""


def of_container(labels: Mapping[str, str]) -> CriOwner:
    """Owner of a containerd container (and of its task and snapshot)."""
    kind = labels.get(KIND_LABEL)
    if kind is not None:
        if kind == "sandbox":
            return CriOwner(OURS, "pod", _pod_name(labels.get(POD_NAMESPACE_LABEL, ""), labels.get(POD_NAME_LABEL, "")))
        return CriOwner(OURS, "container", labels.get(CONTAINER_NAME_LABEL, ""), labels.get(SANDBOX_ID_LABEL, ""))
    kind = labels.get(CONTAINERD_CRI_KIND_LABEL)
    if kind is not None:
        if kind == "sandbox":
            return CriOwner(CONTAINERD_CRI, "pod",
                            _pod_name(labels.get(K8S_POD_NAMESPACE, ""), labels.get(K8S_POD_NAME, "")))
        return CriOwner(CONTAINERD_CRI, "container", labels.get(K8S_CONTAINER_NAME, ""),
                        labels.get(K8S_SANDBOX_ID, ""))
    return NONE


CONTAINERD_CRI_EXTENSIONS = {"sandbox": "io.cri-containerd.sandbox.metadata",
                             "container": "io.cri-containerd.container.metadata"}


def _containerd_cri_metadata(c: containers_pb2.Container, kind: str) -> dict[str, Any]:
    """containerd CRI's metadata extension: JSON {"Version": "v1", "Metadata": {...}}."""
    ext = c.extensions.get(CONTAINERD_CRI_EXTENSIONS.get(kind, ""))
    if ext is None:
        return {}
    try:
        data = json.loads(ext.value).get("Metadata") or {}
    except (ValueError, AttributeError):
        return {}
    return data if isinstance(data, dict) else {}


def of_record(c: containers_pb2.Container) -> CriOwner:
    """Owner of a containerd container; containerd CRI's names come from its metadata extension
    when kubelet's labels are absent (containerd 1.6 keeps the pod and container names there)."""
    owner = of_container(c.labels)
    if owner.runtime != CONTAINERD_CRI or (owner.name and owner.sandbox_id):
        return owner
    md = _containerd_cri_metadata(c, c.labels.get(CONTAINERD_CRI_KIND_LABEL, ""))
    meta = (md.get("Config") or {}).get("metadata") or {}
    if owner.kind == "pod":
        name = owner.name or _pod_name(str(meta.get("namespace", "")), str(meta.get("name", "")))
        return CriOwner(CONTAINERD_CRI, "pod", name, c.id)
    return CriOwner(CONTAINERD_CRI, "container", owner.name or str(meta.get("name", "")),
                    owner.sandbox_id or str(md.get("SandboxID", "")))


def of_image(labels: Mapping[str, str]) -> CriOwner:
    if LABEL_MANAGED in labels:
        return CriOwner(OURS, "image", "")
    if CONTAINERD_CRI_IMAGE_LABEL in labels:
        return CriOwner(CONTAINERD_CRI, "image", "")
    return NONE


def of_lease(labels: Mapping[str, str]) -> CriOwner:
    if LEASE_OWNER_LABEL in labels:
        return CriOwner(OURS, "lease", labels[LEASE_OWNER_LABEL])
    return NONE


def snapshot_is_ours(labels: Mapping[str, str]) -> bool:
    return SNAPSHOT_OWNER_LABEL in labels


def is_ours(labels: Mapping[str, str]) -> bool:
    return KIND_LABEL in labels
