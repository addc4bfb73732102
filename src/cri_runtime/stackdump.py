"""The SIGUSR1 dump: every asyncio task's and every thread's stack, to the log.

containerd answers SIGUSR1 with a dump of all goroutines; an operator chasing a
hang here needs the same picture: which coroutines wait where, and what the
helper threads (metrics HTTP, executors) are doing. The stdlib's
`Task.get_stack` and `sys._current_frames` give both without stopping anything.
"""

from __future__ import annotations

import asyncio
import linecache
import logging
import sys
import threading
from types import FrameType

log = logging.getLogger(__name__)


def _frame_line(frame: FrameType) -> str:
    # Not Task.print_stack: a frame without a line number (seen on 3.11) makes it raise.
    lineno = frame.f_lineno or 0
    text = linecache.getline(frame.f_code.co_filename, lineno).strip() if lineno else ""
    line = f'  File "{frame.f_code.co_filename}", line {lineno}, in {frame.f_code.co_name}'
    return f"{line}\n    {text}" if text else line


def _task_stack(task: asyncio.Task[object]) -> str:
    frames = task.get_stack(limit=50)
    if not frames:
        return "  (no frames: the task is about to run or has finished)"
    return "\n".join(_frame_line(f) for f in frames)


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
        chain: list[FrameType] = []
        current: FrameType | None = frame
        while current is not None and len(chain) < 100:
            chain.append(current)
            current = current.f_back
        parts.append("\n".join(_frame_line(f) for f in reversed(chain)))
    return "\n".join(parts)


def log_dump() -> None:
    text = dump()
    log.info("=== begin task stack dump ===\n%s\n=== end task stack dump ===", text,
             extra={"fields": {"signal": "SIGUSR1"}})
