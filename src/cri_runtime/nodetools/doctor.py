"""`cri-runtime doctor`: what is leaked or inconsistent between our records, containerd, CNI and the kernel.

Each check yields `Finding`s that say what the object is, why it is a leak
and the exact fix. `--fix` applies a fix only when it is provably safe:

* the object is ours (our labels, or under our own state dirs) — never
  containerd CRI's or anyone else's;
* no record of ours owns it, and no running task or process uses it (a netns
  with a process inside, a shim with children, a running task are left);
* no operation of the server can be creating it right now: the doctor takes
  the server's socket lock (so no server runs or starts meanwhile); when a
  server holds it, objects younger than `grace` seconds are reported but left,
  since an in-flight RunPodSandbox/CreateContainer acquires them before its
  record exists.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cri_protos.containerd.services.leases.v1 import leases_pb2
from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2
from cri_runtime import errors
from cri_runtime.config import Config
from cri_runtime.containerd import mounts as ctd_mounts
from cri_runtime.containerd import objects
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containers import image_volumes
from cri_runtime.containers.relay import client as relay
from cri_runtime.containers.relay.layout import IoDir
from cri_runtime.network import netns
from cri_runtime.network.manager import PodNetworkManager
from cri_runtime.nodetools import owners, procfs
from cri_runtime.nodetools.inventory import ContainerRecord, Inventory, Layout, PodRecord, age_seconds, dir_entries
from cri_runtime.rollback import remove_dir
from cri_runtime.sandbox import files

DEFAULT_GRACE = 600.0
FIX_ORDER = ["shim-without-task", "relay-without-container", "container-without-pod", "unreadable-record",
             "cni-without-pod", "netns-without-pod", "mount-without-owner", "snapshot-without-record",
             "lease-without-operation", "dir-without-record", "log-of-removed-container",
             "record-without-snapshot", "record-without-task", "record-without-netns"]

Fix = Callable[[], Awaitable[None]]


@dataclass
class Finding:
    kind: str  # a stable code, e.g. "netns-without-pod"
    subject: str  # the object: a path, an ID, a pid
    what: str
    why: str
    fix: str  # the exact fix, as a command or steps
    apply: Fix | None = None  # None: no provably safe automatic fix
    not_fixable: str = ""  # why --fix leaves it
    result: str = ""  # after --fix: "fixed" or the error

    def to_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, "subject": self.subject, "what": self.what, "why": self.why, "fix": self.fix,
               "autoFix": self.apply is not None}
        if self.not_fixable:
            out["notFixedBecause"] = self.not_fixable
        if self.result:
            out["result"] = self.result
        return out


@dataclass
class ServerLock:
    """The server's `<socket>.lock`: held by a running server; we hold it while we fix."""

    path: str
    fd: int | None = None
    server_running: bool = False

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # never started here: nothing can be in flight, and a start now waits on nothing of ours
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                self.server_running = True
                return
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass
class Doctor:
    config: Config
    ctd: Containerd
    inv: Inventory
    server_running: bool
    grace: float = DEFAULT_GRACE
    now: float = field(default_factory=time.time)
    findings: list[Finding] = field(default_factory=list)

    @property
    def layout(self) -> Layout:
        return self.inv.layout

    @property
    def ns(self) -> str:
        return self.config.containerd.namespace

    def add(self, finding: Finding, *, age: float | None = None) -> None:
        if finding.apply is not None and self.server_running and age is not None and age < self.grace:
            finding.not_fixable = (f"the server is running and this is {age:.0f}s old (< grace {self.grace:.0f}s):"
                                   " an operation in flight may still be creating it")
            finding.apply = None
        self.findings.append(finding)

    # ------------------------------------------------------------------ checks

    def run_checks(self) -> list[Finding]:
        self._mounts()
        self._netns()
        self._cni()
        self._snapshots()
        self._leases()
        self._our_containers()
        self._records()
        self._state_dirs()
        self._shims()
        self._logs()
        return self.findings

    def _known_pods(self) -> set[str]:
        return set(self.inv.pods)

    def _known_ids(self) -> set[str]:
        return set(self.inv.pods) | set(self.inv.ctrs)

    def _netns_in_use(self, path: str) -> list[int]:
        """Processes inside the namespace pinned at `path` (none when the pin no longer holds one)."""
        try:
            if not netns.is_netns(path):
                return []
            ino = netns.inode(path)
        except OSError:
            return []
        return sorted(p.pid for p in self.inv.procs.procs.values() if p.netns == ino)

    def _running_members(self, pod_id: str) -> list[str]:
        """Containers of a pod (by their sandbox-id label) whose tasks still run: they use its netns, shm, files."""
        return sorted(cid for cid, c in self.inv.containers.items()
                      if c.labels.get(objects.SANDBOX_ID_LABEL) == pod_id and self.inv.task_running(cid))

    def _guard_pod(self, finding: Finding, pod_id: str) -> None:
        """Leave what a pod's still running containers use, even when the pod's record is gone."""
        running = self._running_members(pod_id)
        if running and finding.apply is not None:
            finding.apply = None
            finding.not_fixable = f"containers {', '.join(c[:12] for c in running)} of the pod still run"

    def _mounts(self) -> None:
        """Mounts under our state dirs whose pod or container has no record (netns pins: see _netns)."""
        known = self._known_ids()
        roots = {str(self.layout.sandbox_state): "pod", str(self.layout.container_state): "container",
                 str(self.layout.sandbox_root): "pod"}
        for point, fstype, _source in procfs.mounts():
            for root, kind in roots.items():
                if not point.startswith(root + "/"):
                    continue
                owner_id = point[len(root) + 1:].split("/", 1)[0].removeprefix(".removed-")
                if owner_id in known:
                    continue
                finding = Finding(
                    "mount-without-owner", point,
                    f"{fstype} mount at {point}, under the dir of {kind} {owner_id}",
                    f"no {kind} record {owner_id} exists in containerd, so nothing will ever unmount it",
                    f"umount -l {point}", apply=self._unmount(point))
                if kind == "pod":
                    self._guard_pod(finding, owner_id)
                self.add(finding, age=age_seconds(point, self.now))

    def _unmount(self, point: str) -> Fix:
        async def fix() -> None:
            ctd_mounts.unmount_tree(point)
        return fix

    def _netns(self) -> None:
        owned = {os.path.basename(p.metadata.netns_path) for p in self.inv.pods.values()
                 if p.metadata is not None and p.metadata.netns_path}
        for pin in dir_entries(self.layout.netns_dir):
            if not pin.name.startswith("cri-") or pin.name in owned:
                continue
            users = self._netns_in_use(str(pin))
            finding = Finding(
                "netns-without-pod", str(pin), f"network namespace pinned at {pin}",
                "no pod record of ours names it as its netns (left by an interrupted RunPodSandbox or a record"
                " deleted by hand); the pin keeps the namespace and its interfaces alive",
                f"umount {pin} && rm {pin}", apply=self._remove_netns(str(pin)))
            if users:
                finding.apply, finding.not_fixable = None, f"processes {users} still run in it"
            self.add(finding, age=age_seconds(pin, self.now))

    def _remove_netns(self, path: str) -> Fix:
        async def fix() -> None:
            await netns.remove(path)
        return fix

    def _cni(self) -> None:
        known = self._known_pods()
        for entry in dir_entries(self.layout.cni_cache):
            if not entry.is_dir() or entry.name in known:
                continue
            pin = netns.pin_path(str(self.layout.netns_dir), f"cri-{entry.name[:16]}")
            ips = _cached_ips(entry)
            finding = Finding(
                "cni-without-pod", entry.name,
                f"CNI attachment of sandbox {entry.name} on record in {entry}" + (f" holding {', '.join(ips)}" if ips
                                                                                   else ""),
                "no pod record of ours has this ID, so its IP allocations and host-side interfaces are never"
                " released (CNI DEL never runs)",
                f"CNI DEL with the cached config and args of {entry}/*.json (cri-runtime doctor --fix does it),"
                f" then rm -r {entry}",
                apply=self._cni_del(entry.name, pin))
            users = self._netns_in_use(pin) if os.path.exists(pin) else []
            if users:
                finding.apply, finding.not_fixable = None, f"processes {users} still run in its netns {pin}"
            self._guard_pod(finding, entry.name)
            self.add(finding, age=age_seconds(entry, self.now))

    def _cni_del(self, sandbox_id: str, pin: str) -> Fix:
        async def fix() -> None:
            network = PodNetworkManager(self.config.network, str(self.layout.cni_cache))
            await network.teardown(sandbox_id, pin if os.path.exists(pin) else "")
        return fix

    def _snapshots(self) -> None:
        known = self._known_ids()
        used = {c.snapshot_key for c in self.inv.containers.values()
                if c.snapshotter == self.config.containerd.snapshotter}
        snapshotter = self.config.containerd.snapshotter
        parents = {info.parent for info in self.inv.snapshots}
        for info in self.inv.snapshots:
            if not owners.snapshot_is_ours(info.labels) or info.name in used:
                continue
            if info.kind == snapshots_pb2.COMMITTED or info.name in parents:
                continue  # an image layer, or something builds on it: never a leftover rootfs
            if info.name in known or image_volumes.owner_of(info.name) in known:
                continue
            self.add(Finding(
                "snapshot-without-record", info.name, f"{snapshotter} snapshot {info.name} labelled"
                f" {objects.SNAPSHOT_OWNER_LABEL}",
                "no record of ours (nor any containerd container) uses it: containerd's garbage collection"
                " removes it on its next run unless a lease holds it; removing it now frees its space at once",
                f"ctr -n {self.ns} snapshots --snapshotter {snapshotter} rm {info.name}",
                apply=self._remove_snapshot(info.name)), age=self.now - info.created_at.seconds)

    def _remove_snapshot(self, key: str) -> Fix:
        async def fix() -> None:
            await objects.remove_snapshot(self.ctd, self.config.containerd.snapshotter, key)
        return fix

    def _leases(self) -> None:
        for lease in self.inv.leases:
            owner = owners.of_lease(lease.labels)
            if owner.runtime != owners.OURS:
                continue
            self.add(Finding(
                "lease-without-operation", lease.id, f"containerd lease {lease.id} ({owner.name})",
                "our leases live only while one operation runs; this one outlived it and keeps content and"
                " snapshots from GC until it expires"
                + (f" ({lease.labels['containerd.io/gc.expire']})" if "containerd.io/gc.expire" in lease.labels
                   else ""),
                f"ctr -n {self.ns} leases rm {lease.id}", apply=self._remove_lease(lease.id)),
                age=self.now - lease.created_at.seconds)

    def _remove_lease(self, lease_id: str) -> Fix:
        async def fix() -> None:
            with contextlib.suppress(errors.NotFound):
                await self.ctd.call(self.ctd.leases.Delete, leases_pb2.DeleteRequest(id=lease_id, sync=True),
                                    f"delete lease {lease_id}")
        return fix

    def _our_containers(self) -> None:
        """containerd containers with our labels that are no usable record."""
        for rec in self.inv.pods.values():
            if rec.error:
                self._unusable(rec.id, "pod", rec.error)
        for crec in self.inv.ctrs.values():
            if crec.error:
                self._unusable(crec.id, "container", crec.error)
            elif crec.sandbox_id and crec.sandbox_id not in self.inv.pods:
                self._remove_record(crec.id, "container-without-pod",
                                    f"container {crec.name} ({crec.id}) of pod {crec.sandbox_id}",
                                    f"its pod {crec.sandbox_id} has no record, so no StopPodSandbox /"
                                    " RemovePodSandbox will ever remove it")

    def _unusable(self, cid: str, kind: str, error: str) -> None:
        self._remove_record(cid, "unreadable-record", f"containerd container {cid} labelled as our {kind}",
                            f"its metadata cannot be read ({error}): the server skips it at recovery, so no CRI"
                            " call can see or remove it")

    def _remove_record(self, cid: str, kind: str, what: str, why: str) -> None:
        c = self.inv.containers[cid]
        finding = Finding(kind, cid, what, why,
                          f"ctr -n {self.ns} tasks rm {cid}; ctr -n {self.ns} containers rm {cid}; "
                          f"ctr -n {self.ns} snapshots --snapshotter {c.snapshotter} rm {c.snapshot_key}",
                          apply=self._delete_record(cid, c.snapshotter, c.snapshot_key))
        if c.labels.get(objects.KIND_LABEL) == objects.KIND_CONTAINER:
            finding.fix += f"; rm -r {self.layout.container_state / cid} (after stopping its IO relay)"
        if self.inv.task_running(cid):
            finding.apply, finding.not_fixable = None, f"its task still runs (pid {self.inv.tasks[cid].pid})"
        self.add(finding, age=self.now - c.created_at.seconds)

    def _delete_record(self, cid: str, snapshotter: str, key: str) -> Fix:
        """Task, record and snapshot; and the state dir of a container (its relay, FIFOs, status)."""
        remove_state = self._remove_dir(str(self.layout.container_state / cid))

        async def fix() -> None:
            try:
                await objects.delete_task(self.ctd, cid)
            except errors.CriError:
                # A stopped task whose shim connection is gone ("ttrpc: closed", e.g. the pod's pause task
                # was deleted by hand and took the shared shim's connection with it): the record can still go.
                state = await objects.task_state(self.ctd, cid)
                if state is not None and state.running:
                    raise
            await objects.delete_container(self.ctd, cid)
            if key:
                await objects.remove_snapshot(self.ctd, snapshotter, key)
            if self.inv.containers[cid].labels.get(objects.KIND_LABEL) == objects.KIND_CONTAINER:
                await remove_state()
        return fix

    def _records(self) -> None:
        """Records whose containerd objects are gone (report only: the CRI call that removes them fixes it)."""
        snap_keys = {s.name for s in self.inv.snapshots}
        records: list[PodRecord | ContainerRecord] = [*self.inv.pods.values(), *self.inv.ctrs.values()]
        for rec in records:
            c = rec.record
            kind = "pod" if rec.id in self.inv.pods else "container"
            remove = "crictl rmp -f" if kind == "pod" else "crictl rm -f"
            if c.snapshot_key and c.snapshotter == self.config.containerd.snapshotter \
                    and c.snapshot_key not in snap_keys:
                self.add(Finding(
                    "record-without-snapshot", rec.id, f"{kind} {rec.name} ({rec.id})",
                    f"its rootfs snapshot {c.snapshot_key} is gone from {c.snapshotter}: it can never (re)start",
                    f"{remove} {rec.id}", not_fixable="the record belongs to a CRI object: remove it through CRI"))
            state = rec.status.state if rec.status is not None else ""
            if state in ("ready", "running") and rec.id not in self.inv.tasks:
                self.add(Finding(
                    "record-without-task", rec.id, f"{kind} {rec.name} ({rec.id}) recorded as {state}",
                    "containerd has no task for it any more (deleted behind our back)",
                    f"restart cri-runtime (recovery marks it exited), or {remove} {rec.id}",
                    not_fixable="the record belongs to a CRI object: its state is the server's to correct"))
            md = getattr(rec, "metadata", None)
            netns_path = getattr(md, "netns_path", "") if md is not None else ""
            torn = getattr(rec.status, "network_torn_down", False)
            if netns_path and state == "ready" and not torn and not os.path.exists(netns_path):
                self.add(Finding(
                    "record-without-netns", rec.id, f"pod {rec.name} ({rec.id})",
                    f"its network namespace pin {netns_path} is gone: the pod has lost its network",
                    f"crictl stopp {rec.id} && crictl rmp {rec.id} (kubelet re-creates the pod)",
                    not_fixable="the pod is recorded ready; only CRI may stop it"))

    def _state_dirs(self) -> None:
        """Pod and container dirs (and their IO relays) with no containerd record."""
        known = self._known_ids()
        for base, kind in ((self.layout.sandbox_state, "pod"), (self.layout.sandbox_root, "pod"),
                           (self.layout.container_state, "container")):
            for d in dir_entries(base):
                oid = d.name.removeprefix(".removed-")
                if oid in known or d.name.startswith(".tmp"):
                    continue
                io_dir = d / "io"
                if kind == "container" and relay.is_alive(io_dir):
                    pid = relay_pid(str(io_dir))
                    self.add(Finding(
                        "relay-without-container", str(io_dir),
                        f"IO relay of container {oid}" + (f" (pid {pid})" if pid else ""),
                        "the container has no record in containerd: nothing will ever read its output or stop it",
                        f"kill {pid or '<relay pid>'}; rm -r {d}", apply=self._stop_relay(str(io_dir))),
                        age=age_seconds(d, self.now))
                finding = Finding(
                    "dir-without-record", str(d), f"{kind} directory {d}",
                    f"no {kind} record {oid} exists in containerd (removed, or its create was interrupted)",
                    f"rm -r {d}", apply=self._remove_dir(str(d)))
                if kind == "pod":
                    self._guard_pod(finding, oid)
                self.add(finding, age=age_seconds(d, self.now))

    def _stop_relay(self, io_dir: str) -> Fix:
        async def fix() -> None:
            await relay.stop(io_dir)
        return fix

    def _remove_dir(self, path: str) -> Fix:
        async def fix() -> None:
            files.unmount_shm(os.path.join(path, "shm"))
            ctd_mounts.unmount_tree(path)
            await relay.stop(os.path.join(path, "io"))
            remove_dir(path)
        return fix

    def _shims(self) -> None:
        """Shims of our containerd namespace that serve no task."""
        task_pids = {t.pid for t in self.inv.tasks.values() if t.pid}
        for shim in self.inv.procs.shims(self.ctd.address.removeprefix("unix://"), self.ns):
            if shim.flag("-id") in self.inv.tasks or any(c in task_pids for c in shim.children):
                continue
            sid = shim.flag("-id")
            finding = Finding(
                "shim-without-task", str(shim.pid), f"containerd-shim pid {shim.pid} -id {sid}",
                f"containerd has no task {sid} and none of the shim's children is a task: it serves nothing",
                f"kill {shim.pid}", apply=self._kill(shim.pid, shim.cmd))
            owner = self.inv.owner(sid)
            if owner.runtime and owner.runtime != owners.OURS:
                finding.apply, finding.not_fixable = None, f"its ID belongs to {owner.runtime}"
            elif shim.children:
                finding.apply, finding.not_fixable = None, f"it still has child processes {shim.children}"
            # A shim containerd just started has no task until its Create call lands: hence the age.
            self.add(finding, age=procfs.age_of(shim.pid) or 0.0)

    def _kill(self, pid: int, cmd: str) -> Fix:
        async def fix() -> None:
            p = procfs.read_proc(pid)
            if p is not None and p.cmd == cmd:  # the same process (no pid reuse)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return fix

    def _logs(self) -> None:
        """Log files of removed containers in the log dirs of our pods."""
        current = [c.metadata.log_path for c in self.inv.ctrs.values() if c.metadata and c.metadata.log_path]
        log_dirs = set()
        for p in self.inv.pods.values():
            if p.metadata is not None:
                log_dir = p.metadata.pod_config().log_directory
                if log_dir:
                    log_dirs.add(log_dir)
        candidates = [path for log_dir in sorted(log_dirs) for path in _files_below(log_dir)
                      if (path.endswith(".log") or ".log." in path)
                      and not any(path == cur or path.startswith(cur + ".") for cur in current)]
        holders = procfs.open_files() if candidates else {}
        for path in candidates:
            finding = Finding(
                "log-of-removed-container", path, f"container log file {path}",
                "no container of ours writes it any more (its container was removed); kubelet removes only"
                " the logs of containers it removes itself",
                f"rm {path}", apply=self._remove_file(path))
            if path in holders:
                finding.apply, finding.not_fixable = None, f"process {holders[path]} still has it open"
            self.add(finding, age=age_seconds(path, self.now))

    def _remove_file(self, path: str) -> Fix:
        async def fix() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return fix

    # --------------------------------------------------------------------- fix

    async def fix_all(self) -> None:
        """Apply the safe fixes, users before what they use (relay before its dir, CNI DEL before the netns)."""
        for finding in sorted(self.findings, key=lambda f: FIX_ORDER.index(f.kind)):
            if finding.apply is None:
                continue
            try:
                await finding.apply()
                finding.result = "fixed"
            except (errors.CriError, OSError) as exc:
                finding.result = f"failed: {exc}"


