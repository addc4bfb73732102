"""The tree's anomaly marks, on a synthetic process table (pure logic: no containerd, no /proc)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.types.task import task_pb2
from cri_runtime.config import Config
from cri_runtime.containerd import objects
from cri_runtime.nodetools.inventory import Inventory, Layout
from cri_runtime.nodetools.procfs import Proc, ProcTable
from cri_runtime.nodetools.tree import TreeBuilder, render_text, strip

ADDRESS = "/nonexistent/containerd.sock"
POD = "a" * 64
CTR = "b" * 64


def proc(pid: int, ppid: int, argv: list[str], cgroup: str = "/") -> Proc:
    return Proc(pid=pid, ppid=ppid, comm=argv[0].rsplit("/", 1)[-1][:15], argv=argv, cgroup=cgroup, netns=4026531840)


def shim(pid: int, ppid: int, shim_id: str) -> Proc:
    return proc(pid, ppid, ["/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", shim_id,
                            "-address", ADDRESS])


def inventory(procs: list[Proc], tasks: list[task_pb2.Process], tmp: Path) -> Inventory:
    records = {
        POD: containers_pb2.Container(id=POD, image="pause", labels={objects.KIND_LABEL: "sandbox",
                                                                      "io.cri-runtime.pod.name": "web",
                                                                      "io.cri-runtime.pod.namespace": "default"}),
        CTR: containers_pb2.Container(id=CTR, image="nginx", labels={objects.KIND_LABEL: "container",
                                                                      objects.SANDBOX_ID_LABEL: POD,
                                                                      "io.cri-runtime.container.name": "nginx"}),
    }
    return Inventory(Config(source="test"), Layout(tmp, tmp), records, {t.id: t for t in tasks}, [], [],
                     ProcTable({p.pid: p for p in procs}))


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *[n for c in node["children"] for n in walk(c)]]


def test_shim_parent_and_task_without_process(tmp_path: Path) -> None:
    procs = [proc(1, 0, ["/sbin/init"]), shim(100, 50, POD), proc(101, 100, ["/pause"], cgroup=f"/k8s.io/{POD}")]
    tasks = [task_pb2.Process(id=POD, pid=101, status=task_pb2.RUNNING),
             task_pb2.Process(id=CTR, pid=4242, status=task_pb2.RUNNING)]
    root = TreeBuilder(inventory(procs, tasks, tmp_path), ADDRESS, "k8s.io").build()
    nodes = {n["pid"]: n for n in walk(root)}
    assert nodes[100]["kind"] == "shim" and nodes[100]["anomalies"] == ["parent is pid 50, not PID 1 or containerd"]
    assert nodes[101]["kind"] == "pause" and nodes[101]["pod"] == "default/web" and nodes[101]["anomalies"] == []
    missing = nodes[4242]
    assert missing["kind"] == "task" and missing["container"] == "nginx" and missing["pod"] == "default/web"
    assert missing["anomalies"] == ["task is RUNNING but its process 4242 does not exist"]
    assert root["anomalies"] == [f"no process listens on {ADDRESS}"]
    text = render_text(root)
    assert "!! parent is pid 50" in text and "task 4242" in text
    assert set(strip(root)) == {"pid", "ppid", "cmd", "kind", "address", "anomalies", "children"}


def test_exec_process_is_attributed_by_cgroup(tmp_path: Path) -> None:
    procs = [shim(100, 1, POD), proc(101, 100, ["/pause"], cgroup=f"/k8s.io/{POD}"),
             proc(102, 100, ["nginx"], cgroup=f"/k8s.io/{CTR}"), proc(103, 100, ["sh"], cgroup=f"/k8s.io/{CTR}"),
             proc(104, 103, ["ls"], cgroup=f"/k8s.io/{CTR}")]
    tasks = [task_pb2.Process(id=POD, pid=101, status=task_pb2.RUNNING),
             task_pb2.Process(id=CTR, pid=102, status=task_pb2.RUNNING)]
    builder = TreeBuilder(inventory(procs, tasks, tmp_path), ADDRESS, "k8s.io")
    root = builder.build()
    nodes = {n["pid"]: n for n in walk(root)}
    assert nodes[103]["kind"] == "exec" and nodes[103]["container"] == "nginx"
    assert [c["pid"] for c in nodes[103]["children"]] == [104]
    # Selecting the container keeps its shim, its task and its exec, not the pause.
    root = builder.build(builder.resolve("nginx"))
    assert sorted(n["pid"] for n in walk(root)[1:]) == [100, 102, 103, 104]
    # Selecting the pod by name brings its containers along.
    assert builder.resolve("web") == {POD, CTR}
