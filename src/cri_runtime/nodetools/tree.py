"""`cri-runtime tree`: containerd → shims → pause and container processes → exec'd processes.

Built from one /proc snapshot joined with containerd's tasks and containers
and our records. Every node is `{"pid", "ppid", "cmd", "kind", "children"}`
plus what labels it (pod, container, state, image, cgroup, netns inode, the
shim's -id and address) and the anomalies found:

* a shim whose parent is neither PID 1 nor containerd;
* a task whose process does not exist;
* a process in a pod's cgroup that no task owns (not below any shim);
* each container's IO relay (ours), or its absence while the container runs.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from cri_protos.containerd.types.task import task_pb2
from cri_runtime import errors
from cri_runtime.nodetools import owners, procfs
from cri_runtime.nodetools.doctor import relay_pid
from cri_runtime.nodetools.inventory import Inventory
from cri_runtime.nodetools.procfs import Proc

Node = dict[str, Any]


def _node(p: Proc | None, kind: str, pid: int = 0, **labels: Any) -> Node:
    node: Node = {"pid": p.pid if p else pid, "ppid": p.ppid if p else 0, "cmd": p.cmd if p else "", "kind": kind}
    node.update({k: v for k, v in labels.items() if v not in ("", None)})
    node["anomalies"] = []
    node["children"] = []
    return node


def _shim_address(shim: Proc) -> str:
    with contextlib.suppress(OSError):
        bundle = os.readlink(f"/proc/{shim.pid}/cwd")
        with open(os.path.join(bundle, "address")) as f:
            return f.read().strip()
    return ""


class TreeBuilder:
    def __init__(self, inv: Inventory, address: str, namespace: str) -> None:
        self.inv = inv
        self.address = address.removeprefix("unix://")
        self.namespace = namespace
        self.procs = inv.procs
        self.task_by_pid = {t.pid: t for t in inv.tasks.values() if t.pid}
        self.placed: set[int] = set()

    def resolve(self, target: str) -> set[str]:
        """The task IDs a POD|CONTAINER argument selects (ID, ID prefix, or name; pods bring their containers)."""
        pods: set[str] = set()
        ctrs: set[str] = set()
        for cid, c in self.inv.containers.items():
            owner = owners.of_record(c)
            names = {owner.name, owner.name.split("/")[-1]} if owner.name else set()
            if cid == target or (len(target) >= 3 and cid.startswith(target)) or target in names:
                (pods if owner.kind == "pod" else ctrs).add(cid)
        if not pods and not ctrs:
            raise errors.NotFound(f"no pod or container {target!r} (by ID, ID prefix or name)")
        selected = set(pods) | ctrs
        selected |= {cid for cid in self.inv.containers if self.inv.pod_of(cid) in pods}
        return selected

    def build(self, only: set[str] | None = None) -> Node:
        ctd_proc = procfs.socket_owner(self.procs, self.address)
        root = _node(ctd_proc, "containerd", address=self.address)
        if ctd_proc is None:
            root["anomalies"].append(f"no process listens on {self.address}")
        ctd_pid = ctd_proc.pid if ctd_proc else -1
        for shim in self.procs.shims(self.address, self.namespace):
            node = self._shim(shim, ctd_pid, only)
            if node is not None:
                root["children"].append(node)
        self._missing_tasks(root, only)
        self._strays(root, only)
        return root

    def _labels(self, cid: str) -> dict[str, Any]:
        c = self.inv.containers.get(cid)
        owner = owners.of_record(c) if c is not None else owners.NONE
        t = self.inv.tasks.get(cid)
        out: dict[str, Any] = {"id": cid, "runtime": owner.runtime or "-",
                               "state": task_pb2.Status.Name(t.status) if t else "NO-TASK",
                               "image": c.image if c is not None else ""}
        if owner.kind == "pod":
            out["pod"] = owner.name
        else:
            out["container"] = owner.name
            pod = self.inv.containers.get(self.inv.pod_of(cid))
            if pod is not None:
                out["pod"] = owners.of_record(pod).name
        return out

    def _shim(self, shim: Proc, ctd_pid: int, only: set[str] | None) -> Node | None:
        self.placed.add(shim.pid)
        node = _node(shim, "shim", shimId=shim.flag("-id"), serves=_shim_address(shim))
        if shim.ppid not in (1, ctd_pid):
            node["anomalies"].append(f"parent is pid {shim.ppid}, not PID 1 or containerd")
        for child_pid in shim.children:
            child = self.procs.get(child_pid)
            if child is None:
                continue
            task = self.task_by_pid.get(child_pid)
            if task is not None:
                if only is not None and task.id not in only:
                    continue
                node["children"].append(self._task(task.id, child))
            else:
                owner_id = self._task_of_cgroup(child.cgroup)
                if only is not None and owner_id not in only:
                    continue
                exec_node = _node(child, "exec", container=self._labels(owner_id).get("container", "")
                                  if owner_id else "", cgroup=child.cgroup)
                exec_node["children"] = self._subtree(child)
                self.placed.add(child_pid)
                node["children"].append(exec_node)
        if only is not None and not node["children"] and shim.flag("-id") not in only:
            return None
        if not node["children"] and shim.flag("-id") not in self.inv.tasks:
            node["anomalies"].append("serves no task")
        return node

    def _task_of_cgroup(self, cgroup: str) -> str:
        for t in self.inv.tasks.values():
            p = self.procs.get(t.pid)
            if p is not None and p.cgroup == cgroup:
                return t.id
        return ""

    def _task(self, cid: str, p: Proc) -> Node:
        labels = self._labels(cid)
        kind = "pause" if "container" not in labels else "container"
        node = _node(p, kind, cgroup=p.cgroup, netns=p.netns, **labels)
        self.placed.add(p.pid)
        node["children"] = self._subtree(p)
        self._relay(cid, node)
        return node

    def _subtree(self, p: Proc) -> list[Node]:
        out = []
        for child_pid in p.children:
            child = self.procs.get(child_pid)
            if child is None:
                continue
            self.placed.add(child_pid)
            node = _node(child, "process")
            node["children"] = self._subtree(child)
            out.append(node)
        return out

    def _relay(self, cid: str, node: Node) -> None:
        rec = self.inv.ctrs.get(cid)
        if rec is None or rec.metadata is None:
            return
        pid = relay_pid(rec.metadata.io_dir)
        p = self.procs.get(pid) if pid else None
        if p is None:
            if node.get("state") == "RUNNING":
                node["anomalies"].append(f"no IO relay runs for it ({rec.metadata.io_dir})")
            return
        self.placed.add(p.pid)
        node["children"].append(_node(p, "relay", ioDir=rec.metadata.io_dir))

    def _missing_tasks(self, root: Node, only: set[str] | None) -> None:
        for t in sorted(self.inv.tasks.values(), key=lambda t: t.id):
            if only is not None and t.id not in only:
                continue
            if t.status == task_pb2.STOPPED:
                continue
            if t.pid and self.procs.get(t.pid) is not None:
                continue
            node = _node(None, "task", pid=t.pid, **self._labels(t.id))
            node["anomalies"].append(f"task is {task_pb2.Status.Name(t.status)} but its process {t.pid} does not"
                                     " exist")
            root["children"].append(node)

    def _strays(self, root: Node, only: set[str] | None) -> None:
        """Processes inside a pod's cgroup that no task owns (below no shim, and no relay).

        A pod has a cgroup of its own only when its config names a cgroup parent
        (kubelet always does); then the pause process's cgroup sits right below it.
        Only our pods are checked: containerd CRI's keep their config elsewhere.
        """
        pod_cgroups: dict[str, str] = {}
        for pod in self.inv.pods.values():
            if (only is not None and pod.id not in only) or pod.metadata is None or not pod.metadata.cgroup_parent:
                continue
            t = self.inv.tasks.get(pod.id)
            p = self.procs.get(t.pid) if t is not None and t.pid else None
            if p is not None and os.path.dirname(p.cgroup) not in ("", "/"):
                pod_cgroups[os.path.dirname(p.cgroup)] = pod.name
        if not pod_cgroups:
            return
        owned = set(self.placed)
        for shim in self.procs.shims(self.address):
            owned.add(shim.pid)
            owned.update(self.procs.descendants(shim.pid))
        for p in sorted(self.procs.procs.values(), key=lambda p: p.pid):
            if p.pid in owned:
                continue
            for cg, pod_name in pod_cgroups.items():
                if p.cgroup == cg or p.cgroup.startswith(cg + "/"):
                    node = _node(p, "stray", pod=pod_name, cgroup=p.cgroup)
                    node["anomalies"].append(f"in pod {pod_name}'s cgroup {cg} but no task owns it")
                    root["children"].append(node)
                    break


def render_text(root: Node) -> str:
    lines: list[str] = []

    def describe(n: Node) -> str:
        keys = ("id", "pod", "container", "state", "image", "shimId", "serves", "cgroup", "netns", "ioDir",
                "address")
        extra = " ".join(f"{k}={str(n[k])[:12] if k in ('id', 'shimId') else n[k]}" for k in keys if k in n)
        text = f"{n['kind']} {n['pid']}"
        task_node = n["kind"] in ("pause", "container")
        if n["cmd"] and (not task_node or not extra):
            text += f" {n['cmd'][:80]}"
        if extra:
            text += f" [{extra}]"
        for a in n["anomalies"]:
            text += f"  !! {a}"
        return text

    def walk(n: Node, prefix: str, last: bool, top: bool) -> None:
        lines.append(describe(n) if top else f"{prefix}{'└─ ' if last else '├─ '}{describe(n)}")
        child_prefix = "" if top else prefix + ("   " if last else "│  ")
        for i, c in enumerate(n["children"]):
            walk(c, child_prefix, i == len(n["children"]) - 1, False)

    walk(root, "", True, True)
    return "\n".join(lines) + "\n"


def strip(node: Node) -> Node:
    """The JSON/YAML form: empty anomaly lists dropped, children last."""
    out = {k: v for k, v in node.items() if k not in ("children", "anomalies")}
    if node["anomalies"]:
        out["anomalies"] = node["anomalies"]
    out["children"] = [strip(c) for c in node["children"]]
    return out
