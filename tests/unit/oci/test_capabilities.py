from __future__ import annotations

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.capabilities import apply_capability_request, capabilities_section, normalize_capability
from cri_runtime.oci.defaults import ALL_CAPABILITIES, DEFAULT_CAPABILITIES


@pytest.mark.parametrize(
    ("name", "expected"),
    [("NET_ADMIN", "CAP_NET_ADMIN"), ("net_admin", "CAP_NET_ADMIN"), ("CAP_SYS_TIME", "CAP_SYS_TIME"),
     ("cap_kill", "CAP_KILL"), (" chown ", "CAP_CHOWN")],
)  # fmt: skip
def test_normalize(name: str, expected: str) -> None:
    assert normalize_capability(name) == expected


@pytest.mark.parametrize("bad", ["", "CAP_", "NET-ADMIN", "1CAP", "a b"])
def test_normalize_rejects(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        normalize_capability(bad)


BASE = list(DEFAULT_CAPABILITIES)


@pytest.mark.parametrize(
    ("add", "drop", "expected"),
    [
        ([], [], BASE),
        (["NET_ADMIN"], [], [*BASE, "CAP_NET_ADMIN"]),
        (["cap_chown"], [], BASE),  # already there: no duplicate
        ([], ["KILL", "cap_chown"], [c for c in BASE if c not in ("CAP_KILL", "CAP_CHOWN")]),
        (["ALL"], [], list(ALL_CAPABILITIES)),
        (["all"], ["SYS_ADMIN"], [c for c in ALL_CAPABILITIES if c != "CAP_SYS_ADMIN"]),
        ([], ["ALL"], []),
        (["NET_RAW"], ["ALL"], ["CAP_NET_RAW"]),  # drop ALL then add
        (["ALL"], ["ALL"], []),
        (["NET_ADMIN"], ["NET_ADMIN"], BASE),  # drop wins
    ],
)
def test_apply_request(add: list[str], drop: list[str], expected: list[str]) -> None:
    request = api_pb2.Capability(add_capabilities=add, drop_capabilities=drop)
    assert apply_capability_request(BASE, request, ALL_CAPABILITIES) == expected


def test_no_request_keeps_base() -> None:
    assert apply_capability_request(BASE, None, ALL_CAPABILITIES) == BASE


def test_ambient_goes_everywhere() -> None:
    section = capabilities_section(["CAP_KILL"], ["CAP_NET_BIND_SERVICE"])
    for key in ("bounding", "effective", "permitted"):
        assert section[key] == ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert section["ambient"] == section["inheritable"] == ["CAP_NET_BIND_SERVICE"]
    assert "ambient" not in capabilities_section(["CAP_KILL"])


def test_all_capabilities_are_the_41_linux_ones() -> None:
    assert len(ALL_CAPABILITIES) == len(set(ALL_CAPABILITIES)) == 41
    assert set(DEFAULT_CAPABILITIES) < set(ALL_CAPABILITIES)
