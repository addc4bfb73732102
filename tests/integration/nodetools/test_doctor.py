"""`cri-runtime doctor` finds each kind of leak, created for real, and `--fix` fixes it safely."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.services.leases.v1 import leases_pb2
from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc
from cri_runtime.containerd import objects
from cri_runtime.containerd.connection import LEASE_OWNER_LABEL, Containerd
from cri_runtime.containers.relay import client as relay
from tests.cri_server import CriServer
from tests.integration.nodetools.helpers import (
    cli,
    ctr,
    doctor,
    kinds,
    pod_config,
    pull,
    remove_pod,
    run_container,
    run_pod,
    wait_for,
)
from tests.pod_rig import PodRig
from tests.rig import paths
from tests.rig.containerd import PrivateContainerd
from tests.rig.network import TestNetwork

pytestmark = pytest.mark.integration


class SilentRegistry:
    """A TCP server that accepts registry requests and never answers: a pull through it hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def mounts_under(directory: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(str(directory) + "/")]


def assert_all_fixed(report: dict[str, Any]) -> None:
    left = [f for f in report["findings"] if f.get("result") != "fixed"]
    assert not left, [(f["kind"], f.get("result"), f.get("notFixedBecause")) for f in left]


@pytest.fixture
def silent_registry() -> Iterator[SilentRegistry]:
    reg = SilentRegistry()
    yield reg
    reg.close()


def test_kill9_mid_run_pod_sandbox(containerd: PrivateContainerd, make_cri_server: Any,
                                   silent_registry: SilentRegistry) -> None:
    """The server dies while RunPodSandbox pulls its pause image: netns, CNI IP, shm and dirs leak."""
    hosts = paths.make_dir("hosts")
    host = f"127.0.0.1:{silent_registry.port}"
    (hosts / host).mkdir()
    (hosts / host / "hosts.toml").write_text(
        f'server = "http://{host}"\n[host."http://{host}"]\n  capabilities = ["pull", "resolve"]\n')
    server: CriServer = make_cri_server(hosts_dir=str(hosts), sandbox_image=f"{host}/stall/pause:1")
    network = TestNetwork(server.cni_conf_dir, index=2)
    try:
        server.start()
        rt = server.runtime()
        failed: list[BaseException] = []

        def run() -> None:
            try:
                run_pod(rt, pod_config("killed"))
            except BaseException as exc:  # the server dies under it
                failed.append(exc)

        caller = threading.Thread(target=run, daemon=True)
        caller.start()
        netns_dir = server.dir / "state" / "netns"
        wait_for(lambda: network.allocations() and any(netns_dir.glob("cri-*")) and
                 any(p.endswith("/shm") for p in mounts_under(server.dir / "state")),
                 "netns, CNI allocation and shm of the pod being created")
        assert silent_registry.conns, "the pull is hanging on the silent registry"
        server.kill(signal.SIGKILL)
        caller.join(30)
        assert failed

        code, report = doctor(server)
        assert code == 1 and not report["serverRunning"]
        assert {"netns-without-pod", "cni-without-pod", "mount-without-owner", "dir-without-record"} <= kinds(report)
        for f in report["findings"]:
            assert f["what"] and f["why"] and f["fix"] and f["autoFix"], f
        cni = next(f for f in report["findings"] if f["kind"] == "cni-without-pod")
        assert network.allocations()[0] in cni["what"]

        code, report = doctor(server, "--fix")
        assert code == 1
        assert_all_fixed(report)
        code, report = doctor(server)
        assert (code, report["findings"]) == (0, [])
        assert network.allocations() == []
        assert not any(netns_dir.glob("cri-*"))
        assert mounts_under(server.dir / "state") == [str(netns_dir)]  # the pin dir's own bind mount stays
    finally:
        network.close()
        paths.remove_tree(hosts)


async def _our_lease_and_snapshot(address: str, lease_id: str, key: str) -> None:
    """What a CreateContainer killed between Prepare and the record leaves: our lease holding our snapshot."""
    ctd = Containerd(address, "k8s.io")
    try:
        await ctd.call(ctd.leases.Create, leases_pb2.CreateRequest(
            id=lease_id, labels={LEASE_OWNER_LABEL: "container-test"}), "create lease")
        await objects.prepare_snapshot(ctd, "overlayfs", key, "", lease=lease_id)
        # A record with our label but no metadata (a bad write, or another version's): unreadable.
        record = containers_pb2.Container(id=f"{key}-unreadable", labels={objects.KIND_LABEL: "container"},
                                          runtime=containers_pb2.Container.Runtime(name="io.containerd.runc.v2"),
                                          spec=objects.spec_any({}))
        await objects.create_container(ctd, record, lease=None)
    finally:
        await ctd.close()


