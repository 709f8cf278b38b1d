"""Aligned text tables that fit an 80-column terminal.

A table too wide for one block is printed as several blocks, each repeating the first (key)
column: ``kinspect profiles`` and the ``kinspect compare`` table are read in a terminal and in a
mail, where a 160-column line wraps into noise.
"""

from __future__ import annotations

from collections.abc import Sequence

WIDTH = 80
"""The width every block fits in (a terminal's default, and a mail's)."""


def format_blocks(
    rows: Sequence[Sequence[str]],
    blocks: Sequence[Sequence[int]],
    right: Sequence[bool],
    gap: str = "  ",
) -> str:
    """``rows`` (the first is the header) printed as one aligned block per entry of ``blocks``
    (column indices, the key column 0 first in each), blocks separated by an empty line.
    ``right[i]`` right-aligns column ``i`` (numbers); the others are left-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out: list[str] = []
    for columns in blocks:
        if out:
            out.append("")
        for row in rows:
            cells = (
                row[i].rjust(widths[i]) if right[i] else row[i].ljust(widths[i]) for i in columns
            )
            out.append(gap.join(cells).rstrip())
    return "\n".join(out)


def count(n: int, noun: str) -> str:
    """``n`` and the noun, singular for one: ``count(1, "report")`` -> ``"1 report"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
