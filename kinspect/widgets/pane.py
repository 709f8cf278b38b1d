"""A bordered pane whose title can change often: a new title repaints the top border row, not
the whole pane (Textual's ``border_title`` setter refreshes all of it, which redraws every line
of what the pane holds: a page map, the shadow bytes, on every step that moves the cursor)."""

from __future__ import annotations

from typing import Self

from textual.containers import Vertical
from textual.geometry import Region


class Pane(Vertical):
    """A Vertical with a border title that costs one row to change (``set_title``)."""

    _title_only = False

    def set_title(self, title: str) -> None:
        """Show ``title`` in the top border (nothing is repainted when it is the same)."""
        if self.border_title == title:
            return
        self._title_only = True
        try:
            self.border_title = title
        finally:
            self._title_only = False

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        if self._title_only and not regions and self.is_mounted:
            # Regions are relative to the content, which starts inside the border: the top
            # border row is the row above it, from the outer left edge.
            offset = self.content_offset
            regions = (Region(-offset.x, -offset.y, self.outer_size.width, 1),)
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)
