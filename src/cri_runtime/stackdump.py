"""The SIGUSR1 dump: every asyncio task's and every thread's stack, to the log.

containerd answers SIGUSR1 with a dump of all goroutines; an operator chasing a
hang here needs the same picture: which coroutines wait where, and what the
helper threads (metrics HTTP, executors) are doing. The stdlib's
`Task.get_stack` and `sys._current_frames` give both without stopping anything.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import threading
import traceback

log = logging.getLogger(__name__)


def _task_stack(task: asyncio.Task[object]) -> str:
    out = io.StringIO()
    task.print_stack(limit=50, file=out)
    return out.getvalue()


def dump() -> str:
    """All tasks of the running loop and all threads, as text."""
    parts: list[str] = []
    try:
        tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    except RuntimeError:
        tasks = []
    parts.append(f"=== {len(tasks)} asyncio tasks ===")
    for task in tasks:
        parts.append(f"--- task {task.get_name()} ({task.get_coro()!r}) ---")
        parts.append(_task_stack(task).rstrip())
    names = {t.ident: t.name for t in threading.enumerate()}
    frames = sys._current_frames()
    parts.append(f"=== {len(frames)} threads ===")
    for ident, frame in frames.items():
        parts.append(f"--- thread {names.get(ident, '?')} ({ident}) ---")
        parts.append("".join(traceback.format_stack(frame)).rstrip())
    return "\n".join(parts)


def log_dump() -> None:
    text = dump()
    log.info("=== begin task stack dump ===\n%s\n=== end task stack dump ===", text,
             extra={"fields": {"signal": "SIGUSR1"}})
