"""Server side of the relay zygote: start relays by forking them from a warm process.

A relay started through :class:`RelayLauncher` is the same detached process,
with the same directory, files and ready handshake, as one from
:func:`.client.spawn`; only the ~12 ms interpreter start-up is gone (the
zygote paid it once). When no zygote runs (not started yet, died, broken
socket) the launcher starts a new one and uses ``client.spawn`` meanwhile, so
a relay is never missing because of the zygote.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import time

from cri_runtime.errors import Internal

from . import cgroup as relay_cgroup
from . import client
from .client import PYTHON, SPAWN_TIMEOUT, PathLike, RelayConfig, RelayHandle
from .layout import IoDir

log = logging.getLogger(__name__)

_BOOTSTRAP = f"import sys; from {client.RELAY_MODULE}.zygote import main; sys.exit(main())"
CLOSE_TIMEOUT = 2.0


class RelayLauncher:
    """Starts container IO relays; one zygote process per server."""

    def __init__(self, owner: str, cgroup: str = "") -> None:
        #: Named on the zygote's command line, so ``ps`` (and leak checks) can attribute it.
        self.owner = owner
        #: The relays' own cgroup (see .cgroup); "" = they stay in the server's.
        self.cgroup = cgroup
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    @property
    def zygote_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> None:
        """Start the zygote unless one runs. Requests sent while it boots wait in the socket."""
        if self._proc is not None and self._proc.poll() is None and self._sock is not None:
            return
        self._discard()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = subprocess.Popen(
                [PYTHON, "-S", "-c", _BOOTSTRAP, "--socket-fd", str(theirs.fileno()), "--for", self.owner],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                env=client.relay_env(), cwd="/")
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        # Before any request: every relay the zygote forks is born in the relay cgroup.
        relay_cgroup.place(proc.pid, self.cgroup)
        self._proc, self._sock = proc, ours
        log.debug("relay zygote started", extra={"fields": {"pid": proc.pid}})

    async def spawn(self, io_dir: PathLike, config: RelayConfig, *, resume: bool = False,
                    timeout: float = SPAWN_TIMEOUT) -> RelayHandle:
        """Like :func:`.client.spawn`: a detached relay for ``io_dir``, once it reads the FIFOs."""
        d = client.prepare_dir(io_dir, config, resume=resume)
        ready_r = self._request(d, config, resume)
        if ready_r is None:
            return self._placed(await client.spawn(d.path, config, resume=resume, timeout=timeout))
        try:
            return await client.await_ready(d, config, ready_r, timeout)
        except Internal:
            if self.zygote_pid is not None:
                raise  # the relay itself failed (its log says why)
            # The zygote died holding our request: nothing runs for d, start it directly.
            log.warning("relay zygote died; starting the relay for %s directly", d.path)
            self._discard()
            return self._placed(await client.spawn(d.path, config, resume=resume, timeout=timeout))

    def _placed(self, relay: RelayHandle) -> RelayHandle:
        """A directly spawned relay (a single process) joins the relay cgroup too."""
        relay_cgroup.place(relay.pid, self.cgroup)
        return relay

    def _request(self, d: IoDir, config: RelayConfig, resume: bool) -> int | None:
        """Ask the zygote for a relay; the ready pipe's read end, or None (use a direct spawn)."""
        try:
            self.start()
        except OSError as exc:
            log.warning("cannot start the relay zygote: %s", exc)
            return None
        assert self._sock is not None
        message = "\0".join(client.relay_args(d, config, resume)).encode()
        ready_r, ready_w = os.pipe()
        log_fd = -1
        try:
            log_fd = client.open_relay_log(d)
            fds = array.array("i", [ready_w, log_fd])
            self._sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError as exc:
            os.close(ready_r)
            log.warning("relay zygote unusable (%s); restarting it", exc)
            self._discard()
            return None
        finally:
            os.close(ready_w)
            if log_fd >= 0:
                os.close(log_fd)
        return ready_r

    def _discard(self) -> None:
        """Drop the current zygote (closing its socket makes it exit) and reap it."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    async def close(self) -> None:
        """Stop the zygote (relays it started are not affected)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
