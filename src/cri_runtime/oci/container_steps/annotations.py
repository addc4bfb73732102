"""Container step for annotations: the allowed pod and container ones, then the CRI ones."""

from __future__ import annotations

from .. import annotations as ann
from ..container_input import ContainerSpecInput
from ..spec_steps import Spec


def with_annotations(inp: ContainerSpecInput, spec: Spec) -> None:
    """Passthrough pod and container annotations (container wins), then the CRI ones (which always win)."""
    patterns = inp.options.passthrough_annotations
    sandbox = inp.sandbox
    meta = sandbox.config.metadata
    spec["annotations"] = {
        **ann.passthrough(sandbox.config.annotations, patterns),
        **ann.passthrough(inp.config.annotations, patterns),
        ann.CONTAINER_TYPE: ann.CONTAINER_TYPE_CONTAINER,
        ann.SANDBOX_ID: sandbox.id,
        ann.SANDBOX_NAMESPACE: meta.namespace,
        ann.SANDBOX_UID: meta.uid,
        ann.SANDBOX_NAME: meta.name,
        ann.CONTAINER_NAME: inp.config.metadata.name,
        ann.IMAGE_NAME: inp.image_name,
    }
