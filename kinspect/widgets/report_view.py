"""The latest KASAN report, in the kernel's text, coloured like the other views."""

from __future__ import annotations

import re

from rich.text import Text

from ..engine.report import format_report
from .palette import BAD_GRANULE_PAINT, SHADOW_KIND, SHADOW_PAINTS
from .text_lines import TextLines

_META_ROW = re.compile(r"^([> ])([0-9a-f]+): ((?:[0-9a-f]{2} ?)+)$")

EMPTY = ("No KASAN report yet.\n\nStep with space or →, or press r to run to the next report.")


def report_text(report, index: int | None = None, total: int | None = None,
                line: int | None = None) -> Text:
    """The report as the kernel prints it, with the bug line and shadow bytes coloured."""
    t = Text()
    if report is None:
        t.append(EMPTY, "italic #8a8a8a")
        return t
    if index is not None:
        # the event that made it, counted as the status line counts them (event 8/18: eight
        # events applied, the eighth the last)
        where = (f" · event {report.event_index + 1}" if report.event_index is not None
                 else "")
        where += f" (line {line})" if line is not None else ""
        t.append(f"report {index} of {total}{where}\n", "#8a8a8a")
    for raw in format_report(report).splitlines():
        if raw.startswith("BUG: KASAN:"):
            t.append(raw + "\n", "bold #ff5f5f")
            continue
        if raw.strip() == "^":
            t.append(raw[:raw.index("^")])
            t.append("^", BAD_GRANULE_PAINT.rich())
            t.append("\n")
            continue
        m = _META_ROW.match(raw)
        if m:
            t.append(m.group(1), "bold #ff5f5f" if m.group(1) == ">" else "")
            t.append(m.group(2) + ":", "#8a8a8a")
            for byte in m.group(3).split():
                t.append(" ")
                t.append(byte, SHADOW_PAINTS[SHADOW_KIND[int(byte, 16)]].rich())
            t.append("\n")
            continue
        t.append(raw + "\n")
    return t


class ReportView(TextLines):
    """Scrollable report text (lines longer than the pane is wide fold)."""

    DEFAULT_CSS = "ReportView { height: 1fr; overflow-x: hidden; }"
    wrap = True

    def __init__(self, **kwargs) -> None:
        super().__init__(report_text(None), **kwargs)

    def show(self, report, index=None, total=None, line=None) -> None:
        self.set_text(report_text(report, index, total, line), scroll_home=True)

    def text(self) -> str:
        return self.plain
