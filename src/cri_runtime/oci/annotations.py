"""Annotations containerd's CRI plugin puts into specs; runtimes and hooks read them."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

CONTAINER_TYPE = "io.kubernetes.cri.container-type"
CONTAINER_TYPE_SANDBOX = "sandbox"
CONTAINER_TYPE_CONTAINER = "container"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_LOG_DIRECTORY = "io.kubernetes.cri.sandbox-log-directory"
SANDBOX_CPU_PERIOD = "io.kubernetes.cri.sandbox-cpu-period"
SANDBOX_CPU_QUOTA = "io.kubernetes.cri.sandbox-cpu-quota"
SANDBOX_CPU_SHARES = "io.kubernetes.cri.sandbox-cpu-shares"
SANDBOX_MEMORY = "io.kubernetes.cri.sandbox-memory"
CONTAINER_NAME = "io.kubernetes.cri.container-name"
IMAGE_NAME = "io.kubernetes.cri.image-name"


def passthrough(annotations: Mapping[str, str], patterns: Iterable[str]) -> dict[str, str]:
    """Annotations whose key matches one of the glob ``patterns``."""
    pats = list(patterns)
    return {k: v for k, v in sorted(annotations.items()) if any(fnmatch.fnmatchcase(k, p) for p in pats)}