def test_records_deleted_by_hand_and_leftovers(containerd: PrivateContainerd, make_cri_server: Any,
                                               pod_rig: PodRig, tmp_path: Path) -> None:
    server: CriServer = make_cri_server(sandbox_image=pod_rig.images.pause.ref)
    network = TestNetwork(server.cni_conf_dir, index=3)
    relay_dir = server.dir / "state" / "containers" / secrets.token_hex(32) / "io"
    try:
        server.start()
        rt = server.runtime()
        pull(server, pod_rig.images.busybox.ref)
        cfg = pod_config("byhand", tmp_path / "logs")
        pod_id = run_pod(rt, cfg)
        cid = run_container(rt, pod_id, cfg, pod_rig.images.busybox.ref, command=("sh", "-c", "echo hi; sleep 3600"))
        log_path = tmp_path / "logs" / "sleeper.log"
        wait_for(lambda: log_path.exists() and "hi" in log_path.read_text(), "the container's log line")
        server.stop()

        # By hand, with ctr: the container's task and record go (containerd's GC then takes its snapshot).
        ctr(containerd.address, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", cid)
        wait_for(lambda: "STOPPED" in ctr(containerd.address, "-n", "k8s.io", "tasks", "ls").stdout.split(cid)[1]
                 .split("\n")[0], "the killed task to stop")
        ctr(containerd.address, "-n", "k8s.io", "tasks", "rm", cid)
        ctr(containerd.address, "-n", "k8s.io", "containers", "rm", "--keep-snapshot", cid)
        # A relay with no container, our lease + snapshot, an unreadable record; and a lease that is not ours.
        asyncio.run(relay.spawn(relay_dir, relay.RelayConfig(log_path=str(tmp_path / "relay.log"))))
        assert relay.is_alive(relay_dir)
        key = f"nodetools-{secrets.token_hex(4)}"
        asyncio.run(_our_lease_and_snapshot(containerd.address, f"cri-runtime-container-{key}", key))
        ctr(containerd.address, "-n", "k8s.io", "leases", "create", "--id", f"foreign-{key}", "owner=someone-else")

        code, report = doctor(server)
        assert code == 1
        found = {(f["kind"], f["subject"]) for f in report["findings"]}
        assert ("snapshot-without-record", key) in found
        assert ("lease-without-operation", f"cri-runtime-container-{key}") in found
        assert ("unreadable-record", f"{key}-unreadable") in found
        assert ("dir-without-record", str(server.dir / "state" / "containers" / cid)) in found
        assert ("relay-without-container", str(relay_dir)) in found
        assert ("log-of-removed-container", str(log_path)) in found
        assert not any(f"foreign-{key}" in f["subject"] for f in report["findings"])
        assert not any(pod_id in f["subject"] for f in report["findings"])  # the pod is intact

        code, report = doctor(server, "--fix")
        assert code == 1
        assert_all_fixed(report)
        assert not relay.is_alive(relay_dir) and not log_path.exists()
        code, report = doctor(server)
        assert (code, report["findings"]) == (0, [])
        assert f"foreign-{key}" in ctr(containerd.address, "-n", "k8s.io", "leases", "ls", "-q").stdout

        # The pod's task deleted and its netns unpinned by hand: its record is now wrong, which only
        # the server may correct (doctor reports, never "fixes" a live CRI object).
        netns_pin = next((server.dir / "state" / "netns").glob("cri-*"))
        ctr(containerd.address, "-n", "k8s.io", "tasks", "kill", "-a", "-s", "SIGKILL", pod_id)
        wait_for(lambda: "STOPPED" in ctr(containerd.address, "-n", "k8s.io", "tasks", "ls").stdout.split(pod_id)[1]
                 .split("\n")[0], "the killed pause task to stop")
        ctr(containerd.address, "-n", "k8s.io", "tasks", "rm", pod_id)
        subprocess.run(["umount", str(netns_pin)], check=True)
        netns_pin.unlink()
        code, report = doctor(server, "--fix")
        assert code == 1
        assert {(f["kind"], f["subject"]) for f in report["findings"]} == {
            ("record-without-task", pod_id), ("record-without-netns", pod_id)}
        assert all("result" not in f and f["notFixedBecause"] for f in report["findings"])

        server.start()  # recovery: the pod is not ready any more, which is consistent again
        code, report = doctor(server)
        assert (code, report["findings"]) == (0, [])
        remove_pod(server.runtime(), pod_id)
        assert network.allocations() == []
    finally:
        subprocess.run(["ctr", "-a", containerd.address, "-n", "k8s.io", "leases", "rm", f"foreign-{key}"],
                       capture_output=True, check=False)
        asyncio.run(relay.stop(relay_dir))
        network.close()


def test_young_leftovers_are_left_while_the_server_runs(containerd: PrivateContainerd, pod_rig: PodRig) -> None:
    lease = f"cri-runtime-container-young-{secrets.token_hex(4)}"
    ctr(containerd.address, "-n", "k8s.io", "leases", "create", "--id", lease, f"{LEASE_OWNER_LABEL}=container-x")
    try:
        code, report = doctor(pod_rig.server, "--fix")
        assert code == 1 and report["serverRunning"]
        finding = next(f for f in report["findings"] if f["subject"] == lease)
        assert "grace" in finding["notFixedBecause"] and "result" not in finding
        assert lease in ctr(containerd.address, "-n", "k8s.io", "leases", "ls", "-q").stdout
        code, report = doctor(pod_rig.server, "--fix", "--grace", "0")
        assert next(f for f in report["findings"] if f["subject"] == lease)["result"] == "fixed"
        assert lease not in ctr(containerd.address, "-n", "k8s.io", "leases", "ls", "-q").stdout
    finally:
        subprocess.run(["ctr", "-a", containerd.address, "-n", "k8s.io", "leases", "rm", lease],
                       capture_output=True, check=False)


@pytest.fixture(scope="module")
def shared_containerd(test_images: Any, registry: Any) -> Iterator[PrivateContainerd]:
    """A containerd running its own CRI plugin, which our server shares."""
    ctrd = PrivateContainerd(with_cri=True, sandbox_image=test_images.pause.ref)
    ctrd.add_registry_host(registry.host, "http://" + registry.host)
    ctrd.start()
    yield ctrd
    problems = ctrd.stop()
    assert not problems, problems


def test_clean_node_with_containerd_cri_objects_beside_ours(shared_containerd: PrivateContainerd,
                                                            test_images: Any, tmp_path: Path) -> None:
    theirs_net = TestNetwork(shared_containerd.cni_conf_dir, index=4)
    server = CriServer(shared_containerd.address, hosts_dir=str(shared_containerd.hosts_dir),
                    runc_root=str(shared_containerd.runc_root), sandbox_image=test_images.pause.ref)
    our_net = TestNetwork(server.cni_conf_dir, index=5)
    channel = grpc.insecure_channel(f"unix://{shared_containerd.address}")
    theirs = api_pb2_grpc.RuntimeServiceStub(channel)
    their_pod = our_pod = ""
    try:
        server.start()
        ours = server.runtime()
        pull(server, test_images.busybox.ref)
        cfg = pod_config("ours", tmp_path / "ours")
        our_pod = run_pod(ours, cfg)
        run_container(ours, our_pod, cfg, test_images.busybox.ref)
        their_cfg = pod_config("theirs", tmp_path / "theirs")
        wait_for(lambda: _network_ready(theirs), "containerd CRI's network to be ready")
        their_pod = run_pod(theirs, their_cfg)
        run_container(theirs, their_pod, their_cfg, test_images.busybox.ref)

        code, report = doctor(server, "--grace", "0")
        assert (code, report["findings"]) == (0, []), report
        listing = cli("ctr", "-a", shared_containerd.address, "containers", "ls", "--cri").stdout
        owners = {line.split()[0]: line.split()[-1] for line in listing.splitlines()[1:]}
        assert owners[our_pod] == f"cri-runtime:pod:nodetools/{cfg.metadata.name}"
        assert owners[their_pod] == f"containerd-cri:pod:nodetools/{their_cfg.metadata.name}"
        assert sorted(owners.values()) == sorted([
            f"cri-runtime:pod:nodetools/{cfg.metadata.name}", "cri-runtime:container:sleeper",
            f"containerd-cri:pod:nodetools/{their_cfg.metadata.name}", "containerd-cri:container:sleeper"])
        # The tree shows both runtimes' pods; theirs selected by its pod name.
        tree = json.loads(cli("tree", "--config", str(server.config_path), "-o", "json",
                              their_cfg.metadata.name).stdout)
        shims = tree["children"]
        tasks = [n for shim in shims for n in shim["children"]]
        assert sorted((n["kind"], n["runtime"], n["pod"]) for n in tasks) == [
            ("container", "containerd-cri", f"nodetools/{their_cfg.metadata.name}"),
            ("pause", "containerd-cri", f"nodetools/{their_cfg.metadata.name}")]
        server.stop()  # no server running: everything not ours is still left alone
        code, report = doctor(server, "--fix")
        assert (code, report["findings"]) == (0, []), report
        server.start()
    finally:
        if our_pod:
            remove_pod(server.runtime(), our_pod)
        if their_pod:
            remove_pod(theirs, their_pod)
        channel.close()
        server.cleanup()
        our_net.close()
        theirs_net.close()


def _network_ready(rt: Any) -> bool:
    status = rt.Status(api_pb2.StatusRequest(), timeout=10).status
    return any(c.type == "NetworkReady" and c.status for c in status.conditions)




@pytest.fixture
def idle_shim(containerd: PrivateContainerd) -> Iterator[int]:
    """A real containerd-shim-runc-v2 started as containerd starts one, but never given a task."""
    bundle = paths.make_dir("bundle")
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2", "annotations": {}}')
    os.mkfifo(bundle / "log")
    shim_id = f"nodetools-idle-{secrets.token_hex(4)}"
    subprocess.run(["containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", shim_id, "-address",
                    containerd.address, "start"], cwd=bundle, stdin=subprocess.DEVNULL, capture_output=True,
                   check=True, timeout=30)
    socket_path = (bundle / "address").read_text().strip().removeprefix("unix://")

    def find() -> int | None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError):
                if shim_id.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return int(pid)
        return None

    pid = wait_for(find, "the idle shim")
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
        paths.remove_tree(bundle)


