"""CRI log record formatting, byte-compatible with containerd's CRI logger.

kubelet parses ``<RFC3339Nano> <stdout|stderr> <F|P> <content>`` lines: ``F`` ends a
line, ``P`` is a piece of a longer one. The rules mirror containerd's
``redirectLogs``:

* a line ends at ``\\n``; one ``\\r`` just before it is dropped (``\\r\\n`` endings,
  tty output); an empty line is an ``F`` record with empty content;
* a line longer than ``max_line_size`` is cut into ``P`` pieces of exactly that size,
  and whatever is left (possibly exactly ``max_line_size``) is the ``F`` record; a
  lone ``\\r`` that might start ``\\r\\n`` is never counted towards a cut;
* at EOF, content without a trailing newline is written as ``P`` (cut the same way);
* ``max_line_size <= 0`` means no limit.

Timestamps follow Go's ``time.RFC3339Nano`` in local time: fractional seconds with
trailing zeros trimmed (no dot at all for whole seconds), ``Z`` for a zero UTC offset,
``+hh:mm`` otherwise.
"""

from __future__ import annotations

import time

STDOUT = "stdout"
STDERR = "stderr"
TAG_FULL = b"F"
TAG_PARTIAL = b"P"

Record = tuple[bytes, bytes]
"""(tag, content): one log record before the timestamp and stream are added."""


def format_timestamp(ns: int) -> str:
    """Go's ``time.Unix(0, ns).Format(time.RFC3339Nano)`` in the local time zone."""
    sec, frac = divmod(ns, 1_000_000_000)
    tm = time.localtime(sec)
    text = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    offset = tm.tm_gmtoff or 0
    if offset == 0:
        return text + "Z"
    sign = "+" if offset > 0 else "-"
    minutes = abs(offset) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def format_records(ns: int, stream: str, records: list[Record]) -> bytes:
    """Render records sharing one timestamp as the bytes to append to the log file."""
    if not records:
        return b""
    head = f"{format_timestamp(ns)} {stream} ".encode()
    return b"".join(head + tag + b" " + content + b"\n" for tag, content in records)


class LineSplitter:
    """Turns a byte stream into CRI records; keeps at most one unfinished line."""

    def __init__(self, max_line_size: int) -> None:
        self.max_line_size = max_line_size
        self._pending = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of the unfinished line held back (waiting for a newline)."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[Record]:
        """Records completed by ``data`` (full lines, and ``P`` cuts of over-long ones)."""
        out: list[Record] = []
        pending = self._pending
        pending += data
        start = 0
        while True:
            nl = pending.find(b"\n", start)
            if nl < 0:
                break
            end = nl - 1 if nl > start and pending[nl - 1] == 0x0D else nl
            self._cut(pending, start, end, TAG_FULL, out)
            start = nl + 1
        if start:
            del pending[:start]
        limit = self.max_line_size
        if limit > 0:
            # Cut only what cannot still turn out to be a "\r\n" ending.
            usable = len(pending) - (1 if pending.endswith(b"\r") else 0)
            cut = 0
            while usable - cut > limit:
                out.append((TAG_PARTIAL, bytes(pending[cut : cut + limit])))
                cut += limit
            if cut:
                del pending[:cut]
        return out

    def finish(self) -> list[Record]:
        """At EOF: the unfinished line, if any, as ``P`` record(s)."""
        out: list[Record] = []
        if self._pending:
            self._cut(self._pending, 0, len(self._pending), TAG_PARTIAL, out)
            self._pending.clear()
        return out

    def _cut(self, buf: bytearray, start: int, end: int, last_tag: bytes, out: list[Record]) -> None:
        """Append ``buf[start:end]`` as records: ``P`` pieces of max size, then ``last_tag``."""
        limit = self.max_line_size
        if limit > 0:
            while end - start > limit:
                out.append((TAG_PARTIAL, bytes(buf[start : start + limit])))
                start += limit
        out.append((last_tag, bytes(buf[start:end])))
