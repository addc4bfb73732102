"""Network namespaces pinned by a bind mount, created with direct kernel calls.

A pod's network namespace must outlive every process in it (the pause
container may be restarted, CNI DEL must still find it), so it is pinned like
`ip netns add` does: an empty file `<dir>/<name>` with the namespace's nsfs
inode bind-mounted onto it.

Namespaces belong to threads. `unshare(CLONE_NEWNET)` therefore runs in a
short-lived thread created for that one call, which exits afterwards: a
thread switched into another namespace must never go back to a pool where
unrelated code (the event loop's executor, grpc's threads) would run in the
pod's network. The same holds for `setns()` when running code inside a
namespace.

The pin directory is made a mount point with shared propagation (`ip netns`
does the same): pins then propagate to mount namespaces cloned from ours as
slaves, and unmounting a pin here also unmounts those copies, so a
namespace is not kept alive by a stray copy of its pin.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import re
import secrets
import signal
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from cri_runtime import errors

T = TypeVar("T")

log = logging.getLogger("cri_runtime.network.netns")

#: Where `ip netns` keeps its pins; pods' namespaces go here by default so `ip netns` shows them.
DEFAULT_NETNS_DIR = "/run/netns"

_CLONE_NEWNET = 0x40000000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SHARED = 1 << 20
_MNT_DETACH = 2
_NSFS_MAGIC = 0x6E736673
_NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]

#: Pin directories prepared by this process -> whether we bound them onto themselves.
_prepared_dirs: dict[str, bool] = {}
_prepared_lock = threading.Lock()


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    _check(_libc.mount(source.encode() if source is not None else None, target.encode(),
                       fstype.encode() if fstype is not None else None, flags, None),
           f"mount {source or ''} on {target}")


def _umount(target: str, flags: int) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def new_name() -> str:
    """A random namespace name in containerd's style (`cni-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`)."""
    h = secrets.token_hex(16)
    return f"cni-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _in_dedicated_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a new OS thread that exits afterwards; re-raise its exception here."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=body, name="netns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


async def _in_dedicated_thread_async(fn: Callable[[], T]) -> T:
    """Like `_in_dedicated_thread`, without blocking the event loop while it runs."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(value: T | None, exc: BaseException | None) -> None:
        if future.cancelled():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def body() -> None:
        try:
            value = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(deliver, None, exc)
            return
        loop.call_soon_threadsafe(deliver, value, None)

    threading.Thread(target=body, name="netns", daemon=True).start()
    return await future


def _mount_points() -> list[str]:
    """Mount points of our mount namespace (mountinfo field 5, octal escapes decoded)."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            field = line.split(" ", 5)[4]
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field))
    return points


def prepare_pin_dir(directory: str) -> None:
    """Create `directory` and make it a shared mount point (once per process), as `ip netns` does.

    If the directory is not a mount point but already holds pins of another
    runtime (containerd does not make /run/netns a mount point), it is left
    alone: binding it onto itself would hide those pins under our copy, and
    their owner's later unmount would then leave the originals mounted.
    """
    directory = os.path.realpath(directory)
    with _prepared_lock:
        if directory in _prepared_dirs:
            return
        os.makedirs(directory, mode=0o755, exist_ok=True)
        points = _mount_points()
        self_bound = False
        if directory in points:
            _mount(None, directory, None, _MS_SHARED | _MS_REC)
        elif any(p.startswith(directory + "/") for p in points):
            log.warning("netns directory %s holds other mounts and is not a mount point; "
                        "leaving its propagation as it is", directory)
        else:
            _mount(directory, directory, None, _MS_BIND | _MS_REC)
            _mount(None, directory, None, _MS_SHARED | _MS_REC)
            self_bound = True
        _prepared_dirs[directory] = self_bound


def release_pin_dir(directory: str) -> None:
    """Undo `prepare_pin_dir`'s self-bind (tests, private dirs); the server leaves it mounted."""
    directory = os.path.realpath(directory)
    with _prepared_lock:
        if not _prepared_dirs.pop(directory, False):
            return
        try:
            _umount(directory, _MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOENT):
                raise


def pin_path(directory: str, name: str) -> str:
    """Where `create(directory, name)` pins the namespace (known before it exists)."""
    if not name or "/" in name or name in (".", ".."):
        raise errors.InvalidArgument(f"invalid network namespace name {name!r}")
    return os.path.join(os.path.realpath(directory), name)