def relay_pid(io_dir: str) -> int | None:
    """The pid of the relay holding `io_dir`'s lock (read from its pid file, checked against its open files)."""
    d = IoDir(io_dir)
    try:
        with open(d.pid_file) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if procfs.holds_file(pid, d.lock_file) else None


def _files_below(directory: str) -> Iterator[str]:
    for root, _dirs, names in os.walk(directory):
        for name in names:
            yield os.path.join(root, name)


def _cached_ips(entry: Path) -> list[str]:
    """The IPs of a cached attachment: from its ADD result, else from host-local's allocation files.

    A server killed during ADD leaves the record without a result while
    host-local already wrote `<dataDir>/<network>/<ip>` naming the sandbox.
    """
    import json

    ips: list[str] = []
    for f in dir_entries(entry):
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
            record = json.loads(f.read_text())
            result = record.get("result") or {}
            ips.extend(str(ip.get("address", "")).split("/")[0] for ip in result.get("ips") or [])
            if result:
                continue
            config = record.get("config") or {}
            for plugin in config.get("plugins") or []:
                ipam = plugin.get("ipam") or {}
                if ipam.get("type") != "host-local":
                    continue
                data_dir = Path(ipam.get("dataDir") or "/var/lib/cni/networks") / str(config.get("name", ""))
                for alloc in dir_entries(data_dir):
                    with contextlib.suppress(OSError):
                        if alloc.read_text().split()[:1] == [entry.name]:
                            ips.append(alloc.name)
    return sorted(set(ips))


