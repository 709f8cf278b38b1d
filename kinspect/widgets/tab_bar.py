"""The detail tabs' bar: one line of labels, the shown one highlighted; a click picks one.

Textual's TabbedContent draws its bar with nine widgets (a scrolling container, a label each,
the underline...), and every frame that repaints lines beside them composites each one again:
in the inspector, most frames, since a step that moves the cursor repaints most of the screen.
This bar is one widget; a ContentSwitcher under it shows the chosen view.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.events import Click
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget


class TabBar(Widget):
    """Tab labels on one line: ``tabs`` is (id, label) pairs, ``active`` the id shown."""

    COMPONENT_CLASSES = {"tabbar--tab", "tabbar--active"}
    DEFAULT_CSS = """
    TabBar { height: 1; }
    TabBar > .tabbar--tab { color: $foreground 50%; }
    TabBar > .tabbar--active { color: $foreground; text-style: bold reverse; }
    """

    class Chosen(Message):
        """A tab was clicked."""

        def __init__(self, tab: str) -> None:
            super().__init__()
            self.tab = tab

    def __init__(self, tabs: list[tuple[str, str]], active: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tabs = tabs
        self.active = active

    def set_active(self, tab: str) -> None:
        if tab != self.active:
            self.active = tab
            self.refresh()

    def _spans(self) -> list[tuple[int, int, str]]:
        """(first column, end column, id) of each label."""
        out, x = [], 0
        for tab, label in self.tabs:
            out.append((x, x + len(label) + 2, tab))
            x += len(label) + 3
        return out

    def render_line(self, y: int) -> Strip:
        tab_style = self.get_component_rich_style("tabbar--tab")
        active_style = self.get_component_rich_style("tabbar--active")
        base = self.rich_style
        segments = []
        for (_start, _end, tab), (_tab, label) in zip(self._spans(), self.tabs):
            segments.append(
                Segment(f" {label} ", active_style if tab == self.active else tab_style)
            )
            segments.append(Segment(" ", base))
        return Strip(segments).crop_extend(0, self.size.width, base)

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        for start, end, tab in self._spans():
            if start <= offset.x < end:
                self.post_message(self.Chosen(tab))
                return

    def text(self) -> str:
        """The labels, the shown one in brackets (tests)."""
        return " ".join(f"[{label}]" if tab == self.active else label for tab, label in self.tabs)
