"""Pods in user namespaces on real containerd/runc: mapping, idmapped rootfs and volumes, isolation.

The pod's user namespace is made by runc for the pause container and joined
by every container; the rootfs layers and asked-for volumes are idmapped by
the runtime (runc 1.1.5 cannot). Checked from inside: /proc/self/uid_map, that
root owns "/" and image files, writes land on the host as the mapped root, and
that root in the pod cannot write host-root-owned files through the mounts it
did not ask for (/etc/hosts, /etc/resolv.conf, /etc/hostname).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.userns import support
from tests.cri_server import CriServer
from tests.pod_rig import PodRig
from tests.rig import paths
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.rig.network import TestNetwork
from tests.upstream import SRC, interop_client

HOST_ID = 300000
LENGTH = 65536


def userns_options(host_id: int = HOST_ID, length: int = LENGTH, **kw: object) -> api_pb2.UserNamespace:
    mapping = [api_pb2.IDMapping(container_id=0, host_id=host_id, length=length)]
    return api_pb2.UserNamespace(mode=api_pb2.POD, uids=mapping, gids=mapping, **kw)  # type: ignore[arg-type]


@dataclass
class UsernsPod:
    rig: PodRig
    pod_id: str
    config: api_pb2.PodSandboxConfig
    volume: Path

    def run(self, name: str, script: str, mounts: list[api_pb2.Mount] | None = None) -> tuple[int, str]:
        rt = self.rig.server.runtime()
        ns = self.config.linux.security_context.namespace_options
        cfg = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name), image=api_pb2.ImageSpec(image=self.rig.images.busybox.ref),
            command=["sh", "-c", script], log_path=f"{name}.log", mounts=mounts or [],
            linux=api_pb2.LinuxContainerConfig(security_context=api_pb2.LinuxContainerSecurityContext(
                namespace_options=ns)))
        cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=self.pod_id, config=cfg,
                                                                sandbox_config=self.config), timeout=60).container_id
        rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        deadline = time.monotonic() + 30
        while True:
            st = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid), timeout=10).status
            if st.state == api_pb2.CONTAINER_EXITED:
                break
            assert time.monotonic() < deadline, "container did not exit"
            time.sleep(0.05)
        text = "\n".join(line.split(" ", 3)[3] for line in Path(st.log_path).read_text().splitlines())
        return st.exit_code, text


def require_userns(mode: str = "auto") -> support.UsernsSupport:
    check_dir = paths.make_dir("userns-check")
    try:
        result = support.self_check(str(check_dir), mode)
    finally:
        shutil.rmtree(check_dir)
    if not result.supported:
        pytest.skip(f"user namespaces unsupported here: {result.detail}")
    return result


@pytest.fixture(scope="module")
def userns_pod(pod_rig: PodRig) -> Iterator[UsernsPod]:
    if require_userns().method != support.IDMAP:
        pytest.skip(f"idmapped mounts unusable here: {support.result().detail}")
    base = paths.make_dir("userns")
    try:
        yield from _userns_pod(pod_rig, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def copy_userns_pod(containerd: PrivateContainerd, test_images: TestImages) -> Iterator[UsernsPod]:
    """A server configured for the chowned copy-up fallback (what a node without idmapped mounts gets)."""
    require_userns("copy")
    server = CriServer(containerd.address, hosts_dir=str(containerd.hosts_dir), runc_root=str(containerd.runc_root),
                       sandbox_image=test_images.pause.ref, extra_toml='[runtime]\nuserns_rootfs = "copy"\n')
    network = TestNetwork(server.cni_conf_dir, index=3)
    base = paths.make_dir("userns-copy")
    try:
        server.start()
        yield from _userns_pod(PodRig(server, network, test_images), base)
    finally:
        server.cleanup()
        network.close()
        shutil.rmtree(base, ignore_errors=True)


def _userns_pod(pod_rig: PodRig, base: Path) -> Iterator[UsernsPod]:
    volume = base / "volume"
    volume.mkdir()
    (volume / "root-file").write_text("owned by host root\n")
    rt = pod_rig.server.runtime()
    pod_rig.server.images().PullImage(
        api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=pod_rig.images.busybox.ref)), timeout=60)
    name = f"userns-{uuid.uuid4().hex[:8]}"
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="userns", uid=uuid.uuid4().hex),
        hostname=name, log_directory=str(base / "logs"),
        linux=api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(userns_options=userns_options()))))
    pod_id = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id
    try:
        yield UsernsPod(pod_rig, pod_id, config, volume)
    finally:
        rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


def test_status_reports_user_namespaces(userns_pod: UsernsPod) -> None:
    resp = userns_pod.rig.server.runtime().Status(api_pb2.StatusRequest(verbose=True), timeout=10)
    assert all(h.features.user_namespaces for h in resp.runtime_handlers)
    assert '"supported": true' in resp.info["userNamespaces"]
    assert '"method": "idmapped mounts"' in resp.info["userNamespaces"]


def test_chowned_copy_up_fallback(copy_userns_pod: UsernsPod) -> None:
    resp = copy_userns_pod.rig.server.runtime().Status(api_pb2.StatusRequest(verbose=True), timeout=10)
    assert all(h.features.user_namespaces for h in resp.runtime_handlers)
    assert '"method": "chowned copy-up"' in resp.info["userNamespaces"]
    code, out = copy_userns_pod.run("copy", "cat /proc/self/uid_map; stat -c '%u:%g' / /bin/busybox /etc; "
                                            "echo hi > /new-file && echo ok; (echo x >> /etc/hosts) 2>/dev/null || "
                                            "echo hosts-denied")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["0", str(HOST_ID), str(LENGTH)], out
    assert lines[1:] == ["0:0", "0:0", "0:0", "ok", "hosts-denied"], out


def test_uid_map_shows_the_pod_mapping(userns_pod: UsernsPod) -> None:
    code, out = userns_pod.run("uidmap", "cat /proc/self/uid_map /proc/self/gid_map; id -u")
    assert code == 0, out
    rows = [line.split() for line in out.splitlines()]
    assert rows == [["0", str(HOST_ID), str(LENGTH)], ["0", str(HOST_ID), str(LENGTH)], ["0"]]


def test_containers_share_the_pause_user_namespace(userns_pod: UsernsPod) -> None:
    _, first = userns_pod.run("ns1", "readlink /proc/self/ns/user")
    _, second = userns_pod.run("ns2", "readlink /proc/self/ns/user")
    assert first == second and first.startswith("user:[")
    assert first != os.readlink("/proc/self/ns/user")


def test_pod_network_lives_in_a_netns_of_the_pod_userns(userns_pod: UsernsPod) -> None:
    """runc makes the netns inside the pod's userns; it is pinned and CNI configures it."""
    status = userns_pod.rig.server.runtime().PodSandboxStatus(
        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=userns_pod.pod_id), timeout=10).status
    assert status.network.ip
    code, out = userns_pod.run("net", f"ip -4 addr show eth0 | grep -c {status.network.ip}; "
                                      "cat /sys/class/net/eth0/address >/dev/null && echo sysfs-ok")
    assert code == 0, out
    assert out.splitlines() == ["1", "sysfs-ok"]


