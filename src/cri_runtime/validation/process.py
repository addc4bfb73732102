"""Size limits of a process's argv and environment (CreateContainer, ExecSync, Exec).

Measured on this node's runc 1.1.5 under containerd 1.6.20's runc shim
(ExecSync into a busybox container, see tests/integration/hardening):

* one argument up to 131071 bytes starts; 131072 bytes fails with E2BIG
  ("argument list too long", the kernel's MAX_ARG_STRLEN of 32 pages);
* 30 arguments of 60000 bytes (1.8 MB) start; 40 (2.4 MB) fail with E2BIG
  (the kernel's limit is a quarter of the 8 MiB stack rlimit, 2 MiB, for
  argv and environment together);
* a single 64 KiB argument was reported to leave `runc exec` hanging on
  another node with the same versions (issue 12), which blocks the shim.

The limits therefore stay below every size seen to fail or hang: each
argument or environment entry below 64 KiB, and argv and environment each at
most 512 KiB, so an exec's argv plus the container's environment stays well
below the kernel's 2 MiB. Anything above is InvalidArgument naming the limit,
before any runc starts.
"""

from __future__ import annotations

from collections.abc import Iterable

from cri_runtime.errors import InvalidArgument

MAX_ARG_BYTES = 64 * 1024 - 1
MAX_ARGV_BYTES = 512 * 1024
MAX_ENV_BYTES = 512 * 1024


def _size(item: str | bytes) -> int:
    return len(item.encode() if isinstance(item, str) else item) + 1  # the kernel counts the NUL


def check_argv(argv: Iterable[str], field: str) -> None:
    total = 0
    for i, arg in enumerate(argv):
        size = _size(arg)
        if size - 1 > MAX_ARG_BYTES:
            raise InvalidArgument(f"{field}[{i}] is {size - 1} bytes; the limit for one argument is "
                                  f"{MAX_ARG_BYTES} bytes")
        total += size
    if total > MAX_ARGV_BYTES:
        raise InvalidArgument(f"{field} totals {total} bytes; the limit for all arguments together is "
                              f"{MAX_ARGV_BYTES} bytes")


def check_env(entries: Iterable[tuple[str, bytes]], field: str) -> None:
    total = 0
    for i, (key, value) in enumerate(entries):
        size = len(key.encode()) + 1 + len(value) + 1
        if size - 1 > MAX_ARG_BYTES:
            raise InvalidArgument(f"{field}[{i}] ({key}) is {size - 1} bytes as KEY=VALUE; the limit for one "
                                  f"environment entry is {MAX_ARG_BYTES} bytes")
        total += size
    if total > MAX_ENV_BYTES:
        raise InvalidArgument(f"{field} totals {total} bytes; the limit for the whole environment is "
                              f"{MAX_ENV_BYTES} bytes")
