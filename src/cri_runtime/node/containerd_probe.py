"""Runtime readiness: containerd must answer right now."""

from __future__ import annotations

from cri_runtime.containerd.connection import Containerd


class ContainerdProbe:
    """`RuntimeReady` is true only while containerd answers a Version call."""

    def __init__(self, ctd: Containerd, timeout: float = 2.0) -> None:
        self._ctd = ctd
        self._timeout = timeout

    async def readiness(self) -> tuple[bool, str, str]:
        if await self._ctd.is_serving(self._timeout):
            return True, "", ""
        return (
            False,
            "ContainerdUnavailable",
            f"containerd at {self._ctd.address} does not answer",
        )