def test_rootfs_is_owned_by_pod_root_and_writable(userns_pod: UsernsPod) -> None:
    code, out = userns_pod.run("rootfs", "stat -c '%u:%g' / /bin/busybox /etc; echo hi > /new-file && "
                                         "mkdir -p /tmp/d && echo ok")
    assert code == 0, out
    assert out.splitlines() == ["0:0", "0:0", "0:0", "ok"]


def test_asked_volume_is_idmapped(userns_pod: UsernsPod) -> None:
    mount = api_pb2.Mount(container_path="/vol", host_path=str(userns_pod.volume))
    code, out = userns_pod.run("volume", "stat -c '%u' /vol/root-file; echo data > /vol/written && echo ok",
                               mounts=[mount])
    assert code == 0, out
    assert out.splitlines() == ["0", "ok"]
    st = os.stat(userns_pod.volume / "written")
    assert (st.st_uid, st.st_gid) == (0, 0)  # container root is host root through the idmapped volume


def test_root_cannot_write_host_files_it_did_not_ask_for(userns_pod: UsernsPod) -> None:
    script = ("for f in /etc/hosts /etc/resolv.conf /etc/hostname; do "
              "  if (echo x >> $f) 2>/dev/null; then echo wrote $f; else echo denied $f; fi; done; "
              "stat -c '%u' /etc/hosts; touch /proc/sys/kernel/hostname 2>/dev/null && echo sysctl-writable; "
              "echo done")
    code, out = userns_pod.run("isolation", script)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:3] == ["denied /etc/hosts", "denied /etc/resolv.conf", "denied /etc/hostname"], out
    assert lines[3] == "65534"  # host root is unmapped: nobody inside
    assert lines[-1] == "done"


