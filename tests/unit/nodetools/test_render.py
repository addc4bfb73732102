"""ctr's table formatting (Go text/tabwriter), sizes and ages, against output recorded from Debian's ctr 1.6.20."""

from __future__ import annotations

from cri_runtime.nodetools import render

# `ctr namespaces ls` (tabwriter 1, 8, 1, ' '), recorded.
NAMESPACES = (
    "NAME                            LABELS  \n"
    "averyveryverylongnamespace-name x=1,y=2 \n"
    "default                                 \n"
    "foo                             a=b     \n"
)

# `ctr content ls` (tabwriter 1, 8, 1, '\t'; lines not tab-terminated), recorded.
CONTENT = (
    "DIGEST\t\t\t\t\t\t\t\t\tSIZE\tAGE\t\tLABELS\n"
    "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\t6B\t5 minutes\t-\n"
)

# `ctr leases ls`, recorded.
LEASES = (
    "ID             CREATED AT           LABELS                                           \n"
    "417969341-TN3K 2026-12-06T00:32:30Z containerd.io/gc.expire=2026-12-07T00:32:30Z     \n"
    "short-a        2026-12-06T00:45:19Z containerd.io/gc.expire=2026-12-07T00:45:19Z,k=v \n"
)

# `ctr containers ls` and `ctr tasks ls` with nothing to list (tabwriter 4, 8, 4, ' '), recorded.
EMPTY_CONTAINERS = "CONTAINER    IMAGE    RUNTIME    \n"
EMPTY_TASKS = "TASK    PID    STATUS    \n"


def test_namespaces_table() -> None:
    rows = [["averyveryverylongnamespace-name", "x=1,y=2"], ["default", ""], ["foo", "a=b"]]
    assert render.table(["NAME", "LABELS"], rows, render.NARROW) == NAMESPACES


def test_content_table_pads_with_tabs() -> None:
    rows = [["sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", "6B", "5 minutes", "-"]]
    assert render.table(["DIGEST", "SIZE", "AGE", "LABELS"], rows, render.TABS, terminated=False) == CONTENT
    assert render.table(["DIGEST", "SIZE", "AGE", "LABELS"], [], render.TABS, terminated=False) == \
        "DIGEST\tSIZE\tAGE\tLABELS\n"


def test_leases_table() -> None:
    rows = [["417969341-TN3K", "2026-12-06T00:32:30Z", "containerd.io/gc.expire=2026-12-07T00:32:30Z"],
            ["short-a", "2026-12-06T00:45:19Z", "containerd.io/gc.expire=2026-12-07T00:45:19Z,k=v"]]
    assert render.table(["ID", "CREATED AT", "LABELS"], rows, render.NARROW) == LEASES


def test_wide_tables() -> None:
    assert render.table(["CONTAINER", "IMAGE", "RUNTIME"], [], render.WIDE) == EMPTY_CONTAINERS
    assert render.table(["TASK", "PID", "STATUS"], [], render.WIDE) == EMPTY_TASKS


def test_column_blocks_end_at_shorter_lines() -> None:
    """Go aligns a column only over consecutive lines that have it."""
    text = "a\tbb\tc\nddd\te\n\nxxxxx\ty\n"
    assert render.tabwrite(text, render.NARROW) == "a   bb c\nddd e\n\nxxxxx y\n"


def test_sizes_and_ages() -> None:
    assert render.human_size_decimal(6) == "6B"
    assert render.human_size_decimal(1_036_123) == "1.036MB"
    assert render.human_size_decimal(405) == "405B"
    assert render.human_size_binary(0) == "0.0 B"
    assert render.human_size_binary(2_600_000) == "2.5 MiB"
    assert render.human_size_binary(1536) == "1.5 KiB"
    assert render.human_duration(0.5) == "Less than a second"
    assert render.human_duration(1) == "1 second"
    assert render.human_duration(59) == "59 seconds"
    assert render.human_duration(61) == "About a minute"
    assert render.human_duration(300) == "5 minutes"
    assert render.human_duration(3600) == "About an hour"
    assert render.human_duration(5 * 3600) == "5 hours"
    assert render.human_duration(3 * 86400) == "3 days"


def test_labels_and_documents() -> None:
    assert render.labels_text({"b": "2", "a": "1"}) == "a=1,b=2"
    assert render.labels_text({}) == "-"
    assert render.document([{"a": 1}], "json") == '[\n  {\n    "a": 1\n  }\n]\n'
    assert render.document([{"a": 1}], "yaml") == "- a: 1\n"
