"""The footer, its keys tagged by binding id so a layout can leave some out (kinspect.tcss:
a narrow terminal keeps the keys a newcomer needs and drops the ones the help lists anyway)."""

from __future__ import annotations

import re

from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class KeyFooter(Footer):
    """A Footer whose keys have the class ``-binding-ID`` (ID: their binding's id, with
    characters other than letters, digits, ``_`` and ``-`` as ``_``)."""

    def compose(self):
        bindings = self.screen.active_bindings
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.key in bindings:
                binding_id = bindings[widget.key][1].id
                if binding_id:
                    widget.add_class("-binding-" + re.sub(r"[^\w-]", "_", binding_id))
            yield widget
