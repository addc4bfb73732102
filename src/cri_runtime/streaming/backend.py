"""What the streaming server needs from the container side, and the requests it caches.

The server speaks the wire protocols; a backend runs the command, attaches to the container
or connects to the port.  The containerd implementation plugs in here; tests use a backend
that runs local processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from cri_runtime.errors import InvalidArgument
from cri_runtime.streaming.remotecommand import StreamOptions, TerminalSize
from cri_runtime.streaming.transport import AsyncReader, AsyncWriter


class StreamingBackend(Protocol):
    """Contract for the container side.

    * ``stdin`` is None when not requested; read it until b"" (the client closed it).
    * ``stdout``/``stderr`` are None when not requested (``stderr`` always None with a TTY);
      the server half-closes them itself after the call returns.  A write raises
      ``StreamClosedError`` (a ConnectionError) when the client is gone.
    * ``resize`` yields terminal sizes until the client stops sending them (empty without TTY).
    * The call is cancelled (CancelledError) when the client disconnects: stop the process or
      detach, release everything, and re-raise.
    * exec returns the exit code (0-255); raising any other exception reports its message
      to the client as an error.
    """

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: AsyncReader | None,
                   stdout: AsyncWriter | None, stderr: AsyncWriter | None,
                   resize: AsyncIterator[TerminalSize]) -> int: ...

    async def attach(self, container_id: str, *, tty: bool, stdin: AsyncReader | None,
                     stdout: AsyncWriter | None, stderr: AsyncWriter | None,
                     resize: AsyncIterator[TerminalSize]) -> int: ...

    async def port_forward(self, pod_sandbox_id: str, port: int, reader: AsyncReader, writer: AsyncWriter) -> None:
        """Copy ``reader`` (from the client) to the port and the port's data to ``writer`` until
        both directions ended (close ``writer`` when the port side ends); raise on failure."""
        ...


def _validate_streams(what: str, container_id: str, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
    if not container_id:
        raise InvalidArgument(f"{what}: missing required container_id")
    if tty and stderr:
        raise InvalidArgument(f"{what}: tty and stderr cannot both be true")
    if not (stdin or stdout or stderr):
        raise InvalidArgument(f"{what}: one of stdin, stdout, or stderr must be set")


@dataclass(frozen=True)
class ExecRequest:
    container_id: str
    cmd: list[str]
    tty: bool = False
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True

    def validate(self) -> None:
        _validate_streams("exec", self.container_id, self.stdin, self.stdout, self.stderr, self.tty)
        if not self.cmd:
            raise InvalidArgument("exec: cmd must not be empty")

    @property
    def options(self) -> StreamOptions:
        return StreamOptions(self.stdin, self.stdout, self.stderr, self.tty)


@dataclass(frozen=True)
class AttachRequest:
    container_id: str
    tty: bool = False
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True

    def validate(self) -> None:
        _validate_streams("attach", self.container_id, self.stdin, self.stdout, self.stderr, self.tty)

    @property
    def options(self) -> StreamOptions:
        return StreamOptions(self.stdin, self.stdout, self.stderr, self.tty)


@dataclass(frozen=True)
class PortForwardRequest:
    pod_sandbox_id: str
    ports: list[int] = field(default_factory=list)

    def validate(self) -> None:
        if not self.pod_sandbox_id:
            raise InvalidArgument("port-forward: missing required pod_sandbox_id")
        for port in self.ports:
            if not 0 < port < 65536:
                raise InvalidArgument(f"port-forward: invalid port {port}")


StreamRequest = ExecRequest | AttachRequest | PortForwardRequest
