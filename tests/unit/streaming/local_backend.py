"""A StreamingBackend for tests: local processes instead of containers, local TCP ports.

``exec`` runs ``cmd`` on this machine (the container id is ignored) with pipes, or with a
pseudo-terminal when ``tty``; ``attach`` runs ``attach_cmd`` the same way; ``port_forward``
connects to 127.0.0.1:port.  ``live`` counts what is running so tests can assert that a
vanished client leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import struct
import termios
from collections.abc import AsyncIterator

from cri_runtime.streaming.remotecommand import TerminalSize
from cri_runtime.streaming.resize import split_initial_size
from cri_runtime.streaming.transport import AsyncReader, AsyncWriter


async def _copy_to_writer(source: asyncio.StreamReader, sink: AsyncWriter | None) -> None:
    while chunk := await source.read(32 * 1024):
        if sink is not None:
            await sink.write(chunk)


async def _copy_stdin(source: AsyncReader, proc_stdin: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(32 * 1024):
            proc_stdin.write(chunk)
            await proc_stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        return
    finally:
        with contextlib.suppress(Exception):
            proc_stdin.close()


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class LocalBackend:
    def __init__(self, attach_cmd: list[str] | None = None) -> None:
        self.attach_cmd = attach_cmd or ["cat"]
        self.live_processes: set[int] = set()
        self.live_forwards = 0
        self.forwarded_bytes = 0  # sent on to the forwarded ports, so tests can wait for data to arrive
        self.resizes: list[TerminalSize] = []

    @property
    def live(self) -> int:
        return len(self.live_processes) + self.live_forwards

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: AsyncReader | None,
                   stdout: AsyncWriter | None, stderr: AsyncWriter | None,
                   resize: AsyncIterator[TerminalSize]) -> int:
        if tty:
            return await self._run_tty(cmd, stdin, stdout, resize)
        return await self._run_pipes(cmd, stdin, stdout, stderr)

    async def attach(self, container_id: str, *, tty: bool, stdin: AsyncReader | None,
                     stdout: AsyncWriter | None, stderr: AsyncWriter | None,
                     resize: AsyncIterator[TerminalSize]) -> int:
        return await self.exec(container_id, self.attach_cmd, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr,
                               resize=resize)

    async def _run_pipes(self, cmd: list[str], stdin: AsyncReader | None, stdout: AsyncWriter | None,
                         stderr: AsyncWriter | None) -> int:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.live_processes.add(proc.pid)
        tasks = []
        try:
            if stdin is not None:
                assert proc.stdin is not None
                tasks.append(asyncio.create_task(_copy_stdin(stdin, proc.stdin)))
            assert proc.stdout is not None and proc.stderr is not None
            await asyncio.gather(_copy_to_writer(proc.stdout, stdout), _copy_to_writer(proc.stderr, stderr))
            return _exit_code(await proc.wait())
        finally:
            for task in tasks:
                task.cancel()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
            self.live_processes.discard(proc.pid)

    async def _run_tty(self, cmd: list[str], stdin: AsyncReader | None, stdout: AsyncWriter | None,
                       resize: AsyncIterator[TerminalSize]) -> int:
        initial, resize = await split_initial_size(resize)
        master, slave = pty.openpty()
        if initial is not None:
            self.resizes.append(initial)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", initial.height, initial.width, 0, 0))
        try:
            proc = await asyncio.create_subprocess_exec(*cmd, stdin=slave, stdout=slave, stderr=slave,
                                                        start_new_session=True)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        os.close(slave)
        self.live_processes.add(proc.pid)
        loop = asyncio.get_running_loop()
        output: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(master, 32 * 1024)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(master)
            output.put_nowait(data)

        loop.add_reader(master, readable)

        async def pump_in() -> None:
            if stdin is None:
                return
            while chunk := await stdin.read(4096):
                while chunk:
                    try:
                        n = os.write(master, chunk)
                    except BlockingIOError:
                        await asyncio.sleep(0.01)
                        continue
                    chunk = chunk[n:]

        async def apply_resizes() -> None:
            async for size in resize:
                self.resizes.append(size)
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))

        os.set_blocking(master, False)
        helpers = [asyncio.create_task(pump_in()), asyncio.create_task(apply_resizes())]
        try:
            while data := await output.get():
                if stdout is not None:
                    await stdout.write(data)
            return _exit_code(await proc.wait())
        finally:
            for task in helpers:
                task.cancel()
            loop.remove_reader(master)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
            os.close(master)
            self.live_processes.discard(proc.pid)

    async def port_forward(self, pod_sandbox_id: str, port: int, reader: AsyncReader, writer: AsyncWriter) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        self.live_forwards += 1

        async def upstream() -> None:
            while chunk := await reader.read(32 * 1024):
                w.write(chunk)
                await w.drain()
                self.forwarded_bytes += len(chunk)
            if w.can_write_eof():
                w.write_eof()

        up = asyncio.create_task(upstream())
        try:
            while chunk := await r.read(32 * 1024):
                await writer.write(chunk)
            await writer.close()
            with contextlib.suppress(ConnectionError):
                await up
        finally:
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await up
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
            self.live_forwards -= 1
