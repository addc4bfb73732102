"""RuntimeService.CheckpointContainer: UNIMPLEMENTED, naming why (no CRIU, or not written yet)."""

from __future__ import annotations

import asyncio
import shutil

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.rpc import ServicerContext
from cri_runtime.services.error_mapping import unary


async def criu_problem() -> str:
    """Why CRIU cannot checkpoint on this host ("" when `criu check` passes)."""
    criu = shutil.which("criu")
    if criu is None:
        return "the criu binary is not installed"
    proc = await asyncio.create_subprocess_exec(criu, "check", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return "`criu check` did not finish within 30s"
    if proc.returncode == 0 and b"Error" not in out:
        return ""
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    first_error = next((ln for ln in lines if "Error" in ln), lines[0] if lines else f"exit {proc.returncode}")
    return f"`criu check` fails on this host: {first_error.strip()}"


class CheckpointRpcs:
    """Mixin: CheckpointContainer — UNIMPLEMENTED, saying exactly why."""

    containers: ContainerManager
    _criu_problem: str | None = None

    async def wait_recovered(self) -> None:
        raise NotImplementedError

    @unary
    async def CheckpointContainer(
        self, request: api_pb2.CheckpointContainerRequest, context: ServicerContext
    ) -> api_pb2.CheckpointContainerResponse:
        self.containers.get(request.container_id)
        if self._criu_problem is None:
            type(self)._criu_problem = await criu_problem()
        reason = self._criu_problem or ("cri-runtime does not implement checkpointing yet (it needs containerd's "
                                        "Tasks.Checkpoint with runc and a checkpoint archive writer)")
        raise errors.Unimplemented(f"CheckpointContainer: {reason}")
