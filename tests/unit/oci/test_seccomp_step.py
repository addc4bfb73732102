"""Table tests of the seccomp step, shared by the container and the sandbox spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.defaults import default_spec
from cri_runtime.oci.options import SpecOptions
from cri_runtime.oci.seccomp_step import SecuredInput, with_seccomp
from tests.unit.oci.step_inputs import POD_SC, SC, SP, applied, container_input, ctr_config, pod_config, sandbox_input

ERRNO = "SCMP_ACT_ERRNO"  # RuntimeDefault's default action


@pytest.mark.parametrize(
    ("inp", "expected"),
    [
        pytest.param(container_input(), None, id="nothing-asked-unconfined-as-containerd"),
        pytest.param(container_input(ctr_config(SC(seccomp=SP(profile_type=SP.RuntimeDefault)))), ERRNO,
                     id="runtime-default"),
        pytest.param(container_input(ctr_config(SC(seccomp=SP(profile_type=SP.Unconfined)))), None, id="unconfined"),
        pytest.param(container_input(ctr_config(SC(privileged=True, seccomp=SP(profile_type=SP.RuntimeDefault)))),
                     None, id="privileged-unconfined"),
        pytest.param(container_input(options=SpecOptions(unset_seccomp_profile="runtime/default")), ERRNO,
                     id="node-default-for-nothing-asked"),
        pytest.param(container_input(ctr_config(SC(seccomp=SP(profile_type=SP.Unconfined))),
                                     options=SpecOptions(unset_seccomp_profile="runtime/default")), None,
                     id="node-default-not-over-an-explicit-one"),
        pytest.param(container_input(ctr_config(SC(seccomp_profile_path="runtime/default"))), ERRNO,
                     id="deprecated-runtime-default"),
        pytest.param(container_input(ctr_config(SC(seccomp_profile_path="unconfined"))), None,
                     id="deprecated-unconfined"),
        pytest.param(sandbox_input(pod_config(POD_SC(seccomp=SP(profile_type=SP.RuntimeDefault)))), ERRNO,
                     id="sandbox-runtime-default"),
        pytest.param(sandbox_input(pod_config(POD_SC(privileged=True, seccomp=SP(profile_type=SP.RuntimeDefault)))),
                     None, id="sandbox-privileged"),
    ],
)  # fmt: skip
def test_with_seccomp(inp: SecuredInput, expected: str | None) -> None:
    seccomp = applied(with_seccomp, inp)["linux"].get("seccomp")
    assert (seccomp["defaultAction"] if seccomp else None) == expected


@pytest.mark.parametrize(
    ("inp", "match"),
    [
        pytest.param(container_input(ctr_config(SC(seccomp=SP(profile_type=SP.RuntimeDefault))),
                                     options=SpecOptions(seccomp_enabled=False)), "not supported",
                     id="runtime-default-on-a-node-without-seccomp"),
        pytest.param(container_input(ctr_config(SC(seccomp=SP(profile_type=SP.Localhost, localhost_ref="rel")))),
                     "absolute", id="relative-localhost-profile"),
        pytest.param(container_input(ctr_config(SC(seccomp_profile_path="bogus"))), "invalid security profile",
                     id="bad-deprecated-value"),
    ],
)  # fmt: skip
def test_with_seccomp_errors(inp: SecuredInput, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        applied(with_seccomp, inp)


def test_with_seccomp_loads_a_localhost_profile(tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_LOG"}')
    inp = container_input(ctr_config(SC(seccomp=SP(profile_type=SP.Localhost, localhost_ref=str(profile)))))
    assert applied(with_seccomp, inp)["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_LOG"}


def _allowed(spec: dict[str, Any]) -> set[str]:
    return {n for rule in spec["linux"]["seccomp"]["syscalls"] if not rule.get("args") for n in rule["names"]}


@pytest.mark.parametrize(
    ("extra_cap", "mount_allowed"),
    [pytest.param("CAP_SYS_ADMIN", True, id="sys-admin-unlocks-mount"), pytest.param(None, False, id="default-caps")],
)
def test_with_seccomp_follows_the_capabilities_already_in_the_spec(extra_cap: str | None, mount_allowed: bool) -> None:
    spec = default_spec()
    if extra_cap:
        spec["process"]["capabilities"]["bounding"].append(extra_cap)
    with_seccomp(container_input(ctr_config(SC(seccomp=SP(profile_type=SP.RuntimeDefault)))), spec)
    assert ("mount" in _allowed(spec)) is mount_allowed
