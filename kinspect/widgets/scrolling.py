"""Line API views that the cursor scrolls, with no scrollbar: over a page map of millions of
rows, a trace of hundreds of thousands of events or a page of shadow, a scrollbar says little,
and redrawing it on every scroll (or only keeping a hidden one up to date, which makes Textual
lay the whole screen out again) cost more than the rows it scrolled."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the mixin goes on ScrollViews: type-check it as one
    from textual.scroll_view import ScrollView as _ScrollViewBase
else:
    _ScrollViewBase = object


class NoScrollbar(_ScrollViewBase):
    """Mixin for a ScrollView styled ``overflow-y: hidden``: the wheel still scrolls it."""

    @property
    def allow_vertical_scroll(self) -> bool:
        return not self.disabled and self.max_scroll_y > 0
