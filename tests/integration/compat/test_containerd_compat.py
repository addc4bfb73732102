"""Where kubelet, crictl or scripts can tell us from containerd's CRI: behave like it (issue 15).

Real containerd, runc, CNI and the rig's images; each test names the upstream
code that relies on the behaviour where there is one.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CriServer
from tests.integration.crictl.conftest import run_crictl
from tests.pod_rig import PodRig
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.upstream import client_params


class Compat:
    """Pods and containers of one test on the session server; everything is removed at the end."""

    def __init__(self, rig: PodRig, tmp_path: Path) -> None:
        self.rig = rig
        self.rt = rig.server.runtime()
        self.images = rig.server.images()
        self.tmp_path = tmp_path
        self.pods: list[str] = []
        for image in (rig.images.busybox, rig.images.config):
            self.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image.ref)), timeout=60)

    def pod_config(self, name: str = "", *, privileged: bool = False) -> api_pb2.PodSandboxConfig:
        name = name or f"compat-{uuid.uuid4().hex[:8]}"
        cfg = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace="compat", uid=uuid.uuid4().hex),
            hostname="compat", log_directory=str(self.tmp_path / "logs"))
        cfg.linux.security_context.privileged = privileged
        return cfg

    def run_pod(self, cfg: api_pb2.PodSandboxConfig, handler: str = "") -> str:
        pod_id = str(self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                                           timeout=60).pod_sandbox_id)
        self.pods.append(pod_id)
        return pod_id

    def create(self, pod_id: str, pod_cfg: api_pb2.PodSandboxConfig, cmd: list[str], *, name: str = "c",
               image: str = "", **kwargs: object) -> str:
        cfg = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name),
            image=api_pb2.ImageSpec(image=image or self.rig.images.busybox.ref),
            command=cmd, log_path=f"{uuid.uuid4().hex[:8]}.log", **kwargs)  # type: ignore[arg-type]
        return str(self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg), timeout=60).container_id)

    def start(self, cid: str) -> None:
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)

    def status(self, cid: str, verbose: bool = False) -> api_pb2.ContainerStatusResponse:
        return self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid, verbose=verbose),
                                       timeout=10)

    def pod_status(self, pod_id: str, verbose: bool = False) -> api_pb2.PodSandboxStatusResponse:
        return self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose),
                                        timeout=10)

    def wait_container(self, cid: str, state: int, timeout: float = 15) -> api_pb2.ContainerStatus:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(cid).status
            if st.state == state:
                return st
            assert time.monotonic() < deadline, f"container {cid} stayed in state {st.state}"
            time.sleep(0.05)

    def exec(self, cid: str, cmd: list[str]) -> api_pb2.ExecSyncResponse:
        return self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=10), timeout=30)

    def close(self) -> None:
        for pod_id in self.pods:
            self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
            self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


@pytest.fixture
def compat(pod_rig: PodRig, tmp_path: Path) -> Iterator[Compat]:
    c = Compat(pod_rig, tmp_path)
    yield c
    c.close()


def wait_for(condition: object, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ----------------------------------------------------------------- 2: verbose info


def test_container_verbose_info_has_containerds_keys(compat: Compat, containerd: PrivateContainerd) -> None:
    """crictl inspect readers use .info.pid/.runtimeSpec/.sandboxID/.snapshotKey/.runtimeType/.config.

    crictl parses every info value that starts with "{" as JSON and puts it under its key
    (cri-tools cmd/crictl/container.go containerStatus → util.go resourceStatus →
    outputStatusData), so these keys are what `crictl inspect -o go-template` sees.
    """
    pod_cfg = compat.pod_config()
    pod_id = compat.run_pod(pod_cfg)
    cid = compat.create(pod_id, pod_cfg, ["sleep", "60"], envs=[api_pb2.KeyValue(key="A", value=b"1")])
    compat.start(cid)
    resp = compat.status(cid, verbose=True)
    info = json.loads(resp.info["info"])
    assert info["sandboxID"] == pod_id
    assert info["pid"] > 0 and pid_alive(info["pid"])
    assert info["snapshotKey"] == cid
    assert info["snapshotter"] == "overlayfs"
    assert info["runtimeType"] == "io.containerd.runc.v2"
    assert info["removing"] is False
    # containerd marshals the CRI config with Go's encoding/json: proto field names, numbers.
    assert info["config"]["metadata"] == {"name": "c"}
    assert info["config"]["envs"] == [{"key": "A", "value": "1"}]
    assert info["config"]["log_path"].endswith(".log")
    # The runtime spec is the one runc got: the bundle's config.json written by containerd.
    bundle = containerd.state / "io.containerd.runtime.v2.task" / "k8s.io" / cid / "config.json"
    assert info["runtimeSpec"] == json.loads(bundle.read_text())
    assert info["runtimeSpec"]["process"]["args"] == ["sleep", "60"]
    # Our own keys stay, under their own names.
    assert info["ioDir"]


def test_pod_verbose_info_has_containerds_keys(compat: Compat, containerd: PrivateContainerd) -> None:
    """crictl inspectp readers use .info.pid/.runtimeSpec/.cniResult/.netNamespaceClosed/.image.

    Same path in crictl as for containers (cmd/crictl/sandbox.go podSandboxStatus →
    util.go outputStatusData).
    """
    pod_cfg = compat.pod_config()
    pod_id = compat.run_pod(pod_cfg)
    st = compat.pod_status(pod_id, verbose=True)
    info = json.loads(st.info["info"])
    assert info["pid"] > 0 and pid_alive(info["pid"])
    assert info["processStatus"] == "running"
    assert info["netNamespaceClosed"] is False
    assert info["image"] == compat.rig.images.pause.ref  # the containerd record's image name
    assert info["snapshotKey"] == pod_id
    assert info["runtimeType"] == "io.containerd.runc.v2"
    bundle = containerd.state / "io.containerd.runtime.v2.task" / "k8s.io" / pod_id / "config.json"
    assert info["runtimeSpec"] == json.loads(bundle.read_text())
    assert info["config"]["metadata"]["namespace"] == "compat"
    # go-cni's Result: interfaces by name with their IPs, as containerd shows cniResult.
    eth0 = info["cniResult"]["Interfaces"]["eth0"]
    assert [c["IP"] for c in eth0["IPConfigs"]] == [st.status.network.ip]
    assert eth0["Mac"]
    assert info["netNamespacePath"]  # ours
    compat.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    info = json.loads(compat.pod_status(pod_id, verbose=True).info["info"])
    assert info["netNamespaceClosed"] is True
    assert info["processStatus"] == "deleted"


def test_status_verbose_config_has_containerds_keys(compat: Compat) -> None:
    """crictl info readers use .config.stateDir/.rootDir/.containerdEndpoint/.cni and the log line size.

    crictl info prints Status(verbose).info through cri-tools cmd/crictl/info.go Info →
    util.go outputStatusData, which parses "config" as a JSON object. containerd's JSON name
    for max_container_log_line_size is maxContainerLogSize; both spellings are given.
    """
    server = compat.rig.server
    resp = compat.rt.Status(api_pb2.StatusRequest(verbose=True), timeout=10)
    cfg = json.loads(resp.info["config"])
    assert cfg["stateDir"] == str(server.dir / "state")
    assert cfg["rootDir"] == str(server.dir / "root")
    assert cfg["containerdEndpoint"].endswith("containerd.sock")
    assert cfg["maxContainerLogSize"] == cfg["maxContainerLogLineSize"] == 16384
    assert cfg["cni"]["confDir"] == str(server.cni_conf_dir)
    assert cfg["cni"]["binDir"] == "/usr/lib/cni"
    assert cfg["containerd"]["snapshotter"] == "overlayfs"
    assert cfg["containerd"]["defaultRuntimeName"] == "runc"
    assert cfg["containerd"]["runtimes"]["runc"]["runtimeType"] == "io.containerd.runc.v2"
    # Our own sections keep their names.
    assert cfg["server"]["socket"] == server.socket
    assert cfg["containerd"]["namespace"] == "k8s.io"


# ----------------------------------------------------------------- 3: ContainerStatus fields


def test_status_reports_effective_resources_and_default_stop_signal(compat: Compat) -> None:
    """resources come from the spec even when the request gave none; stop_signal defaults to SIGTERM.

    containerd fills both always (internal/cri/server/container_status.go toCRIContainerStatus,
    helpers.go copyResourcesToStatus); kubelet copies them into the pod's container status
    (pkg/kubelet/kuberuntime/kuberuntime_container.go, where the CRI status is converted).
    """
    pod_cfg = compat.pod_config()
    pod_id = compat.run_pod(pod_cfg)
    plain = compat.create(pod_id, pod_cfg, ["sleep", "60"], name="plain")
    resp = compat.status(plain, verbose=True)
    st = resp.status
    spec = json.loads(resp.info["info"])["runtimeSpec"]
    assert st.resources.HasField("linux")
    assert st.resources.linux.cpu_shares == spec["linux"]["resources"].get("cpu", {}).get("shares", 0)
    assert st.stop_signal == api_pb2.SIGTERM

    limited = compat.create(pod_id, pod_cfg, ["sleep", "60"], name="limited", linux=api_pb2.LinuxContainerConfig(
        resources=api_pb2.LinuxContainerResources(cpu_quota=50000, cpu_period=100000,
                                                  memory_limit_in_bytes=64 << 20, oom_score_adj=900)))
    res = compat.status(limited).status.resources.linux
    assert (res.cpu_quota, res.cpu_period, res.memory_limit_in_bytes) == (50000, 100000, 64 << 20)
    compat.start(limited)
    compat.rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
        container_id=limited, linux=api_pb2.LinuxContainerResources(memory_limit_in_bytes=96 << 20)), timeout=30)
    res = compat.status(limited).status.resources.linux
    assert res.memory_limit_in_bytes == 96 << 20 and res.cpu_quota == 50000

    # The image's StopSignal (SIGINT) wins over the default, as before.
    configured = compat.create(pod_id, pod_cfg, ["sleep", "60"], name="configured",
                               image=compat.rig.images.config.ref)
    assert compat.status(configured).status.stop_signal == api_pb2.SIGINT


# ----------------------------------------------------------------- 4: runtime_handler echo


def test_runtime_handler_is_echoed_as_requested(compat: Compat) -> None:
    """A pod that asked for "" reports "" (crictl shows "(default)": cri-tools cmd/crictl/sandbox.go,
    getSandboxesRuntimeHandler), one that named "runc" reports "runc", in status and list alike."""
    default_cfg = compat.pod_config()
    default_pod = compat.run_pod(default_cfg, handler="")
    named_cfg = compat.pod_config()
    named_pod = compat.run_pod(named_cfg, handler="runc")
    assert compat.pod_status(default_pod).status.runtime_handler == ""
    assert compat.pod_status(named_pod).status.runtime_handler == "runc"
    listed = {p.id: p.runtime_handler for p in compat.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(),
                                                                        timeout=10).items}
    assert listed[default_pod] == "" and listed[named_pod] == "runc"
    # Containers of the default pod still run with the default handler's runtime.
    cid = compat.create(default_pod, default_cfg, ["true"])
    assert json.loads(compat.status(cid, verbose=True).info["info"])["runtimeType"] == "io.containerd.runc.v2"


# ----------------------------------------------------------------- 5: names with '/'


def test_names_with_slashes_are_accepted(compat: Compat) -> None:
    """The CRI puts no restriction on metadata names; we never use them in paths (IDs only)."""
    pod_cfg = compat.pod_config(name=f"team/a/{uuid.uuid4().hex[:6]}")
    pod_id = compat.run_pod(pod_cfg)
    assert compat.pod_status(pod_id).status.metadata.name == pod_cfg.metadata.name
    cid = compat.create(pod_id, pod_cfg, ["sh", "-c", "echo ok"], name="side/car")
    compat.start(cid)
    st = compat.wait_container(cid, api_pb2.CONTAINER_EXITED)
    assert st.metadata.name == "side/car" and st.exit_code == 0
    compat.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)


# ----------------------------------------------------------------- 6: privileged sysfs


def _sys_mount_options(compat: Compat, cid: str) -> list[str]:
    out = compat.exec(cid, ["awk", "$2 == \"/sys\" { print $4 }", "/proc/mounts"]).stdout.decode()
    return out.split()[0].split(",")


def test_privileged_container_gets_read_write_sysfs(compat: Compat) -> None:
    """A privileged container of a privileged pod gets a /sys it can really write.

    containerd puts "rw" into such a container's spec (measured with containerd 1.6.20 here:
    sysfs and cgroup mounts both "rw"), but the kernel shares one sysfs superblock per netns
    and the pause container's read-only mount comes first, so there its /sys is read-only in
    fact. We mount the pause's /sys read-write in privileged pods, so the spec's "rw" holds;
    the README lists this as a deliberate difference.
    """
    pod_cfg = compat.pod_config(privileged=True)
    pod_id = compat.run_pod(pod_cfg)
    priv = compat.create(pod_id, pod_cfg, ["sleep", "60"], name="priv", linux=api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(privileged=True)))
    plain = compat.create(pod_id, pod_cfg, ["sleep", "60"], name="plain")
    compat.start(priv)
    compat.start(plain)
    assert "rw" in _sys_mount_options(compat, priv)
    assert "ro" in _sys_mount_options(compat, plain)
    spec = json.loads(compat.status(priv, verbose=True).info["info"])["runtimeSpec"]
    (sysfs,) = [m for m in spec["mounts"] if m["destination"] == "/sys"]
    assert "rw" in sysfs["options"] and "ro" not in sysfs["options"]


# ----------------------------------------------------------------- 7: pause exits first


def test_pause_exit_deletes_its_task_so_the_shim_exits(compat: Compat, containerd: PrivateContainerd) -> None:
    """containerd deletes an exited pause task at once: a shim with no live task left then exits."""
    pod_cfg = compat.pod_config()
    pod_id = compat.run_pod(pod_cfg)
    pause_pid = json.loads(compat.pod_status(pod_id, verbose=True).info["info"])["pid"]
    with open(f"/proc/{pause_pid}/stat") as f:
        shim_pid = int(f.read().rsplit(")", 1)[1].split()[1])
    assert "containerd-shim" in Path(f"/proc/{shim_pid}/cmdline").read_bytes().decode(errors="replace")
    os.kill(pause_pid, signal.SIGKILL)
    wait_for(lambda: compat.pod_status(pod_id).status.state == api_pb2.SANDBOX_NOTREADY, "pod NOTREADY")
    wait_for(lambda: pod_id not in containerd.ctr("tasks", "ls", "-q").stdout.split(), "pause task deleted")
    wait_for(lambda: not pid_alive(shim_pid), "shim exit")
    info = json.loads(compat.pod_status(pod_id, verbose=True).info["info"])
    assert info["processStatus"] == "deleted"
    # Stop and remove still work on the pod whose task is gone.
    compat.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


# ----------------------------------------------------------------- 9: stats of a stopped container


def test_container_stats_of_a_stopped_container_are_layer_only(compat: Compat) -> None:
    """Deliberately unlike containerd (which fails the call), a stopped container's stats carry its
    attributes and writable layer, no CPU or memory: the same entry ListContainerStats gives it.

    kubelet never calls ContainerStats; it lists stats and drops every container that is not
    running (kubernetes pkg/kubelet/stats/cri_stats_provider.go, getPodAndContainerMaps →
    removeTerminatedContainers), and makeContainerStats tolerates missing CPU/memory. So no
    kubelet path can tell the two answers apart, while a monitoring agent still sees the disk
    a stopped container holds until it is removed.
    """
    pod_cfg = compat.pod_config()
    pod_id = compat.run_pod(pod_cfg)
    cid = compat.create(pod_id, pod_cfg, ["sh", "-c", "head -c 100000 /dev/zero > /big"])
    compat.start(cid)
    compat.wait_container(cid, api_pb2.CONTAINER_EXITED)
    stats = compat.rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid), timeout=10).stats
    assert stats.attributes.id == cid and stats.attributes.metadata.name == "c"
    assert not stats.HasField("cpu") and not stats.HasField("memory")
    assert stats.writable_layer.used_bytes.value >= 100000
    (listed,) = compat.rt.ListContainerStats(api_pb2.ListContainerStatsRequest(
        filter=api_pb2.ContainerStatsFilter(id=cid)), timeout=10).stats
    assert listed.attributes.id == cid
    assert listed.HasField("cpu") == stats.HasField("cpu")


# ----------------------------------------------------------------- across a restart of ours


def test_restart_keeps_reported_fields_and_reaps_a_pause_that_exited_meanwhile(
        containerd: PrivateContainerd, test_images: TestImages) -> None:
    """Effective resources and the requested handler survive a kill -9 of cri-runtime, and a pause
    process that exits while we are down has its task deleted at recovery (its shim then exits)."""
    server = CriServer(containerd.address, hosts_dir=str(containerd.hosts_dir),
                       runc_root=str(containerd.runc_root), sandbox_image=test_images.pause.ref).start()
    rt = server.runtime()
    pods: list[str] = []
    try:
        server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=test_images.busybox.ref)),
                                  timeout=60)

        def host_pod() -> tuple[str, api_pb2.PodSandboxConfig]:
            cfg = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
                name=f"restart-{uuid.uuid4().hex[:6]}", namespace="compat", uid=uuid.uuid4().hex))
            cfg.linux.security_context.namespace_options.network = api_pb2.NODE
            pod_id = str(rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id)
            pods.append(pod_id)
            return pod_id, cfg

        kept, kept_cfg = host_pod()
        cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=kept, sandbox_config=kept_cfg,
                                 config=api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="c"), image=api_pb2.ImageSpec(image=test_images.busybox.ref),
            command=["sleep", "60"], linux=api_pb2.LinuxContainerConfig(
                resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=48 << 20)))),
            timeout=60).container_id
        doomed, _ = host_pod()
        pause_pid = json.loads(rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
            pod_sandbox_id=doomed, verbose=True), timeout=10).info["info"])["pid"]
        with open(f"/proc/{pause_pid}/stat") as f:
            shim_pid = int(f.read().rsplit(")", 1)[1].split()[1])

        server.kill(signal.SIGKILL)
        os.kill(pause_pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pause_pid), "pause exit")
        server.start()

        st = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid), timeout=10).status
        assert st.resources.linux.memory_limit_in_bytes == 48 << 20
        assert st.stop_signal == api_pb2.SIGTERM
        assert rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=kept),
                                   timeout=10).status.runtime_handler == ""
        wait_for(lambda: rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=doomed),
                                             timeout=10).status.state == api_pb2.SANDBOX_NOTREADY, "NOTREADY")
        wait_for(lambda: doomed not in containerd.ctr("tasks", "ls", "-q").stdout.split(), "pause task deleted")
        wait_for(lambda: not pid_alive(shim_pid), "shim exit")
    finally:
        for pod_id in pods:
            rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
            rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        server.cleanup()


# ----------------------------------------------------------------- through crictl templates


@pytest.mark.parametrize("argv", client_params())
def test_crictl_templates_written_for_containerd_read_ours(compat: Compat, argv: list[str]) -> None:
    """The go-templates people use with containerd (`crictl inspect -o go-template`) work on ours.

    Run with our crictl and, where it is installed (it is built by hand), upstream's too."""
    pod_cfg = compat.pod_config()
    pod_id = compat.run_pod(pod_cfg)
    cid = compat.create(pod_id, pod_cfg, ["sleep", "60"])
    compat.start(cid)
    endpoint = compat.rig.server.endpoint
    out = run_crictl(argv, endpoint, "inspect", "-o", "go-template", "--template",
                     "{{.info.pid}} {{.info.sandboxID}} {{.info.runtimeType}} {{.info.snapshotKey}} "
                     "{{index .info.runtimeSpec.process.args 0}} {{.info.config.metadata.name}}", cid)
    assert out.returncode == 0, out.stderr
    pid, sandbox, runtime_type, snapshot_key, arg0, name = out.stdout.split()
    assert int(pid) > 0 and pid_alive(int(pid))
    assert (sandbox, runtime_type, snapshot_key, arg0, name) == (pod_id, "io.containerd.runc.v2", cid, "sleep", "c")
    out = run_crictl(argv, endpoint, "inspectp", "-o", "go-template", "--template",
                     "{{.info.pid}} {{.info.netNamespaceClosed}} {{.info.image}} {{.info.processStatus}}", pod_id)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1:] == ["false", compat.rig.images.pause.ref, "running"]
    out = run_crictl(argv, endpoint, "info", "-o", "go-template", "--template",
                     "{{.config.stateDir}} {{.config.containerdEndpoint}} {{.config.cni.confDir}}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(compat.rig.server.dir / "state"), json.loads(compat.rt.Status(
        api_pb2.StatusRequest(verbose=True), timeout=10).info["config"])["containerdEndpoint"],
        str(compat.rig.server.cni_conf_dir)]
