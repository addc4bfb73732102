"""Wire protocol of the relay's control socket (``ctl.sock``).

A client connects and sends one command line; the relay answers ``ok`` or
``error <message>`` on one line:

* ``ping``          -- liveness; answer ``ok <pid>``; then the relay closes.
* ``reopen``        -- close and reopen the container log file (kubelet rotated it);
                       the answer comes after the new file is in use; then the relay closes.
* ``attach``        -- after ``ok`` the connection carries frames until either side closes:
* ``attach stdin``     relay → client: STDOUT/STDERR frames with the container's raw
                       output, END (reason) as the last frame; client → relay (with
                       ``stdin`` only): STDIN frames and one STDIN_EOF frame.

A frame is a 1-byte type, a 4-byte big-endian payload length, then the payload. When an
attach session that carried stdin ends (STDIN_EOF or disconnect), a container created with
``stdin_once`` and without tty gets its stdin closed, as containerd's CRI does; otherwise the
session's output ends with END ``stdin-closed`` when STDIN_EOF arrives.
"""

from __future__ import annotations

import struct

FRAME_STDIN = 0
FRAME_STDOUT = 1
FRAME_STDERR = 2
FRAME_STDIN_EOF = 3
FRAME_END = 4

HEADER = struct.Struct(">BI")
HEADER_SIZE = HEADER.size
#: Largest payload a client may send in one frame; bigger frames end the session.
MAX_CLIENT_FRAME = 1 << 20
#: Longest command line accepted before the connection is dropped.
MAX_COMMAND = 256

#: END frame reasons.
END_EOF = b"eof"  # the container's output ended
END_SLOW = b"slow-reader"  # the client did not keep up; output is never held back for it
END_STDIN_CLOSED = b"stdin-closed"  # the client closed its stdin (no stdin_once)
END_SHUTDOWN = b"shutdown"  # the relay was told to stop


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def decode_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Remove and return the complete frames at the start of ``buf``.

    Raises ValueError on a frame larger than MAX_CLIENT_FRAME (a broken or hostile peer).
    """
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while len(buf) - pos >= HEADER_SIZE:
        kind, size = HEADER.unpack_from(buf, pos)
        if size > MAX_CLIENT_FRAME:
            raise ValueError(f"frame of {size} bytes exceeds {MAX_CLIENT_FRAME}")
        if len(buf) - pos - HEADER_SIZE < size:
            break
        start = pos + HEADER_SIZE
        frames.append((kind, bytes(buf[start : start + size])))
        pos = start + size
    if pos:
        del buf[:pos]
    return frames
