"""The relay's event loop: output FIFOs → log file + attach clients; attach stdin → stdin FIFO.

One thread, one epoll loop, non-blocking everything except the log file (a regular
file). Output is never held back for anyone: an attach client that falls more than
ATTACH_BACKLOG_LIMIT bytes behind is dropped with an END ``slow-reader`` frame.

FIFO facts this relies on (Linux, checked by the integration tests): a reader opened
with O_NONBLOCK gets no poll event before a writer has connected, so the relay may open
the FIFOs before the shim does; ``read`` returns ``b""`` only when the FIFO is empty
*and* has no writer. The shim keeps its write ends (and a read end of its own) open for
the container's lifetime, so if the relay dies the container keeps running and its
output waits in the FIFO (the writer blocks once the pipe buffer is full) until a relay
started with ``resume`` reads on. Only an unfinished line the dead relay held in memory
is lost, and the container's stdin sees EOF (the relay held its only writer).

Start-up time is on the CreateContainer path, so this module uses the C modules
``_socket``/``_signal``/``select`` rather than ``socket``/``signal``/``selectors``.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # `signal` minus its enum import
import _socket
import os
import time

from . import protocol
from .crilog import STDERR, STDOUT, LineSplitter, format_records, format_timestamp
from .layout import CONTROL_SOCKET, IoDir
from .poller import READ, READABLE, WRITE, Poller

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .poller import Handler

READ_CHUNK = 65536
#: Output an attach client may have queued before it is dropped as too slow.
ATTACH_BACKLOG_LIMIT = 4 << 20
#: Attach stdin queued for a container that does not read it; reading from clients pauses.
STDIN_BACKLOG_LIMIT = 1 << 20
#: Seconds attach clients get at exit to take their remaining output.
EXIT_DRAIN_SECONDS = 2.0
#: Reads per FIFO when draining at SIGTERM (bounded so a chatty container cannot stall exit).
SHUTDOWN_DRAIN_READS = 64


def log(message: str) -> None:
    """One line to the relay's own log (fd 2 is ``relay.log``)."""
    try:
        os.write(2, f"{format_timestamp(time.time_ns())} pid={os.getpid()} {message}\n".encode())
    except OSError:
        return


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return


class LogFile:
    """The container log: append-only, one write per batch of records, reopenable."""

    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, mode=0o755, exist_ok=True)
        self.fd = self._open()
        self._failing = False

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, data: bytes) -> None:
        """Append ``data``; on failure (disk full, …) log once and keep draining, like containerd."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:
                continue
            except OSError as exc:
                if not self._failing:
                    log(f"writing container log {self.path} failed: {exc}; dropping output until it works")
                self._failing = True
                return
            view = view[written:]
        if self._failing:
            log(f"writing container log {self.path} works again")
            self._failing = False

    def reopen(self) -> None:
        """Switch to a fresh file at ``path``; on error the old file stays in use.

        Parent directories are created only at start: a pod log directory that vanished
        later means the pod is being torn down, so reopen fails rather than recreate it.
        """
        fd = self._open()
        old, self.fd = self.fd, fd
        os.close(old)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class OutputStream:
    """One output FIFO (stdout or stderr) and its unfinished line."""

    def __init__(self, name: str, path: str, frame_kind: int, max_line_size: int) -> None:
        self.name = name
        self.frame_kind = frame_kind
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.splitter = LineSplitter(max_line_size)


class Client:
    """A control-socket connection: first a command line, then (attach) frames."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        # Queued output, whole messages; out[0] may be partly sent (out_offset bytes).
        # Kept as messages so a dropped slow client still gets a well-formed frame stream.
        self.out: list[bytes] = []
        self.out_offset = 0
        self.out_bytes = 0
        self.attached = False
        self.wants_stdin = False
        self.closing = False  # no more output; close once everything queued is sent
        self.events = 0  # what the poller watches (0: not registered)