def _set_loopback_up() -> None:
    """`ip link set lo up` for the calling thread's network namespace (two ioctls)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _create(directory: str, name: str, loopback_up: bool = False) -> str:
    path = pin_path(directory, name)
    try:
        prepare_pin_dir(directory)
    except OSError as exc:
        raise errors.Internal(f"cannot prepare netns directory {directory}: {exc}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        raise errors.AlreadyExists(f"network namespace {path} already exists") from None
    except OSError as exc:
        raise errors.Internal(f"cannot create netns pin {path}: {exc}") from None
    os.close(fd)

    def unshare_and_pin() -> None:
        # This thread ends right after: its network namespace is never seen by other code.
        _check(_libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        _mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, _MS_BIND)
        if loopback_up:
            _set_loopback_up()

    try:
        _in_dedicated_thread(unshare_and_pin)
    except OSError as exc:
        remove_sync(path)
        raise errors.Internal(f"cannot create network namespace {path}: {exc}") from None
    return path


def create_sync(directory: str, name: str, *, loopback_up: bool = False) -> str:
    """Create and pin a new network namespace at `<directory>/<name>`; returns its path.

    With `loopback_up`, its `lo` is brought up too (what the CNI loopback plugin
    would do, without running a plugin).
    """
    return _create(directory, name, loopback_up)


async def create(directory: str, name: str, *, loopback_up: bool = False) -> str:
    """Async `create_sync` (the kernel work happens in a dedicated thread either way)."""
    return await asyncio.to_thread(_create, directory, name, loopback_up)


def remove_sync(path: str) -> None:
    """Unpin (lazy unmount) and delete; a missing or already unmounted pin is fine."""
    try:
        _umount(path, _MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise errors.Internal(f"cannot unmount network namespace {path}: {exc}") from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise errors.Internal(f"cannot remove network namespace pin {path}: {exc}") from None


async def remove(path: str) -> None:
    """Async `remove_sync`."""
    await asyncio.to_thread(remove_sync, path)


def _fs_type(path: str) -> int:
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    _check(_libc.statfs(path.encode(), buf), f"statfs {path}")
    return ctypes.c_long.from_buffer(buf).value


def is_netns(path: str) -> bool:
    """True if `path` exists, is an nsfs mount, and refers to a network namespace."""
    try:
        if _fs_type(path) != _NSFS_MAGIC:
            return False
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, _NS_GET_NSTYPE) == _CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


def inode(path: str) -> int:
    """The namespace's identity (nsfs inode number); equal inodes mean the same namespace."""
    return os.stat(path).st_ino


def _enter_and_run(path: str, fn: Callable[[], T]) -> T:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, _CLONE_NEWNET), f"setns({path})")
    finally:
        os.close(fd)
    return fn()


def run_in_netns_sync(path: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread inside the namespace at `path`.

    Sockets created by `fn` stay in that namespace after it returns, which is
    how a test opens a listener inside a pod's network. Per-namespace /proc
    files must be read as `/proc/thread-self/net/...` (`/proc/self/net`
    follows the main thread, which is still in the host namespace).
    """
    if not is_netns(path):
        raise errors.NotFound(f"network namespace {path} does not exist")
    return _in_dedicated_thread(lambda: _enter_and_run(path, fn))


async def run_in_netns(path: str, fn: Callable[[], T]) -> T:
    """Async `run_in_netns_sync`."""
    if not is_netns(path):
        raise errors.NotFound(f"network namespace {path} does not exist")
    return await _in_dedicated_thread_async(lambda: _enter_and_run(path, fn))


async def exec_in_netns(path: str, argv: Sequence[str], timeout: float = 30.0) -> tuple[int, bytes, bytes]:
    """Run a command inside the namespace via `nsenter --net=PATH`; returns (status, stdout, stderr)."""
    if not is_netns(path):
        raise errors.NotFound(f"network namespace {path} does not exist")
    proc = await asyncio.create_subprocess_exec(
        "nsenter", f"--net={path}", "--", *argv, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.communicate(), 5)
        raise
    return proc.returncode or 0, out, err


def _pin_existing(directory: str, name: str, source: str, loopback_up: bool) -> str:
    path = pin_path(directory, name)
    try:
        prepare_pin_dir(directory)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.close(fd)
    except FileExistsError:
        raise errors.AlreadyExists(f"network namespace {path} already exists") from None
    except OSError as exc:
        raise errors.Internal(f"cannot create netns pin {path}: {exc}") from None
    try:
        _mount(source, path, None, _MS_BIND)
        if loopback_up:
            run_in_netns_sync(path, _set_loopback_up)
    except OSError as exc:
        remove_sync(path)
        raise errors.Internal(f"cannot pin network namespace {source} at {path}: {exc}") from None
    return path


async def pin_existing(directory: str, name: str, source: str, *, loopback_up: bool = False) -> str:
    """Pin the network namespace at ``source`` (e.g. /proc/<pid>/ns/net of a pause process made by
    runc, so that it belongs to the pod's user namespace) at ``<directory>/<name>``."""
    return await asyncio.to_thread(_pin_existing, directory, name, source, loopback_up)
