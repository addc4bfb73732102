"""CNI config parsing, validation and default-network selection."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cri_runtime.network.cni import config


def write(directory: Path, name: str, data: object) -> Path:
    path = directory / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


BRIDGE = {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}}


def test_conflist_keeps_plugins_and_unknown_keys() -> None:
    net = config.parse_conflist({"cniVersion": "1.0.0", "name": "n1", "custom": 1,
                                 "plugins": [BRIDGE, {"type": "portmap", "capabilities": {"portMappings": True}}]})
    assert net.name == "n1"
    assert net.cni_version == "1.0.0"
    assert [p.type for p in net.plugins] == ["bridge", "portmap"]
    assert net.plugins[0].raw["bridge"] == "cni0"
    assert net.plugins[1].capabilities == frozenset({"portMappings"})
    assert net.capabilities() == frozenset({"portMappings"})
    assert net.to_dict()["custom"] == 1
    assert config.parse_conflist(net.to_dict()) == net


def test_single_conf_becomes_one_plugin_list() -> None:
    net = config.parse_single({"cniVersion": "0.3.1", "name": "single", **BRIDGE})
    assert net.name == "single"
    assert net.cni_version == "0.3.1"
    assert len(net.plugins) == 1
    assert net.plugins[0].type == "bridge"


def test_capabilities_disabled_are_not_declared() -> None:
    plugin = config.parse_plugin({"type": "x", "capabilities": {"portMappings": False, "bandwidth": True}}, "p")
    assert plugin.capabilities == frozenset({"bandwidth"})


@pytest.mark.parametrize(("data", "error"), [
    ({"cniVersion": "1.0.0", "plugins": [BRIDGE]}, "missing network name"),
    ({"cniVersion": "1.0.0", "name": "-bad", "plugins": [BRIDGE]}, "invalid characters"),
    ({"cniVersion": "1.0.0", "name": "a b", "plugins": [BRIDGE]}, "invalid characters"),
    ({"cniVersion": "1.0.0", "name": "n"}, "no 'plugins' key"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": []}, "no plugins in list"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": {"type": "x"}}, "invalid 'plugins' type"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"bridge": "x"}]}, "plugin 0: missing 'type'"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../bin/sh"}]}, "invalid plugin type"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x", "capabilities": {"a": 1}}]},
     "capabilities must be an object of booleans"),
    ({"cniVersion": "9.0.0", "name": "n", "plugins": [BRIDGE]}, "unsupported cniVersion"),
    ({"cniVersion": "one", "name": "n", "plugins": [BRIDGE]}, "invalid cniVersion"),
    ({"cniVersion": 1, "name": "n", "plugins": [BRIDGE]}, "invalid cniVersion type"),
    ({"cniVersion": "1.0.0", "name": "n", "disableCheck": "maybe", "plugins": [BRIDGE]}, "disableCheck"),
    ([1, 2], "expected a JSON object"),
])
def test_invalid_conflists(data: object, error: str) -> None:
    with pytest.raises(config.InvalidConfig, match=error):
        config.parse_conflist(data)


def test_cni_versions_picks_highest_supported() -> None:
    net = config.parse_conflist({"cniVersion": "0.4.0", "cniVersions": ["0.3.1", "1.0.0", "7.0.0"],
                                 "name": "n", "plugins": [BRIDGE]})
    assert net.cni_version == "1.0.0"


def test_missing_version_means_0_1_0() -> None:
    assert config.parse_single({"name": "old", **BRIDGE}).cni_version == "0.1.0"


def test_disable_check_accepts_string_booleans() -> None:
    net = config.parse_conflist({"cniVersion": "1.0.0", "name": "n", "disableCheck": "True", "plugins": [BRIDGE]})
    assert net.disable_check is True


def test_conflist_in_conf_file_is_rejected_clearly() -> None:
    with pytest.raises(config.InvalidConfig, match=r"belongs in a \.conflist"):
        config.parse_text(json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [BRIDGE]}), "x.conf")


def test_first_valid_file_in_lexical_order_wins(tmp_path: Path) -> None:
    write(tmp_path, "20-b.conflist", {"cniVersion": "1.0.0", "name": "b", "plugins": [BRIDGE]})
    write(tmp_path, "10-a.conf", {"cniVersion": "1.0.0", "name": "a", **BRIDGE})
    write(tmp_path, "30-c.json", {"cniVersion": "1.0.0", "name": "c", **BRIDGE})
    scan = config.load_default_network(str(tmp_path))
    assert scan.network is not None
    assert scan.network.name == "a"
    assert scan.network.source == str(tmp_path / "10-a.conf")
    assert scan.skipped == ()


def test_invalid_files_are_skipped_and_reported(tmp_path: Path) -> None:
    write(tmp_path, "00-broken.conflist", "{not json")
    write(tmp_path, "05-notype.conf", {"cniVersion": "1.0.0", "name": "x"})
    write(tmp_path, "07-ignored.txt", {"cniVersion": "1.0.0", "name": "t", **BRIDGE})
    (tmp_path / "08-dir.conf").mkdir()
    write(tmp_path, "10-good.conflist", {"cniVersion": "1.0.0", "name": "good", "plugins": [BRIDGE]})
    scan = config.load_default_network(str(tmp_path))
    assert scan.network is not None and scan.network.name == "good"
    assert [os.path.basename(p) for p, _ in scan.skipped] == ["00-broken.conflist", "05-notype.conf"]
    assert "not valid JSON" in scan.skipped[0][1]
    assert "missing 'type'" in scan.skipped[1][1]


def test_no_config_reasons(tmp_path: Path) -> None:
    missing = config.load_default_network(str(tmp_path / "nope"))
    assert missing.network is None
    assert missing.not_ready_reason() == f"no network config found in {tmp_path / 'nope'}"
    write(tmp_path, "99-bad.conflist", {"name": "x"})
    bad = config.load_default_network(str(tmp_path))
    assert bad.network is None
    assert "99-bad.conflist: no 'plugins' key" in bad.not_ready_reason()


def test_fingerprint_changes_when_files_change(tmp_path: Path) -> None:
    before = config.conf_dir_fingerprint(str(tmp_path))
    path = write(tmp_path, "10-a.conflist", {"cniVersion": "1.0.0", "name": "a", "plugins": [BRIDGE]})
    after_add = config.conf_dir_fingerprint(str(tmp_path))
    assert before != after_add
    os.utime(path, ns=(1, 1))
    assert config.conf_dir_fingerprint(str(tmp_path)) != after_add
