"""Footprint: each running scheme's shadow memory now and over the events so far.

A Line API plot: one row per scheme with its total (static + dynamic + metadata) now, its peak,
and a sparkline of the total after each event (scaled between the scheme's own minimum and
maximum, so the small dynamic changes of the per-page schemes stay visible next to flat's big
static reservation). The shown scheme is marked ``▶`` and bold. Below, the shown scheme's bill
in detail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..engine.profile import format_size
from .base_style import PaletteStyleMixin
from .text_lines import fold_line

if TYPE_CHECKING:
    from ..session import Session

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: np.ndarray, width: int) -> str:
    """``values`` resampled to ``width`` cells (max per bucket), as block characters scaled
    between their minimum and maximum; a flat series is a line."""
    if width <= 0 or len(values) == 0:
        return ""
    n = len(values)
    if n > width:
        edges = np.linspace(0, n, width + 1).astype(np.int64)
        values = np.maximum.reduceat(values, edges[:-1])
    lo, hi = int(values.min()), int(values.max())
    if hi == lo:
        return "─" * len(values)
    levels = ((values - lo) * (len(BARS) - 1) // (hi - lo)).astype(np.int64)
    return "".join(BARS[i] for i in levels)


class FootprintPlot(PaletteStyleMixin, ScrollView):
    """Shadow memory per scheme: now, peak, and its history."""

    # the scrollbar's columns kept: lines built for the width stay clear of it when it shows
    DEFAULT_CSS = "FootprintPlot { height: 1fr; scrollbar-gutter: stable; }"
    # colours (kinspect.tcss; unstyled without an app): a scheme's name, the shown scheme's,
    # the sizes, a sparkline, the shown scheme's sparkline, the header and the details
    COMPONENT_CLASSES = {
        f"footprint--{name}" for name in ("label", "shown", "value", "spark", "spark-shown", "dim")
    }
    STYLE_PREFIX = "footprint--"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session: Session | None = None
        self._lines: list[Strip] = []
        self._key: tuple[int, int, str, int] | None = None

    def set_session(self, session) -> None:
        self.session = session
        self._key = None
        self.update_plot()

    def update_plot(self) -> None:
        s = self.session
        if s is None:
            return
        width = max(20, (self.scrollable_content_region.width or 80))
        key = (s.generation, s.position, s.shown, width)
        if key == self._key:
            return
        self._key = key
        self._lines = self.build_lines(width)
        self.virtual_size = Size(width, len(self._lines))
        self.refresh()

    def on_resize(self) -> None:
        self.update_plot()

    def on_mount(self) -> None:
        self._restyle()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._restyle()

    def _restyle(self) -> None:
        self.load_styles()
        self._key = None  # update_plot() builds the lines again, in these styles
        self.update_plot()

    def build_lines(self, width: int) -> list[Strip]:
        style = self.component_style
        label_style, shown_style, dim = style("label"), style("shown"), style("dim")
        s = self.session
        assert s is not None  # (update_plot() checked it)
        fps = s.footprints()
        label_w = max(len(n) for n in s.scheme_names) + 2
        spark_w = max(8, width - label_w - 22)
        out = [
            Strip(
                [
                    Segment(
                        " " * label_w + f"{'now':>9} {'peak':>9}  "
                        f"total shadow bytes after each event (0..{s.position})",
                        dim,
                    )
                ]
            )
        ]
        for name in s.scheme_names:
            hist = s.footprint_history(name)
            shown = name == s.shown
            now = int(hist[-1]) if len(hist) else fps[name].total_bytes()
            peak = int(hist.max()) if len(hist) else now
            mark = "▶ " if shown else "  "
            segs = [
                Segment(f"{mark}{name:<{label_w - 2}}", shown_style if shown else label_style),
                Segment(f"{format_size(now):>9} {format_size(peak):>9}  ", style("value")),
                Segment(
                    sparkline(hist, spark_w), style("spark-shown") if shown else style("spark")
                ),
            ]
            out.append(Strip(segs))
        fp = fps[s.shown]
        out.append(Strip([]))
        lines = [[Segment(f"{s.shown}: ", shown_style), Segment(self._bill(fp), label_style)]]
        lines += [[Segment("  " + text, dim)] for text in self._details(fp)]
        out += [Strip(piece) for line in lines for piece in fold_line(line, width)]
        return out

    @staticmethod
    def _bill(fp) -> str:
        return (
            f"static {format_size(fp.static_bytes)} + dynamic {format_size(fp.dynamic_bytes)}"
            f" (peak {format_size(fp.dynamic_peak_bytes)}) + metadata "
            f"{format_size(fp.metadata_bytes)} = {format_size(fp.total_bytes())}"
        )

    @staticmethod
    def _details(fp) -> list[str]:
        lines = []
        if fp.virtual_range_bytes:
            reserved = format_size(fp.virtual_range_bytes)
            lines.append(f"contiguous virtual range reserved: {reserved}")
        if fp.blocks_capacity or fp.blocks_in_use:
            lines.append(
                f"shadow blocks in use {fp.blocks_in_use} of {fp.blocks_capacity} "
                f"slots in {fp.shadow_slab_pages} shadow slab pages"
            )
        if fp.shadow_pages_mapped or fp.shadow_pages_needed or fp.page_table_pages:
            lines.append(
                f"shadow pages mapped {fp.shadow_pages_mapped} (needed "
                f"{fp.shadow_pages_needed}), page-table pages {fp.page_table_pages}"
            )
        per = f"{fp.loads / fp.checks:.2f}" if fp.checks else "-"
        lines.append(
            f"checks {fp.checks}, memory loads {fp.loads} ({per} per check); inline "
            f"{'yes' if fp.inline_possible else 'no'}, stack instrumentation "
            f"{'yes' if fp.stack_possible else 'no'}"
        )
        return lines

    def render_line(self, y: int) -> Strip:
        row = y + int(self.scroll_offset.y)
        width = self.size.width or 80
        strip = self._lines[row] if 0 <= row < len(self._lines) else Strip([])
        return strip.apply_style(self.base_style).crop_extend(
            int(self.scroll_offset.x), int(self.scroll_offset.x) + width, self.base_style
        )

    def text(self) -> str:
        return "\n".join(line.text.rstrip() for line in self._lines)
