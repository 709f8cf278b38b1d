"""What a Line API widget asks for on every line or cell, looked up once: its own Rich style
(``Widget.rich_style`` walks the DOM on every call), and its COMPONENT_CLASSES' (one each
palette entry: ``pagemap--slab``, ``shadowbytes--redzone``...), both looked up again when the
app's styles change; and its scroll offset and content width, looked up once a render."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip

if TYPE_CHECKING:  # the mixins go on Widgets: type-check them as one
    from textual.widget import Widget as _WidgetBase
else:
    _WidgetBase = object


def unstyled(_role: str) -> Style:
    """A role's style where no widget gives one (text made outside an app: tests): none."""
    return Style()


class BaseStyleMixin(_WidgetBase):
    _base_style_cache: Style | None = None

    @property
    def base_style(self) -> Style:
        style = self._base_style_cache
        if style is None:
            # Not attached (a unit test without an app): no styles to inherit yet.
            style = self.rich_style if self.is_attached else Style()
            if self.is_attached:
                self._base_style_cache = style
        return style

    def notify_style_update(self) -> None:
        self._base_style_cache = None
        super().notify_style_update()


class PaletteStyleMixin(BaseStyleMixin):
    """The Rich style of each component class ``{STYLE_PREFIX}{name}``: the widget calls
    ``load_styles()`` when mounted and when the app's styles change. A class Textual has not
    styled yet (no app: unit tests) falls back to its palette entry, or the given default."""

    STYLE_PREFIX = ""
    _palette_styles: dict[str, Style] | None = None

    def load_styles(self) -> None:
        styles = {}
        for name in self.COMPONENT_CLASSES:
            with contextlib.suppress(KeyError):  # not styled yet: see palette_style()
                styles[name] = self.get_component_rich_style(name, partial=True)
        self._palette_styles = styles

    def palette_style(self, paint) -> Style:
        """The style of palette entry ``paint`` (a ``palette.Paint``)."""
        return self.component_style(paint.name, paint.rich)

    def component_style(self, name: str, default=Style) -> Style:
        """The style of component class ``STYLE_PREFIX + name``; ``default()`` when unstyled."""
        styles = self._palette_styles
        if styles is None:
            styles = self._palette_styles = {}
        key = self.STYLE_PREFIX + name
        style = styles.get(key)
        if style is None:
            style = styles[key] = default()
        return style


class LineFrameMixin(_WidgetBase):
    """The scroll offset and content width every ``render_line(y)`` of one ``render_lines()``
    shares, looked up once for all of them (``Widget.size`` walks up the DOM to the screen)."""

    _frame: tuple[int, int, int] | None = None

    @property
    def frame(self) -> tuple[int, int, int]:
        """(scroll x, scroll y, content width) of the view."""
        frame = self._frame
        if frame is None:
            scroll_x, scroll_y = self.scroll_offset
            frame = (scroll_x, scroll_y, self.size.width)
        return frame

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame = self.frame
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None
