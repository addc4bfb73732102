"""The CLI end to end against an in-process fake CRI server on a temporary unix socket."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc
from crictl.main import main

CTR_ID = "c0ffee" + "1" * 58
POD_ID = "feed" + "2" * 60
IMG_ID = "sha256:" + "3" * 64


class FakeRuntime(api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self) -> None:
        self.requests: list[Any] = []
        # Taken when the fake starts, so "3 minutes ago" holds however long the suite ran before.
        self.now = int(time.time() * 1e9)

    def Version(self, request: Any, context: Any) -> Any:
        return api_pb2.VersionResponse(
            version="0.1.0", runtime_name="fake", runtime_version="9.9", runtime_api_version="v1"
        )

    def Status(self, request: Any, context: Any) -> Any:
        cond = api_pb2.RuntimeCondition(type="RuntimeReady", status=True)
        return api_pb2.StatusResponse(
            status=api_pb2.RuntimeStatus(conditions=[cond]), info={"config": '{"a": 1}', "plain": '"x"'}
        )

    def RuntimeConfig(self, request: Any, context: Any) -> Any:
        return api_pb2.RuntimeConfigResponse(linux=api_pb2.LinuxRuntimeConfiguration(cgroup_driver=api_pb2.CGROUPFS))

    def ListContainers(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        ctr = api_pb2.Container(
            id=CTR_ID,
            pod_sandbox_id=POD_ID,
            metadata=api_pb2.ContainerMetadata(name="web", attempt=1),
            image=api_pb2.ImageSpec(image=IMG_ID),
            image_ref=IMG_ID,
            state=api_pb2.CONTAINER_RUNNING,
            created_at=self.now - 3 * 60 * 10**9,
            labels={"io.kubernetes.pod.name": "nginx", "io.kubernetes.pod.namespace": "default"},
        )
        return api_pb2.ListContainersResponse(containers=[ctr])

    def ContainerStatus(self, request: Any, context: Any) -> Any:
        if request.container_id not in (CTR_ID, CTR_ID[:6]):
            context.abort(
                grpc.StatusCode.NOT_FOUND, f'an error occurred when try to find container "{request.container_id}"'
            )
        status = api_pb2.ContainerStatus(
            id=CTR_ID,
            metadata=api_pb2.ContainerMetadata(name="web"),
            state=api_pb2.CONTAINER_RUNNING,
            created_at=self.now,
            started_at=self.now,
            image=api_pb2.ImageSpec(image="busybox"),
            labels={"a": "<b>"},
        )
        return api_pb2.ContainerStatusResponse(status=status, info={"info": '{"pid": 42}'})

    def ListPodSandbox(self, request: Any, context: Any) -> Any:
        pod = api_pb2.PodSandbox(
            id=POD_ID,
            metadata=api_pb2.PodSandboxMetadata(name="nginx", namespace="default", uid="u1"),
            state=api_pb2.SANDBOX_READY,
            created_at=self.now - 2 * 3600 * 10**9,
        )
        return api_pb2.ListPodSandboxResponse(items=[pod])


class FakeImages(api_pb2_grpc.ImageServiceServicer):
    def ListImages(self, request: Any, context: Any) -> Any:
        img = api_pb2.Image(
            id=IMG_ID, repo_tags=["docker.io/library/busybox:latest"],
            repo_digests=["docker.io/library/busybox@sha256:" + "4" * 64], size=1040384,
        )  # fmt: skip
        return api_pb2.ListImagesResponse(images=[img])

    def ImageStatus(self, request: Any, context: Any) -> Any:
        return api_pb2.ImageStatusResponse()

    def ImageFsInfo(self, request: Any, context: Any) -> Any:
        return api_pb2.ImageFsInfoResponse()


@pytest.fixture
def fake_cri() -> Iterator[tuple[str, FakeRuntime]]:
    tmp = tempfile.mkdtemp(prefix="crictl-fake-")
    sock = os.path.join(tmp, "cri.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    runtime = FakeRuntime()
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(runtime, server)
    api_pb2_grpc.add_ImageServiceServicer_to_server(FakeImages(), server)
    server.add_insecure_port("unix:" + sock)
    server.start()
    yield "unix://" + sock, runtime
    server.stop(None).wait()
    os.unlink(sock) if os.path.exists(sock) else None
    os.rmdir(tmp)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "crictl.yaml"
    config.write_text("# empty client config\n")
    monkeypatch.setenv("CRI_CONFIG_FILE", str(config))
    for name in ("CONTAINER_RUNTIME_ENDPOINT", "IMAGE_SERVICE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def test_version(fake_cri: tuple[str, FakeRuntime], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-r", fake_cri[0], "version")
    assert code == 0, err
    assert code == 0
    assert out == "Version:  0.1.0\nRuntimeName:  fake\nRuntimeVersion:  9.9\nRuntimeApiVersion:  v1\n"


def test_ps_table_and_quiet(fake_cri: tuple[str, FakeRuntime], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-r", fake_cri[0], "ps")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == [
        "CONTAINER",
        "IMAGE",
        "CREATED",
        "STATE",
        "NAME",
        "ATTEMPT",
        "POD",
        "ID",
        "POD",
        "NAMESPACE",
    ]
    assert row == (
        "c0ffee1111111       3333333333333       3 minutes ago       Running             web                 "
        "1                   feed222222222       nginx               default"
    )
    request = fake_cri[1].requests[-1]
    assert request.filter.state.state == api_pb2.CONTAINER_RUNNING
    code, out, _ = run(capsys, "-r", fake_cri[0], "ps", "-aq")
    assert code == 0
    assert out == CTR_ID + "\n"
    assert not fake_cri[1].requests[-1].filter.HasField("state")


def test_ps_json_is_protojson(fake_cri: tuple[str, FakeRuntime], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-r", fake_cri[0], "ps", "-o", "json")
    assert code == 0
    data = json.loads(out)
    ctr = data["containers"][0]
    assert list(ctr)[:4] == ["id", "podSandboxId", "metadata", "image"]
    assert ctr["state"] == "CONTAINER_RUNNING"
    assert ctr["createdAt"] == str(fake_cri[1].now - 3 * 60 * 10**9)
    assert ctr["annotations"] == {}


def test_images_and_pods(fake_cri: tuple[str, FakeRuntime], capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "-r", fake_cri[0], "images")
    assert out.splitlines()[1] == "docker.io/library/busybox   latest              3333333333333       1.04MB"
    _, out, _ = run(capsys, "-r", fake_cri[0], "img", "--digests")
    assert "4444444444444" in out.splitlines()[1]
    _, out, _ = run(capsys, "-r", fake_cri[0], "pods")
    assert out.splitlines()[1].split() == [
        "feed222222222",
        "2",
        "hours",
        "ago",
        "Ready",
        "nginx",
        "default",
        "0",
        "(default)",
    ]


def test_inspect_json_sorted_with_nulls(fake_cri: tuple[str, FakeRuntime], capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "-r", fake_cri[0], "inspect", CTR_ID)
    data = json.loads(out)
    assert list(data) == ["info", "status"]
    assert data["info"] == {"pid": 42}
    assert data["status"]["resources"] is None
    assert data["status"]["finishedAt"] == "0001-01-01T00:00:00Z"
    assert "\\u003cb\\u003e" in out
    _, out, _ = run(
        capsys, "-r", fake_cri[0], "inspect", "-o", "go-template", "--template", "{{.status.metadata.name}}", CTR_ID
    )
    assert out == "web\n"


def test_not_found_is_one_line(fake_cri: tuple[str, FakeRuntime], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-r", fake_cri[0], "inspect", "nope")
    assert code == 1
    lines = [line for line in err.splitlines() if "level=error" in line]
    assert len(lines) == 1
    assert "code = NotFound" in lines[0]
    assert "Traceback" not in err


def test_template_error(fake_cri: tuple[str, FakeRuntime], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-r", fake_cri[0], "inspect", "-o", "go-template", "--template", "{{.bad}}", CTR_ID)
    assert code == 1
    assert 'map has no entry for key \\"bad\\"' in err


def test_info_and_runtime_config(fake_cri: tuple[str, FakeRuntime], capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "-r", fake_cri[0], "info")
    data = json.loads(out)
    assert data["config"] == {"a": 1} and data["plain"] == "x"
    assert data["status"]["conditions"][0]["type"] == "RuntimeReady"
    _, out, _ = run(capsys, "-r", fake_cri[0], "runtime-config")
    assert out == "cgroup driver:   CGROUPFS\n"


def test_unreachable_endpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    endpoint = f"unix://{tmp_path}/missing.sock"
    code, out, err = run(capsys, "-r", endpoint, "--max-retries", "0", "version")
    assert code == 1 and out == ""
    errors = [line for line in err.splitlines() if "level=error" in line]
    assert len(errors) == 1
    assert endpoint in errors[0] and "Unavailable" in errors[0]


def test_unknown_flag_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "ps", "--bogus")
    assert code == 1
    assert out.startswith("Incorrect Usage: flag provided but not defined: -bogus\n\nNAME:\n   crictl ps - ")
    assert 'level=error msg="flag provided but not defined: -bogus"' in err


def test_help_does_not_import_grpc() -> None:
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[3] / "src")
    code = (
        "import sys; from crictl.main import build_app; build_app().run(['--help']); "
        "print('grpc' in sys.modules, 'google.protobuf' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": src},
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert result.stdout.strip().endswith("False False")


def test_command_index_matches_the_commands() -> None:
    from crictl.main import build_app

    app = build_app()
    for stub in app.commands:
        command = app.load(stub)
        assert (command.name, command.aliases, command.usage) == (stub.name, stub.aliases, stub.usage)


def test_ps_imports_only_its_own_command_module() -> None:
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[3] / "src")
    code = (
        "import sys; from crictl.main import build_app; app = build_app(); app.load(app.find('ps')); "
        "print(sorted(m for m in sys.modules if m.startswith('crictl.commands.') or m == 'yaml'))"
    )
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": src},
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert result.stdout.strip() == "['crictl.commands.container_status']"


@pytest.mark.parametrize("command", [["ps", "-a"], ["inspect", CTR_ID], ["images"], ["version"]])
def test_rpc_commands_load_neither_grpcio_nor_the_server(fake_cri: tuple[str, FakeRuntime], command: list[str]) -> None:
    """Start-up time: crictl's calls go through cri_runtime.grpc_client.blocking alone, and the
    CRI classes come from crictl.messages without protobuf's pure-Python machinery."""
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[3] / "src")
    code = (
        "import sys; from crictl.main import main\n"
        f"try: main(['-r', {fake_cri[0]!r}, *{command!r}])\n"
        "except SystemExit as exc: assert not exc.code, exc.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'grpc' or m.startswith(('cri_runtime.rpc', "
        "'cri_protos.runtime.v1.api_pb2', 'google.protobuf.descriptor_pool', 'google.protobuf.text_format'))),"
        " file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": src},
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert result.stdout
    assert result.stderr.strip().splitlines()[-1] == "[]"
