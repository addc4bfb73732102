"""Reuses the pod rig (server + pause image + CNI) for stats, metrics and events tests."""

from tests.integration.pods.conftest import PodRig, pod_rig  # noqa: F401
