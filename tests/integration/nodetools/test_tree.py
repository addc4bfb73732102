"""`cri-runtime tree` shows the real process chain, with the pids /proc has."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from tests.integration.nodetools.helpers import cli, pod_config, pull, remove_pod, run_container, run_pod, wait_for
from tests.pod_rig import PodRig

pytestmark = pytest.mark.integration


def ppid_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node["children"]:
        yield from walk(child)


@pytest.fixture(scope="module")
def running(pod_rig: PodRig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = pod_rig.server
    rt = server.runtime()
    pull(server, pod_rig.images.busybox.ref)
    cfg = pod_config("tree", tmp_path_factory.mktemp("logs"))
    cfg.linux.cgroup_parent = f"/{cfg.metadata.name}"  # a cgroup of the pod's own, as kubelet gives it
    pod_id = run_pod(rt, cfg)
    cid = run_container(rt, pod_id, cfg, pod_rig.images.busybox.ref, name="worker",
                        command=("sh", "-c", "sleep 3600 & wait"))
    try:
        yield {"rt": rt, "pod": pod_id, "container": cid, "pod_name": cfg.metadata.name, "server": server}
    finally:
        remove_pod(rt, pod_id)
        for controller in Path("/sys/fs/cgroup").iterdir():  # runc leaves the parent (kubelet's) behind
            with contextlib.suppress(OSError):
                (controller / cfg.metadata.name).rmdir()


def tree_json(server: Any, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cli("tree", "--config", str(server.config_path), "-o", "json", *args).stdout)
    return result


def verbose_pid(info: dict[str, str]) -> int:
    return int(json.loads(info["info"])["pid"])


def test_tree_has_the_real_pids(running: dict[str, Any], containerd: Any) -> None:
    rt = running["rt"]
    pause_pid = verbose_pid(rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=running["pod"], verbose=True), timeout=10).info)
    ctr_pid = verbose_pid(rt.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=running["container"], verbose=True), timeout=10).info)
    root = tree_json(running["server"])
    assert root["kind"] == "containerd" and root["pid"] == containerd._proc.pid
    assert set(root) >= {"pid", "ppid", "cmd", "kind", "children"}
    nodes = {n["pid"]: n for n in walk(root)}
    pause, worker = nodes[pause_pid], nodes[ctr_pid]
    assert pause["kind"] == "pause" and pause["pod"] == f"nodetools/{running['pod_name']}"
    assert worker["kind"] == "container" and worker["container"] == "worker" and worker["state"] == "RUNNING"
    for n in (pause, worker):
        assert n["ppid"] == ppid_of(n["pid"])
        shim = nodes[n["ppid"]]
        assert shim["kind"] == "shim" and "containerd-shim" in Path(f"/proc/{shim['pid']}/cmdline").read_text()
        assert shim["ppid"] == ppid_of(shim["pid"]) and "anomalies" not in shim
        assert shim["serves"].startswith(("unix://", "ttrpc+unix://"))
        assert n["netns"] == os.stat(f"/proc/{n['pid']}/ns/net").st_ino
    assert worker["netns"] == pause["netns"]
    # The container's own child (sleep) and its IO relay.
    kinds = {c["kind"]: c for c in worker["children"]}
    sleep = kinds["process"]
    assert ppid_of(sleep["pid"]) == ctr_pid and "sleep" in sleep["cmd"]
    relay = kinds["relay"]
    assert ppid_of(relay["pid"]) == relay["ppid"] and "anomalies" not in worker


def test_exec_and_filter(running: dict[str, Any]) -> None:
    rt = running["rt"]
    done = threading.Event()

    def exec_sleep() -> None:
        with contextlib.suppress(grpc.RpcError):  # the test kills the sleep
            rt.ExecSync(api_pb2.ExecSyncRequest(container_id=running["container"], cmd=["sleep", "1000"], timeout=30),
                        timeout=60)
        done.set()

    threading.Thread(target=exec_sleep, daemon=True).start()

    def exec_node() -> dict[str, Any] | None:
        root = tree_json(running["server"], "worker")
        return next((n for n in walk(root) if n["kind"] == "exec" and "sleep 1000" in n["cmd"]), None)

    node = wait_for(exec_node, "the exec'd sleep in the tree")
    assert node["container"] == "worker"
    assert ppid_of(node["pid"]) == node["ppid"]
    assert Path(f"/proc/{node['ppid']}/cmdline").read_text().startswith("/usr/bin/containerd-shim")
    os.kill(node["pid"], 9)
    assert done.wait(30)
    # Filtering by the container shows its shim and no other task.
    root = tree_json(running["server"], running["container"][:12])
    tasks = [n for n in walk(root) if n["kind"] in ("pause", "container")]
    assert [n["id"] for n in tasks] == [running["container"]]
    # By pod name: the pause and the container.
    root = tree_json(running["server"], running["pod_name"])
    assert {n["kind"] for n in walk(root) if n["kind"] in ("pause", "container")} == {"pause", "container"}


def test_stray_process_in_pod_cgroup_is_marked(running: dict[str, Any]) -> None:
    root = tree_json(running["server"], running["pod_name"])
    pause = next(n for n in walk(root) if n["kind"] == "pause")
    pod_cgroup = os.path.dirname(pause["cgroup"])
    assert pod_cgroup == f"/{running['pod_name']}"
    procs = Path("/sys/fs/cgroup/pids") / pod_cgroup.lstrip("/") / "cgroup.procs"
    if not procs.exists():
        pytest.skip(f"no pids cgroup at {procs}")
    stray = subprocess.Popen(["sleep", "300"])
    try:
        procs.write_text(str(stray.pid))
        root = tree_json(running["server"])
        node = next(n for n in walk(root) if n["pid"] == stray.pid)
        assert node["kind"] == "stray" and "no task owns it" in node["anomalies"][0]
        table = cli("tree", "--config", str(running["server"].config_path)).stdout
        assert f"stray {stray.pid}" in table and "!! in pod" in table
        # Nothing else is stray: the pod's own processes are all below its shim.
        assert [n["pid"] for n in walk(root) if n["kind"] == "stray"] == [stray.pid]
    finally:
        stray.kill()
        stray.wait()


def test_no_strays_without_one(running: dict[str, Any]) -> None:
    for args in ((), (running["pod_name"],), ("worker",)):
        root = tree_json(running["server"], *args)
        assert [n for n in walk(root) if n["kind"] == "stray" or n.get("anomalies")] == []


def test_table_output(running: dict[str, Any]) -> None:
    out = cli("tree", "--config", str(running["server"].config_path), running["pod_name"]).stdout
    lines = out.splitlines()
    assert lines[0].startswith("containerd ")
    assert any("└─ shim " in line or "├─ shim " in line for line in lines)
    assert any(" pause " in line and running["pod_name"] in line for line in lines)
    assert any(" container " in line and "container=worker" in line for line in lines)
    assert any(" relay " in line for line in lines)


def test_unknown_target_is_an_error(running: dict[str, Any]) -> None:
    result = cli("tree", "--config", str(running["server"].config_path), "no-such-pod", check=False)
    assert result.returncode == 2 and "no pod or container 'no-such-pod'" in result.stderr
