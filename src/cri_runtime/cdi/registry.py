"""The CDI spec directories: which device is defined where, refreshed when the files change.

Precedence as in the CDI reference cache: directories are listed in priority
order, a later directory overrides an earlier one (``/var/run/cdi``, written by
drivers at run time, wins over ``/etc/cdi``); two files of the same directory
defining one device is a conflict and the device resolves to nothing. Only
``*.json`` and ``*.yaml`` files count.

The registry re-reads the specs only when a directory's or a spec file's
mtime/size/inode changed since the last read (a few stat calls per
CreateContainer, no parsing), so a driver that writes a spec is seen by the next
container without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidArgument
from .names import parse_qualified_name
from .spec import CdiSpec, ContainerEdits, SpecError, read_spec

log = logging.getLogger(__name__)

DEFAULT_SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")
SPEC_SUFFIXES = (".json", ".yaml")

_Fingerprint = tuple[tuple[str, int, tuple[tuple[str, int, int, int], ...]], ...]


@dataclass(frozen=True)
class ResolvedDevice:
    name: str
    spec: CdiSpec
    edits: ContainerEdits


class CdiRegistry:
    """Devices of the spec files in ``spec_dirs`` (lowest priority first)."""

    def __init__(self, spec_dirs: Sequence[str] = DEFAULT_SPEC_DIRS) -> None:
        self.spec_dirs = tuple(os.path.normpath(d) for d in spec_dirs)
        self._lock = threading.Lock()
        self._fingerprint: _Fingerprint | None = None
        self._devices: dict[str, ResolvedDevice] = {}
        #: Problems by file (parse errors, conflicts), reported with unresolvable devices.
        self.errors: dict[str, list[str]] = {}
        self.refreshes = 0

    def _scan(self) -> tuple[_Fingerprint, list[tuple[int, str]]]:
        fingerprint: list[tuple[str, int, tuple[tuple[str, int, int, int], ...]]] = []
        files: list[tuple[int, str]] = []
        for priority, d in enumerate(self.spec_dirs):
            try:
                st = os.stat(d)
                names = sorted(os.listdir(d))
            except OSError:
                fingerprint.append((d, -1, ()))
                continue
            entries = []
            for name in names:
                if not name.endswith(SPEC_SUFFIXES):
                    continue
                path = os.path.join(d, name)
                try:
                    fst = os.stat(path)
                except OSError:
                    continue
                if not os.path.isfile(path):
                    continue
                entries.append((name, fst.st_mtime_ns, fst.st_size, fst.st_ino))
                files.append((priority, path))
            fingerprint.append((d, st.st_mtime_ns, tuple(entries)))
        return tuple(fingerprint), files

    def refresh(self, force: bool = False) -> None:
        """Re-read the specs if anything changed (or ``force``)."""
        with self._lock:
            fingerprint, files = self._scan()
            if not force and fingerprint == self._fingerprint:
                return
            devices: dict[str, ResolvedDevice] = {}
            errors: dict[str, list[str]] = {}
            conflicts: set[str] = set()
            for priority, path in files:
                try:
                    spec = read_spec(path, priority)
                except SpecError as exc:
                    errors.setdefault(path, []).append(str(exc))
                    continue
                for name, edits in spec.devices.items():
                    qualified = f"{spec.kind}={name}"
                    old = devices.get(qualified)
                    if old is not None and old.spec.priority == priority:
                        msg = f"CDI device {qualified} is defined in both {old.spec.path} and {path}"
                        errors.setdefault(path, []).append(msg)
                        errors.setdefault(old.spec.path, []).append(msg)
                        conflicts.add(qualified)
                    devices[qualified] = ResolvedDevice(qualified, spec, edits)
            for name in conflicts:
                devices.pop(name, None)
            for path, problems in errors.items():
                for problem in problems:
                    log.warning("CDI: %s", problem if path in problem else f"{path}: {problem}")
            self._devices, self.errors, self._fingerprint = devices, errors, fingerprint
            self.refreshes += 1

    def devices(self) -> list[str]:
        self.refresh()
        return sorted(self._devices)

    def resolve(self, names: Sequence[str]) -> list[ResolvedDevice]:
        """The devices named, in order; InvalidArgument naming each unknown device and any broken file."""
        if not names:
            return []
        self.refresh()
        out, unknown = [], []
        for name in names:
            parse_qualified_name(name)
            dev = self._devices.get(name)
            if dev is None:
                unknown.append(name)
            else:
                out.append(dev)
        if unknown:
            where = ", ".join(self.spec_dirs)
            msg = f"unresolvable CDI device(s) {', '.join(unknown)}: no valid spec in {where} defines them"
            problems = [p for ps in self.errors.values() for p in ps]
            if problems:
                msg += "; spec problems: " + "; ".join(problems)
            raise InvalidArgument(msg)
        return out
