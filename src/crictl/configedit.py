"""Read and rewrite crictl's config file as upstream does, through ruamel.yaml's node graph.

Upstream (cri-tools pkg/common/file.go) keeps the yaml.v3 node tree of the file: reading takes
each key/value pair in order (so with a duplicated key the last one wins), writing sets the
value of every occurrence of each of the seven keys and appends the missing ones, then marshals
the tree. ruamel.yaml's composer gives the same tree here (pairs in order, duplicates kept,
comments attached); its serializer writes it back. yaml.v3 writes a tree slightly differently
from ruamel, and `_as_yaml_v3` applies those differences to the text: blank lines are not
kept (but one after the file's head comment is) and an inline comment follows its value after
exactly one space.
"""

from __future__ import annotations

import io
import re
from typing import Any

from crictl.errors import CliError

STR, INT, BOOL, MAP = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "bool", "map"))
_TAGS = {"timeout": INT, "max-retries": INT, "debug": BOOL, "pull-image-on-create": BOOL, "disable-pull-on-run": BOOL}


def _yaml() -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="rt")


def compose(text: str) -> Any:
    """The file's mapping node (None for an empty document); YAML errors become CliError."""
    from ruamel.yaml.error import YAMLError

    try:
        return _yaml().compose(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise CliError(f"yaml: {where}{getattr(exc, 'problem', None) or exc}") from exc


def pairs(node: Any) -> list[tuple[str, str]]:
    """(key, value) scalars in file order, duplicates included, as getConfigOptions reads them."""
    from ruamel.yaml.nodes import MappingNode

    if node is None or not isinstance(node, MappingNode):
        return []
    return [(str(k.value), v.value if isinstance(v.value, str) else "") for k, v in node.value]


def render(node: Any, values: dict[str, str]) -> str:
    """setConfigOptions + yaml.Marshal: set every occurrence, append missing keys in `values` order."""
    from ruamel.yaml.nodes import MappingNode, ScalarNode

    if node is None or not isinstance(node, MappingNode):
        node = MappingNode(MAP, [])
    present = set()
    for key_node, value_node in node.value:
        key = key_node.value
        if key in values and isinstance(value_node, ScalarNode):
            value_node.value = values[key]
            if values[key] == "" and value_node.style is None:
                value_node.style = '"'
            present.add(key)
    for key, value in values.items():
        if key not in present:
            style = '"' if value == "" else None
            node.value.append((ScalarNode(STR, key), ScalarNode(_TAGS.get(key, STR), value, style=style)))
    buffer = io.StringIO()
    _yaml().serialize(node, buffer)
    return _as_yaml_v3(buffer.getvalue())


_QUOTED_END = {"'": re.compile(r"'(?:[^']|'')*'"), '"': re.compile(r'"(?:[^"\\]|\\.)*"')}


def _as_yaml_v3(text: str) -> str:
    lines: list[str] = []
    only_comments = True  # still in the file's head comment, which yaml.v3 keeps apart by a blank line
    for line in text.split("\n"):
        if not line.strip():
            if only_comments and lines and lines[-1]:
                lines.append("")
            continue
        if not line.lstrip().startswith("#"):
            only_comments = False
        lines.append(_one_space_before_comment(line))
    return "".join(line + "\n" for line in lines)


def _one_space_before_comment(line: str) -> str:
    if line.lstrip().startswith("#") or ": " not in line:
        return line
    start = line.index(": ") + 2
    while start < len(line) and line[start] == " ":
        start += 1
    quote = line[start : start + 1]
    if quote in _QUOTED_END:
        match = _QUOTED_END[quote].match(line, start)
        end = match.end() if match else len(line)
    else:
        found = re.search(r"\s#", line[start:])
        end = start + found.start() if found else len(line)
    rest = line[end:].strip()
    return line[:end].rstrip() + " " + rest if rest.startswith("#") else line
