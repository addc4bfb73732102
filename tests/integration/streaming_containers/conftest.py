"""Reuses the pod rig (server + pause image + CNI) for streaming tests on real containers."""

from tests.integration.pods.conftest import PodRig, pod_rig  # noqa: F401
