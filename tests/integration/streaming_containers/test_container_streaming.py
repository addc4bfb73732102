"""Exec, Attach and PortForward through our streaming server into real containers."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.streaming.portforward import dial_port_forward
from cri_runtime.streaming.remotecommand import StreamOptions, run_remote_command
from tests.pod_rig import PodRig


class BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int = -1) -> bytes:
        chunk, self.data = (self.data, b"") if n < 0 else (self.data[:n], self.data[n:])
        return chunk


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    async def write(self, data: bytes) -> None:
        self.data += data

    async def close(self) -> None:
        self.closed = True


class Pod:
    def __init__(self, rig: PodRig, tmp_path: Path) -> None:
        self.rt = rig.server.runtime()
        self.rig = rig
        name = f"stream-{uuid.uuid4().hex[:8]}"
        self.cfg = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace="testns", uid=uuid.uuid4().hex),
            hostname=name, log_directory=str(tmp_path / "logs"))
        rig.server.images().PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=rig.images.busybox.ref)), timeout=60)
        self.id = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=self.cfg), timeout=60).pod_sandbox_id

    def container(self, cmd: list[str], name: str, **kwargs: object) -> str:
        cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=name), command=cmd,
                                      image=api_pb2.ImageSpec(image=self.rig.images.busybox.ref),
                                      log_path=f"{name}.log", **kwargs)  # type: ignore[arg-type]
        cid: str = self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.id, config=cfg, sandbox_config=self.cfg), timeout=60).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        return cid

    def close(self) -> None:
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=self.id), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=self.id), timeout=60)


@pytest.fixture
def pod(pod_rig: PodRig, tmp_path: Path) -> Iterator[Pod]:
    p = Pod(pod_rig, tmp_path)
    yield p
    p.close()


def exec_dirs(pod_rig: PodRig, cid: str) -> list[str]:
    d = pod_rig.server.dir / "state" / "containers" / cid / "exec"
    return os.listdir(d) if d.is_dir() else []


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
def test_exec_with_stdin_and_exit_code(pod: Pod, pod_rig: PodRig, transport: str) -> None:
    cid = pod.container(["sleep", "600"], "sleeper")
    url = pod.rt.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["sh", "-c", "cat; echo err >&2; exit 5"],
                                          stdin=True, stdout=True, stderr=True), timeout=10).url
    assert url.startswith("http://127.0.0.1:")
    out, err = Collect(), Collect()
    payload = os.urandom(300_000).hex().encode()
    code = asyncio.run(run_remote_command(url, StreamOptions(True, True, True, False), stdin=BytesReader(payload),
                                          stdout=out, stderr=err, transport=transport))
    assert code == 5
    assert bytes(out.data) == payload
    assert bytes(err.data) == b"err\n"
    assert exec_dirs(pod_rig, cid) == []  # FIFOs cleaned up
    # The token was single-use.
    with pytest.raises(Exception, match="404"):
        asyncio.run(run_remote_command(url, StreamOptions(False, True, False, False), stdout=Collect(),
                                       transport=transport))


def test_a_malformed_request_does_not_burn_the_exec_token(pod: Pod) -> None:
    cid = pod.container(["sleep", "600"], "token")
    url = pod.rt.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["echo", "kept"], stdout=True),
                      timeout=10).url
    host, _, port = urlsplit(url).netloc.partition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:  # no upgrade headers
        sock.sendall(f"POST {urlsplit(url).path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    out = Collect()
    assert asyncio.run(run_remote_command(url, StreamOptions(False, True, False, False), stdout=out)) == 0
    assert bytes(out.data) == b"kept\n"


def test_exec_validation(pod: Pod) -> None:
    cid = pod.container(["sleep", "600"], "v")
    with pytest.raises(grpc.RpcError) as err:
        pod.rt.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["sh"], tty=True, stdout=True, stderr=True), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        pod.rt.Exec(api_pb2.ExecRequest(container_id="nope", cmd=["sh"], stdout=True), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    done = pod.container(["true"], "done")
    deadline = time.monotonic() + 10
    while pod.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=done),
                                 timeout=10).status.state != api_pb2.CONTAINER_EXITED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(grpc.RpcError) as err:
        pod.rt.Exec(api_pb2.ExecRequest(container_id=done, cmd=["sh"], stdout=True), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_fifty_concurrent_execs(pod: Pod, pod_rig: PodRig) -> None:
    cid = pod.container(["sleep", "600"], "many")

    async def one(i: int) -> tuple[int, bytes]:
        url = await asyncio.to_thread(lambda: pod.rt.Exec(api_pb2.ExecRequest(
            container_id=cid, cmd=["sh", "-c", f"echo {i}; exit {i % 7}"], stdout=True), timeout=30).url)
        out = Collect()
        code = await run_remote_command(url, StreamOptions(False, True, False, False), stdout=out)
        return code, bytes(out.data)

    async def all_of_them() -> list[tuple[int, bytes]]:
        return await asyncio.gather(*(one(i) for i in range(50)))

    results = asyncio.run(all_of_them())
    assert results == [(i % 7, f"{i}\n".encode()) for i in range(50)]
    assert exec_dirs(pod_rig, cid) == []


def test_attach_sees_output_and_sends_stdin(pod: Pod) -> None:
    cid = pod.container(["sh"], "att", stdin=True, stdin_once=True)
    url = pod.rt.Attach(api_pb2.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True),
                        timeout=10).url
    out, err = Collect(), Collect()
    asyncio.run(asyncio.wait_for(run_remote_command(
        url, StreamOptions(True, True, True, False), stdin=BytesReader(b"echo attached; exit 3\n"),
        stdout=out, stderr=err), 30))
    assert bytes(out.data) == b"attached\n"
    deadline = time.monotonic() + 10
    while True:
        st = pod.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid), timeout=10).status
        if st.state == api_pb2.CONTAINER_EXITED:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert st.exit_code == 3
    # Attach output also reached the log.
    assert "stdout F attached" in Path(st.log_path).read_text()


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
def test_port_forward_into_the_pod(pod: Pod, transport: str) -> None:
    pod.container(["sh", "-c", "while :; do echo pong | nc -l -p 8080; done"], "server")

    async def fetch() -> bytes:
        for _ in range(50):  # the server inside may still be starting
            # a URL is single-use: each attempt asks for its own
            url = pod.rt.PortForward(api_pb2.PortForwardRequest(pod_sandbox_id=pod.id, port=[8080]), timeout=10).url
            client = await dial_port_forward(url, transport=transport)
            try:
                data, _error = await client.open(8080)
                await data.write(b"ping\n")
                got = b""
                while True:
                    chunk = await asyncio.wait_for(data.read(1024), 10)
                    if not chunk:
                        break
                    got += chunk
                if got:
                    return got
            finally:
                await client.conn.close()
            await asyncio.sleep(0.1)
        return b""

    assert asyncio.run(fetch()) == b"pong\n"


def test_tty_exec_starts_with_the_client_terminal_size(pod: Pod) -> None:
    from cri_runtime.streaming.remotecommand import TerminalSize

    cid = pod.container(["sleep", "600"], "tty")
    url = pod.rt.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["stty", "size"], tty=True, stdout=True),
                      timeout=10).url

    async def sizes() -> AsyncIterator[TerminalSize]:
        await asyncio.sleep(0.05)  # the size arrives after the streams, as from a real client
        yield TerminalSize(width=132, height=43)
        await asyncio.sleep(3600)

    out = Collect()
    code = asyncio.run(asyncio.wait_for(run_remote_command(
        url, StreamOptions(False, True, False, True), stdout=out, resize=sizes()), 30))
    assert code == 0
    assert bytes(out.data).strip() == b"43 132"
