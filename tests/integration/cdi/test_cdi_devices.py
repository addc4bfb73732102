"""CDI devices end to end: a container asking for a device from a spec file gets its edits.

A cri-runtime of its own reads CDI specs from two temp spec dirs (standing in for
/etc/cdi and /var/run/cdi). The device is a character node made with mknod in a
temp dir (major/minor of /dev/null, so writing to it works inside), the mount a
temp dir with a file. Checked from inside the container: env, a usable device
node, the mount; and the errors for unknown devices and broken spec files. The
same is done through upstream crictl where it is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CriServer
from tests.rig import paths
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.upstream import UPSTREAM_CRICTL, client_params

SRC = str(Path(__file__).resolve().parents[3] / "src")
NULL = os.stat("/dev/null").st_rdev

SPEC_YAML = """\
cdiVersion: "0.6.0"
kind: example.test/node
containerEdits:
  env: ["CDI_VENDOR=example.test"]
devices:
  - name: null0
    containerEdits:
      env: ["CDI_DEVICE=null0"]
      deviceNodes:
        - path: /dev/cdi-null0
          hostPath: {node}
      mounts:
        - hostPath: {share}
          containerPath: /cdi-share
          options: [ro, nosuid, nodev, rbind]
"""


@dataclass
class CdiRig:
    server: CriServer
    etc: Path
    run: Path
    host: Path
    images: TestImages
    pod_config: api_pb2.PodSandboxConfig
    pod_id: str

    def container_config(self, name: str, cmd: list[str], **kwargs: object) -> api_pb2.ContainerConfig:
        return api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=name),
                                       image=api_pb2.ImageSpec(image=self.images.busybox.ref), command=cmd,
                                       log_path=f"{name}.log", **kwargs)  # type: ignore[arg-type]

    def create(self, cfg: api_pb2.ContainerConfig) -> str:
        return str(self.server.runtime().CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod_id, config=cfg, sandbox_config=self.pod_config), timeout=60).container_id)

    def run_to_exit(self, cid: str) -> str:
        rt = self.server.runtime()
        rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        deadline = time.monotonic() + 30
        while True:
            st = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid), timeout=10).status
            if st.state == api_pb2.CONTAINER_EXITED:
                break
            assert time.monotonic() < deadline, "container did not exit"
            time.sleep(0.05)
        lines = Path(st.log_path).read_text().splitlines()
        return "\n".join(line.split(" ", 3)[3] for line in lines)


@pytest.fixture(scope="module")
def cdi_rig(containerd: PrivateContainerd, test_images: TestImages) -> Iterator[CdiRig]:
    base = paths.make_dir("cdi")
    etc, run, host = base / "etc-cdi", base / "run-cdi", base / "host"
    for d in (etc, host / "share"):
        d.mkdir(parents=True)
    node = host / "null0"
    os.mknod(node, stat.S_IFCHR | 0o666, NULL)
    (host / "share" / "hello").write_text("hello from the host\n")
    (etc / "example.yaml").write_text(SPEC_YAML.format(node=node, share=host / "share"))
    server = CriServer(containerd.address, hosts_dir=str(containerd.hosts_dir), runc_root=str(containerd.runc_root),
                       sandbox_image=test_images.pause.ref,
                       extra_toml=f'[runtime]\ncdi_spec_dirs = ["{etc}", "{run}"]\n')
    name = f"cdi-{uuid.uuid4().hex[:8]}"
    pod_config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="cdi", uid=uuid.uuid4().hex),
        log_directory=str(base / "logs"),
        linux=api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE))))
    try:
        server.start()
        rt = server.runtime()
        server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=test_images.busybox.ref)),
                                  timeout=60)
        pod_id = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod_config), timeout=60).pod_sandbox_id
        try:
            yield CdiRig(server, etc, run, host, test_images, pod_config, pod_id)
        finally:
            rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
            rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


PROBE = ("echo env=$CDI_VENDOR/$CDI_DEVICE; cat /cdi-share/hello; "
         "echo data > /dev/cdi-null0 && echo wrote-device; stat -c 'node=%F %t:%T' /dev/cdi-null0; "
         "touch /cdi-share/x 2>/dev/null || echo share-readonly")


def expected_output() -> str:
    return "\n".join(["env=example.test/null0", "hello from the host", "wrote-device",
                      f"node=character special file {os.major(NULL):x}:{os.minor(NULL):x}", "share-readonly"])


def test_cdi_device_field_gives_env_device_and_mount(cdi_rig: CdiRig) -> None:
    cfg = cdi_rig.container_config("field", ["sh", "-c", PROBE],
                                   CDI_devices=[api_pb2.CDIDevice(name="example.test/node=null0")])
    assert cdi_rig.run_to_exit(cdi_rig.create(cfg)) == expected_output()


def test_cdi_annotation_gives_the_same(cdi_rig: CdiRig) -> None:
    cfg = cdi_rig.container_config("annotated", ["sh", "-c", PROBE],
                                   annotations={"cdi.k8s.io/test_null0": "example.test/node=null0"})
    assert cdi_rig.run_to_exit(cdi_rig.create(cfg)) == expected_output()


def test_unknown_device_is_invalid_argument(cdi_rig: CdiRig) -> None:
    cfg = cdi_rig.container_config("unknown", ["true"], CDI_devices=[api_pb2.CDIDevice(name="example.test/node=gpu9")])
    with pytest.raises(grpc.RpcError) as exc:
        cdi_rig.create(cfg)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "example.test/node=gpu9" in exc.value.details() and str(cdi_rig.etc) in exc.value.details()
    bad = cdi_rig.container_config("badname", ["true"], CDI_devices=[api_pb2.CDIDevice(name="not-qualified")])
    with pytest.raises(grpc.RpcError) as exc:
        cdi_rig.create(bad)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not-qualified" in exc.value.details()


def test_spec_written_later_is_seen_and_broken_one_is_named(cdi_rig: CdiRig) -> None:
    """A driver writing /var/run/cdi at run time: seen by the next create, overriding /etc/cdi."""
    cdi_rig.run.mkdir(exist_ok=True)
    spec = {"cdiVersion": "0.3.0", "kind": "example.test/node",
            "devices": [{"name": "null0", "containerEdits": {"env": ["CDI_DEVICE=from-run"]}}]}
    try:
        (cdi_rig.run / "override.json").write_text(json.dumps(spec))
        probe = "echo $CDI_DEVICE; test -e /cdi-share || echo no-mount"
        cfg = cdi_rig.container_config("override", ["sh", "-c", probe],
                                       CDI_devices=[api_pb2.CDIDevice(name="example.test/node=null0")])
        assert cdi_rig.run_to_exit(cdi_rig.create(cfg)) == "from-run\nno-mount"

        broken = cdi_rig.run / "broken.json"
        broken.write_text('{"cdiVersion": "0.3.0", "kind": "example.test/other", "devices": [{"name": "x"}]}')
        cfg = cdi_rig.container_config("broken", ["true"], CDI_devices=[api_pb2.CDIDevice(name="example.test/other=x")])
        with pytest.raises(grpc.RpcError) as exc:
            cdi_rig.create(cfg)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "example.test/other=x" in exc.value.details() and str(broken) in exc.value.details()
    finally:
        shutil.rmtree(cdi_rig.run, ignore_errors=True)


@pytest.mark.parametrize("binary", client_params())
def test_crictl_create_with_cdi_devices(cdi_rig: CdiRig, tmp_path: Path, binary: list[str]) -> None:
    """crictl's JSON `CDI_devices` reaches the server (upstream's case only where it is installed)."""
    client = "upstream" if binary[0] == str(UPSTREAM_CRICTL) else "ours"
    ctr = {"metadata": {"name": f"crictl-cdi-{client}"}, "image": {"image": cdi_rig.images.busybox.ref},
           "command": ["sh", "-c", PROBE], "log_path": f"crictl-cdi-{client}.log",
           "CDI_devices": [{"name": "example.test/node=null0"}], "linux": {}}
    pod = json.loads(json.dumps({"metadata": {"name": cdi_rig.pod_config.metadata.name, "namespace": "cdi",
                                              "uid": cdi_rig.pod_config.metadata.uid},
                                 "log_directory": cdi_rig.pod_config.log_directory,
                                 "linux": {"security_context": {"namespace_options": {"network": 2}}}}))
    (tmp_path / "ctr.json").write_text(json.dumps(ctr))
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    env = {**os.environ, "CONTAINER_RUNTIME_ENDPOINT": cdi_rig.server.endpoint, "PYTHONPATH": SRC}
    created = subprocess.run([*binary, "--config", os.devnull, "create", cdi_rig.pod_id,
                              str(tmp_path / "ctr.json"), str(tmp_path / "pod.json")],
                             env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert created.returncode == 0, created.stderr
    assert cdi_rig.run_to_exit(created.stdout.strip()) == expected_output()
