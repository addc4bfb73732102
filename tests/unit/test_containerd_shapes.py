"""Pure logic behind the containerd-shaped status fields and image config volumes (issue 15)."""

from __future__ import annotations

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.config import Config
from cri_runtime.containers import image_config_volumes
from cri_runtime.containers.status_info import effective_resources
from cri_runtime.gojson import go_json
from cri_runtime.oci.process import ImageConfig
from cri_runtime.sandbox.status_info import go_cni_result
from cri_runtime.services.status_config import status_config


def test_go_json_uses_proto_names_numbers_and_omits_zero_values() -> None:
    cfg = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="c", attempt=0), log_path="c.log",
        envs=[api_pb2.KeyValue(key="A", value=b"\xff1")], labels={"k": "v"},
        linux=api_pb2.LinuxContainerConfig(
            resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=1 << 40),
            security_context=api_pb2.LinuxContainerSecurityContext(
                namespace_options=api_pb2.NamespaceOption(pid=api_pb2.CONTAINER))))
    assert go_json(cfg) == {
        "metadata": {"name": "c"},
        "log_path": "c.log",
        "envs": [{"key": "A", "value": "\ufffd1"}],
        "labels": {"k": "v"},
        "linux": {"resources": {"memory_limit_in_bytes": 1 << 40},
                  "security_context": {"namespace_options": {"pid": 1}}},
    }


def test_effective_resources_read_back_from_the_spec() -> None:
    spec = {"process": {"oomScoreAdj": 900},
            "linux": {"resources": {"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1"},
                                    "memory": {"limit": 1 << 26, "swap": 1 << 27},
                                    "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
                                    "unified": {"memory.high": "max"}}}}
    res = effective_resources(spec)
    assert (res.oom_score_adj, res.cpu_shares, res.cpu_quota, res.cpu_period, res.cpuset_cpus) == (
        900, 512, 50000, 100000, "0-1")
    assert (res.memory_limit_in_bytes, res.memory_swap_limit_in_bytes) == (1 << 26, 1 << 27)
    assert [(h.page_size, h.limit) for h in res.hugepage_limits] == [("2MB", 4194304)]
    assert dict(res.unified) == {"memory.high": "max"}
    assert effective_resources({"linux": {"resources": {"devices": []}}}) == api_pb2.LinuxContainerResources()


def test_go_cni_result_groups_ips_by_interface() -> None:
    raw = {"eth0": {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
                                   {"name": "eth0", "mac": "bb:bb:bb:bb:bb:bb", "sandbox": "/run/netns/x"}],
                    "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 1}],
                    "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.1.0.1"]}}}
    assert go_cni_result(raw) == {
        "Interfaces": {"cni0": {"IPConfigs": None, "Mac": "aa:aa:aa:aa:aa:aa", "Sandbox": ""},
                       "eth0": {"IPConfigs": [{"IP": "10.1.0.5", "Gateway": "10.1.0.1"}],
                                "Mac": "bb:bb:bb:bb:bb:bb", "Sandbox": "/run/netns/x"}},
        "DNS": [{"nameservers": ["10.1.0.1"]}],
        "Routes": [{"dst": "0.0.0.0/0"}],
    }
    assert go_cni_result({}) is None


def test_image_config_volumes_wanted() -> None:
    cfg = api_pb2.ContainerConfig(mounts=[api_pb2.Mount(container_path="/cache/", host_path="/tmp")])
    assert image_config_volumes.wanted(["/data/", "/data", "/cache", "/", "/a/../b"], cfg, "bind") == ["/b", "/data"]
    assert image_config_volumes.wanted(["/data"], cfg, "ignore") == []
    with pytest.raises(errors.InvalidArgument, match="not an absolute path"):
        image_config_volumes.wanted(["data"], cfg, "mkdir")


def test_image_config_parses_volumes() -> None:
    assert ImageConfig.from_json({"config": {"Volumes": {"/data": {}, "/b": {}}}, "rootfs": {}}).volumes == [
        "/data", "/b"]
    with pytest.raises(errors.InvalidArgument):
        ImageConfig.from_json({"Volumes": ["/data"]})


def test_status_config_has_containerds_keys_and_ours() -> None:
    cfg = Config()
    doc = status_config(cfg, restrict_oom_score_adj=True)
    assert doc["stateDir"] == cfg.server.state_dir and doc["rootDir"] == cfg.server.root_dir
    assert doc["containerdEndpoint"] == cfg.containerd.address
    assert doc["maxContainerLogSize"] == doc["maxContainerLogLineSize"] == 16384
    assert doc["cni"]["binDir"] == "/usr/lib/cni" and doc["cni"]["confDir"] == "/etc/cni/net.d"
    assert doc["containerd"]["runtimes"]["runc"]["runtimeType"] == "io.containerd.runc.v2"
    assert doc["containerd"]["namespace"] == "k8s.io"  # ours, merged into containerd's object
    assert doc["restrictOOMScoreAdj"] is True
    assert doc["image"]["image_volumes"] == "bind"
