"""Reading CRI-format container log files (`<RFC3339Nano> <stream> <P|F> <message>`).

Supports --tail, --since, --limit-bytes, --timestamps, a single stream, and --follow across
kubelet-style rotation (the path is re-opened when its inode changes).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO


@dataclass
class LogOptions:
    follow: bool = False
    timestamps: bool = False
    since: float | None = None
    tail: int = -1
    limit_bytes: int = -1
    stream: str = ""


@dataclass
class LogLine:
    timestamp: str
    stream: str
    partial: bool
    content: bytes


class LogFormatError(ValueError):
    pass


def parse_line(raw: bytes) -> LogLine:
    """Split one CRI log line; the trailing newline is not part of the message."""
    line = raw[:-1] if raw.endswith(b"\n") else raw
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        raise LogFormatError(f"unexpected CRI log line {line[:80]!r}")
    timestamp, stream, tag = parts[0].decode("ascii", "replace"), parts[1].decode("ascii", "replace"), parts[2]
    if stream not in ("stdout", "stderr"):
        raise LogFormatError(f"unexpected stream type {stream!r}")
    content = parts[3] if len(parts) > 3 else b""
    return LogLine(timestamp, stream, tag == b"P", content)


def parse_timestamp(text: str) -> float:
    """RFC3339Nano to epoch seconds (sub-microsecond digits are dropped)."""
    main, _, rest = text.partition(".")
    zone = ""
    fraction = ""
    if rest:
        digits = ""
        for index, ch in enumerate(rest):
            if not ch.isdigit():
                zone = rest[index:]
                break
            digits += ch
        fraction = digits
    else:
        for marker in ("Z", "+", "-"):
            idx = main.find(marker, 10)
            if idx > 0:
                main, zone = main[:idx], main[idx:]
                break
    moment = _dt.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S")
    if zone in ("Z", "z", ""):
        moment = moment.replace(tzinfo=_dt.UTC)
    else:
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        moment = moment.replace(tzinfo=_dt.timezone(sign * _dt.timedelta(hours=hours, minutes=minutes)))
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)


def _format_timestamp(text: str) -> str:
    """kubelet's log reader re-formats with a fixed nine-digit fraction (RFC3339NanoFixed)."""
    head, dot, rest = text.partition(".")
    if not dot:
        for marker in ("Z", "z", "+", "-"):
            idx = head.find(marker, 10)
            if idx > 0:
                head, rest = head[:idx], head[idx:]
                break
        else:
            rest = ""
    index = 0
    while index < len(rest) and rest[index].isdigit():
        index += 1
    digits, zone = rest[:index], rest[index:]
    if zone in ("z", "+00:00", "-00:00", ""):
        zone = "Z"
    return f"{head}.{digits[:9].ljust(9, '0')}{zone}"


def _tail_offset(handle: BinaryIO, lines: int) -> int:
    """Offset of the start of the last `lines` lines."""
    if lines <= 0:
        handle.seek(0, os.SEEK_END)
        return handle.tell()
    handle.seek(0)
    starts: deque[int] = deque(maxlen=lines)
    offset = 0
    for raw in handle:
        starts.append(offset)
        offset += len(raw)
    return starts[0] if starts else 0


class LogWriter:
    """Writes messages to the chosen streams, enforcing the byte limit."""

    def __init__(self, opts: LogOptions, stdout: BinaryIO | None, stderr: BinaryIO | None) -> None:
        self.opts = opts
        self.outputs = {"stdout": stdout, "stderr": stderr}
        self.remaining = opts.limit_bytes if opts.limit_bytes >= 0 else None

    def write(self, line: LogLine) -> bool:
        """Returns False once the byte limit is reached."""
        out = self.outputs.get(line.stream)
        if out is None:
            return True
        data = line.content if line.partial else line.content + b"\n"
        if self.opts.timestamps:
            data = _format_timestamp(line.timestamp).encode() + b" " + data
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            data = data[: self.remaining]
            self.remaining -= len(data)
        out.write(data)
        out.flush()
        return self.remaining is None or self.remaining > 0


def _lines(handle: BinaryIO) -> Iterator[bytes]:
    while True:
        raw = handle.readline()
        if not raw:
            return
        yield raw


def read_logs(
    path: str,
    opts: LogOptions,
    stdout: BinaryIO | None,
    stderr: BinaryIO | None,
    still_running: Callable[[], bool] | None = None,
    stopped: Callable[[], bool] | None = None,
) -> None:
    """Copy the log at `path` to the outputs; with follow, keep reading until the container stops
    or `stopped()` says the user interrupted (checked every round, so no signal is ever lost)."""
    writer = LogWriter(opts, stdout if opts.stream in ("", "stdout") else None,
                       stderr if opts.stream in ("", "stderr") else None)  # fmt: skip
    try:
        handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - kept open across rotations
    except FileNotFoundError as exc:
        raise FileNotFoundError(f'failed to open log file "{path}": {exc.strerror}') from exc
    try:
        if opts.tail >= 0:
            handle.seek(_tail_offset(handle, opts.tail))
        pending = b""
        last_check = time.monotonic()
        while True:
            for raw in _lines(handle):
                if not raw.endswith(b"\n"):
                    pending += raw
                    break
                raw = pending + raw
                pending = b""
                line = parse_line(raw)
                if opts.since is not None and parse_timestamp(line.timestamp) < opts.since:
                    continue
                if not writer.write(line):
                    return
            if not opts.follow or (stopped is not None and stopped()):
                return
            time.sleep(0.1)
            handle = _reopen_if_rotated(path, handle)
            if still_running is not None and time.monotonic() - last_check > 1.0:
                last_check = time.monotonic()
                if stopped is not None and stopped():
                    return
                if not still_running():
                    for raw in _lines(handle):
                        if raw.endswith(b"\n"):
                            writer.write(parse_line(pending + raw))
                            pending = b""
                    return
    finally:
        handle.close()


def _reopen_if_rotated(path: str, handle: BinaryIO) -> BinaryIO:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return handle
    opened = os.fstat(handle.fileno())
    if (current.st_ino, current.st_dev) == (opened.st_ino, opened.st_dev):
        return handle
    handle.close()
    return open(path, "rb")
