"""Shadow bytes: the shadow of the selected page, 16 bytes a row, each row labelled with the
memory address it describes, as in the kernel's "Memory state around the buggy address"; each
byte coloured by meaning (legend below it), the bad granule marked like the kernel does
(``>`` before its row, ``^`` under it), the selected granule in reverse.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from ..engine.kasan import KASAN_GRANULE_SIZE
from .base_style import LineFrameMixin, PaletteStyleMixin
from .palette import (
    BAD_GRANULE_PAINT,
    SELECTED_GRANULE_PAINT,
    SHADOW_KIND,
    SHADOW_LEGEND,
    SHADOW_PAINTS,
    component_css,
)
from .scrolling import NoScrollbar

Reader = Callable[[int, int], bytes]
_HEX = [f"{b:02x}" for b in range(256)]


class ShadowBytes(NoScrollbar, LineFrameMixin, PaletteStyleMixin, ScrollView, can_focus=True):
    """The shadow of one page (``page_size / 8`` bytes) from a base address."""

    COMPONENT_CLASSES = {f"shadowbytes--{p.name}" for p in SHADOW_PAINTS.values()} | {
        "shadowbytes--bad",
        "shadowbytes--selected",
        "shadowbytes--address",
        "shadowbytes--note",
    }
    # the palette's classes styled from its table; a row's address and the note shown
    # instead of bytes in kinspect.tcss
    DEFAULT_CSS = "ShadowBytes { height: 1fr; overflow-y: hidden; }\n" + component_css(
        "ShadowBytes", [*SHADOW_PAINTS.values(), BAD_GRANULE_PAINT, SELECTED_GRANULE_PAINT]
    )
    STYLE_PREFIX = "shadowbytes--"

    BINDINGS = [
        Binding("up", "move(-16)", "Up", show=False, id="shadow.up"),
        Binding("down", "move(16)", "Down", show=False, id="shadow.down"),
        Binding("h", "move(-1)", "Granule left", show=False, id="shadow.left"),
        Binding("l", "move(1)", "Granule right", show=False, id="shadow.right"),
    ]

    class GranuleSelected(Message):
        def __init__(self, addr: int) -> None:
            super().__init__()
            self.addr = addr

    def __init__(
        self,
        *,
        bits: int = 64,
        page_size: int = 4096,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.bits = bits
        self.page_size = page_size
        self.reader: Reader | None = None
        self.base: int | None = None  # first address shown (page aligned)
        self.selected: int | None = None  # selected granule's address
        self.bad: int | None = None  # first bad address of the report shown
        self.note = ""  # shown instead of bytes (no shadow here)
        self._data = b""
        self._gen = 0
        self._cache: LRUCache[tuple, Strip] = LRUCache(512)
        self._fixed_width: int | None = None
        self._per_row_key: tuple | None = None
        self._per_row = 16
        self._lines_key: tuple | None = None
        self._lines: list[int] = []
        self._bytes_cache: LRUCache[tuple, list[Segment]] = LRUCache(256)
        self._styles_of_bytes: list[Style] | None = None

    # ------------------------------------------------------------------ input

    def show(
        self,
        reader: Reader | None,
        addr: int | None,
        selected: int | None = None,
        bad: int | None = None,
        note: str = "",
    ) -> None:
        """Show the shadow of the page holding ``addr`` (re-read now)."""
        old = (self.base, self._data, self.selected, self.bad, self.note, self.per_row)
        self.reader = reader
        self.note = note if addr is None or reader is None else ""
        if addr is None or reader is None:
            self.base = None
            self._data = b""
        else:
            self.base = addr - addr % self.page_size
            self._data = reader(self.base, self.page_size)
        self.selected = None if selected is None else selected - selected % KASAN_GRANULE_SIZE
        self.bad = None if bad is None else bad - bad % KASAN_GRANULE_SIZE
        if (
            self.bad is not None
            and self.base is not None
            and not self.base <= self.bad < self.base + self.page_size
        ):
            self.bad = None
        new = (self.base, self._data, self.selected, self.bad, self.note, self.per_row)
        if new == old:
            return
        self._gen += 1
        self._update_virtual_size()
        if (
            old[0] == self.base
            and old[3] == self.bad
            and old[5] == self.per_row
            and self.base is not None
            and len(old[1]) == len(self._data)
        ):
            # Same page, same marks: redraw the rows whose bytes or selection changed.
            per = self.per_row
            rows = {
                r
                for r in range(self.rows)
                if old[1][r * per : (r + 1) * per] != self._data[r * per : (r + 1) * per]
            }
            for sel in (old[2], self.selected):
                if sel is not None:
                    rows.add((sel - self.base) // KASAN_GRANULE_SIZE // per)
            lines = self._line_rows()
            for r in rows:
                if r in lines:
                    self.refresh_lines(lines.index(r), 1)
        else:
            self.refresh()
        if self.is_mounted:
            if self.size.height:
                self.scroll_to_selected()
            else:
                self.call_after_refresh(self.scroll_to_selected)

    @property
    def per_row(self) -> int:
        # Asked for every line drawn: worked out again only when the sizes it depends on
        # change (the scrollable region is a walk up the DOM).
        key = (self._fixed_width, self.outer_size, self.show_vertical_scrollbar)
        if key != self._per_row_key:
            width = self._fixed_width or self.scrollable_content_region.width or 80
            self._per_row_key = key
            self._per_row = 16 if width >= self.bits // 4 + 2 + 48 else 8
        return self._per_row

    @property
    def rows(self) -> int:
        return len(self._data) // self.per_row

    def _line_rows(self) -> list[int]:
        """Row index of each line (-1 for the caret line under the bad row)."""
        rows, bad = self.rows, self._bad_row()
        if self._lines_key != (rows, bad):
            out = list(range(rows))
            if bad is not None and bad < rows:
                out.insert(bad + 1, -1)
            self._lines_key, self._lines = (rows, bad), out
        return self._lines

    def _bad_row(self) -> int | None:
        if self.bad is None or self.base is None:
            return None
        return (self.bad - self.base) // KASAN_GRANULE_SIZE // self.per_row

    def _update_virtual_size(self) -> None:
        lines = len(self._line_rows()) if self._data else 1
        self.virtual_size = Size(self.bits // 4 + 2 + 3 * self.per_row, lines)

    def on_resize(self) -> None:
        self._update_virtual_size()

    def on_mount(self) -> None:
        self.load_styles()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.load_styles()
        self._cache.clear()
        self._per_row_key = None

    def load_styles(self) -> None:
        super().load_styles()
        self._styles_of_bytes = None
        self._bytes_cache.clear()

    # ------------------------------------------------------------------ cursor

    def action_move(self, granules: int) -> None:
        if self.base is None:
            return
        sel = self.selected if self.selected is not None else self.base
        new = sel + granules * KASAN_GRANULE_SIZE
        if self.base <= new < self.base + self.page_size:
            self.selected = new
            self._gen += 1
            self.refresh()
            self.scroll_to_selected()
            self.post_message(self.GranuleSelected(new))

    def scroll_to_selected(self) -> None:
        target = self.selected if self.selected is not None else self.bad
        if target is None or self.base is None:
            return
        row = (target - self.base) // KASAN_GRANULE_SIZE // self.per_row
        line = self._line_rows().index(row) if row < self.rows else 0
        top, height = int(self.scroll_offset.y), self.size.height
        if not top <= line < top + height - 1:
            self.scroll_to(y=max(0, line - height // 2), animate=False, immediate=True)

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self.base is None:
            return
        lines = self._line_rows()
        y = offset.y + int(self.scroll_offset.y)
        if not 0 <= y < len(lines) or lines[y] < 0:
            return
        x = offset.x + int(self.scroll_offset.x) - (self.bits // 4 + 3)
        if 0 <= x < 3 * self.per_row:
            self.selected = self.base + (lines[y] * self.per_row + x // 3) * KASAN_GRANULE_SIZE
            self._gen += 1
            self.refresh()
            self.post_message(self.GranuleSelected(self.selected))

    # ------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y, width = self.frame
        return self.line_strip(y + scroll_y).crop_extend(
            scroll_x, scroll_x + (width or self.virtual_size.width), self.base_style
        )

    def line_strip(self, line: int) -> Strip:
        """A line in the view's style (rows are built in it: nothing is left to render_line
        but the width)."""
        if not self._data:
            if line == 0 and self.note:
                return Strip([Segment(self.note, self.base_style + self.component_style("note"))])
            return Strip.blank(self.virtual_size.width, self.base_style)
        lines = self._line_rows()
        if not 0 <= line < len(lines):
            return Strip.blank(self.virtual_size.width, self.base_style)
        row = lines[line]
        per = self.per_row
        base = self.base
        assert base is not None  # (bytes are shown: a page is)
        key: tuple[object, ...]
        if row < 0:
            assert self.bad is not None  # (a caret line marks the bad granule)
            key = ("caret", self.bad - base, per)
        else:
            start = base + row * per * KASAN_GRANULE_SIZE
            key = (
                start,
                self._data[row * per : (row + 1) * per],
                per,
                self._col_of(self.selected, start),
                self._col_of(self.bad, start),
            )
        strip = self._cache.get(key)
        if strip is None:
            strip = self._caret(lines[line - 1]) if row < 0 else self._row(row)
            self._cache[key] = strip
        return strip

    def _col_of(self, addr: int | None, start: int) -> int:
        """The column of granule ``addr`` in the row from ``start``; -1 when not in it."""
        if addr is None or not start <= addr < start + self.per_row * KASAN_GRANULE_SIZE:
            return -1
        return (addr - start) // KASAN_GRANULE_SIZE

    def _row(self, row: int) -> Strip:
        per = self.per_row
        assert self.base is not None
        addr = self.base + row * per * KASAN_GRANULE_SIZE
        width = self.bits // 4
        guilty = self._bad_row() == row
        address = Segment(
            (">" if guilty else " ") + f"{addr & ((1 << self.bits) - 1):0{width}x}:",
            self.base_style + self.component_style("address"),
        )
        data = self._data[row * per : (row + 1) * per]
        return Strip(
            [
                address,
                *self._byte_segments(
                    data, self._col_of(self.bad, addr), self._col_of(self.selected, addr)
                ),
            ]
        )

    def _byte_segments(self, data: bytes, bad: int, selected: int) -> list[Segment]:
        """A row's bytes after its address: runs of equally styled bytes, each after a space.
        Cached by the bytes and the marked columns: pages share most rows (all 00, all fc...)."""
        key = (data, bad, selected)
        segments = self._bytes_cache.get(key)
        if segments is not None:
            return segments
        styles = self._byte_styles()
        bad_style = self.palette_style(BAD_GRANULE_PAINT)
        selected_style = self.palette_style(SELECTED_GRANULE_PAINT)
        base = self.base_style
        space = Segment(" ", base)
        segments = []
        run_style: Style | None = None
        run: list[str] = []
        for i, b in enumerate(data):
            style = bad_style if i == bad else selected_style if i == selected else styles[b]
            if style is not run_style:
                if run:
                    segments.append(Segment(" ".join(run), base + run_style))
                    run = []
                segments.append(space)
                run_style = style
            run.append(_HEX[b])
        if run:
            segments.append(Segment(" ".join(run), base + run_style))
        self._bytes_cache[key] = segments
        return segments

    def _byte_styles(self) -> list[Style]:
        """The style of each shadow byte value, by its meaning."""
        if self._styles_of_bytes is None:
            self._styles_of_bytes = [
                self.palette_style(SHADOW_PAINTS[kind]) for kind in SHADOW_KIND
            ]
        return self._styles_of_bytes

    def _caret(self, row: int) -> Strip:
        assert self.bad is not None and self.base is not None
        col = (self.bad - self.base) // KASAN_GRANULE_SIZE - row * self.per_row
        pad = 1 + self.bits // 4 + 1 + 3 * col + 1
        return Strip(
            [
                Segment(" " * pad, self.base_style),
                Segment("^", self.base_style + self.palette_style(BAD_GRANULE_PAINT)),
            ]
        )

    def text(self) -> str:
        """Every line as plain text (tests, copy)."""
        if not self._data:
            return self.note
        return "\n".join(self.line_strip(i).text.rstrip() for i in range(len(self._line_rows())))

    def row_text_at(self, addr: int) -> str | None:
        """The text of the row holding ``addr`` (``y`` copies it)."""
        if self.base is None or not self.base <= addr < self.base + self.page_size:
            return None
        row = (addr - self.base) // KASAN_GRANULE_SIZE // self.per_row
        return self._row(row).text


class ShadowLegend(Static):
    """What the shadow byte colours mean (each sample shows its hex value too)."""

    DEFAULT_CSS = "ShadowLegend { height: auto; }"  # its colour: kinspect.tcss

    def __init__(self, **kwargs) -> None:
        super().__init__(self.legend_text(), **kwargs)

    @staticmethod
    def legend_text() -> Text:
        text = Text()
        for hexes, kind, meaning in SHADOW_LEGEND:
            if text:
                text.append("  ")
            text.append(hexes, SHADOW_PAINTS[kind].rich())
            text.append(f" {meaning}")
        text.append("  ")
        text.append("^", BAD_GRANULE_PAINT.rich())
        text.append(" bad granule")
        return text
