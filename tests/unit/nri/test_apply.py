"""Applying NRI adjustments to an OCI spec, and resources between CRI and NRI (pure logic)."""

from __future__ import annotations

from typing import Any

from cri_protos.nri.v1alpha1 import api_pb2 as api
from cri_protos.runtime.v1 import api_pb2 as cri
from cri_runtime.nri.apply import apply_adjustment
from cri_runtime.nri.convert import resources, to_cri_resources


def spec() -> dict[str, Any]:
    return {
        "process": {"args": ["sh"], "env": ["PATH=/bin", "DROP=1"],
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}]},
        "mounts": [{"destination": "/data", "type": "bind", "source": "/x", "options": ["rbind"]},
                   {"destination": "/proc", "type": "proc", "source": "proc"}],
        "annotations": {"keep": "1", "drop": "1"},
        "linux": {"resources": {"memory": {"limit": 100}, "cpu": {"shares": 2}}},
    }


def test_removals_then_additions_for_env_mounts_and_annotations() -> None:
    adj = api.ContainerAdjustment(
        env=[api.KeyValue(key="-DROP"), api.KeyValue(key="NEW", value="v"), api.KeyValue(key="PATH", value="/usr/bin")],
        mounts=[api.Mount(destination="-/data"), api.Mount(destination="/cache", type="tmpfs", source="tmpfs",
                                                           options=["size=1m"])],
        annotations={"-drop": "", "added": "yes"})
    s = spec()
    apply_adjustment(s, adj)
    assert s["process"]["env"] == ["NEW=v", "PATH=/usr/bin"]
    assert [m["destination"] for m in s["mounts"]] == ["/proc", "/cache"]
    assert s["mounts"][1] == {"destination": "/cache", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
    assert s["annotations"] == {"keep": "1", "added": "yes"}


def test_args_rlimits_hooks_oom_and_cgroups_path() -> None:
    adj = api.ContainerAdjustment(args=["sleep", "", "10"],
                                  rlimits=[api.POSIXRlimit(type="RLIMIT_NOFILE", hard=1024, soft=512)])
    adj.hooks.create_runtime.append(api.Hook(path="/bin/hook", args=["hook", "x"], env=["A=1"]))
    adj.hooks.create_runtime[0].timeout.value = 5
    adj.linux.oom_score_adj.value = 500
    adj.linux.cgroups_path = "/custom/path"
    s = spec()
    apply_adjustment(s, adj)
    assert s["process"]["args"] == ["sleep", "10"]
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}]
    assert s["hooks"] == {"createRuntime": [{"path": "/bin/hook", "args": ["hook", "x"], "env": ["A=1"], "timeout": 5}]}
    assert s["process"]["oomScoreAdj"] == 500
    assert s["linux"]["cgroupsPath"] == "/custom/path"


def test_resources_override_field_by_field_and_devices_come_from_the_host() -> None:
    adj = api.ContainerAdjustment()
    adj.linux.resources.memory.limit.value = 64 << 20
    adj.linux.resources.cpu.cpus = "0"
    adj.linux.resources.pids.limit = 42
    adj.linux.resources.unified["memory.high"] = "max"
    adj.linux.devices.append(api.LinuxDevice(path="/dev/null"))  # type, major and minor taken from the host
    s = spec()
    apply_adjustment(s, adj)
    res = s["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20}
    assert res["cpu"] == {"shares": 2, "cpus": "0"}
    assert res["pids"] == {"limit": 42}
    assert res["unified"] == {"memory.high": "max"}
    assert s["linux"]["devices"] == [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}]
    assert res["devices"] == [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]


def test_resources_between_cri_and_nri() -> None:
    base = cri.LinuxContainerResources(cpu_shares=512, memory_limit_in_bytes=1 << 30, cpuset_cpus="0-1",
                                       hugepage_limits=[cri.HugepageLimit(page_size="2MB", limit=4 << 20)])
    nri = resources(base)
    assert (nri.cpu.shares.value, nri.memory.limit.value, nri.cpu.cpus) == (512, 1 << 30, "0-1")
    assert not nri.cpu.HasField("quota")
    update = api.LinuxResources()
    update.memory.limit.value = 2 << 30
    update.hugepage_limits.append(api.HugepageLimit(page_size="2MB", limit=8 << 20))
    merged = to_cri_resources(update, base)
    assert (merged.cpu_shares, merged.memory_limit_in_bytes, merged.cpuset_cpus) == (512, 2 << 30, "0-1")
    assert [(h.page_size, h.limit) for h in merged.hugepage_limits] == [("2MB", 8 << 20)]
