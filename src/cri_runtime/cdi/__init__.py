"""Container Device Interface (CDI): vendor spec files → edits of a container's OCI spec.

No Python library implements CDI, so the logic is ours and small: ``names``
(qualified device names), ``spec`` (parsing and validating spec files, YAML via
PyYAML), ``registry`` (the spec directories, their precedence and refresh) and
``edits`` (applying container edits to an OCI spec dict). It follows the CDI
specification (cncf-tags/container-device-interface, SPEC.md, versions 0.3.0
to 1.0.0) and behaves as its reference Go package does where the spec is silent.
"""

from .edits import apply_edits
from .names import ANNOTATION_PREFIX, requested_devices
from .registry import DEFAULT_SPEC_DIRS, CdiRegistry, ResolvedDevice
from .spec import CdiSpec, SpecError

__all__ = [
    "ANNOTATION_PREFIX",
    "DEFAULT_SPEC_DIRS",
    "CdiRegistry",
    "CdiSpec",
    "ResolvedDevice",
    "SpecError",
    "apply_edits",
    "requested_devices",
]