async def diagnose(config: Config, ctd: Containerd, *, fix: bool, grace: float) -> tuple[list[Finding], bool]:
    """Run every check (and the safe fixes); returns the findings and whether a server was running."""
    lock = ServerLock(f"{config.server.socket}.lock")
    lock.acquire()
    try:
        inv = await Inventory.gather(ctd, config)
        doctor = Doctor(config, ctd, inv, lock.server_running, grace)
        doctor.run_checks()
        if fix:
            await doctor.fix_all()
        return doctor.findings, lock.server_running
    finally:
        lock.release()


def render_text(findings: list[Finding], server_running: bool, fixing: bool) -> str:
    if not findings:
        return "clean: no leaked or inconsistent objects found\n"
    lines = [f"{len(findings)} finding(s)" + (" (a server is running: young objects are left alone)"
                                               if server_running else "")]
    for f in findings:
        lines.append("")
        lines.append(f"[{f.kind}] {f.subject}")
        lines.append(f"  what: {f.what}")
        lines.append(f"  why:  {f.why}")
        lines.append(f"  fix:  {f.fix}")
        if fixing:
            lines.append(f"  done: {f.result}" if f.result else f"  left: {f.not_fixable or 'no automatic fix'}")
        elif f.apply is None:
            lines.append(f"  auto: no ({f.not_fixable or 'no provably safe automatic fix'})")
        else:
            lines.append("  auto: yes (--fix)")
    return "\n".join(lines) + "\n"
