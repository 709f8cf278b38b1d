"""The event log: the workload's lines with the current position.

``▶`` marks the last event applied (what the other views show), ``●`` a line breakpoint, ``!``
a line whose event made a KASAN report, ``+``/``-`` one that attached or detached shadow under
the shown scheme; the last search's match is marked in its row (``find``). Comments are kept
(dimmed) when the workload file is small enough to read, and the ones about the last event
applied are shown whole under the log (``Narration``): a workload such as the demo tells its
story in them, and they are longer than the log is wide.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .base_style import PaletteStyleMixin
from .scrolling import NoScrollbar
from .text_lines import TextLines

if TYPE_CHECKING:
    from ..session import Session

SOURCE_LIMIT = 4 << 20  # read the file for its comments only below this size

SEARCH_CHECK_EVERY = 512  # rows searched between two calls of ``cancelled`` (~2 ms)


class EventLog(NoScrollbar, PaletteStyleMixin, ScrollView, can_focus=True):
    """One line per workload line (or per event when the source is not kept: a trace, whose
    rows grow while it is read, ``sync_length``)."""

    DEFAULT_CSS = "EventLog { height: 1fr; overflow-x: hidden; overflow-y: hidden; }"
    # The rows' colours (kinspect.tcss; unstyled without an app): the last event applied, the
    # next one, an event still to come, one done, a comment, a line number, and the marks of
    # a report, an attach, a detach, a breakpoint and the last search's match.
    COMPONENT_CLASSES = {
        f"eventlog--{name}"
        for name in (
            "current",
            "next",
            "event",
            "done",
            "comment",
            "lineno",
            "report",
            "attach",
            "detach",
            "bp",
            "found",
        )
    }
    STYLE_PREFIX = "eventlog--"

    class LineClicked(Message):
        def __init__(self, line: int) -> None:
            super().__init__()
            self.line = line

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.session: Session | None = None
        self.scheme = ""
        # (lineno, text, event index) of each row; None: one row per event, made when drawn
        self.lines: list[tuple[int, str, int | None]] | None = []
        self._line_of_index: dict[int, int] | None = {}  # event index -> row (None:
        # one row per event)
        self._cache: LRUCache[tuple, Strip] = LRUCache(1024)
        self._width = 40
        self._marked_rows: set[int | None] = set()
        self.found: tuple[int, str] | None = None  # (row, query) of the last search's match

    def on_mount(self) -> None:
        self.load_styles()
        self._cache.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.load_styles()
        self._cache.clear()

    def set_session(self, session, scheme: str) -> None:
        self.session = session
        self.scheme = scheme
        events = session.events
        source = None
        path = Path(session.path)
        try:
            if path.is_file() and path.stat().st_size <= SOURCE_LIMIT:
                source = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            source = None
        if (
            source is not None
            and not session.is_trace
            and all(e.line <= len(source) for e in events[-1:])
        ):
            by_line = {e.line: i for i, e in enumerate(events)}
            self.lines = [
                (i + 1, text.rstrip(), by_line.get(i + 1)) for i, text in enumerate(source)
            ]
            self._line_of_index = {
                index: row for row, (_l, _t, index) in enumerate(self.lines) if index is not None
            }
        else:
            # One row per event, made when drawn (a trace has hundreds of thousands).
            self.lines = None
            self._line_of_index = None
        rows = self.row_count
        last = self._row(rows - 1)[0] if rows else 0
        if session.loading:  # a trace still being read: its last line, as can be told
            last = int(last / max(session.load_fraction(), 0.01))
        digits = len(str(last))
        self._digits = digits
        self._width = (
            max((len(self._text(r)) for r in range(min(rows, 2000))), default=10) + digits + 4
        )
        self.virtual_size = Size(self._width, rows)
        self._cache.clear()
        self.refresh()

    @property
    def _shown(self) -> Session:
        """The session shown (a row is asked for only once set_session() gave one)."""
        assert self.session is not None
        return self.session

    @property
    def row_count(self) -> int:
        return len(self._shown.events) if self.lines is None else len(self.lines)

    def _row(self, row: int) -> tuple[int, str | None, int | None]:
        if self.lines is None:
            return self._shown.events[row].line, None, row
        return self.lines[row]

    def sync_length(self) -> None:
        """More events were read (a trace loading): the rows grow with them."""
        rows = self.row_count
        if rows != self.virtual_size.height:
            self.virtual_size = Size(self._width, rows)

    def row_of_event(self, index: int) -> int | None:
        if self._line_of_index is None:
            return index if 0 <= index < self.row_count else None
        return self._line_of_index.get(index)

    def _text(self, row: int) -> str:
        _lineno, text, index = self._row(row)
        if text is not None:
            return text
        assert index is not None  # (a row without text is an event's)
        return self._shown.event_text(index)

    def position_of_row(self, row: int) -> int:
        """The session position that selects ``row``: the state after its event (``▶`` on
        it); for a row without one (a comment), the state after the events above it."""
        index = self._row(row)[2]
        if index is not None:
            return index + 1
        lines = self.lines
        assert lines is not None  # (a row without an event is a source line)
        return sum(1 for r in range(row) if lines[r][2] is not None)

    def row_of_position(self, position: int) -> int:
        """The row ``▶`` marks at ``position`` (-1 before the first event)."""
        row = self.row_of_event(position - 1) if position else None
        return -1 if row is None else row

    def find(
        self, query: str, after: int, direction: int = 1, cancelled=None
    ) -> tuple[int, bool] | None:
        """The next row (``direction`` 1) or the previous one (-1) from row ``after``, wrapping
        at the ends, whose text as the log shows it holds ``query``, whatever the case:
        (row, whether the search wrapped), or None (nothing, or ``cancelled()`` said stop).
        The rows' text only (a trace's events described, a workload's lines): never the
        machine, so it may run in a thread beside the session."""
        query = query.casefold()
        rows = self.row_count
        if not rows or not query:
            return None
        after = min(max(after, -1), rows)
        if direction > 0:
            order = (range(after + 1, rows), range(0, min(after + 1, rows)))
        else:
            order = (range(after - 1, -1, -1), range(rows - 1, max(after - 1, -1), -1))
        text = self._text
        for wrapped, span in enumerate(order):
            for n, row in enumerate(span):
                if n % SEARCH_CHECK_EVERY == 0 and cancelled is not None and cancelled():
                    return None
                if query in text(row).casefold():
                    return row, bool(wrapped)
        return None

    def set_found(self, found: tuple[int, str] | None) -> None:
        """Mark the query in a row (the last search's match), or no row."""
        old, self.found = self.found, found
        for mark in (old, found):
            if mark is not None:
                self.refresh_lines(mark[0], 1)
        if found is not None and self.size.height:
            self.scroll_to_row(found[0])

    def _comment(self, row: int) -> str | None:
        """The ``#`` comment of a source row (as the workload parser strips it), or None."""
        assert self.lines is not None  # (only with the source: narration())
        text = self.lines[row][1]
        return text.split("#", 1)[1].strip() if "#" in text else None

    def narration(self) -> str:
        """What the workload says about the last event applied: the comment of its line, or of
        the nearest line above it with one, after the whole-line comments just above that
        (before any event: the comments above the first one). Empty without the source."""
        s = self.session
        if s is None or self.lines is None or not self._line_of_index:
            return ""
        row = self.row_of_event(max(0, s.position - 1))
        if row is None:
            return ""
        if s.position == 0:
            row -= 1
        while row >= 0 and self._comment(row) is None:
            row -= 1
        if row < 0:
            return ""
        first = row
        while first > 0 and self.lines[first - 1][1].lstrip().startswith("#"):
            first -= 1
        return " ".join(c for c in map(self._comment, range(first, row + 1)) if c)

    def show_position(self, scroll: bool = True) -> None:
        """Redraw the rows whose marks changed; keep the current line in view."""
        s = self.session
        if s is None:
            return
        rows = {self.row_of_event(i) for i in (s.position - 1, s.position)}
        changed = rows | self._marked_rows
        self._marked_rows = rows
        for row in changed:
            if row is not None:
                self.refresh_lines(row, 1)
        if scroll and self.size.height:
            row = self.row_of_event(max(0, s.position - 1)) or 0
            height = self.size.height
            top = int(self.scroll_offset.y)
            if not top + 1 <= row < top + height - 2:
                self.scroll_to(y=max(0, row - height // 3), animate=False, immediate=True)

    def render_line(self, y: int) -> Strip:
        row = y + int(self.scroll_offset.y)
        width = self.size.width or self._width
        strip = self.row_strip(row)
        return strip.apply_style(self.base_style).crop_extend(
            int(self.scroll_offset.x), int(self.scroll_offset.x) + width, self.base_style
        )

    def _marks(self, index: int | None, lineno: int) -> tuple:
        s = self.session
        if s is None:
            return ("", "event")
        bp = any(b.kind == "line" and b.value == lineno for b in s.breakpoints)
        if index is None:
            return ("bp" if bp else "", "comment")
        pos = s.position
        state = (
            "current"
            if index == pos - 1
            else "next"
            if index == pos
            else "done"
            if index < pos
            else "event"
        )
        report = index in s.report_events and index < pos
        attach = [a for a in s.attach_events.get(index, ()) if a.scheme == self.scheme]
        att = ""
        if attach and index < pos:
            att = "attach" if any(a.kind == "attach" for a in attach) else "detach"
        return (("bp" if bp else "") + ("!" if report else "") + att, state)

    def row_strip(self, row: int) -> Strip:
        if not 0 <= row < self.row_count:
            return Strip.blank(self._width, self.base_style)
        lineno, _text, index = self._row(row)
        text = self._text(row)
        marks, state = self._marks(index, lineno)
        found = self.found[1] if self.found is not None and self.found[0] == row else None
        key = (row, marks, state, found)
        strip = self._cache.get(key)
        if strip is not None:
            return strip
        style = self.component_style
        base = style(state) if state in ("current", "next") else None
        segs = [
            Segment(f"{lineno:>{self._digits}} ", base if base is not None else style("lineno"))
        ]
        if "bp" in marks:
            segs.append(Segment("●", style("bp")))
        elif state == "current":
            segs.append(Segment("▶", base))
        else:
            segs.append(Segment(" ", base if base is not None else self.base_style))
        if "!" in marks:
            segs.append(Segment("!", style("report")))
        elif "attach" in marks:
            segs.append(Segment("+", style("attach")))
        elif "detach" in marks:
            segs.append(Segment("-", style("detach")))
        else:
            segs.append(Segment(" ", base if base is not None else self.base_style))
        if index is None:
            body = style("comment")
        else:
            body = base if base is not None else style(state)
        segs.append(Segment(" ", body))
        segs += _mark_found(text[:500], found, body, style("found"))
        strip = Strip(segs)
        if base is not None:
            strip = strip.extend_cell_length(self._width, base)
        self._cache[key] = strip
        return strip

    def text(self) -> str:
        return "\n".join(self.row_strip(i).text.rstrip() for i in range(self.row_count))

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        row = offset.y + int(self.scroll_offset.y)
        if 0 <= row < self.row_count:
            self.post_message(self.LineClicked(self._row(row)[0]))

    def scroll_to_row(self, row: int) -> None:
        self.scroll_to_region(Region(0, row, 1, 1), animate=False, immediate=True)


def _mark_found(text: str, query: str | None, style: Style, found: Style) -> list[Segment]:
    """The text in ``style``, its first occurrence of ``query`` (any case) in ``found``."""
    at = text.casefold().find(query.casefold()) if query else -1
    if at < 0 or len(text.casefold()) != len(text):  # a case fold that changes lengths
        return [Segment(text, style)]
    assert query is not None  # (at >= 0)
    end = at + len(query.casefold())
    return [
        seg
        for seg in (
            Segment(text[:at], style),
            Segment(text[at:end], found),
            Segment(text[end:], style),
        )
        if seg.text
    ]


class Narration(TextLines):
    """The event log's narration (``EventLog.narration``), wrapped to the width; what does not
    fit the height ends in an ellipsis."""

    DEFAULT_CSS = (
        "Narration { height: 2; overflow: hidden hidden; color: $text-muted; text-style: italic; }"
    )

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.narration = ""

    def show(self, narration: str) -> None:
        self.narration = narration
        self._wrap()

    def on_resize(self) -> None:
        self._wrap()

    def _wrap(self) -> None:
        width, height = self.size
        if width and height:
            self.set_text(
                "\n".join(textwrap.wrap(self.narration, width, max_lines=height, placeholder=" …"))
            )
