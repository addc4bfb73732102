"""Readiness conditions reported by CRI Status.

kubelet marks the node NotReady while `RuntimeReady` or `NetworkReady` is
false, so each must reflect reality at the moment of the call: the runtime is
ready only while containerd answers, the network only while a usable CNI
config exists. A false condition always carries a reason and a message an
operator can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

RUNTIME_READY = "RuntimeReady"
NETWORK_READY = "NetworkReady"


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str = ""
    message: str = ""


class Probe(Protocol):
    """Something whose readiness can be asked (containerd, the CNI config)."""

    async def readiness(self) -> tuple[bool, str, str]:
        """(ready, reason, message); reason and message empty when ready."""
        ...


async def collect(runtime: Probe, network: Probe) -> list[Condition]:
    """Both conditions kubelet requires, in the order crictl prints them."""
    result = []
    for kind, probe in ((RUNTIME_READY, runtime), (NETWORK_READY, network)):
        ready, reason, message = await probe.readiness()
        result.append(Condition(kind, ready, reason, message))
    return result
