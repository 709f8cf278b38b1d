"""Rich Text shown through the Line API: updating it repaints the lines that changed and
nothing else (a Static whose content changes asks the whole screen for a new layout)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from rich.cells import cell_len
from rich.console import Console
from rich.control import strip_control_codes
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .base_style import BaseStyleMixin, LineFrameMixin

_CONSOLE = Console(
    width=4096, color_system="truecolor", force_terminal=True, legacy_windows=False, no_color=False
)


@lru_cache(maxsize=256)
def _parsed_style(style: str) -> Style:
    return _CONSOLE.get_style(style, default=Style.null())


class StyledLines:
    """Styled text appended piece by piece as to a Rich ``Text``, kept as the lines of Segments
    rendering that Text would give (``Text.render`` then ``Segment.split_lines``) without
    building and rendering one: unstyled pieces run together into one Segment (styled
    ``Style.null()``, as in a Text with spans), each styled piece is a Segment of its own."""

    def __init__(self) -> None:
        self._lines: list[list[Segment]] = [[]]
        self._pieces: list[str] = []
        self._unstyled_tail = False  # the current line ends with unstyled text

    def append(self, text: str, style: str | Style = "") -> None:
        text = strip_control_codes(text)
        if not text:
            return
        self._pieces.append(text)
        if isinstance(style, Style):
            rich_style = style or None
        else:
            rich_style = _parsed_style(style) if style else None
        first, *rest = text.split("\n")
        self._add(first, rich_style)
        for piece in rest:
            self._lines.append([])
            self._add(piece, rich_style)

    def _add(self, text: str, style: Style | None) -> None:
        if not text:
            return
        line = self._lines[-1]
        if style is not None:
            line.append(Segment(text, style))
        elif line and self._unstyled_tail:
            line[-1] = Segment(line[-1].text + text, line[-1].style)
        else:
            line.append(Segment(text, Style.null()))
        self._unstyled_tail = style is None

    @property
    def lines(self) -> list[list[Segment]]:
        """The lines, without the empty one after a final newline."""
        return self._lines if self._lines[-1] else self._lines[:-1]

    @property
    def plain(self) -> str:
        return "".join(self._pieces)


WRAP_INDENT = 2  # a line folded to the width goes on this far in


def fold_line(line: list[Segment], width: int) -> list[list[Segment]]:
    """``line`` cut into pieces of at most ``width`` cells, the pieces after the first
    indented by WRAP_INDENT: after the last space of a piece when there is one in its second
    half, else after its last ``/``, ``+`` or ``,`` there (a stack frame: ``func+0x30/0x30``),
    else at the width."""
    length = Segment.get_line_length(line)
    if length <= width or width <= 2 * WRAP_INDENT:
        return [line]
    plain = "".join(segment.text for segment in line)
    narrow = cell_len(plain) == len(plain)  # cells are characters: cut between words
    cuts, start, room = [], 0, width
    while length - start > room:
        cut = start + room
        if narrow:
            half = start + room // 2
            after = plain.rfind(" ", half, cut)
            if after < 0:
                after = max(plain.rfind(mark, half, cut) for mark in "/+,")
            if after > start:
                cut = after + 1
        cuts.append(cut)
        start, room = cut, width - WRAP_INDENT
    pieces = list(Segment.divide(line, [*cuts, length]))
    return [pieces[0], *([Segment(" " * WRAP_INDENT), *piece] for piece in pieces[1:])]


class TextLines(LineFrameMixin, BaseStyleMixin, ScrollView):
    """Lines of Rich Text, scrollable; folded to the width when ``wrap`` (else cut)."""

    DEFAULT_CSS = "TextLines { height: 1fr; }"
    wrap = False

    def __init__(self, text: Text | str = "", wrap: bool | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if wrap is not None:
            self.wrap = wrap
        if self.wrap:
            # The width folded to keeps the vertical scrollbar's columns whether it shows or
            # not: its showing up after a fold resizes nothing, the lines would go under it.
            self.styles.scrollbar_gutter = "stable"
        self._lines: list[list[Segment]] = []
        self._source_lines: list[list[Segment]] = []
        self._wrapped_to = 0
        self._plain = ""
        self._source: tuple | None = None
        self.set_text(text)

    def set_text(self, text: Text | str, scroll_home: bool = False) -> None:
        if isinstance(text, str):
            text = Text(text)
        source = (text.plain, list(text.spans))
        if source != self._source or not self._lines:
            self._source = source
            self._show(text.plain, Segment.split_lines(text.render(_CONSOLE, end="")), scroll_home)

    def set_lines(self, text: StyledLines, scroll_home: bool = False) -> None:
        """Show text built straight into lines of Segments (no Text to render)."""
        source = (text.plain, text.lines)
        if source != self._source or not self._lines:
            self._source = source
            self._show(text.plain, text.lines, scroll_home)

    def _show(self, plain: str, lines: Iterable[list[Segment]], scroll_home: bool) -> None:
        self._plain = plain
        self._source_lines = list(lines)
        self._lay_out(scroll_home)

    def _wrap_width(self) -> int:
        """The width lines fold to: the content's, less the scrollbar's gutter (0: no fold)."""
        if not self.wrap or not self.is_mounted:
            return 0
        return self.scrollable_content_region.width

    def on_resize(self) -> None:
        if self.wrap and self._wrap_width() != self._wrapped_to:
            self._lay_out(False)

    def _lay_out(self, scroll_home: bool) -> None:
        width = self._wrapped_to = self._wrap_width()
        lines = self._source_lines
        if width:
            lines = [piece for line in lines for piece in fold_line(line, width)]
        before, self._lines = self._lines, lines
        changed = [
            y
            for y in range(max(len(before), len(self._lines)))
            if y >= len(before) or y >= len(self._lines) or before[y] != self._lines[y]
        ]
        # The virtual size only grows (rounded up): a new virtual size makes the whole screen
        # lay itself out again, which costs more than a few blank lines at the end.
        width = max(
            (Segment.get_line_length(self._lines[y]) for y in changed if y < len(self._lines)),
            default=1,
        )
        old = self.virtual_size
        size = Size(
            self._wrapped_to or max(old.width, -(-width // 64) * 64),
            max(old.height, -(-len(self._lines) // 8) * 8),
        )
        if size != old:
            self.virtual_size = size
        if scroll_home:
            self.scroll_to(0, 0, animate=False, immediate=True)
        self._refresh_rows(changed)

    def _refresh_rows(self, rows: list[int]) -> None:
        """Repaint the lines that changed, in one refresh (a struct page of another page
        shares most of its labels and layout with the last one's)."""
        if not rows:
            return
        _, scroll_y, width = self.frame
        width = max(self.virtual_size.width, width)
        runs: list[list[int]] = []  # [first, end) of each run of consecutive rows
        for y in rows:
            if runs and runs[-1][1] == y:
                runs[-1][1] = y + 1
            else:
                runs.append([y, y + 1])
        self.refresh(*(Region(0, first - scroll_y, width, end - first) for first, end in runs))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y, width = self.frame
        row = y + scroll_y
        segments = self._lines[row] if 0 <= row < len(self._lines) else []
        base = self.base_style
        length = Segment.get_line_length(segments)
        if scroll_x or length > width:
            return (
                Strip(segments, length)
                .apply_style(base)
                .crop_extend(scroll_x, scroll_x + width, base)
            )
        # in the view's style and as wide as it, in one Strip
        styled = list(Segment.apply_style(segments, base))
        if length < width:
            styled.append(Segment(" " * (width - length), base))
        return Strip(styled, width)

    def row_of_line(self, line: int) -> int:
        """The first row that shows source line ``line`` (folded lines take several)."""
        width = self._wrapped_to
        if not width:
            return line
        return sum(len(fold_line(source, width)) for source in self._source_lines[:line])

    @property
    def plain(self) -> str:
        return self._plain
