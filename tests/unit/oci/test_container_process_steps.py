"""Table tests of the container process steps, each applied alone to the default spec."""

from __future__ import annotations

from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument, NotFound
from cri_runtime.oci.container_steps import process
from cri_runtime.oci.defaults import DEFAULT_PATH_ENV
from cri_runtime.oci.options import SpecOptions
from cri_runtime.oci.process import ImageConfig
from cri_runtime.oci.user import ImageAccounts, parse_group, parse_passwd
from tests.unit.oci.step_inputs import SC, applied, container_input, ctr_config, pod_config

KV = api_pb2.KeyValue
I64 = api_pb2.Int64Value
ACCOUNTS = ImageAccounts(
    parse_passwd("root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\n"),
    parse_group("root:x:0:\nwww:x:33:\nalice:x:1000:\naudio:x:29:www,alice\n"),
)


@pytest.mark.parametrize(
    ("config", "image", "expected"),
    [
        pytest.param(ctr_config(), ImageConfig(entrypoint=["/ep"], cmd=["c"]), ["/ep", "c"],
                     id="image-entrypoint-and-cmd"),
        pytest.param(ctr_config(command=["/app"]), ImageConfig(entrypoint=["/ep"], cmd=["c"]), ["/app"],
                     id="command-replaces-entrypoint-and-drops-cmd"),
        pytest.param(ctr_config(args=["-x"]), ImageConfig(entrypoint=["/ep"], cmd=["c"]), ["/ep", "-x"],
                     id="args-replace-cmd-only"),
        pytest.param(ctr_config(command=["/app"], args=["-x"]), ImageConfig(cmd=["c"]), ["/app", "-x"],
                     id="command-and-args"),
        pytest.param(ctr_config(), ImageConfig(entrypoint=[""], cmd=["run"]), ["run"],
                     id="empty-entrypoint-means-none"),
    ],
)  # fmt: skip
def test_with_args(config: api_pb2.ContainerConfig, image: ImageConfig, expected: list[str]) -> None:
    assert applied(process.with_args, container_input(config, image=image))["process"]["args"] == expected


def test_with_args_rejects_no_command_at_all() -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        applied(process.with_args, container_input(image=ImageConfig()))


@pytest.mark.parametrize(
    ("sc", "expected"),
    [
        pytest.param(SC(), False, id="unset-means-off-unlike-the-default-spec"),
        pytest.param(SC(no_new_privs=True), True, id="asked"),
        pytest.param(SC(privileged=True), False, id="privileged-does-not-change-it"),
    ],
)
def test_with_no_new_privileges(sc: api_pb2.LinuxContainerSecurityContext, expected: bool) -> None:
    spec = applied(process.with_no_new_privileges, container_input(ctr_config(sc)))
    assert spec["process"]["noNewPrivileges"] is expected


@pytest.mark.parametrize(
    ("working_dir", "image_dir", "expected"),
    [
        pytest.param("/w", "/iw", "/w", id="config-wins"),
        pytest.param("", "/iw", "/iw", id="image"),
        pytest.param("", "", "/", id="neither-keeps-root"),
    ],
)
def test_with_cwd(working_dir: str, image_dir: str, expected: str) -> None:
    inp = container_input(ctr_config(working_dir=working_dir), image=ImageConfig(cmd=["x"], working_dir=image_dir))
    assert applied(process.with_cwd, inp)["process"]["cwd"] == expected


@pytest.mark.parametrize(
    ("tty", "expected"),
    [
        pytest.param(True, {"terminal": True, "env": [DEFAULT_PATH_ENV, "TERM=xterm"]}, id="tty"),
        pytest.param(False, {"env": [DEFAULT_PATH_ENV]}, id="no-tty"),
    ],
)
def test_with_terminal(tty: bool, expected: dict[str, Any]) -> None:
    proc = applied(process.with_terminal, container_input(ctr_config(tty=tty)))["process"]
    assert {k: proc[k] for k in ("terminal", "env") if k in proc} == expected


