from __future__ import annotations

from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.process import ImageConfig, container_args, cri_env, merge_env


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "command", "args", "expected"),
    [
        (["/ep"], ["c1"], [], [], ["/ep", "c1"]),  # image defaults
        (["/ep"], ["c1"], ["/cmd"], [], ["/cmd"]),  # command replaces entrypoint and drops Cmd
        (["/ep"], ["c1"], ["/cmd"], ["a"], ["/cmd", "a"]),
        (["/ep"], ["c1"], [], ["a", "b"], ["/ep", "a", "b"]),  # args alone keep entrypoint
        ([], ["c1", "x"], [], [], ["c1", "x"]),
        ([], ["c1"], [], ["a"], ["a"]),
        ([""], ["c1"], [], [], ["c1"]),  # Entrypoint [""] means none
        ([""], [], [], ["a"], ["a"]),
    ],
)
def test_container_args(
    entrypoint: list[str], cmd: list[str], command: list[str], args: list[str], expected: list[str]
) -> None:
    assert container_args(command, args, ImageConfig(entrypoint=entrypoint, cmd=cmd)) == expected


def test_container_args_nothing_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="no command"):
        container_args([], [], ImageConfig())


@pytest.mark.parametrize(
    ("base", "overrides", "expected"),
    [
        (["A=1", "B=2"], ["B=3", "C=4"], ["A=1", "B=3", "C=4"]),
        (["PATH=/x"], ["PATH=/y"], ["PATH=/y"]),
        (["A=1", "B=2"], ["A"], ["B=2"]),  # bare key unsets
        (["A=1"], ["A=", "A=2"], ["A=2"]),
        ([], ["X=a=b"], ["X=a=b"]),
        (["A=1", "A=2"], [], ["A=2"]),
    ],
)
def test_merge_env(base: list[str], overrides: list[str], expected: list[str]) -> None:
    assert merge_env(base, overrides) == expected


def test_cri_env_decodes_utf8_and_rejects_garbage() -> None:
    assert cri_env([api_pb2.KeyValue(key="K", value="wörld".encode())]) == ["K=wörld"]
    with pytest.raises(InvalidArgument, match="'K'"):
        cri_env([api_pb2.KeyValue(key="K", value=b"\xff")])


def test_image_config_from_full_document_and_inner_object() -> None:
    doc: dict[str, Any] = {
        "architecture": "amd64",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Entrypoint": ["/e"], "Cmd": ["c"], "Env": ["A=1"], "WorkingDir": "/w", "User": "1:2",
                   "StopSignal": "SIGINT"},
    }
    full = ImageConfig.from_json(doc)
    assert full == ImageConfig(["/e"], ["c"], ["A=1"], "/w", "1:2", "SIGINT")
    assert ImageConfig.from_json(doc["config"]) == full
    assert ImageConfig.from_json({"architecture": "amd64", "rootfs": {}, "config": None}) == ImageConfig()
    with pytest.raises(InvalidArgument, match="Cmd"):
        ImageConfig.from_json({"Cmd": "not-a-list"})