@pytest.mark.parametrize(
    ("options", "message"),
    [(api_pb2.UserNamespace(mode=api_pb2.CONTAINER), "CONTAINER is not supported"),
     (api_pb2.UserNamespace(mode=api_pb2.TARGET), "TARGET is not supported"),
     (api_pb2.UserNamespace(mode=api_pb2.POD, uids=[api_pb2.IDMapping(container_id=0, host_id=1000, length=100)] * 2,
                            gids=[api_pb2.IDMapping(container_id=0, host_id=1000, length=100)]), "exactly one"),
     (userns_options(host_id=0), "host ID 0"),
     (api_pb2.UserNamespace(mode=api_pb2.POD, uids=[api_pb2.IDMapping(container_id=1, host_id=1000, length=10)],
                            gids=[api_pb2.IDMapping(container_id=1, host_id=1000, length=10)]), "container ID 0")],
)
def test_bad_mappings_are_invalid_argument(pod_rig: PodRig, options: api_pb2.UserNamespace, message: str) -> None:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=f"bad-{uuid.uuid4().hex[:8]}", namespace="userns", uid="u"),
        linux=api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(userns_options=options))))
    with pytest.raises(grpc.RpcError) as exc:
        pod_rig.server.runtime().RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config), timeout=60)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in exc.value.details()


def test_upstream_crictl_runs_a_userns_pod(userns_pod: UsernsPod, tmp_path: Path) -> None:
    """A crictl JSON config with `userns_options` makes a pod in a user namespace: upstream's
    crictl where installed, else ours (the same CLI, held to upstream by the golden tests)."""
    mapping = [{"container_id": 0, "host_id": HOST_ID + LENGTH, "length": LENGTH}]
    ns = {"userns_options": {"mode": 0, "uids": mapping, "gids": mapping}}  # mode 0: POD
    pod = {"metadata": {"name": f"crictl-userns-{uuid.uuid4().hex[:8]}", "namespace": "userns", "uid": "crictl-u"},
           "log_directory": str(tmp_path / "logs"), "linux": {"security_context": {"namespace_options": ns}}}
    ctr = {"metadata": {"name": "uidmap"}, "image": {"image": userns_pod.rig.images.busybox.ref},
           "command": ["cat", "/proc/self/uid_map"], "log_path": "uidmap.log",
           "linux": {"security_context": {"namespace_options": ns}}}
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    (tmp_path / "ctr.json").write_text(json.dumps(ctr))
    env = {**os.environ, "CONTAINER_RUNTIME_ENDPOINT": userns_pod.rig.server.endpoint, "PYTHONPATH": SRC}

    def crictl(*args: str) -> str:
        done = subprocess.run([*interop_client(), "--config", os.devnull, *args], env=env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    pod_id = crictl("runp", str(tmp_path / "pod.json"))
    try:
        ctr_id = crictl("create", pod_id, str(tmp_path / "ctr.json"), str(tmp_path / "pod.json"))
        crictl("start", ctr_id)
        deadline = time.monotonic() + 30
        while "EXITED" not in crictl("inspect", "-o", "go-template", "--template", "{{.status.state}}", ctr_id):
            assert time.monotonic() < deadline, "container did not exit"
            time.sleep(0.1)
        assert crictl("logs", ctr_id).split() == ["0", str(HOST_ID + LENGTH), str(LENGTH)]
    finally:
        crictl("stopp", pod_id)
        crictl("rmp", pod_id)


def test_created_container_starts_in_the_userns_after_a_server_kill(own_pod_rig: PodRig, tmp_path: Path) -> None:
    """Everything a userns container's start needs is recovered: the pod's mapping, pinned netns, volumes."""
    require_userns()
    gen = _userns_pod(own_pod_rig, tmp_path)
    pod = next(gen)
    volume = pod.volume
    try:
        rt = own_pod_rig.server.runtime()
        cfg = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="after-restart"),
            image=api_pb2.ImageSpec(image=own_pod_rig.images.busybox.ref),
            command=["sh", "-c", "cat /proc/self/uid_map; echo x > /vol/f && stat -c %u /vol/f"],
            log_path="after-restart.log", mounts=[api_pb2.Mount(container_path="/vol", host_path=str(volume))],
            linux=api_pb2.LinuxContainerConfig(security_context=api_pb2.LinuxContainerSecurityContext(
                namespace_options=pod.config.linux.security_context.namespace_options)))
        cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod.pod_id, config=cfg,
                                                                sandbox_config=pod.config), timeout=60).container_id
        own_pod_rig.server.kill(signal.SIGKILL)
        own_pod_rig.server.start()
        rt = own_pod_rig.server.runtime()
        rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        deadline = time.monotonic() + 30
        while (st := rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid),
                                        timeout=10).status).state != api_pb2.CONTAINER_EXITED:
            assert time.monotonic() < deadline, "container did not exit"
            time.sleep(0.05)
        lines = [line.split(" ", 3)[3] for line in Path(st.log_path).read_text().splitlines()]
        assert st.exit_code == 0, lines
        assert lines[0].split() == ["0", str(HOST_ID), str(LENGTH)] and lines[1] == "0", lines
        assert os.stat(volume / "f").st_uid == 0
    finally:
        gen.close()
