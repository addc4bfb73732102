"""Go's text/tabwriter (flags 0): the column alignment Go CLIs (crictl, ctr) print tables and help with.

One port, shared by crictl and the node tools so their output matches upstream byte for
byte; standard library only.
"""

from __future__ import annotations

from typing import NamedTuple


class TabStyle(NamedTuple):
    """The arguments of Go's tabwriter.NewWriter(out, minwidth, tabwidth, padding, padchar, 0).

    A NamedTuple, not a dataclass: crictl imports this module on start-up, and dataclasses
    (with the inspect module it needs) costs more to import than crictl's whole table code.
    """

    minwidth: int
    tabwidth: int
    padding: int
    padchar: str


def tabwrite(text: str, style: TabStyle) -> str:
    """What Go's tabwriter (flags 0) prints for `text` (cells terminated by tabs)."""
    raw_lines = text.split("\n")
    trailing = raw_lines.pop() if raw_lines else ""
    lines = [line.split("\t") for line in raw_lines]
    if trailing:
        lines.append(trailing.split("\t"))
    out: list[str] = []
    widths: list[int] = []

    def pad(textw: int, cellw: int) -> str:
        if style.padchar == "\t":
            cellw = (cellw + style.tabwidth - 1) // style.tabwidth * style.tabwidth
            return "\t" * ((cellw - textw + style.tabwidth - 1) // style.tabwidth)
        return style.padchar * (cellw - textw)

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts: list[str] = []
            for j, cell in enumerate(cells):
                parts.append(cell)
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(pad(len(cell), widths[j]))
            last = i + 1 == len(lines) and bool(trailing)
            out.append("".join(parts) + ("" if last else "\n"))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = style.minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + style.padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "".join(out)
