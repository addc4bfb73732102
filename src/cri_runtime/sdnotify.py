"""systemd's readiness protocol (sd_notify), written straight to `$NOTIFY_SOCKET`.

The protocol is one datagram of `KEY=value` lines on a unix socket (an `@`
prefix names the abstract namespace). It is small enough that a library
(and libsystemd) would cost more than the few lines here; without
`NOTIFY_SOCKET` (not started by systemd) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    if path.startswith("@"):
        return "\0" + path[1:]
    return path


def notify(*lines: str) -> bool:
    """Send `lines` (e.g. "READY=1", "STATUS=serving") as one datagram; False when not under systemd."""
    address = _address()
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", address.replace("\0", "@"), exc.strerror)
            return False
    return True


def ready(status: str) -> bool:
    return notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")


def reloading(status: str) -> bool:
    """RELOADING=1 carries MONOTONIC_USEC, as systemd's Type=notify-reload requires."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"STATUS={status}", f"MONOTONIC_USEC={usec}")


def stopping(status: str) -> bool:
    return notify("STOPPING=1", f"STATUS={status}")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")
