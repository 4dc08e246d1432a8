"""Column alignment exactly like Go's ``text/tabwriter``, which kubectl prints through.

Text is lines of tab-terminated cells; the last cell of a line is not part of a
column. A *column block* is a run of consecutive lines that all have a cell in
that column; every cell of the block is padded to the block's widest cell plus
``padding`` (at least ``minwidth``). That is why ``kubectl describe`` aligns the
values of neighbouring lines but lets a line without a tab break the alignment.

``kubectl get`` uses minwidth 6, padding 3 and remembers widths across flushes
(so rows printed later by ``--watch`` never shrink a column); ``kubectl
describe`` uses minwidth 0, padding 2.
"""

from __future__ import annotations

GET_MINWIDTH, GET_PADDING = 6, 3
DESCRIBE_MINWIDTH, DESCRIBE_PADDING = 0, 2


def tabwrite(text: str, *, minwidth: int = DESCRIBE_MINWIDTH, padding: int = DESCRIBE_PADDING,
             remembered: list[int] | None = None) -> str:
    """Align ``text`` (lines of tab-separated cells) like a flushed Go tabwriter.

    ``remembered``, when given, holds the widths kept from earlier flushes per column
    (kubectl's RememberWidths flag); it is widened in place.
    """
    trailing_newline = text.endswith("\n")
    raw = text[:-1] if trailing_newline else text
    lines = [line.split("\t") for line in raw.split("\n")] if text else []
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            parts = []
            for j, cell in enumerate(lines[i]):
                parts.append(cell)
                if j < len(widths):
                    parts.append(" " * (widths[j] - len(cell)))
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            if remembered is not None:
                if len(remembered) < column:
                    remembered.extend(widths[len(remembered):column])
                if column < len(remembered):
                    width = max(width, remembered[column])
                    remembered[column] = width
                else:
                    remembered.append(width)
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    result = "\n".join(out)
    return result + "\n" if trailing_newline else result


class TableWriter:
    """Prints table rows in batches with kubectl ``get``'s alignment and remembered widths."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def format(self, rows: list[list[str]]) -> str:
        if not rows:
            return ""
        text = "".join("\t".join(row) + "\n" for row in rows)
        return tabwrite(text, minwidth=GET_MINWIDTH, padding=GET_PADDING, remembered=self.widths)


def format_table(rows: list[list[str]]) -> str:
    """One table (header included) as kubectl ``get`` prints it; ends with a newline."""
    return TableWriter().format(rows)