@pytest.mark.parametrize(
    ("pod_hostname", "node_hostname", "expected"),
    [
        pytest.param("pod-host", "node1", "HOSTNAME=pod-host", id="pod-hostname"),
        pytest.param("", "node1", "HOSTNAME=node1", id="host-network-pod-gets-the-node's"),
        pytest.param("", "", "HOSTNAME=", id="neither-known"),
    ],
)
def test_with_hostname_env(pod_hostname: str, node_hostname: str, expected: str) -> None:
    inp = container_input(pod=pod_config(hostname=pod_hostname), options=SpecOptions(node_hostname=node_hostname))
    assert applied(process.with_hostname_env, inp)["process"]["env"] == [DEFAULT_PATH_ENV, expected]


@pytest.mark.parametrize(
    ("image_env", "envs", "expected"),
    [
        pytest.param([], [], [DEFAULT_PATH_ENV], id="none"),
        pytest.param(["PATH=/img", "A=img"], [], ["PATH=/img", "A=img"], id="image-replaces-path-in-place"),
        pytest.param(["A=img", "B=img"], [KV(key="B", value=b"cfg"), KV(key="C", value=b"c")],
                     [DEFAULT_PATH_ENV, "A=img", "B=cfg", "C=c"], id="config-overrides-image"),
        pytest.param([], [KV(key="EMPTY", value=b"")], [DEFAULT_PATH_ENV, "EMPTY="], id="empty-value"),
    ],
)  # fmt: skip
def test_with_env(image_env: list[str], envs: list[api_pb2.KeyValue], expected: list[str]) -> None:
    inp = container_input(ctr_config(envs=envs), image=ImageConfig(cmd=["x"], env=image_env))
    assert applied(process.with_env, inp)["process"]["env"] == expected


def test_with_env_rejects_a_value_that_is_not_utf8() -> None:
    with pytest.raises(InvalidArgument, match="UTF-8"):
        applied(process.with_env, container_input(ctr_config(envs=[KV(key="X", value=b"\xff")])))


@pytest.mark.parametrize(
    ("sc", "image_user", "expected"),
    [
        pytest.param(SC(), "", {"uid": 0, "gid": 0, "additionalGids": [0]}, id="root-by-default"),
        pytest.param(SC(), "www", {"uid": 33, "gid": 33, "additionalGids": [29, 33]}, id="image-user-and-its-groups"),
        pytest.param(SC(run_as_user=I64(value=1000)), "www", {"uid": 1000, "gid": 1000, "additionalGids": [29, 1000]},
                     id="run-as-user-beats-image-user"),
        pytest.param(SC(run_as_username="alice", supplemental_groups=[7]), "",
                     {"uid": 1000, "gid": 1000, "additionalGids": [7, 29, 1000]}, id="username-and-supplemental"),
        pytest.param(SC(run_as_username="alice", supplemental_groups=[7], supplemental_groups_policy=api_pb2.Strict),
                     "", {"uid": 1000, "gid": 1000, "additionalGids": [7, 1000]}, id="strict-ignores-etc-group"),
        pytest.param(SC(run_as_user=I64(value=5), run_as_group=I64(value=6)), "",
                     {"uid": 5, "gid": 6, "additionalGids": [6]}, id="ids-unknown-to-the-image"),
    ],
)  # fmt: skip
def test_with_user(sc: api_pb2.LinuxContainerSecurityContext, image_user: str, expected: dict[str, Any]) -> None:
    inp = container_input(ctr_config(sc), image=ImageConfig(cmd=["x"], user=image_user), rootfs=ACCOUNTS)
    assert applied(process.with_user, inp)["process"]["user"] == expected


@pytest.mark.parametrize(
    ("sc", "image_user", "error"),
    [
        pytest.param(SC(run_as_group=I64(value=5)), "", InvalidArgument, id="group-without-user"),
        pytest.param(SC(), "nobody", NotFound, id="image-user-not-in-passwd"),
    ],
)
def test_with_user_errors(sc: api_pb2.LinuxContainerSecurityContext, image_user: str, error: type[Exception]) -> None:
    inp = container_input(ctr_config(sc), image=ImageConfig(cmd=["x"], user=image_user), rootfs=ACCOUNTS)
    with pytest.raises(error):
        applied(process.with_user, inp)


def test_with_user_without_rootfs_resolves_numeric_ids_only() -> None:
    inp = container_input(image=ImageConfig(cmd=["x"], user="33:29"), rootfs=None)
    assert applied(process.with_user, inp)["process"]["user"] == {"uid": 33, "gid": 29, "additionalGids": [29]}
