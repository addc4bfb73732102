"""A minimal epoll loop for the relay: fd → handler(events), nothing else.

``selectors`` and ``socket`` would pull in enum and collections, about 10 ms of start-up
per container; ``select.epoll`` is the same mechanism without them.
"""

from __future__ import annotations

import select

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Handler = Callable[[int], None]

READ = select.EPOLLIN
WRITE = select.EPOLLOUT
#: Events that mean "read now": data, or the peer/writer is gone (read returns EOF/error).
READABLE = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR


class Poller:
    """Level-triggered epoll with one handler per fd."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}

    def watch(self, fd: int, events: int, handler: Handler) -> None:
        """Register ``fd`` or change what is watched."""
        if fd in self._handlers:
            self._epoll.modify(fd, events)
        else:
            self._epoll.register(fd, events)
        self._handlers[fd] = handler

    def unwatch(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def watching(self, fd: int) -> bool:
        return fd in self._handlers

    def handler(self, fd: int) -> Handler | None:
        return self._handlers.get(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        """Ready (fd, events); look each handler up when dispatching (an earlier one may close fds)."""
        return self._epoll.poll(-1 if timeout is None else max(timeout, 0.0))
