"""Sandbox step for annotations: the allowed pod ones, the pod's resources, then the CRI ones."""

from __future__ import annotations

from .. import annotations as ann
from ..sandbox_input import SandboxSpecInput
from ..spec_steps import Spec


def with_annotations(inp: SandboxSpecInput, spec: Spec) -> None:
    """Passthrough annotations; the pod's resources (for runtimes sizing a VM); the CRI ones last (they win)."""
    config = inp.config
    meta = config.metadata
    annotations = ann.passthrough(config.annotations, inp.options.passthrough_annotations)
    if config.linux.HasField("resources"):
        res = config.linux.resources
        annotations[ann.SANDBOX_CPU_PERIOD] = str(res.cpu_period)
        annotations[ann.SANDBOX_CPU_QUOTA] = str(res.cpu_quota)
        annotations[ann.SANDBOX_CPU_SHARES] = str(res.cpu_shares)
        annotations[ann.SANDBOX_MEMORY] = str(res.memory_limit_in_bytes)
    annotations.update(
        {
            ann.CONTAINER_TYPE: ann.CONTAINER_TYPE_SANDBOX,
            ann.SANDBOX_ID: inp.sandbox_id,
            ann.SANDBOX_NAMESPACE: meta.namespace,
            ann.SANDBOX_UID: meta.uid,
            ann.SANDBOX_NAME: meta.name,
            ann.SANDBOX_LOG_DIRECTORY: config.log_directory,
        }
    )
    spec["annotations"] = annotations
