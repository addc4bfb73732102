"""Atomically replaced small files: write a temp file, then rename it over.

Status files are rewritten on every state change; a reader (or our own
recovery after `kill -9`) must see either the old or the new content, never a
torn write — the rename gives that. They live in the volatile state dir
(tmpfs /run on a node), which does not survive a reboot anyway, so they are
not fsynced on the hot path; `durable=True` adds the fsyncs for files that
must survive a power loss.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R", bound="JsonRecord")


def write_bytes(path: str | Path, data: bytes, mode: int = 0o600, *, durable: bool = False) -> None:
    # Plain os calls (no pathlib, no file object): this is on the container start path.
    path = os.fspath(path)
    parent, name = os.path.split(path)
    tmp = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if not durable:
        return
    dir_fd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: str | Path, data: Any) -> None:
    write_bytes(path, json.dumps(data, sort_keys=True, separators=(",", ":")).encode())


def read_json(path: str | Path) -> Any:
    """The decoded file, or None when it does not exist."""
    try:
        return json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        return None


class JsonRecord:
    """Mixin for dataclass records kept in one atomically rewritten JSON file.

    Unknown keys in the file are ignored so a newer file still loads.
    """

    @classmethod
    def load(cls: type[R], path: Path) -> R | None:
        data = read_json(path)
        if data is None:
            return None
        fields = getattr(cls, "__dataclass_fields__", {})
        return cls(**{k: v for k, v in data.items() if k in fields})

    def save(self, path: Path) -> None:
        write_json(path, dataclasses.asdict(self))  # type: ignore[call-overload]
