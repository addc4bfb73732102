"""One output module for every command: aligned tables, JSON, YAML and go-template rendering.

Two JSON flavours exist in crictl and both are reproduced:
- list commands print protojson directly (declaration order);
- status commands (inspect*, info, imagefsinfo) round-trip through Go maps, so keys come out
  sorted and `<`, `>`, `&` are escaped as encoding/json does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from crictl.errors import CliError

OUTPUT_JSON = "json"
OUTPUT_YAML = "yaml"
OUTPUT_TABLE = "table"
OUTPUT_GO_TEMPLATE = "go-template"


class Table:
    """Go text/tabwriter with crictl's settings (minwidth 20, padding 3, pad with spaces)."""

    def __init__(self, minwidth: int = 20, padding: int = 3) -> None:
        self.minwidth = minwidth
        self.padding = padding
        self.rows: list[list[str]] = []

    def add_row(self, row: Sequence[str]) -> None:
        self.rows.append(list(row))

    def render(self) -> str:
        return render_tabwriter(self.rows, self.minwidth, self.padding)

    def flush(self, stream: TextIO | None = None) -> None:
        (stream or sys.stdout).write(self.render())
        self.rows = []


def render_tabwriter(rows: list[list[str]], minwidth: int = 20, padding: int = 3) -> str:
    """Align cells like tabwriter: every cell but a line's last is a column cell, aligned over
    runs of consecutive lines that have a cell in that column (tabwriter's column blocks)."""
    from cri_runtime import gotabwriter

    text = "".join("\t".join(row) + "\n" for row in rows)
    return gotabwriter.tabwrite(text, gotabwriter.TabStyle(minwidth, 8, padding, " "))


def protojson_text(data: Any) -> str:
    """JSON text as Go's protojson with two-space indent prints it."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def go_json_text(data: Any) -> str:
    """JSON text as Go's encoding/json Marshal + Indent prints it (sorted keys, HTML escapes)."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def yaml_text(data: Any) -> str:
    from crictl import yamlout

    return yamlout.dump(data)


def print_message(message: Any, output: str) -> None:
    """Print a protobuf response as crictl's outputProtobufObjAsJSON / AsYAML."""
    from crictl.protojson import message_to_dict

    data = message_to_dict(message)
    if output == OUTPUT_JSON:
        print(protojson_text(data))
    elif output == OUTPUT_YAML:
        print(yaml_text(data))
    else:
        raise CliError(f"unsupported output format {output!r}")


def status_entry(
    status: dict[str, Any] | None,
    info: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One element of crictl's statusData: {"status": ..., <info keys>: ...}.

    Info values that look like JSON objects are decoded; others lose surrounding quotes.
    """
    entry: dict[str, Any] = {}
    if status is not None:
        entry["status"] = status
    if extra:
        entry.update(extra)
    for key in sorted(info or {}):
        value = (info or {})[key]
        if value.startswith("{"):
            try:
                # Go decodes JSON numbers as float64 and prints 10.0 as 10: do the same.
                entry[key] = json.loads(value, parse_float=_go_float)
            except json.JSONDecodeError as exc:
                raise CliError(f"unmarshal status info JSON: {exc}") from exc
        else:
            entry[key] = value.strip('"')
    return entry


def _go_float(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 1e21 else value


def print_status_entries(entries: list[dict[str, Any]], output: str, template: str) -> None:
    """crictl's outputStatusData: one object, or a list when several."""
    if not entries:
        return
    data: Any = entries[0] if len(entries) == 1 else entries
    if output == OUTPUT_YAML:
        print(yaml_text(_roundtrip(data)))
    elif output == OUTPUT_JSON:
        print(go_json_text(data))
    elif output == OUTPUT_GO_TEMPLATE:
        from cri_runtime.gotemplate import TemplateError, render

        try:
            print(render(template, _roundtrip(data)))
        except TemplateError as exc:
            raise CliError(f"execute template: {exc}") from exc
    else:
        raise CliError(f"unsupported format: {output!r}")


def render_template_message(message: Any, template: str) -> str:
    """go-template output of a protobuf message (events)."""
    from cri_runtime.gotemplate import render
    from crictl.protojson import message_to_dict

    return render(template, message_to_dict(message))


def _roundtrip(data: Any) -> Any:
    """Sort keys recursively, as data decoded from Go's marshalled JSON would be."""
    if isinstance(data, dict):
        return {k: _roundtrip(data[k]) for k in sorted(data)}
    if isinstance(data, list):
        return [_roundtrip(v) for v in data]
    return data


def sorted_items(mapping: dict[str, str]) -> Iterable[tuple[str, str]]:
    for key in sorted(mapping):
        yield key, mapping[key]


def go_map_string(mapping: dict[str, str]) -> str:
    """fmt's %v of a map[string]string."""
    return "map[" + " ".join(f"{k}:{mapping[k]}" for k in sorted(mapping)) + "]"


def print_labels_block(title: str, mapping: dict[str, str] | None) -> None:
    """The 'Labels:' / 'Annotations:' blocks of verbose listings (tab + 'k -> v')."""
    if not mapping:
        return
    print(f"{title}:")
    for key, value in sorted_items(mapping):
        print(f"\t{key} -> {value}")
