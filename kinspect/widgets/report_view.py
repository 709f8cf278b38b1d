"""The latest KASAN report, in the kernel's text, coloured like the other views."""

from __future__ import annotations

import re
from collections.abc import Callable

from rich.style import Style
from rich.text import Text

from ..engine.report import format_report
from .base_style import unstyled
from .palette import BAD_GRANULE_PAINT, SHADOW_KIND, SHADOW_PAINTS
from .text_lines import TextLines

_META_ROW = re.compile(r"^([> ])([0-9a-f]+): ((?:[0-9a-f]{2} ?)+)$")

EMPTY = "No KASAN report yet.\n\nStep with space or →, or press r to run to the next report."


def report_text(
    report,
    index: int | None = None,
    total: int | None = None,
    line: int | None = None,
    style: Callable[[str], Style] = unstyled,
) -> Text:
    """The report as the kernel prints it, with the bug line and shadow bytes coloured: the
    shadow bytes as the palette says, the rest by ``style(role)`` (ReportView: its component
    classes ``report--ROLE``; unstyled without)."""
    t = Text()
    if report is None:
        t.append(EMPTY, style("empty"))
        return t
    if index is not None:
        # the event that made it, counted as the status line counts them (event 8/18: eight
        # events applied, the eighth the last)
        where = f" · event {report.event_index + 1}" if report.event_index is not None else ""
        where += f" (line {line})" if line is not None else ""
        t.append(f"report {index} of {total}{where}\n", style("dim"))
    for raw in format_report(report).splitlines():
        if raw.startswith("BUG: KASAN:"):
            t.append(raw + "\n", style("bug"))
            continue
        if raw.strip() == "^":
            t.append(raw[: raw.index("^")])
            t.append("^", BAD_GRANULE_PAINT.rich())
            t.append("\n")
            continue
        m = _META_ROW.match(raw)
        if m:
            t.append(m.group(1), style("bug") if m.group(1) == ">" else "")
            t.append(m.group(2) + ":", style("dim"))
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
    # report_text()'s colours (kinspect.tcss): no report yet, the header and the shadow rows'
    # addresses, the BUG line and the guilty row's marker
    COMPONENT_CLASSES = {"report--empty", "report--dim", "report--bug"}
    wrap = True

    def __init__(self, **kwargs) -> None:
        super().__init__(report_text(None), **kwargs)
        self._report: tuple = (None, None, None, None)  # show()'s arguments

    def on_mount(self) -> None:
        self._show_report()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self.is_mounted:
            self._show_report()

    def show(self, report, index=None, total=None, line=None) -> None:
        self._report = (report, index, total, line)
        self._show_report(scroll_home=True)

    def _show_report(self, scroll_home: bool = False) -> None:
        report, index, total, line = self._report
        self.set_text(report_text(report, index, total, line, self._style), scroll_home=scroll_home)

    def _style(self, role: str) -> Style:
        return self.get_component_rich_style(f"report--{role}", partial=True)

    def text(self) -> str:
        return self.plain
