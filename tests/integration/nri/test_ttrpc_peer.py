"""Our ttrpc client against a real ttrpc server: the pod's containerd-shim-runc-v2.

The shim serves containerd.task.v2.Task over ttrpc on the socket named in
the task bundle's `address` file; Connect answers with the shim's and the
task's pids, which we check against the bundle's `init.pid` and /proc.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.ttrpc.channel import UNIMPLEMENTED, Channel, StreamPipe, TtrpcError
from tests.pod_rig import PodRig
from tests.rig.containerd import PrivateContainerd

TASK_SERVICE = "containerd.task.v2.Task"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes([*out, value])


def _parse_varint_fields(data: bytes) -> dict[int, int | bytes]:
    """A flat protobuf message: field number -> varint or bytes (enough for ConnectResponse)."""
    fields: dict[int, int | bytes] = {}
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while pos < len(data):
        key = varint()
        if key & 7 == 0:
            fields[key >> 3] = varint()
        elif key & 7 == 2:
            length = varint()
            fields[key >> 3] = data[pos:pos + length]
            pos += length
        else:
            raise AssertionError(f"unexpected wire type {key & 7}")
    return fields


async def _connect(address: str) -> Channel:
    reader, writer = await asyncio.open_unix_connection(address.removeprefix("unix://"))
    channel = Channel(StreamPipe(reader, writer), name="shim")
    channel.start()
    return channel


def test_connect_to_a_real_shim_reports_its_pids(pod_rig: PodRig, containerd: PrivateContainerd) -> None:
    rt = pod_rig.server.runtime()
    config = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
        name=f"ttrpc-{uuid.uuid4().hex[:8]}", namespace="ttrpc", uid=uuid.uuid4().hex))
    pod_id = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id
    try:
        bundle = Path(containerd.state) / "io.containerd.runtime.v2.task" / "k8s.io" / pod_id
        address = (bundle / "address").read_text().strip()
        init_pid = int((bundle / "init.pid").read_text())

        async def talk() -> tuple[dict[int, int | bytes], TtrpcError]:
            channel = await _connect(address)
            try:
                payload = await channel.call(TASK_SERVICE, "Connect", b"\x0a" + _varint(len(pod_id)) + pod_id.encode(),
                                             timeout=5)  # fmt: skip
                with pytest.raises(TtrpcError) as missing:
                    await channel.call(TASK_SERVICE, "NoSuchMethod", b"", timeout=5)
                return _parse_varint_fields(payload), missing.value
            finally:
                channel.close()

        fields, missing = asyncio.run(talk())
        shim_pid, task_pid = fields[1], fields[2]
        assert task_pid == init_pid
        shim_argv = Path(f"/proc/{shim_pid}/cmdline").read_bytes().split(b"\0")
        assert shim_argv[0].endswith(b"containerd-shim-runc-v2") and pod_id.encode() in shim_argv
        assert Path(f"/proc/{task_pid}/status").read_text().split("PPid:")[1].split()[0] == str(shim_pid)
        assert missing.code == UNIMPLEMENTED
    finally:
        rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
