"""Output of the node tools: ctr-identical tables, and JSON / YAML documents.

ctr prints through Go's text/tabwriter; `tabwrite` reproduces its column
algorithm (column blocks, padding, tab padding) so that our tables line up
byte for byte with ctr's. JSON and YAML (PyYAML) print the same records.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import yaml

from cri_runtime import gounits
from cri_runtime.gotabwriter import TabStyle, tabwrite

FORMATS = ("table", "json", "yaml")


NARROW = TabStyle(1, 8, 1, " ")  # namespaces, images, snapshots, leases
WIDE = TabStyle(4, 8, 4, " ")  # containers, tasks
TABS = TabStyle(1, 8, 1, "\t")  # content


def table(header: Sequence[str], rows: Sequence[Sequence[str]], style: TabStyle, *,
          terminated: bool = True) -> str:
    """A ctr table; `terminated`: ctr ends each line with a tab (all lists but content)."""
    end = "\t" if terminated else ""
    text = "".join("\t".join(cells) + end + "\n" for cells in [list(header), *map(list, rows)])
    return tabwrite(text, style)


def human_size_binary(n: int) -> str:
    """containerd's progress.Bytes: "%02.1f %s" with base 1024 (ctr images ls SIZE)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    size, i = float(n), 0
    while size >= 1024.0 and i < len(units) - 1:
        size /= 1024.0
        i += 1
    return f"{size:02.1f} {units[i]}"


def human_size_decimal(n: int) -> str:
    """go-units HumanSize: "%.4g%s" with base 1000 (ctr content ls SIZE)."""
    return gounits.human_size(float(n))


def human_duration(seconds: float) -> str:
    """go-units HumanDuration (ctr content ls AGE)."""
    return gounits.human_duration(seconds)


def rfc3339_local(seconds: int) -> str:
    """Go's t.Local().Format(time.RFC3339)."""
    local = time.localtime(seconds)
    offset = local.tm_gmtoff or 0
    sign = "+" if offset > 0 else "-"
    zone = "Z" if offset == 0 else f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


def labels_text(labels: dict[str, str], empty: str = "-") -> str:
    """ctr's label column: sorted k=v joined by commas."""
    pairs = sorted(f"{k}={v}" for k, v in labels.items())
    return ",".join(pairs) if pairs else empty


def document(data: Any, fmt: str) -> str:
    """`data` as JSON (indented, like crictl) or YAML."""
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
