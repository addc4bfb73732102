"""CDI: spec parsing and validation, name syntax, directory precedence, refresh, and edits.

The specs used are the CDI specification's own examples (SPEC.md and
schema/testdata/good/spec-example.json of cncf-tags/container-device-interface),
with host paths pointed at nodes that exist on every machine (/dev/null, /dev/zero).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cri_runtime.cdi import CdiRegistry, SpecError, apply_edits, requested_devices
from cri_runtime.cdi.names import parse_qualified_name
from cri_runtime.cdi.spec import parse_spec
from cri_runtime.errors import InvalidArgument

NULL = os.stat("/dev/null")
ZERO = os.stat("/dev/zero")

#: schema/testdata/good/spec-example.json, host nodes replaced.
SPEC_EXAMPLE = {
    "cdiVersion": "0.6.0",
    "kind": "vendor.com/device",
    "devices": [
        {
            "name": "myDevice",
            "containerEdits": {
                "deviceNodes": [
                    {"hostPath": "/dev/null", "path": "/dev/card1"},
                    {"path": "/dev/zero"},
                ]
            },
        }
    ],
    "containerEdits": {
        "env": ["FOO=CDI_SPEC", "BAR=BARVALUE1"],
        "deviceNodes": [{"path": "/dev/null", "uid": 1000, "gid": 1000}],
        "mounts": [
            {"hostPath": "/bin/vendorBin", "containerPath": "/bin/vendorBin"},
            {"hostPath": "/usr/lib/libVendor.so.0", "containerPath": "/usr/lib/libVendor.so.0"},
        ],
        "hooks": [
            {"hookName": "createContainer", "path": "/bin/vendor-hook"},
            {"hookName": "startContainer", "path": "/usr/bin/ldconfig"},
        ],
    },
}

#: The YAML form used in the CDI README (version 0.7 features: additionalGids, intelRdt).
SPEC_YAML = """
cdiVersion: "0.7.0"
kind: "vendor.com/gpu"
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - path: /dev/gpu0
          hostPath: /dev/zero
          permissions: rw
      additionalGids: [0, 44, 44]
containerEdits:
  env: ["GPU_VENDOR=vendor.com"]
  intelRdt:
    closID: gpu-clos
    l3CacheSchema: "L3:0=ff"
