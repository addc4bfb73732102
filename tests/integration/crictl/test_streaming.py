"""exec / attach / port-forward of our crictl, side by side with upstream crictl.

A fake CRI endpoint hands out URLs of the project's real StreamingServer whose backend runs
local processes (tests/unit/streaming), so both crictls speak SPDY/3.1 and WebSocket to the
same server (upstream's cases exist only where it is installed: the same steps with ours are the
`ours` cases); then exec into a busybox container on containerd's built-in CRI, compared with
upstream live or, where it is not installed, with its recorded output (tests/golden/crictl/live.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import os
import pty
import re
import signal
import struct
import subprocess
import tempfile
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from cri_runtime.streaming.server import StreamingServer
from tests.golden.crictl.live import Recording, Scrubber
from tests.unit.streaming.fake_cri import start_fake_cri
from tests.unit.streaming.local_backend import LocalBackend
from tests.upstream import client_params
from tests.waiting import until

from .conftest import SRC, LiveCri

CLIENTS = client_params()
TRANSPORTS = ["spdy", "websocket"]


@dataclass
class Fake:
    streaming: StreamingServer
    endpoint: str


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    with tempfile.TemporaryDirectory(prefix="crirt-crictl-stream-") as tmp:
        streaming = StreamingServer(LocalBackend())
        await streaming.start()
        server = await start_fake_cri(f"{tmp}/cri.sock", streaming)
        try:
            yield Fake(streaming, f"unix://{tmp}/cri.sock")
        finally:
            await server.stop(0)
            await streaming.stop()
            assert streaming.backend.live == 0  # type: ignore[attr-defined]


_CONFIG: list[str] = []  # the empty crictl config of this module's tests (made by `crictl_config`)


@pytest.fixture(autouse=True, scope="module")
def crictl_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty config file of our own: without one, both clients warn on stderr that
    /etc/crictl.yaml is missing, so the output would depend on the machine."""
    config = tmp_path_factory.mktemp("crictl-streaming") / "crictl.yaml"
    config.touch()
    _CONFIG[:] = [str(config)]
    return str(config)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "CRI_CONFIG_FILE": _CONFIG[0]}


async def run(client: list[str], endpoint: str, *args: str, stdin: bytes | None = None,
              timeout: float = 30) -> tuple[int, bytes, bytes]:  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *client, "-r", endpoint, "-i", endpoint, "--timeout", "10s", *args, env=_env(),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out, err


def messages(stderr: bytes) -> list[str]:
    return [line.split(" msg=", 1)[1] for line in stderr.decode().splitlines() if "level=error" in line]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("client", CLIENTS)
async def test_exec_streams_and_exit_codes(fake: Fake, client: list[str], transport: str) -> None:
    ep = fake.endpoint
    assert await run(client, ep, "exec", "--transport", transport, "c1", "sh", "-c", "echo out; echo err >&2") == (
        0, b"out\n", b"err\n")  # fmt: skip
    rc, out, err = await run(client, ep, "exec", "--transport", transport, "c1", "sh", "-c", "echo x; exit 3")
    assert (rc, out) == (1, b"x\n")
    assert messages(err) == ['"execing command in container c1: command terminated with exit code 3"']
    blob = os.urandom(3 * 1024 * 1024)
    rc, out, _ = await run(client, ep, "exec", "-i", "--transport", transport, "c1", "md5sum", stdin=blob)
    assert (rc, out.split()[0].decode()) == (0, hashlib.md5(blob).hexdigest())
    rc, out, _ = await run(client, ep, "exec", "-i", "--transport", transport, "c1", "cat", stdin=blob)
    assert rc == 0 and out == blob


