"""A Line API widget's own Rich style, computed once (``Widget.rich_style`` walks the DOM on
every call, too slow per segment), refreshed when the app's styles change."""

from __future__ import annotations

from rich.style import Style


class BaseStyleMixin:
    _base_style_cache: Style | None = None

    @property
    def base_style(self) -> Style:
        style = self._base_style_cache
        if style is None:
            try:
                style = self.rich_style if self.is_attached else Style()
            except Exception:
                style = Style()
            if self.is_attached:
                self._base_style_cache = style
        return style

    def notify_style_update(self) -> None:
        self._base_style_cache = None
        super().notify_style_update()
