from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument, NotFound
from cri_runtime.oci.defaults import DEFAULT_CAPABILITIES
from cri_runtime.oci.seccomp import (
    NAMESPACE_CLONE_FLAGS,
    load_localhost_profile,
    parse_kernel_release,
    profile_from_deprecated_path,
    requested_profile,
    runtime_default_profile,
    seccomp_section,
)

SP = api_pb2.SecurityProfile


def allowed(profile: dict[str, Any]) -> set[str]:
    """Names allowed unconditionally (rules without args)."""
    return {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}


def rules_for(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in profile["syscalls"] if name in r["names"]]


def test_default_profile_x86_64() -> None:
    p = runtime_default_profile(DEFAULT_CAPABILITIES, "x86_64")
    assert p["defaultAction"] == "SCMP_ACT_ERRNO"
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(p)
    assert {"read", "write", "execve", "openat", "arch_prctl", "modify_ldt", "chroot", "ptrace"} <= names
    # privileged-only syscalls stay blocked
    assert not {"mount", "umount2", "reboot", "bpf", "kexec_load", "init_module", "unshare", "setns"} & names
    assert "clone" not in names and "clone3" not in names
    (clone,) = rules_for(p, "clone")
    assert clone["args"] == [{"index": 0, "value": NAMESPACE_CLONE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    assert NAMESPACE_CLONE_FLAGS == 0x7E020000
    (clone3,) = rules_for(p, "clone3")
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    personas = sorted(r["args"][0]["value"] for r in rules_for(p, "personality"))
    assert personas == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]


def test_default_profile_aarch64() -> None:
    p = runtime_default_profile(DEFAULT_CAPABILITIES, "arm64")
    assert p["architectures"] == ["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"]
    names = allowed(p)
    assert {"set_tls", "cacheflush", "sync_file_range2"} <= names
    assert "arch_prctl" not in names


@pytest.mark.parametrize(
    ("cap", "syscalls"),
    [
        ("CAP_SYS_ADMIN", {"mount", "umount2", "unshare", "setns", "clone", "clone3", "sethostname"}),
        ("CAP_SYS_TIME", {"settimeofday", "clock_settime"}),
        ("CAP_SYS_MODULE", {"init_module", "finit_module", "delete_module"}),
        ("CAP_SYS_PTRACE", {"process_vm_readv", "kcmp"}),
        ("CAP_SYS_BOOT", {"reboot"}),
        ("CAP_SYSLOG", {"syslog"}),
        ("CAP_BPF", {"bpf"}),
        ("CAP_DAC_READ_SEARCH", {"open_by_handle_at"}),
    ],
)
def test_capability_conditioned_syscalls(cap: str, syscalls: set[str]) -> None:
    without = allowed(runtime_default_profile(DEFAULT_CAPABILITIES))
    with_cap = runtime_default_profile([*DEFAULT_CAPABILITIES, cap])
    assert not syscalls & without
    assert syscalls <= allowed(with_cap)
    if cap == "CAP_SYS_ADMIN":
        assert all(r["action"] == "SCMP_ACT_ALLOW" for r in rules_for(with_cap, "clone3"))
        assert all(r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for r in rules_for(with_cap, "clone"))


def test_chroot_follows_sys_chroot() -> None:
    caps = [c for c in DEFAULT_CAPABILITIES if c != "CAP_SYS_CHROOT"]
    assert "chroot" not in allowed(runtime_default_profile(caps))


def test_ptrace_needs_kernel_4_8() -> None:
    assert "ptrace" not in allowed(runtime_default_profile(DEFAULT_CAPABILITIES, kernel_version=(4, 4)))
    assert "ptrace" in allowed(runtime_default_profile(DEFAULT_CAPABILITIES, kernel_version=(4, 8)))


def test_unsupported_arch() -> None:
    with pytest.raises(InvalidArgument, match="riscv"):
        runtime_default_profile(DEFAULT_CAPABILITIES, "riscv64")


@pytest.mark.parametrize(
    ("release", "version"), [("6.1.0-9-amd64", (6, 1)), ("5.15.0", (5, 15)), ("4.19-rc1", (4, 19))]
)
def test_parse_kernel_release(release: str, version: tuple[int, int]) -> None:
    assert parse_kernel_release(release) == version


@pytest.mark.parametrize(
    ("value", "ptype", "ref"),
    [
        ("runtime/default", SP.RuntimeDefault, ""),
        ("docker/default", SP.RuntimeDefault, ""),
        ("", SP.RuntimeDefault, ""),
        ("unconfined", SP.Unconfined, ""),
        ("localhost//etc/p.json", SP.Localhost, "/etc/p.json"),
    ],
)
def test_deprecated_strings(value: str, ptype: int, ref: str) -> None:
    p = profile_from_deprecated_path(value)
    assert (p.profile_type, p.localhost_ref) == (ptype, ref)


def test_deprecated_string_invalid() -> None:
    with pytest.raises(InvalidArgument, match="bogus"):
        profile_from_deprecated_path("bogus")


def test_requested_profile_precedence() -> None:
    explicit = SP(profile_type=SP.Unconfined)
    assert requested_profile(explicit, "runtime/default") is explicit
    p = requested_profile(None, "runtime/default", "unconfined")
    assert p is not None and p.profile_type == SP.RuntimeDefault
    u = requested_profile(None, "", "runtime/default")
    assert u is not None and u.profile_type == SP.RuntimeDefault
    assert requested_profile(None, "") is None


def _section(profile: Any, **kw: Any) -> dict[str, Any] | None:
    args: dict[str, Any] = {"privileged": False, "seccomp_enabled": True, "bounding_caps": DEFAULT_CAPABILITIES}
    args.update(kw)
    return seccomp_section(profile, **args)


def test_section_variants(tmp_path: Path) -> None:
    assert _section(None) is None
    assert _section(SP(profile_type=SP.Unconfined)) is None
    default = _section(SP(profile_type=SP.RuntimeDefault))
    assert default is not None and default["defaultAction"] == "SCMP_ACT_ERRNO"
    assert _section(SP(profile_type=SP.RuntimeDefault), privileged=True) is None
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"defaultAction": "SCMP_ACT_LOG", "syscalls": [], "comment": "dropped"}))
    assert _section(SP(profile_type=SP.Localhost, localhost_ref=str(f))) == {"defaultAction": "SCMP_ACT_LOG",
                                                                              "syscalls": []}
    assert _section(SP(profile_type=SP.Localhost, localhost_ref="localhost/" + str(f))) is not None


def test_section_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="not supported"):
        _section(SP(profile_type=SP.RuntimeDefault), seccomp_enabled=False)
    assert _section(SP(profile_type=SP.Unconfined), seccomp_enabled=False) is None
    with pytest.raises(InvalidArgument, match="localhost_ref"):
        _section(SP(profile_type=SP.RuntimeDefault, localhost_ref="/x"))
    with pytest.raises(InvalidArgument, match="profile_type"):
        _section(SP(profile_type=5))  # type: ignore[arg-type]


def test_localhost_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(NotFound, match=str(missing)):
        load_localhost_profile(str(missing))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        load_localhost_profile(str(bad))
    arr = tmp_path / "arr.json"
    arr.write_text("[]")
    with pytest.raises(InvalidArgument, match="JSON object"):
        load_localhost_profile(str(arr))
    no_action = tmp_path / "noaction.json"
    no_action.write_text("{}")
    with pytest.raises(InvalidArgument, match="defaultAction"):
        load_localhost_profile(str(no_action))
    with pytest.raises(InvalidArgument, match="absolute"):
        load_localhost_profile("relative.json")
    with pytest.raises(InvalidArgument, match="not a readable"):
        load_localhost_profile(str(tmp_path))