@pytest.mark.parametrize("client", CLIENTS)
async def test_attach_and_usage_errors(fake: Fake, client: list[str]) -> None:
    ep = fake.endpoint
    assert await run(client, ep, "attach", "-i", "c1", stdin=b"abc\n") == (0, b"abc\n", b"")
    in_c1 = "execing command in container c1: "
    cases = {
        ("exec", "-t", "c1", "true"): in_c1 + "tty=true must be specified with interactive=true",
        ("exec", "-it", "c1", "true"): in_c1 + "input is not a terminal",
        ("exec", "--transport", "bogus", "c1", "true"): in_c1 + "get executor: unknown transport: bogus",
        ("attach",): "ID cannot be empty",
        ("exec", "--tls-ca", "/x", "c1", "true"): "get TLS config from flags: all two flags --tls-ca and --tls-cert "
        "are required for TLS streaming, only --tls-key is optional",
    }
    for args, message in cases.items():
        rc, out, err = await run(client, ep, *args, stdin=b"")
        assert (rc, out, messages(err)) == (1, b"", [f'"{message}"']), args


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("client", CLIENTS)
async def test_exec_tty_raw_mode_and_resize(fake: Fake, client: list[str], transport: str) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    script = "stty size; read line; stty size; echo got:$line; tty"
    proc = await asyncio.create_subprocess_exec(
        *client, "-r", fake.endpoint, "-i", fake.endpoint, "exec", "-it", "--transport", transport, "c1",
        "sh", "-c", script, env=_env(), stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    output = bytearray()
    os.set_blocking(master, False)

    async def read_until(marker: bytes, timeout: float = 15) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while marker not in output:
            assert loop.time() < deadline, bytes(output)
            with contextlib.suppress(BlockingIOError, OSError):
                output.extend(os.read(master, 65536))
            await asyncio.sleep(0.02)

    try:
        await read_until(b"33 101")  # the initial size went over the resize stream
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(proc.pid, signal.SIGWINCH)
        backend = fake.streaming.backend
        # The remote's second `stty size` runs once the line is read: the resize must be applied first.
        await until(lambda: any((size.height, size.width) == (40, 120)
                                for size in backend.resizes),  # type: ignore[attr-defined]
                    "the resize reaches the remote tty", timeout=15)
        os.write(master, b"hello\r")
        await read_until(b"/dev/pts/")
        await asyncio.wait_for(proc.wait(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)
    assert proc.returncode == 0, bytes(output)
    assert b"40 120" in output  # SIGWINCH became a resize event
    assert b"got:hello" in output  # raw mode: the remote tty did the line editing


async def _http_get(port: int, host: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data.partition(b"\r\n\r\n")[2]


@pytest.fixture
async def http_port() -> AsyncIterator[tuple[int, bytes]]:
    body = os.urandom(512 * 1024)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], body
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("client", CLIENTS)
async def test_port_forward(fake: Fake, http_port: tuple[int, bytes], client: list[str], transport: str) -> None:
    remote, body = http_port
    proc = await asyncio.create_subprocess_exec(
        *client, "-r", fake.endpoint, "port-forward", "--transport", transport, "pod1", f"0:{remote}", env=_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), 15)
        second = await asyncio.wait_for(proc.stdout.readline(), 15)
        match = re.fullmatch(rb"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\n", first)
        assert match and int(match.group(2)) == remote, first
        local = int(match.group(1))
        assert second == b"Forwarding from [::1]:%d -> %d\n" % (local, remote)
        for _ in range(2):
            assert await _http_get(local) == body
            assert await asyncio.wait_for(proc.stdout.readline(), 5) == b"Handling connection for %d\n" % local
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert proc.returncode in (0, -signal.SIGINT)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while fake.streaming.active_connections and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert fake.streaming.active_connections == 0


# ------------------------------------------------------------------------------- containerd's CRI


@pytest.fixture(scope="module")
def busybox(live_cri: LiveCri) -> AsyncIterator[str]:
    config = live_cri.pod_config("stream")
    pod = live_cri.ours("runp", config).stdout.strip()
    ctr = live_cri.ours("create", pod, live_cri.container_config("sh", ["sleep", "3600"]), config).stdout.strip()
    assert live_cri.ours("start", ctr).returncode == 0
    yield ctr
    live_cri.ours("rmp", "-f", pod)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_into_container_like_upstream(live_cri: LiveCri, busybox: str, transport: str) -> None:
    recording = Recording("streaming")
    scrub = Scrubber()
    scrub.add(busybox, "<CTR>", truncated=True)
    for cmd in (["echo", "hi"], ["sh", "-c", "echo out; echo err >&2"], ["sh", "-c", "cat; exit 4"]):
        args = ["exec", "-i", "--transport", transport, busybox, *cmd]
        mine = live_cri.ours(*args, input="piped\n")
        assert "Traceback" not in mine.stderr
        scrubbed = [scrub(a) for a in args]
        theirs = recording.process(" ".join(scrubbed), ["crictl", *scrubbed],
                                   functools.partial(live_cri.upstream, *args, input="piped\n"), scrub)  # fmt: skip
        if not recording.live:
            mine = subprocess.CompletedProcess(mine.args, mine.returncode, scrub(mine.stdout), scrub(mine.stderr))
        assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout)
        assert messages(mine.stderr.encode()) == messages(theirs.stderr.encode())
    result = live_cri.ours("exec", "-i", "--transport", transport, busybox, "sh", "-c", "cat; exit 4", input="x\n")
    (message,) = messages(result.stderr.encode())
    if transport == "websocket" and "bad handshake (403 Forbidden)" in message:
        return  # containerd 1.6's streaming server speaks SPDY only
    assert (result.returncode, result.stdout) == (1, "x\n")
    assert message.endswith(': command terminated with exit code 4"')
