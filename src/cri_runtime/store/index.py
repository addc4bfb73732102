"""ID lookup by full ID or unique prefix, and name reservation.

CRI clients (crictl, critest) address objects by any unique ID prefix. A
prefix matching two objects is the caller's mistake (InvalidArgument naming
the matches), not "not found". Names (pod: name_namespace_uid_attempt;
container: name within its pod) are reserved before any work starts, so two
concurrent creates of the same name cannot both proceed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

from cri_runtime import errors

T = TypeVar("T")


class IdIndex(Generic[T]):
    """Objects keyed by 64-hex IDs, found by ID or unique prefix."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, obj_id: str, obj: T) -> None:
        self._items[obj_id] = obj

    def remove(self, obj_id: str) -> None:
        self._items.pop(obj_id, None)

    def resolve(self, id_or_prefix: str) -> str:
        """The full ID for `id_or_prefix`; NotFound / InvalidArgument otherwise."""
        if not id_or_prefix:
            raise errors.InvalidArgument(f"{self.kind} ID must not be empty")
        if id_or_prefix in self._items:
            return id_or_prefix
        matches = [i for i in self._items if i.startswith(id_or_prefix)]
        if not matches:
            raise errors.NotFound(f"{self.kind} {id_or_prefix!r} not found")
        if len(matches) > 1:
            shown = ", ".join(sorted(m[:13] for m in matches)[:5])
            raise errors.InvalidArgument(
                f"{self.kind} ID prefix {id_or_prefix!r} is ambiguous: it matches {len(matches)} "
                f"({shown})")
        return matches[0]

    def get(self, id_or_prefix: str) -> T:
        return self._items[self.resolve(id_or_prefix)]

    def find(self, id_or_prefix: str) -> T | None:
        """Like get, but None when not found (ambiguity still raises)."""
        try:
            return self.get(id_or_prefix)
        except errors.NotFound:
            return None

    def __contains__(self, obj_id: object) -> bool:
        return obj_id in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)


class NameRegistry:
    """Reserves unique names; the holder's ID is named when a name is taken."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    def reserve(self, name: str, obj_id: str) -> None:
        with self._lock:
            holder = self._names.get(name)
            if holder is not None and holder != obj_id:
                raise errors.AlreadyExists(
                    f"{self.kind} name {name!r} is already reserved by {self.kind} {holder}")
            self._names[name] = obj_id

    def release(self, name: str) -> None:
        with self._lock:
            self._names.pop(name, None)

    def release_id(self, obj_id: str) -> None:
        with self._lock:
            for name in [n for n, i in self._names.items() if i == obj_id]:
                del self._names[name]

    def holder(self, name: str) -> str | None:
        return self._names.get(name)
