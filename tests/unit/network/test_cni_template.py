"""The Go-template subset and rendering the conf template for the pod CIDR."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cri_runtime import errors, gotemplate
from cri_runtime.network.cni import config, template

# The template containerd's own tests and the Kubernetes e2e setup use.
CONTAINERD_STYLE = """{
  "name": "k8s-pod-network",
  "cniVersion": "1.0.0",
  "plugins": [
    {
      "type": "ptp",
      "mtu": 1460,
      "ipam": {
        "type": "host-local",
        "subnet": "{{.PodCIDR}}",
        "ranges": [{{range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$range}}"}]{{end}}],
        "routes": [{{range $i, $route := .Routes}}{{if $i}}, {{end}}{"dst": "{{$route}}"}{{end}}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}"""


def test_dual_stack_render() -> None:
    cidrs = template.parse_pod_cidrs("10.0.0.0/24, 2001:4860:4860::/64")
    data = json.loads(template.render_template(CONTAINERD_STYLE, cidrs))
    ipam = data["plugins"][0]["ipam"]
    assert ipam["subnet"] == "10.0.0.0/24"
    assert ipam["ranges"] == [[{"subnet": "10.0.0.0/24"}], [{"subnet": "2001:4860:4860::/64"}]]
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]


def test_single_stack_routes() -> None:
    assert template.template_data(["fd00::/64"])["Routes"] == ["::/0"]
    assert template.template_data(["10.1.0.0/16"]) == {
        "PodCIDR": "10.1.0.0/16", "PodCIDRRanges": ["10.1.0.0/16"], "Routes": ["0.0.0.0/0"]}


@pytest.mark.parametrize(("source", "expected"), [
    ("{{.A}}-{{.B.C}}", "x-y"),
    ("{{if .Empty}}yes{{else}}no{{end}}", "no"),
    ("{{if .Empty}}1{{else if .A}}2{{else}}3{{end}}", "2"),
    ("{{range .L}}[{{.}}]{{end}}", "[1][2]"),
    ("{{range $v := .L}}{{$v}}{{$.A}}{{end}}", "1x2x"),
    ("{{range .Empty}}x{{else}}none{{end}}", "none"),
    ("a  {{- .A -}}  b", "axb"),
    ("{{/* comment */}}ok", "ok"),
    ('{{"lit"}} {{3}} {{true}}', "lit 3 true"),
    # The engine crictl uses too: with, pipelines and functions work as in Go.
    ("{{with .B}}{{.C}}{{end}}", "y"),
    ('{{printf "%s-%d" .A 7}}', "x-7"),
    ("{{.A | printf \"%q\"}} {{len .L}}", '"x" 2'),
])
def test_template_subset(source: str, expected: str) -> None:
    data = {"A": "x", "B": {"C": "y"}, "Empty": [], "L": [1, 2]}
    assert gotemplate.render(source, data) == expected


@pytest.mark.parametrize(("source", "error"), [
    ("{{.Missing}}", 'map has no entry for key "Missing"'),
    ("{{if .A}}x", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{$nope}}", 'undefined variable "\\$nope"'),
    ("{{.A", "unclosed action"),
])
def test_template_errors(source: str, error: str) -> None:
    with pytest.raises(gotemplate.TemplateError, match=error):
        gotemplate.render(source, {"A": "x"})


def test_bad_cidrs_are_invalid_argument() -> None:
    with pytest.raises(errors.InvalidArgument, match="invalid pod CIDR"):
        template.parse_pod_cidrs("10.0.0.0/24,banana")
    with pytest.raises(errors.InvalidArgument, match="empty"):
        template.parse_pod_cidrs(" , ")


def test_write_conf_from_template(tmp_path: Path) -> None:
    tpl = tmp_path / "tpl.json"
    tpl.write_text(CONTAINERD_STYLE)
    conf_dir = tmp_path / "net.d"
    path = template.write_conf_from_template(str(tpl), str(conf_dir), ["10.9.0.0/24"])
    assert path == str(conf_dir / template.CONF_FILE_NAME)
    assert os.listdir(conf_dir) == [template.CONF_FILE_NAME]  # no temp file left
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    scan = config.load_default_network(str(conf_dir))
    assert scan.network is not None
    assert scan.network.plugins[0].raw["ipam"]["subnet"] == "10.9.0.0/24"


def test_invalid_rendered_config_is_not_written(tmp_path: Path) -> None:
    tpl = tmp_path / "tpl.json"
    tpl.write_text('{"name": "n", "cniVersion": "1.0.0", "plugins": [{"subnet": "{{.PodCIDR}}"}]}')
    conf_dir = tmp_path / "net.d"
    with pytest.raises(errors.FailedPrecondition, match=r"rendered an invalid network config.*missing 'type'"):
        template.write_conf_from_template(str(tpl), str(conf_dir), ["10.9.0.0/24"])
    assert not conf_dir.exists() or os.listdir(conf_dir) == []


def test_missing_template_file(tmp_path: Path) -> None:
    with pytest.raises(errors.FailedPrecondition, match="cannot read cni conf template"):
        template.write_conf_from_template(str(tmp_path / "none"), str(tmp_path), ["10.9.0.0/24"])
