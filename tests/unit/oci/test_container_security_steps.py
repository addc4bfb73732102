"""Table tests of the container security steps, each applied alone to the default spec."""

from __future__ import annotations

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.container_steps import security
from cri_runtime.oci.defaults import DEFAULT_CAPABILITIES, default_spec
from cri_runtime.oci.options import SpecOptions
from tests.unit.oci.step_inputs import POD_SC, SC, SP, applied, container_input, ctr_config, pod_config

CAPS = api_pb2.Capability
ALL = ("CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN")
PRIVILEGED_POD = pod_config(POD_SC(privileged=True))


@pytest.mark.parametrize(
    ("container", "pod"),
    [
        pytest.param(False, False, id="ordinary"),
        pytest.param(False, True, id="unprivileged-in-privileged-pod"),
        pytest.param(True, True, id="privileged-in-privileged-pod"),
    ],
)
def test_require_privileged_pod_allows(container: bool, pod: bool) -> None:
    inp = container_input(ctr_config(SC(privileged=container)), pod=pod_config(POD_SC(privileged=pod)))
    assert applied(security.require_privileged_pod, inp) == default_spec()


def test_require_privileged_pod_rejects_a_privileged_container_in_an_unprivileged_pod() -> None:
    with pytest.raises(InvalidArgument, match="not privileged"):
        applied(security.require_privileged_pod, container_input(ctr_config(SC(privileged=True))))


def _default_plus(*caps: str, without: tuple[str, ...] = ()) -> list[str]:
    return [c for c in DEFAULT_CAPABILITIES if c not in without] + list(caps)


@pytest.mark.parametrize(
    ("sc", "expected"),
    [
        pytest.param(SC(), {"bounding": list(DEFAULT_CAPABILITIES)}, id="default-set"),
        pytest.param(SC(capabilities=CAPS(add_capabilities=["SYS_ADMIN"], drop_capabilities=["net_raw"])),
                     {"bounding": _default_plus("CAP_SYS_ADMIN", without=("CAP_NET_RAW",))}, id="add-and-drop"),
        pytest.param(SC(capabilities=CAPS(drop_capabilities=["ALL"], add_capabilities=["CAP_KILL"])),
                     {"bounding": ["CAP_KILL"]}, id="drop-all-then-add"),
        pytest.param(SC(capabilities=CAPS(add_capabilities=["ALL"])), {"bounding": list(ALL)}, id="add-all"),
        pytest.param(SC(capabilities=CAPS(add_ambient_capabilities=["net_admin"])),
                     {"bounding": _default_plus("CAP_NET_ADMIN"), "ambient": ["CAP_NET_ADMIN"]}, id="ambient"),
        pytest.param(SC(privileged=True, capabilities=CAPS(drop_capabilities=["ALL"])), {"bounding": list(ALL)},
                     id="privileged-ignores-add-and-drop"),
        pytest.param(SC(privileged=True, capabilities=CAPS(add_ambient_capabilities=["CAP_KILL"])),
                     {"bounding": list(ALL), "ambient": ["CAP_KILL"]}, id="privileged-keeps-ambient"),
    ],
)  # fmt: skip
def test_with_capabilities(sc: api_pb2.LinuxContainerSecurityContext, expected: dict[str, list[str]]) -> None:
    inp = container_input(ctr_config(sc), pod=PRIVILEGED_POD, options=SpecOptions(all_capabilities=ALL))
    caps = applied(security.with_capabilities, inp)["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == expected["bounding"]
    assert caps.get("ambient") == caps.get("inheritable") == expected.get("ambient")


def test_with_capabilities_rejects_a_malformed_name() -> None:
    inp = container_input(ctr_config(SC(capabilities=CAPS(add_capabilities=["NET ADMIN"]))))
    with pytest.raises(InvalidArgument, match="invalid capability"):
        applied(security.with_capabilities, inp)


@pytest.mark.parametrize(
    ("sc", "expected"),
    [
        pytest.param(SC(), ([], []), id="none-asked-none-masked"),
        pytest.param(SC(masked_paths=["/proc/kcore"], readonly_paths=["/proc/sys"]), (["/proc/kcore"], ["/proc/sys"]),
                     id="the-kubelet's-paths"),
        pytest.param(SC(privileged=True, masked_paths=["/proc/kcore"], readonly_paths=["/proc/sys"]), ([], []),
                     id="privileged-sees-everything"),
    ],
)  # fmt: skip
def test_with_masked_paths(sc: api_pb2.LinuxContainerSecurityContext, expected: tuple[list[str], list[str]]) -> None:
    linux = applied(security.with_masked_paths, container_input(ctr_config(sc), pod=PRIVILEGED_POD))["linux"]
    assert (linux["maskedPaths"], linux["readonlyPaths"]) == expected


ENABLED = SpecOptions(apparmor_enabled=True, apparmor_default_profile="cri-default")


@pytest.mark.parametrize(
    ("sc", "options", "expected"),
    [
        pytest.param(SC(), SpecOptions(), None, id="apparmor-off-nothing-asked"),
        pytest.param(SC(apparmor=SP(profile_type=SP.Unconfined)), SpecOptions(), None, id="apparmor-off-unconfined"),
        pytest.param(SC(), ENABLED, "cri-default", id="runtime-default-by-default"),
        pytest.param(SC(privileged=True), ENABLED, None, id="privileged-runtime-default-is-none"),
        pytest.param(SC(apparmor=SP(profile_type=SP.Unconfined)), ENABLED, None, id="unconfined"),
        pytest.param(SC(apparmor=SP(profile_type=SP.Localhost, localhost_ref="localhost/mine")), ENABLED, "mine",
                     id="localhost-prefix-stripped"),
        pytest.param(SC(privileged=True, apparmor=SP(profile_type=SP.Localhost, localhost_ref="mine")), ENABLED,
                     "mine", id="privileged-keeps-a-named-profile"),
        pytest.param(SC(apparmor_profile="localhost/old"), ENABLED, "old", id="deprecated-field"),
    ],
)  # fmt: skip
def test_with_apparmor(sc: api_pb2.LinuxContainerSecurityContext, options: SpecOptions, expected: str | None) -> None:
    inp = container_input(ctr_config(sc), pod=PRIVILEGED_POD, options=options)
    assert applied(security.with_apparmor, inp)["process"].get("apparmorProfile") == expected


@pytest.mark.parametrize(
    "sc",
    [
        pytest.param(SC(apparmor=SP(profile_type=SP.RuntimeDefault)), id="runtime-default-on-a-node-without"),
        pytest.param(SC(apparmor_profile="localhost/x"), id="deprecated-localhost-on-a-node-without"),
    ],
)
def test_with_apparmor_refuses_confinement_it_cannot_give(sc: api_pb2.LinuxContainerSecurityContext) -> None:
    with pytest.raises(InvalidArgument, match="apparmor is not supported"):
        applied(security.with_apparmor, container_input(ctr_config(sc)))