def test_shim_without_task(idle_shim: int, pod_rig: PodRig) -> None:
    code, report = doctor(pod_rig.server)
    finding = next(f for f in report["findings"] if f["kind"] == "shim-without-task")
    assert code == 1 and finding["subject"] == str(idle_shim) and finding["fix"] == f"kill {idle_shim}"
    assert "grace" in finding["notFixedBecause"]  # just started: containerd may be about to create its task
    tree = json.loads(cli("tree", "--config", str(pod_rig.server.config_path), "-o", "json").stdout)
    shim = next(n for n in tree["children"] if n["pid"] == idle_shim)
    assert shim["kind"] == "shim" and shim["anomalies"] == ["serves no task"]
    code, report = doctor(pod_rig.server, "--fix", "--grace", "0")
    assert next(f for f in report["findings"] if f["kind"] == "shim-without-task")["result"] == "fixed"
    wait_for(lambda: not Path(f"/proc/{idle_shim}").exists(), "the shim to be gone")


def test_pod_record_deleted_under_a_running_container(containerd: PrivateContainerd, make_cri_server: Any,
                                                      pod_rig: PodRig, tmp_path: Path) -> None:
    """What a running container of the pod uses is never touched, even though the pod's record is gone."""
    server: CriServer = make_cri_server(sandbox_image=pod_rig.images.pause.ref)
    network = TestNetwork(server.cni_conf_dir, index=6)
    try:
        server.start()
        rt = server.runtime()
        pull(server, pod_rig.images.busybox.ref)
        cfg = pod_config("orphan", tmp_path / "logs")
        # Its own PID namespace: killing the pause process must not take the container with it.
        cfg.linux.security_context.namespace_options.pid = api_pb2.CONTAINER
        pod_id = run_pod(rt, cfg)
        cid = run_container(rt, pod_id, cfg, pod_rig.images.busybox.ref, pid_namespace=api_pb2.CONTAINER)
        server.stop()
        ctr(containerd.address, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", pod_id)
        wait_for(lambda: "STOPPED" in ctr(containerd.address, "-n", "k8s.io", "tasks", "ls").stdout.split(pod_id)[1]
                 .split("\n")[0], "the killed pause task to stop")
        ctr(containerd.address, "-n", "k8s.io", "tasks", "rm", pod_id)
        ctr(containerd.address, "-n", "k8s.io", "containers", "rm", pod_id)

        code, report = doctor(server, "--fix")
        assert code == 1
        by_kind = {f["kind"]: f for f in report["findings"]}
        assert {"container-without-pod", "netns-without-pod", "cni-without-pod", "mount-without-owner",
                "dir-without-record"} <= set(by_kind)
        assert "task still runs" in by_kind["container-without-pod"].get("notFixedBecause", ""), (
            report, ctr(containerd.address, "-n", "k8s.io", "tasks", "ls").stdout)
        assert "still run" in by_kind["netns-without-pod"]["notFixedBecause"]
        assert "still run" in by_kind["mount-without-owner"]["notFixedBecause"]
        assert all("result" not in f for f in report["findings"]), report
        assert len(network.allocations()) == 1
        assert "RUNNING" in ctr(containerd.address, "-n", "k8s.io", "tasks", "ls").stdout.split(cid)[1].split("\n")[0]

        # Once the container has stopped, all of it is safe to release.
        ctr(containerd.address, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", cid)
        wait_for(lambda: "STOPPED" in ctr(containerd.address, "-n", "k8s.io", "tasks", "ls").stdout.split(cid)[1]
                 .split("\n")[0], "the killed container to stop")
        code, report = doctor(server, "--fix")
        assert code == 1
        assert_all_fixed(report)
        code, report = doctor(server)
        assert (code, report["findings"]) == (0, [])
        assert network.allocations() == []
        assert cid not in ctr(containerd.address, "-n", "k8s.io", "containers", "ls", "-q").stdout
        assert cid not in ctr(containerd.address, "-n", "k8s.io", "tasks", "ls", "-q").stdout
    finally:
        network.close()
