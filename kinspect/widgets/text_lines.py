"""Rich Text shown through the Line API: updating it repaints the lines that changed and
nothing else (a Static whose content changes asks the whole screen for a new layout)."""

from __future__ import annotations

from itertools import groupby

from rich.console import Console
from rich.segment import Segment
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from .base_style import BaseStyleMixin

_CONSOLE = Console(width=4096, color_system="truecolor", force_terminal=True,
                   legacy_windows=False, no_color=False)


class TextLines(BaseStyleMixin, ScrollView):
    """Lines of Rich Text, scrollable, no wrapping."""

    DEFAULT_CSS = "TextLines { height: 1fr; }"

    def __init__(self, text: Text | str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._lines: list[Strip] = []
        self._plain = ""
        self.set_text(text)

    def set_text(self, text: Text | str, scroll_home: bool = False) -> None:
        if isinstance(text, str):
            text = Text(text)
        if text.plain == self._plain and self._lines and text.spans == self._spans:
            return
        self._plain = text.plain
        self._spans = list(text.spans)
        before = self._lines
        self._lines = [Strip(line) for line in
                       Segment.split_lines(text.render(_CONSOLE, end=""))]
        # The virtual size only grows (rounded up): a new virtual size makes the whole screen
        # lay itself out again, which costs more than a few blank lines at the end.
        width = max((s.cell_length for s in self._lines), default=1)
        old = self.virtual_size
        size = Size(max(old.width, -(-width // 64) * 64),
                    max(old.height, -(-len(self._lines) // 8) * 8))
        if size != old:
            self.virtual_size = size
        if scroll_home:
            self.scroll_to(0, 0, animate=False, immediate=True)
        self._refresh_changed(before, self._lines)

    def _refresh_changed(self, old: list[Strip], new: list[Strip]) -> None:
        """Repaint the runs of lines that differ (a struct page of another page shares most
        of its labels and layout with the last one's)."""
        n = max(len(old), len(new))
        changed = [y >= len(old) or y >= len(new) or old[y] != new[y] for y in range(n)]
        for differs, run in groupby(range(n), changed.__getitem__):
            if differs:
                rows = list(run)
                self.refresh_lines(rows[0], len(rows))

    def render_line(self, y: int) -> Strip:
        row = y + int(self.scroll_offset.y)
        width = self.size.width
        strip = self._lines[row] if 0 <= row < len(self._lines) else Strip([])
        return strip.apply_style(self.base_style).crop_extend(
            int(self.scroll_offset.x), int(self.scroll_offset.x) + width,
                                 self.base_style)

    @property
    def plain(self) -> str:
        return self._plain
