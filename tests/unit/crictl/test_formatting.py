"""Pure formatting rules crictl output depends on: tabwriter, go-units, YAML, go-template."""

from __future__ import annotations

import pytest

from cri_runtime.gotemplate import TemplateError, render
from crictl import yamlout
from crictl.humanize import human_duration, human_size, truncate_id
from crictl.output import go_json_text, render_tabwriter
from crictl.timeparse import parse_duration


def test_tabwriter_pads_columns_to_minwidth_plus_padding() -> None:
    rows = [["IMAGE", "TAG", "IMAGE ID", "SIZE"], ["127.0.0.1:57323/test/busybox", "latest", "5055f22d3a0ff", "1.04MB"]]
    assert render_tabwriter(rows) == (
        "IMAGE                          TAG                 IMAGE ID            SIZE\n"
        "127.0.0.1:57323/test/busybox   latest              5055f22d3a0ff       1.04MB\n"
    )


def test_tabwriter_minwidth_ten_for_runtime_config() -> None:
    assert render_tabwriter([["cgroup driver:", "CGROUPFS"]], minwidth=10) == "cgroup driver:   CGROUPFS\n"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3599, "59 minutes"),
        (5399, "About an hour"),
        (5400, "2 hours"),
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
        (20 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration_matches_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "precision", "text"),
    [(0, 3, "0B"), (999, 3, "999B"), (1040384, 3, "1.04MB"), (1500, 4, "1.5kB"), (999_999, 3, "1e+03kB")],
)
def test_human_size_matches_go_units(size: float, precision: int, text: str) -> None:
    assert human_size(size, precision) == text


def test_truncate_id_strips_prefix_and_keeps_13() -> None:
    assert truncate_id("sha256:5055f22d3a0ffa84a804385fe2a019c", "sha256:") == "5055f22d3a0ff"
    assert truncate_id("abc") == "abc"


def test_go_json_sorts_keys_and_escapes_html() -> None:
    assert go_json_text({"b": "<&>", "a": 1}) == '{\n  "a": 1,\n  "b": "\\u003c\\u0026\\u003e"\n}'


def test_yaml_matches_yaml_v2_layout() -> None:
    data = {
        "images": [{"id": "sha256:abc", "repoTags": ["a:b"], "size": "1040384", "pinned": False, "uid": None}],
        "empty": {},
        "list": [],
        "multi": "one\ntwo",
        "quoted": "- x",
        "when": "2024-01-02T03:04:05Z",
    }
    assert yamlout.dump(data) == (
        "empty: {}\n"
        "images:\n"
        "- id: sha256:abc\n"
        "  pinned: false\n"
        "  repoTags:\n"
        "  - a:b\n"
        '  size: "1040384"\n'
        "  uid: null\n"
        "list: []\n"
        "multi: |-\n"
        "  one\n"
        "  two\n"
        "quoted: '- x'\n"
        'when: "2024-01-02T03:04:05Z"\n'
    )


def test_yaml_key_order_is_natural() -> None:
    assert yamlout.dump({"a10": 1, "a2": 2, "B": 3, "a": 4}).splitlines() == ["B: 3", "a: 4", "a2: 2", "a10: 1"]


DATA = {
    "status": {"id": "abc", "labels": {"x": "1", "y": "2"}, "state": "CONTAINER_RUNNING", "attempt": 0},
    "items": [{"n": "a"}, {"n": "b"}],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.status.id}}", "abc"),
        ("{{ .status.state | lower }}", "container_running"),
        ("{{upper .status.id}}", "ABC"),
        ('{{title "hello world"}}', "Hello World"),
        ("{{range .items}}{{.n}},{{end}}", "a,b,"),
        ("{{range $i, $e := .items}}{{$i}}={{$e.n}} {{end}}", "0=a 1=b "),
        ('{{index .status.labels "y"}}', "2"),
        ("{{if eq .status.attempt 0}}first{{else}}retry{{end}}", "first"),
        ('{{printf "%s-%d" .status.id 7}}', "abc-7"),
        ("{{json .status.labels}}", '{"x":"1","y":"2"}\n'),
        ("{{len .items}}", "2"),
        ("{{.status.labels}}", "map[x:1 y:2]"),
        ("a  {{- .status.id -}}  b", "aabcb"),
        ("{{with .status}}{{.id}}{{end}}", "abc"),
        ("{{$s := .status}}{{$s.id}}", "abc"),
    ],
)
def test_go_template_features(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.nope}}", 'map has no entry for key "nope"'),
        ("{{frob .status}}", 'function "frob" not defined'),
        ("{{if .status}}", "unexpected EOF"),
        ("{{.status.id.more}}", "can't evaluate field more in type string"),
    ],
)
def test_go_template_errors_are_clear(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match="template: tmplExecuteRawJSON") as info:
        render(template, DATA)
    assert message in str(info.value)


def test_go_durations() -> None:
    assert parse_duration("2s") == 2.0
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError, match="missing unit"):
        parse_duration("5")


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("00:00:00:00:00:00", '"00:00:00:00:00:00"'),
        ("1:20", '"1:20"'),
        ("-1:20.5", '"-1:20.5"'),
        ("1:60", "1:60"),
        ("a1:20", "a1:20"),
        ("fe80::1", "fe80::1"),
    ],
)
def test_yaml_quotes_base60_floats(text: str, rendered: str) -> None:
    assert yamlout.dump({"v": text}) == f"v: {rendered}\n"


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        ("2026-11-28T18:34:26.404902170Z", "2026-11-28T18:34:26.404902170Z"),
        ("2026-11-28T18:34:26.4049Z", "2026-11-28T18:34:26.404900000Z"),
        ("2026-11-28T18:34:26Z", "2026-11-28T18:34:26.000000000Z"),
        ("2026-11-28T18:34:26.5+01:00", "2026-11-28T18:34:26.500000000+01:00"),
    ],
)
def test_log_timestamps_have_nine_fraction_digits(stamp: str, shown: str) -> None:
    from crictl.logreader import _format_timestamp

    assert _format_timestamp(stamp) == shown


def test_protojson_field_types_are_protobufs_own() -> None:
    from google.protobuf.descriptor import FieldDescriptor

    from crictl import protojson

    names = [n for n in dir(protojson) if n.startswith("TYPE_") and n != "TYPE_CHECKING"]
    assert len(names) == 11
    assert {n: getattr(protojson, n) for n in names} == {n: getattr(FieldDescriptor, n) for n in names}
