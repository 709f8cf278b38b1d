"""The page map: every page of the machine as a grid, one cell per page (or per 2^z pages
when zoomed out), coloured and lettered by state, with a cursor that selects a pfn.

A Line API widget: ``render_line(y)`` aggregates the row's pages with numpy (the most telling
state of a cell's pages wins), run-length encodes equal cells into a few Segments and caches the
Strip under a key holding every visual input (row, its generation, zoom, columns, cursor and
report marks). Step results name the pfn ranges they changed; only those rows are refreshed.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.cache import LRUCache
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..engine.memory import PageState
from ..engine.view import MachineView, machine_view
from .base_style import LineFrameMixin, PaletteStyleMixin
from .palette import (
    ATTACHED_GLYPH,
    ATTACHED_PAINT,
    CODE_OF_RANK,
    CURSOR_PAINT,
    HOLE,
    NCODES,
    OTHER_SHADOW,
    PAGE_PAINTS,
    RANK,
    REPORT_PAINT,
    component_css,
)
from .scrolling import NoScrollbar

_RANK = np.array(RANK, dtype=np.uint8)
_CODE_OF_RANK = np.array(CODE_OF_RANK, dtype=np.uint8)


def merge_cells(codes: np.ndarray, ncells: int, ppc: int) -> np.ndarray:
    """The page states of ``ncells`` cells of ``ppc`` pages each: a cell shows the state of
    highest rank among its pages (palette.RANK: a slab page is seen among free ones)."""
    return _CODE_OF_RANK[_RANK[codes].reshape(ncells, ppc).max(axis=1)]


MAX_ZOOM = 40
_CURSOR, _REPORT = 100, 101  # cell values of the marked cells, past the painted ones


class PageSource(Protocol):
    """What the page map reads: the pfn span, and cells aggregated over pages."""

    first_pfn: int
    end_pfn: int

    def cells(self, first: int, ncells: int, ppc: int) -> tuple[np.ndarray, np.ndarray]:
        """(display codes, attached flags) of ``ncells`` cells of ``ppc`` pages from first."""

    def describe(self, pfn: int) -> str:
        """A short text for the pfn under the cursor."""


class SessionPages:
    """A PageSource over a Session's machine and the shown scheme's view."""

    def __init__(self, session, view) -> None:
        self.session = session
        self.view = view
        p = session.profile
        self.first_pfn = p.min_pfn
        self.end_pfn = p.max_pfn
        self._ranges = [(r.start >> p.page_shift, r.end >> p.page_shift) for r in p.memory]
        self._pps = p.pages_per_section
        self._section_rank: dict[int, tuple[int, int]] = {}

    def _holes(self, codes: np.ndarray, first: int) -> None:
        """Mark the pfns of [first, first + len) that are not RAM."""
        end = first + len(codes)
        prev = first
        for a, b in self._ranges:
            if b <= first:
                prev = max(prev, b)
                continue
            if a >= end:
                break
            if a > prev:
                codes[prev - first : a - first] = HOLE
            prev = max(prev, b)
        if prev < end:
            codes[prev - first :] = HOLE

    def cells(self, first: int, ncells: int, ppc: int) -> tuple[np.ndarray, np.ndarray]:
        count = ncells * ppc
        view = self.view
        machine = machine_view(self.session)
        if ppc <= self._pps or count <= 1 << 21:
            codes = machine.page_states(first, count)
            self._holes(codes, first)
            other = codes == PageState.SHADOW_SLAB
            if other.any():
                # a shadow page that is not this scheme's own is another scheme's
                own = np.asarray(view.own_shadow_in(first, count), dtype=np.int64) - first
                other[own] = False
                codes[other] = OTHER_SHADOW
            if ppc > 1:
                codes = merge_cells(codes, ncells, ppc)
        else:
            codes = self._cells_by_section(machine, first, ncells, ppc)
        attached = np.zeros(ncells, dtype=bool)
        att = view.attached_in(first, count)
        if att:
            attached[(np.asarray(att, dtype=np.int64) - first) // ppc] = True
        return codes, attached

    def _cells_by_section(
        self, machine: MachineView, first: int, ncells: int, ppc: int
    ) -> np.ndarray:
        """Cells bigger than a memory section: untouched sections read free (or hole)."""
        gen = self.session.generation
        ranks = np.full(ncells, RANK[HOLE], dtype=np.uint8)
        for i in range(ncells):
            a, b = first + i * ppc, first + (i + 1) * ppc
            if any(ra < b and rb > a for ra, rb in self._ranges):
                ranks[i] = RANK[PageState.FREE]
        for start, states in machine.for_each_section_states():
            if start + self._pps <= first or start >= first + ncells * ppc:
                continue
            cached = self._section_rank.get(start)
            if cached is None or cached[0] != gen:
                cached = (gen, int(_RANK[states].max()))
                self._section_rank[start] = cached
            i = (start - first) // ppc
            if 0 <= i < ncells:
                ranks[i] = max(ranks[i], cached[1])
        return _CODE_OF_RANK[ranks]

    def describe(self, pfn: int) -> str:
        codes, att = self.cells(pfn, 1, 1)
        paint = PAGE_PAINTS[int(codes[0])]
        return paint.meaning + (" · shadow attached" if att[0] else "")


class PageMap(NoScrollbar, LineFrameMixin, PaletteStyleMixin, ScrollView, can_focus=True):
    """Pages as a grid: one cell per page, or per 2^zoom pages."""

    COMPONENT_CLASSES = {f"pagemap--{p.name}" for p in PAGE_PAINTS.values()} | {
        "pagemap--attached",
        "pagemap--cursor",
        "pagemap--report",
        "pagemap--gutter",
        "pagemap--pending",
    }
    # the palette's classes styled from its table; the gutter (pfns) and a row still to be
    # read (pending) in kinspect.tcss
    DEFAULT_CSS = "PageMap { height: 1fr; overflow-y: hidden; }\n" + component_css(
        "PageMap", [*PAGE_PAINTS.values(), ATTACHED_PAINT, CURSOR_PAINT, REPORT_PAINT]
    )
    STYLE_PREFIX = "pagemap--"

    BINDINGS = [
        Binding("up", "cursor(0, -1)", "Up", show=False, id="pagemap.up"),
        Binding("down", "cursor(0, 1)", "Down", show=False, id="pagemap.down"),
        Binding("h", "cursor(-1, 0)", "Cell left", show=False, id="pagemap.left"),
        Binding("l", "cursor(1, 0)", "Cell right", show=False, id="pagemap.right"),
        Binding("pageup", "cursor_page(-1)", "Page up", show=False, id="pagemap.pageup"),
        Binding("pagedown", "cursor_page(1)", "Page down", show=False, id="pagemap.pagedown"),
        Binding("home", "cursor_home", "First page", show=False, id="pagemap.home"),
        Binding("end", "cursor_end", "Last page", show=False, id="pagemap.end"),
    ]

    class PfnSelected(Message):
        """The cursor moved to a pfn (by key or mouse)."""

        def __init__(self, pfn: int) -> None:
            super().__init__()
            self.pfn = pfn

    def __init__(
        self,
        source: PageSource | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.source = source
        self.zoom = 0  # pages per cell = 1 << zoom
        self.cursor = source.first_pfn if source is not None else 0
        self.report_pfn: int | None = None
        self.frozen = False
        self._cache: LRUCache[tuple, Strip] = LRUCache(2048)
        self._row_gen: dict[int, int] = {}
        self._base_gen = 0
        self._gen = 0
        self._paints: list[tuple[str, Style]] | None = None
        self._fixed_width: int | None = None
        self._cols_key: tuple | None = None
        self._cols = 1
        self._gutter: int | None = None

    # -------------------------------------------------------------- geometry

    @property
    def ppc(self) -> int:
        return 1 << self.zoom

    @property
    def gutter_width(self) -> int:
        if self._gutter is None:
            end = self.source.end_pfn if self.source else 0
            self._gutter = len(f"{end:#x}") + 1
        return self._gutter

    @property
    def cols(self) -> int:
        # Asked several times for every line drawn: worked out again only when the sizes it
        # depends on change (the scrollable region is a walk up the DOM).
        key = (self._fixed_width, self.outer_size, self.gutter_width)
        if key != self._cols_key:
            width = self._fixed_width or self.scrollable_content_region.width or 80
            room = max(1, width - self.gutter_width)
            cols = 1
            while cols * 2 <= room and cols < 256:
                cols *= 2
            self._cols_key, self._cols = key, cols
        return self._cols

    @property
    def base(self) -> int:
        """First pfn of row 0 (the span's start, aligned to a row)."""
        if self.source is None:
            return 0
        rp = self.cols * self.ppc
        return self.source.first_pfn // rp * rp

    @property
    def rows(self) -> int:
        if self.source is None:
            return 0
        rp = self.cols * self.ppc
        return max(1, -(-(self.source.end_pfn - self.base) // rp))

    def row_of(self, pfn: int) -> int:
        return (pfn - self.base) // (self.cols * self.ppc)

    def col_of(self, pfn: int) -> int:
        return (pfn - self.base) // self.ppc % self.cols

    def pfn_at(self, row: int, col: int) -> int:
        return self.base + (row * self.cols + col) * self.ppc

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self.gutter_width + self.cols, self.rows)

    def on_resize(self) -> None:
        self._update_virtual_size()
        self.scroll_to_cursor(animate=False)

    def on_mount(self) -> None:
        self._update_virtual_size()
        self.load_styles()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.load_styles()
        self._cache.clear()
        self._cols_key = None

    def load_styles(self) -> None:
        super().load_styles()
        self._paints = None

    # -------------------------------------------------------------- data in

    def set_source(self, source: PageSource) -> None:
        self.source = source
        self._gutter = None
        self.invalidate()
        self._update_virtual_size()

    def invalidate(self, generation: int | None = None) -> None:
        """Everything changed (a jump, a scheme switch)."""
        self._gen = generation if generation is not None else self._gen + 1
        self._base_gen = self._gen
        self._row_gen.clear()
        self.refresh()

    def apply_dirty(self, generation: int, dirty) -> None:
        """Rows holding the changed pfn ranges get the new generation and are redrawn."""
        self._gen = generation
        if dirty is None:
            self.invalidate(generation)
            return
        rp = self.cols * self.ppc
        base = self.base
        top = int(self.scroll_offset.y)
        height = self.size.height
        shown: set[int] = set()
        for first, count in dirty:
            r0 = (first - base) // rp
            r1 = (first + count - 1 - base) // rp
            if r1 - r0 > 4096:
                self.invalidate(generation)
                return
            for row in range(r0, r1 + 1):
                self._row_gen[row] = generation
            shown.update(range(max(r0, top), min(r1, top + height - 1) + 1))
        self._refresh_rows(*shown)

    def _refresh_rows(self, *rows: int) -> None:
        """Repaint these rows, in one refresh."""
        if not rows:
            return
        top = int(self.scroll_offset.y)
        width = max(self.virtual_size.width, self.size.width)
        self.refresh(*(Region(0, row - top, width, 1) for row in set(rows)))

    def set_report_pfn(self, pfn: int | None) -> None:
        if pfn == self.report_pfn:
            return
        old, self.report_pfn = self.report_pfn, pfn
        self._refresh_rows(*(self.row_of(p) for p in (old, pfn) if p is not None))

    # -------------------------------------------------------------- cursor

    def select(self, pfn: int, scroll: bool = True, notify: bool = False) -> None:
        """Put the cursor on pfn (clamped to the span)."""
        if self.source is None:
            return
        pfn = max(self.source.first_pfn, min(pfn, self.source.end_pfn - 1))
        old, self.cursor = self.cursor, pfn
        if self.is_mounted:
            self._refresh_rows(self.row_of(old), self.row_of(pfn))
            if scroll:
                self.scroll_to_cursor()
        if notify and old != pfn:
            self.post_message(self.PfnSelected(pfn))

    def scroll_to_cursor(self, animate: bool = False) -> None:
        if self.source is None or not self.size.height:
            return
        row = self.row_of(self.cursor)
        top = int(self.scroll_offset.y)
        height = self.scrollable_content_region.height or self.size.height
        if not top <= row < top + height:
            self.scroll_to(y=max(0, row - height // 2), animate=animate, immediate=True)

    def action_cursor(self, dx: int, dy: int) -> None:
        self.select(self.cursor + (dx + dy * self.cols) * self.ppc, notify=True)

    def action_cursor_page(self, direction: int) -> None:
        step = max(1, self.size.height - 1) * self.cols * self.ppc
        self.select(self.cursor + direction * step, notify=True)

    def action_cursor_home(self) -> None:
        if self.source is not None:
            self.select(self.source.first_pfn, notify=True)

    def action_cursor_end(self) -> None:
        if self.source is not None:
            self.select(self.source.end_pfn - 1, notify=True)

    def on_click(self, event: Click) -> None:
        if self.source is None:
            return
        offset = event.get_content_offset(self)
        if offset is None:
            return
        x = offset.x + int(self.scroll_offset.x) - self.gutter_width
        row = offset.y + int(self.scroll_offset.y)
        if 0 <= x < self.cols and 0 <= row < self.rows:
            self.select(self.pfn_at(row, x), scroll=False, notify=True)

    # -------------------------------------------------------------- zoom

    def set_zoom(self, zoom: int) -> None:
        if self.source is None:
            return
        span = max(1, self.source.end_pfn - self.source.first_pfn)
        limit = 0
        while (1 << limit) * self.cols < span and limit < MAX_ZOOM:
            limit += 1
        zoom = max(0, min(zoom, limit))
        if zoom == self.zoom:
            return
        self.zoom = zoom
        self._update_virtual_size()
        self.invalidate()
        self.call_after_refresh(self.scroll_to_cursor)

    # -------------------------------------------------------------- drawing

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y, _ = self.frame
        strip = self.row_strip(y + scroll_y)
        width = self._width()
        if scroll_x == 0 and strip.cell_length == width:
            return strip  # built as wide as the view, in its style
        return strip.apply_style(self.base_style).crop_extend(
            scroll_x, scroll_x + width, self.base_style
        )

    def _width(self) -> int:
        return self.frame[2] or (self.gutter_width + self.cols)

    def row_strip(self, row: int) -> Strip:
        """The whole row (gutter and cells), from the cache when its inputs are unchanged."""
        if self.source is None or not 0 <= row < self.rows:
            return Strip.blank(self.gutter_width + self.cols, self.base_style)
        geometry = self._geometry()
        key = self._row_key(row, geometry)
        strip = self._cache.get(key)
        if strip is None:
            if self.frozen:
                # A run is changing the machine in a worker: no reads until it stops.
                first = self.pfn_at(row, 0)
                return Strip(
                    [
                        Segment(
                            f"{first:#0{self.gutter_width - 1}x} ", self.component_style("gutter")
                        ),
                        Segment("…", self.component_style("pending")),
                    ]
                )
            self._build_rows(row, geometry)
            strip = self._cache[key]
        return strip

    def _geometry(self) -> tuple[int, int, int]:
        """(columns, pages a cell, first pfn of row 0), worked out once for many rows."""
        return self.cols, self.ppc, self.base

    def _row_key(self, row: int, geometry: tuple[int, int, int]) -> tuple:
        """Every visual input of a row: its generation, the zoom, columns and the marks."""
        cols, ppc, base = geometry
        first = base + row * cols * ppc
        end = first + cols * ppc
        cursor_col = (self.cursor - first) // ppc if first <= self.cursor < end else -1
        report = self.report_pfn
        report_col = (report - first) // ppc if report is not None and first <= report < end else -1
        assert self.source is not None  # (row_strip() checked it)
        return (
            row,
            self._row_gen.get(row, self._base_gen),
            self.zoom,
            cols,
            cursor_col,
            report_col,
            id(self.source),
            self.source.end_pfn,
            self._width(),
        )

    def _build_rows(self, row: int, geometry: tuple[int, int, int]) -> None:
        """Build ``row`` and the rows after it that are in view and not cached, from one read
        of the source (after a scroll, every row in view is new)."""
        cols, ppc, base = geometry
        top = int(self.scroll_offset.y)
        # in view, and a million pages at the most (zoomed out, a row is many pages)
        last = min(
            self.rows, max(row + 1, top + self.size.height), row + max(1, (1 << 20) // (cols * ppc))
        )
        keys = [self._row_key(row, geometry)]
        for r in range(row + 1, last):
            key = self._row_key(r, geometry)
            if key in self._cache:
                break
            keys.append(key)
        first = base + row * cols * ppc
        assert self.source is not None  # (row_strip() checked it)
        codes, attached = self.source.cells(first, cols * len(keys), ppc)
        codes = codes.reshape(len(keys), cols)
        attached = attached.reshape(len(keys), cols)
        cells = codes.astype(np.int16) + attached.astype(np.int16) * NCODES
        for i, key in enumerate(keys):
            if key[4] >= 0:
                cells[i, key[4]] = _CURSOR
            if key[5] >= 0 and key[5] != key[4]:
                cells[i, key[5]] = _REPORT
        # run-length encoding of every row at once: where a cell differs from its left one
        rows_at, cols_at = np.nonzero(cells[:, 1:] != cells[:, :-1])
        starts: list[list[int]] = [[0] for _ in keys]
        for r, c in zip(rows_at.tolist(), (cols_at + 1).tolist()):
            starts[r].append(c)
        style_base = self.base_style
        gutter = style_base + self.component_style("gutter")
        gutter_width = self.gutter_width
        width = self._width()
        # in the view's style and as wide as it: render_line has nothing left to do
        padding = (
            [Segment(" " * (width - gutter_width - cols), style_base)]
            if width > gutter_width + cols
            else []
        )
        for i, (key, row_cells) in enumerate(zip(keys, cells.tolist())):
            segments = [Segment(f"{first + i * cols * ppc:#0{gutter_width - 1}x} ", gutter)]
            bounds = starts[i] + [cols]
            for s, e in zip(bounds, bounds[1:]):
                glyphs, style = self._cell_segment(
                    row_cells[s], e - s, int(codes[i, s]), bool(attached[i, s]), s == key[5]
                )
                segments.append(Segment(glyphs, style_base + style))
            self._cache[key] = Strip(segments + padding, max(width, gutter_width + cols))

    def _cell_segment(
        self, cell: int, n: int, code: int, attached: bool, report: bool
    ) -> tuple[str, Style]:
        """(glyphs, style) of ``n`` equal cells (a run), or of the cursor's or the report's
        one cell."""
        if cell == _CURSOR:
            glyph = (
                REPORT_PAINT.glyph
                if report
                else ATTACHED_GLYPH[code]
                if attached
                else PAGE_PAINTS[code].glyph
            )
            return glyph if glyph != " " else "▒", self.palette_style(CURSOR_PAINT)
        if cell == _REPORT:
            return REPORT_PAINT.glyph, self.palette_style(REPORT_PAINT)
        glyph, style = self._cell_paints()[cell]
        return glyph * n, style

    def _cell_paints(self) -> list[tuple[str, Style]]:
        """(glyph, style) of each cell value: a display code, plus NCODES when attached."""
        if self._paints is None:
            attached_bg = Style(bgcolor=self.palette_style(ATTACHED_PAINT).bgcolor)
            self._paints = [
                (p.glyph, self.palette_style(p)) for p in (PAGE_PAINTS[c] for c in range(NCODES))
            ]
            self._paints += [
                (ATTACHED_GLYPH[c], style + attached_bg)
                for c, (_glyph, style) in enumerate(self._paints)
            ]
        return self._paints

    def row_text(self, row: int) -> str:
        """The plain text of a row (tests, copy)."""
        return self.row_strip(row).text