class Relay:
    """Everything one relay process does, driven by :meth:`run`."""

    def __init__(
        self,
        *,
        io_dir: IoDir,
        log_path: str,
        max_line_size: int,
        tty: bool,
        stdin: bool,
        stdin_once: bool,
        resume: bool,
    ) -> None:
        self.io_dir = io_dir
        self.tty = tty
        self.stdin_once = stdin_once
        self.resume = resume
        self.poller = Poller()
        self.clients: dict[int, Client] = {}
        self.exit_reason: bytes | None = None
        self._draining = False
        self._drain_deadline = 0.0
        self._stdin_paused = False

        self.streams: list[OutputStream] = [
            OutputStream(STDOUT, io_dir.stdout, protocol.FRAME_STDOUT, max_line_size)
        ]
        if not tty:
            self.streams.append(OutputStream(STDERR, io_dir.stderr, protocol.FRAME_STDERR, max_line_size))
        # O_RDWR: the relay is a writer for as long as the container's stdin should stay
        # open, and opening never blocks.
        self.stdin_fd = os.open(io_dir.stdin, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC) if stdin else -1
        self.stdin_backlog = bytearray()
        self.stdin_closing = False
        self.logfile = LogFile(log_path)

        self.listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        # Relative to the cwd (the IO dir, see main): any directory path length works.
        unlink_quietly(CONTROL_SOCKET)
        self.listener.bind(CONTROL_SOCKET)
        os.chmod(CONTROL_SOCKET, 0o600)
        self.listener.listen(64)
        self.listener.setblocking(False)

        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for stream in self.streams:
            self.poller.watch(stream.fd, READ, self._output_handler(stream))
        self.poller.watch(self.listener.fileno(), READ, self._on_accept)
        self.poller.watch(self._wake_r, READ, self._on_wakeup)

    # ------------------------------------------------------------------ main loop
    def install_signal_handlers(self) -> None:
        _signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        _signal.signal(_signal.SIGTERM, self._on_signal)
        _signal.signal(_signal.SIGINT, self._on_signal)
        _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.exit_reason is None:
            log(f"signal {signum}: shutting down")
            self.exit_reason = protocol.END_SHUTDOWN

    def run(self) -> int:
        if self.resume:
            # A FIFO whose writers are gone reads b"" at once: the container's output ended
            # while no relay ran. Anything still buffered is read first.
            for stream in list(self.streams):
                self._read_output(stream)
        while True:
            if self.exit_reason is not None and not self._draining:
                self._begin_exit()
            timeout = None
            if self._draining:
                if not any(c.out for c in self.clients.values()):
                    break
                timeout = self._drain_deadline - time.monotonic()
                if timeout <= 0:
                    break
            for fd, events in self.poller.poll(timeout):
                handler = self.poller.handler(fd)
                if handler is None:
                    continue
                try:
                    handler(events)
                except Exception:
                    import traceback  # rare path; kept out of start-up

                    log("unexpected error in event handler:\n" + traceback.format_exc())
        self._finish()
        return 0

    def _on_wakeup(self, _events: int) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            return

    # ------------------------------------------------------------------ output
    def _output_handler(self, stream: OutputStream) -> Handler:
        def handle(_events: int) -> None:
            self._read_output(stream)

        return handle

    def _read_output(self, stream: OutputStream) -> bool:
        """One read from the FIFO; False when nothing more is there right now (or ever)."""
        try:
            data = os.read(stream.fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return False
        if not data:
            self._close_output(stream)
            if not self.streams and self.exit_reason is None:
                self.exit_reason = protocol.END_EOF
            return False
        records = stream.splitter.feed(data)
        if records:
            self.logfile.write(format_records(time.time_ns(), stream.name, records))
        self._broadcast(stream.frame_kind, data)
        return True

    def _close_output(self, stream: OutputStream) -> None:
        """EOF (or shutdown): write the unfinished line as P, stop watching the FIFO."""
        records = stream.splitter.finish()
        if records:
            self.logfile.write(format_records(time.time_ns(), stream.name, records))
        self.poller.unwatch(stream.fd)
        os.close(stream.fd)
        self.streams.remove(stream)

    def reopen_log(self) -> str | None:
        """Handle ``reopen``: None on success, else the error text."""
        try:
            self.logfile.reopen()
        except OSError as exc:
            log(f"reopen of {self.logfile.path} failed: {exc}")
            return f"reopening {self.logfile.path}: {exc.strerror or exc}"
        return None

    # ------------------------------------------------------------------ clients
    def _on_accept(self, _events: int) -> None:
        while True:
            try:
                fd, _addr = self.listener._accept()  # type: ignore[attr-defined]  # C method socket.accept wraps
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: keep serving the rest
                log(f"accept failed: {exc}")
                return
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
            sock.setblocking(False)
            client = Client(sock)
            self.clients[client.fd] = client
            self._update_interest(client)

    def _client_handler(self, client: Client) -> Handler:
        def handle(events: int) -> None:
            if events & WRITE:
                self._flush(client)
            if events & READABLE and self.clients.get(client.fd) is client:
                self._client_readable(client)

        return handle

    def _client_readable(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._client_gone(client)
            return
        if not client.attached:
            client.inbuf += data
            newline = client.inbuf.find(b"\n")
            if newline < 0:
                if len(client.inbuf) > protocol.MAX_COMMAND:
                    self._drop(client)
                return
            line = bytes(client.inbuf[:newline]).decode(errors="replace").strip()
            del client.inbuf[: newline + 1]
            self._command(client, line)
            if not client.attached:
                return
        elif client.wants_stdin:
            client.inbuf += data
        else:
            return  # an output-only attacher has nothing to say
        self._client_frames(client)

    def _command(self, client: Client, line: str) -> None:
        words = line.split()
        verb = words[0] if words else ""
        if verb == "ping":
            self._reply_and_close(client, f"ok {os.getpid()}")
        elif verb == "reopen":
            error = self.reopen_log()
            self._reply_and_close(client, "ok" if error is None else f"error {error}")
        elif verb == "attach":
            client.attached = True
            client.wants_stdin = "stdin" in words[1:] and self.stdin_fd >= 0 and not self.stdin_closing
            self._send(client, b"ok stdin\n" if client.wants_stdin else b"ok\n")
            if not client.wants_stdin:
                client.inbuf.clear()
        else:
            self._reply_and_close(client, f"error unknown command {verb!r}")

    def _client_frames(self, client: Client) -> None:
        try:
            frames = protocol.decode_frames(client.inbuf)
        except ValueError as exc:
            log(f"attach client sent a bad frame: {exc}")
            self._client_gone(client)
            return
        for kind, payload in frames:
            if not client.wants_stdin:
                break
            if kind == protocol.FRAME_STDIN:
                self._stdin_write(payload)
            elif kind == protocol.FRAME_STDIN_EOF:
                self._stdin_done(client, disconnected=False)

    def _stdin_done(self, client: Client, *, disconnected: bool) -> None:
        """An attach session's stdin ended: containerd's CRI semantics."""
        client.wants_stdin = False
        client.inbuf.clear()
        if self.stdin_once and not self.tty:
            self._stdin_close()
        elif not disconnected:
            self._end(client, protocol.END_STDIN_CLOSED)
        if self.clients.get(client.fd) is client:
            self._update_interest(client)

    def _client_gone(self, client: Client) -> None:
        if client.wants_stdin:
            self._stdin_done(client, disconnected=True)
        self._drop(client)

    def _reply_and_close(self, client: Client, text: str) -> None:
        client.closing = True
        self._send(client, text.encode() + b"\n")

    def _end(self, client: Client, reason: bytes) -> None:
        """Last frame for an attach client, then close once it is sent."""
        if client.closing:
            return
        client.closing = True
        self._send(client, protocol.encode_frame(protocol.FRAME_END, reason))

    def _send(self, client: Client, data: bytes) -> None:
        client.out.append(data)
        client.out_bytes += len(data)
        self._flush(client)

    def _flush(self, client: Client) -> None:
        if self.clients.get(client.fd) is not client:
            return
        while client.out:
            view = memoryview(client.out[0])[client.out_offset :]
            try:
                sent = client.sock.send(view, _socket.MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._client_gone(client)
                return
            client.out_bytes -= sent
            if sent < len(view):
                client.out_offset += sent
                break
            client.out.pop(0)
            client.out_offset = 0
        if not client.out and client.closing:
            self._drop(client)
            return
        self._update_interest(client)

    def _update_interest(self, client: Client) -> None:
        events = 0
        if not (self._stdin_paused and client.wants_stdin):
            events |= READ
        if client.out:
            events |= WRITE
        if events == client.events:
            return
        if events:
            self.poller.watch(client.fd, events, self._client_handler(client))
        else:
            self.poller.unwatch(client.fd)
        client.events = events

    def _drop(self, client: Client) -> None:
        if self.clients.get(client.fd) is not client:
            return
        del self.clients[client.fd]
        self.poller.unwatch(client.fd)
        client.sock.close()

    def _broadcast(self, kind: int, data: bytes) -> None:
        if not self.clients:
            return
        frame = protocol.encode_frame(kind, data)
        for client in list(self.clients.values()):
            if not client.attached or client.closing:
                continue
            if client.out_bytes + len(frame) > ATTACH_BACKLOG_LIMIT:
                log(f"attach client fd {client.fd} is {client.out_bytes} bytes behind: dropped")
                # Keep only the rest of a frame already partly sent, then END.
                client.out = client.out[:1] if client.out_offset else []
                client.out_bytes = len(client.out[0]) - client.out_offset if client.out else 0
                self._end(client, protocol.END_SLOW)
                continue
            self._send(client, frame)

    # ------------------------------------------------------------------ stdin
    def _stdin_write(self, data: bytes) -> None:
        if self.stdin_fd < 0 or self.stdin_closing:
            return
        self.stdin_backlog += data
        self._stdin_flush()

    def _stdin_flush(self, _events: int = 0) -> None:
        while self.stdin_backlog and self.stdin_fd >= 0:
            try:
                written = os.write(self.stdin_fd, self.stdin_backlog)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log(f"writing container stdin failed: {exc}; dropping queued input")
                self.stdin_backlog.clear()
                break
            del self.stdin_backlog[:written]
        if self.stdin_fd < 0:
            return
        if self.stdin_backlog:
            if not self.poller.watching(self.stdin_fd):
                self.poller.watch(self.stdin_fd, WRITE, self._stdin_flush)
        else:
            self.poller.unwatch(self.stdin_fd)
            if self.stdin_closing:
                os.close(self.stdin_fd)
                self.stdin_fd = -1
                log("container stdin closed")
        paused = len(self.stdin_backlog) >= STDIN_BACKLOG_LIMIT
        if paused != self._stdin_paused:
            self._stdin_paused = paused
            for client in list(self.clients.values()):
                if client.wants_stdin:
                    self._update_interest(client)

    def _stdin_close(self) -> None:
        """Close the container's stdin once queued input is written (the shim sees EOF)."""
        if self.stdin_fd < 0 or self.stdin_closing:
            return
        self.stdin_closing = True
        for client in self.clients.values():
            client.wants_stdin = False
        self._stdin_flush()

    # ------------------------------------------------------------------ exit
    def _begin_exit(self) -> None:
        reason = self.exit_reason or protocol.END_SHUTDOWN
        log(f"exiting: {reason.decode()}")
        self._draining = True
        self._drain_deadline = time.monotonic() + EXIT_DRAIN_SECONDS
        self.poller.unwatch(self.listener.fileno())
        self.listener.close()
        unlink_quietly(CONTROL_SOCKET)
        for stream in list(self.streams):
            for _ in range(SHUTDOWN_DRAIN_READS):
                if not self._read_output(stream):
                    break
            if stream in self.streams:
                self._close_output(stream)
        self.logfile.close()
        if self.stdin_fd >= 0:
            self.poller.unwatch(self.stdin_fd)
            os.close(self.stdin_fd)
            self.stdin_fd = -1
        for client in list(self.clients.values()):
            if client.attached:
                self._end(client, reason)
            else:
                self._drop(client)

    def _finish(self) -> None:
        for client in list(self.clients.values()):
            self._drop(client)
        unlink_quietly(self.io_dir.pid_file)
        if self.exit_reason == protocol.END_EOF:
            marker = self.io_dir.exited_marker
            with open(marker + ".tmp", "w") as f:
                f.write(f"{format_timestamp(time.time_ns())}\n")
            os.replace(marker + ".tmp", marker)
        log("relay done")
