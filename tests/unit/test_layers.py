"""Imports run downward: node facts below managers below recovery below services below the server.

Each top-level module or package of `cri_runtime` belongs to one layer; a
module may import from its own layer or a lower one, never a higher one.
A new package must be placed in a layer here, so the rule cannot be
skipped by accident. Imports are read with `ast` (nothing is executed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cri_runtime

ROOT = Path(cri_runtime.__file__).parent

#: Lowest first. Foundation: no knowledge of pods or containers.
LAYERS: list[tuple[str, frozenset[str]]] = [
    ("foundation", frozenset({
        "__init__", "errors", "config", "protowire", "gojson", "rollback", "store", "tracing",
        "logging_setup", "sdnotify", "stackdump", "reload", "eager", "completion", "containerd", "oci", "cdi",
        "userns", "ttrpc", "h2", "rpc", "grpc_client", "streaming", "metrics", "validation", "gotemplate",
        "gounits", "gotabwriter"})),
    ("node facts", frozenset({"node"})),
    ("managers", frozenset({"images", "network", "sandbox", "containers", "nri", "events", "stats"})),
    ("recovery", frozenset({"recovery"})),
    ("services", frozenset({"services"})),
    ("composition and process", frozenset({"composition", "server", "cli", "nodetools"})),
]

RANK = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def _top(path: Path) -> str:
    first = path.relative_to(ROOT).parts[0]
    return first.removesuffix(".py")


def _imported_tops(tree: ast.AST) -> set[str]:
    """Top-level cri_runtime parts an AST imports (`from cri_runtime import x` counts x)."""
    tops: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "cri_runtime":
                names = [f"cri_runtime.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "cri_runtime" and len(parts) > 1:
                tops.add(parts[1])
    return tops


SOURCES = sorted(ROOT.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    unplaced = sorted({_top(path) for path in SOURCES} - set(RANK))
    assert unplaced == [], f"place these in LAYERS of {__file__}: {unplaced}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_downward(path: Path) -> None:
    own = _top(path)
    if own not in RANK:
        pytest.skip("unplaced (reported by test_every_package_has_a_layer)")
    upward = sorted(top for top in _imported_tops(ast.parse(path.read_text()))
                    if top in RANK and RANK[top] > RANK[own])
    assert upward == [], (f"{path.relative_to(ROOT)} ({LAYERS[RANK[own]][0]}) imports from a higher layer: "
                          + ", ".join(f"{top} ({LAYERS[RANK[top]][0]})" for top in upward))


def test_the_rule_catches_an_upward_import() -> None:
    """The checker itself: a manager importing a service is reported."""
    tree = ast.parse("from cri_runtime.services.containers import ContainerRpcs\nfrom cri_runtime import server\n")
    assert _imported_tops(tree) == {"services", "server"}
    assert RANK["services"] > RANK["containers"] and RANK["server"] > RANK["containers"]
