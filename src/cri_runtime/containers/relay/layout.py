"""Names of the files in a container's IO directory, shared by the relay and the server.

The server picks the directory (``<state>/containers/<id>/io``); everything about one
container's IO lives there, so recovery after a server restart needs nothing but the
path: ``relay.json`` holds the relay's arguments for a respawn, the lock tells whether a
relay is alive, the markers say how it ended.
"""

from __future__ import annotations

import os

STDIN = "stdin"
STDOUT = "stdout"
STDERR = "stderr"
CONTROL_SOCKET = "ctl.sock"
LOCK_FILE = "relay.lock"
PID_FILE = "relay.pid"
LOG_FILE = "relay.log"
CONFIG_FILE = "relay.json"
EXITED_MARKER = "exited"

#: sun_path holds 108 bytes; longer socket paths are reached through /proc/self/fd.
MAX_SOCKET_PATH = 100


class IoDir:
    """Absolute paths (str) inside one container's IO directory.

    Plain strings and no dataclass/pathlib on purpose: this module is imported by the
    relay process, whose start-up time is on the CreateContainer path.
    """

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))

    def _join(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def stdin(self) -> str:
        return self._join(STDIN)

    @property
    def stdout(self) -> str:
        return self._join(STDOUT)

    @property
    def stderr(self) -> str:
        return self._join(STDERR)

    @property
    def control_socket(self) -> str:
        return self._join(CONTROL_SOCKET)

    @property
    def lock_file(self) -> str:
        return self._join(LOCK_FILE)

    @property
    def pid_file(self) -> str:
        return self._join(PID_FILE)

    @property
    def log_file(self) -> str:
        return self._join(LOG_FILE)

    @property
    def config_file(self) -> str:
        return self._join(CONFIG_FILE)

    @property
    def exited_marker(self) -> str:
        return self._join(EXITED_MARKER)