"""


def base_spec() -> dict[str, Any]:
    return {
        "process": {"env": ["PATH=/bin", "FOO=image"], "user": {"uid": 0, "gid": 0}},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": []},
                   {"destination": "/bin/vendorBin", "source": "/old", "options": ["bind"]}],
        "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]}},
    }


def write(directory: Path, name: str, data: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_spec_example_applies_edits(tmp_path: Path) -> None:
    write(tmp_path / "etc", "vendor.json", SPEC_EXAMPLE)
    reg = CdiRegistry([str(tmp_path / "etc")])
    spec = base_spec()
    apply_edits(spec, reg.resolve(["vendor.com/device=myDevice"]))

    assert spec["process"]["env"] == ["PATH=/bin", "FOO=CDI_SPEC", "BAR=BARVALUE1"]
    devices = {d["path"]: d for d in spec["linux"]["devices"]}
    assert devices["/dev/null"] == {"path": "/dev/null", "type": "c", "major": os.major(NULL.st_rdev),
                                    "minor": os.minor(NULL.st_rdev), "fileMode": 0o666, "uid": 1000,
                                    "gid": 1000}
    card1 = devices["/dev/card1"]  # hostPath given: type and numbers come from the host node
    assert (card1["type"], card1["major"], card1["minor"]) == ("c", os.major(NULL.st_rdev), os.minor(NULL.st_rdev))
    assert "hostPath" not in card1 and "uid" not in card1
    assert devices["/dev/zero"]["minor"] == os.minor(ZERO.st_rdev)
    rules = spec["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    null, zero = NULL.st_rdev, ZERO.st_rdev
    assert {(r["major"], r["minor"], r["access"]) for r in rules[1:]} == {
        (os.major(null), os.minor(null), "rwm"), (os.major(zero), os.minor(zero), "rwm")}
    # A CDI mount replaces the one at the same destination; parents sort first.
    assert [m["destination"] for m in spec["mounts"]] == ["/proc", "/bin/vendorBin", "/usr/lib/libVendor.so.0"]
    assert spec["mounts"][1]["source"] == "/bin/vendorBin"
    assert spec["hooks"] == {"createContainer": [{"path": "/bin/vendor-hook"}],
                             "startContainer": [{"path": "/usr/bin/ldconfig"}]}


def test_yaml_spec_gids_rdt_and_permissions(tmp_path: Path) -> None:
    write(tmp_path, "gpu.yaml", SPEC_YAML)
    reg = CdiRegistry([str(tmp_path)])
    spec = base_spec()
    spec["process"]["user"] = {"uid": 1001, "gid": 1002, "additionalGids": [44]}
    apply_edits(spec, reg.resolve(["vendor.com/gpu=0"]))
    assert spec["process"]["user"]["additionalGids"] == [44]  # 0 ignored, no duplicates
    assert spec["linux"]["intelRdt"] == {"closID": "gpu-clos", "l3CacheSchema": "L3:0=ff"}
    (gpu,) = spec["linux"]["devices"]
    assert (gpu["path"], gpu["uid"], gpu["gid"]) == ("/dev/gpu0", 1001, 1002)  # the process's user
    assert spec["linux"]["resources"]["devices"][-1]["access"] == "rw"
    assert "GPU_VENDOR=vendor.com" in spec["process"]["env"]


def test_spec_edits_applied_once_for_two_devices(tmp_path: Path) -> None:
    data = json.loads(json.dumps(SPEC_EXAMPLE))
    data["devices"].append({"name": "other", "containerEdits": {"env": ["OTHER=1"]}})
    write(tmp_path, "v.json", data)
    spec = base_spec()
    apply_edits(spec, CdiRegistry([str(tmp_path)]).resolve(["vendor.com/device=myDevice", "vendor.com/device=other"]))
    assert spec["process"]["env"].count("FOO=CDI_SPEC") == 1
    assert spec["hooks"]["createContainer"] == [{"path": "/bin/vendor-hook"}]
    assert spec["process"]["env"][-1] == "OTHER=1"


def test_minimal_device_without_host_node() -> None:
    text = json.dumps({"cdiVersion": "0.3.0", "kind": "a.b/c",
                       "devices": [{"name": "x", "containerEdits": {"deviceNodes": [
                           {"path": "/dev/nonexistent-cdi", "type": "c", "major": 10, "minor": 200,
                            "permissions": "none"}]}}]})
    spec = parse_spec(text, "/etc/cdi/a.json")
    from cri_runtime.cdi.registry import ResolvedDevice

    oci = base_spec()
    apply_edits(oci, [ResolvedDevice("a.b/c=x", spec, spec.devices["x"])])
    assert oci["linux"]["devices"] == [{"path": "/dev/nonexistent-cdi", "type": "c", "major": 10, "minor": 200}]
    assert oci["linux"]["resources"]["devices"][-1]["access"] == ""


def test_missing_host_node_names_device_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "v.json", {"cdiVersion": "0.3.0", "kind": "vendor.com/x", "devices": [
        {"name": "gone", "containerEdits": {"deviceNodes": [{"path": "/dev/nonexistent-cdi"}]}}]})
    devices = CdiRegistry([str(tmp_path)]).resolve(["vendor.com/x=gone"])
    with pytest.raises(InvalidArgument, match=rf"vendor.com/x=gone.*{path}.*nonexistent-cdi"):
        apply_edits(base_spec(), devices)


@pytest.mark.parametrize(
    ("name", "ok"),
    [("vendor.com/class=name", True), ("foo.bar.baz/foo-bar123.B_az=0:1", True), ("a/b=c", True),
     ("vendor.com/class", False), ("/dev/null", False), ("vendor.com/class=", False), ("=x", False),
     ("1vendor.com/class=x", False), ("vendor.com/cl@ss=x", False), ("vendor.com/class=-x", False),
     ("vendor.com/class=x-", False), ("vendor.com/foo/bar=x", False)],
)
def test_qualified_names(name: str, ok: bool) -> None:
    if ok:
        assert parse_qualified_name(name)[1] == name.partition("=")[2]
    else:
        with pytest.raises(InvalidArgument, match="CDI device"):
            parse_qualified_name(name)


def test_requested_devices_from_field_and_annotations() -> None:
    got = requested_devices(["v.com/a=1"], {"cdi.k8s.io/zz": "v.com/a=2, v.com/a=1", "cdi.k8s.io/aa": "v.com/b=x",
                                             "other": "not,cdi"})
    assert got == ["v.com/a=1", "v.com/b=x", "v.com/a=2"]
    with pytest.raises(InvalidArgument, match=r"annotation cdi\.k8s\.io/x"):
        requested_devices([], {"cdi.k8s.io/x": "nope"})


@pytest.mark.parametrize(
    ("patch", "message"),
    [({"cdiVersion": "0.2.0"}, "unsupported cdiVersion"),
     ({"cdiVersion": "9.9.9"}, "unsupported cdiVersion"),
     ({"kind": "nokind"}, "vendor.com/class"),
     ({"devices": []}, "no devices"),
     ({"bogus": 1}, "unknown field 'bogus'"),
     ({"cdiVersion": "0.4.0"}, "needs at least 0.5.0"),  # hostPath needs 0.5
     ({"containerEdits": {"env": ["=x"]}}, "invalid environment variable"),
     ({"containerEdits": {"hooks": [{"hookName": "later", "path": "/x"}]}}, "invalid hookName"),
     ({"containerEdits": {"mounts": [{"hostPath": "/x"}]}}, "containerPath is required"),
     ({"containerEdits": {"deviceNodes": [{"path": "/dev/x", "permissions": "rx"}]}}, "invalid permissions"),
     ({"containerEdits": {"additionalGids": [5]}}, "needs at least 0.7.0"),
     ({"devices": [{"name": "a", "containerEdits": {}}]}, "no container edits"),
     ({"devices": [{"name": "-a", "containerEdits": {"env": ["A=1"]}}]}, "should start with"),
     ({"devices": [{"name": "a", "containerEdits": {"env": ["A=1"]}}] * 2}, "defined twice")],
)
def test_malformed_specs(patch: dict[str, Any], message: str) -> None:
    data = {**SPEC_EXAMPLE, **patch}
    with pytest.raises(SpecError, match=message) as exc:
        parse_spec(json.dumps(data), "/etc/cdi/bad.json")
    assert "/etc/cdi/bad.json" in str(exc.value)


def test_not_yaml() -> None:
    with pytest.raises(SpecError, match=r"/x.yaml: not valid JSON or YAML"):
        parse_spec("a: [", "/x.yaml")


def test_unknown_device_error_names_device_dirs_and_broken_files(tmp_path: Path) -> None:
    write(tmp_path / "etc", "good.json", SPEC_EXAMPLE)
    bad = write(tmp_path / "etc", "broken.yaml", "cdiVersion: 0.6.0\nkind: vendor.com/gpu\ndevices: 3\n")
    write(tmp_path / "etc", "ignored.txt", "not a spec")
    reg = CdiRegistry([str(tmp_path / "etc"), str(tmp_path / "run")])
    with pytest.raises(InvalidArgument) as exc:
        reg.resolve(["vendor.com/gpu=0"])
    msg = exc.value.message
    assert "vendor.com/gpu=0" in msg and str(tmp_path / "etc") in msg and str(tmp_path / "run") in msg
    assert str(bad) in msg and "devices" in msg
    assert reg.devices() == ["vendor.com/device=myDevice"]


def test_later_dir_wins_and_same_dir_conflicts(tmp_path: Path) -> None:
    def dev(env: str) -> dict[str, Any]:
        return {"cdiVersion": "0.3.0", "kind": "vendor.com/x",
                "devices": [{"name": "d", "containerEdits": {"env": [env]}}]}

    write(tmp_path / "etc", "a.json", dev("WHERE=etc"))
    write(tmp_path / "run", "a.json", dev("WHERE=run"))
    reg = CdiRegistry([str(tmp_path / "etc"), str(tmp_path / "run")])
    (d,) = reg.resolve(["vendor.com/x=d"])
    assert d.edits.env == ("WHERE=run",)
    write(tmp_path / "run", "b.yaml", json.dumps(dev("WHERE=run2")))
    with pytest.raises(InvalidArgument, match=r"defined in both .*run/a.json and .*run/b.yaml"):
        reg.resolve(["vendor.com/x=d"])


def test_refresh_only_when_files_change(tmp_path: Path) -> None:
    reg = CdiRegistry([str(tmp_path / "cdi")])
    with pytest.raises(InvalidArgument):
        reg.resolve(["vendor.com/device=myDevice"])
    path = write(tmp_path / "cdi", "v.json", SPEC_EXAMPLE)  # the directory appears later
    assert reg.resolve(["vendor.com/device=myDevice"])
    count = reg.refreshes
    for _ in range(5):
        reg.resolve(["vendor.com/device=myDevice"])
    assert reg.refreshes == count  # unchanged files are not re-read
    data = json.loads(json.dumps(SPEC_EXAMPLE))
    data["devices"][0]["name"] = "renamed"
    path.write_text(json.dumps(data) + "\n")  # edited in place: size and mtime change
    assert reg.devices() == ["vendor.com/device=renamed"]
    assert reg.refreshes == count + 1
