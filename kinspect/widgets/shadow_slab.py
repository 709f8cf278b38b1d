"""Shadow slab: the shown scheme's shadow storage.

pageptr/pageext: the dedicated shadow-block cache's slab pages, each block in them and the pfn
each block serves. Selecting a block selects the page it serves; selecting a slab selects its
page; the page cursor selects the block that serves it (or the slab holding it).
pshadow: the windows with a real shadow page. flat: nothing is allocated on demand.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ..engine.profile import format_size
from ..engine.view import machine_view

MAX_OPTIONS = 4000
SLABS_ASKED = 64  # shadow slabs asked of the machine at once


class ShadowSlabView(OptionList):
    """Shadow slabs and blocks (or pshadow windows) of the shown scheme."""

    DEFAULT_CSS = "ShadowSlabView { height: 1fr; border: none; }"
    # colours (kinspect.tcss): a shadow page or shadow slab, the page a block serves, the
    # vmalloc address it serves, a free block
    COMPONENT_CLASSES = OptionList.COMPONENT_CLASSES | {
        "shadowslab--shadow-page",
        "shadowslab--served",
        "shadowslab--vmalloc",
        "shadowslab--free",
    }

    class PfnChosen(Message):
        def __init__(self, pfn: int) -> None:
            super().__init__()
            self.pfn = pfn

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._key: tuple[int, str, int] | None = None
        self._option_of_pfn: dict[int, int] = {}
        self._pfn_of_option: dict[int, int] = {}
        self._quiet = False

    def refresh_view(self, session, view, force: bool = False) -> None:
        key = (session.generation, view.name, view.generation)
        if key == self._key and not force:
            return
        self._key = key
        machine = machine_view(session)

        def style(role: str) -> Style:
            return self.get_component_rich_style(f"shadowslab--{role}", partial=True)

        options: list[Option] = []
        self._option_of_pfn = {}
        self._pfn_of_option = {}

        def add(
            prompt, pfn: int | None = None, serves: int | None = None, disabled: bool = False
        ) -> None:
            index = len(options)
            options.append(Option(prompt, disabled=disabled))
            if pfn is not None:
                self._pfn_of_option[index] = pfn
            if serves is not None:
                self._option_of_pfn.setdefault(serves, index)

        if view.kind == "flat":
            fp = machine.footprint(view.name)
            add(
                Text.assemble(
                    ("flat: ", "bold"),
                    "no shadow slab. The shadow of all memory ("
                    f"{format_size(fp.static_bytes)}) was reserved at boot, in one "
                    f"contiguous range of {format_size(fp.virtual_range_bytes)}.",
                ),
                disabled=True,
            )
        elif view.kind == "windows":
            windows = machine.shadow_windows(view.name)
            add(
                Text.assemble(
                    (f"{view.name}: ", "bold"),
                    f"{len(windows)} windows of 8 pages with a real shadow page",
                ),
                disabled=True,
            )
            for w in windows[:MAX_OPTIONS]:
                if w.pfn is None:
                    prompt = Text.assemble(
                        "  kernel image/vmalloc window → shadow page ",
                        (f"pfn {w.shadow_pfn:#x}", style("shadow-page")),
                    )
                    add(prompt, pfn=w.shadow_pfn, serves=w.shadow_pfn)
                    continue
                prompt = Text.assemble(
                    f"  pfn {w.pfn:#x}-{w.pfn + 7:#x} → shadow page ",
                    (f"pfn {w.shadow_pfn:#x}", style("shadow-page")),
                    f"  ({w.bypass_pages} bypass)",
                )
                add(prompt, pfn=w.pfn, serves=w.shadow_pfn)
                for p in range(w.pfn, w.pfn + 8):
                    self._option_of_pfn.setdefault(p, len(options) - 1)
        else:
            heads = view.slab_heads()
            fp = machine.footprint(view.name)
            add(
                Text.assemble(
                    (f"{view.name}: ", "bold"),
                    f"{fp.blocks_in_use} blocks in use of {fp.blocks_capacity}, "
                    f"{len(heads)} shadow slabs, block "
                    f"{machine.shadow_block_size(view.name)} B",
                ),
                disabled=True,
            )
            for slab in self._shown_slabs(view, heads):
                if len(options) >= MAX_OPTIONS:
                    add(f"  … {len(heads)} slabs in all (list cut)", disabled=True)
                    break
                used = sum(1 for b in slab.blocks if b.pfn is not None or b.vaddr is not None)
                last = slab.pfn + slab.pages - 1
                pages = f"pfn {slab.pfn:#x}" + (f"-{last:#x}" if last != slab.pfn else "")
                add(
                    Text.assemble(
                        ("slab ", style("shadow-page") + Style(bold=True)),
                        pages,
                        f"  {used}/{len(slab.blocks)} blocks in use",
                    ),
                    pfn=slab.pfn,
                    serves=slab.pfn,
                )
                for i in range(1, slab.pages):
                    self._option_of_pfn.setdefault(slab.pfn + i, len(options) - 1)
                for b in slab.blocks:
                    if b.pfn is not None:
                        add(
                            Text.assemble(f"  {b.addr:x} → ", (f"pfn {b.pfn:#x}", style("served"))),
                            pfn=b.pfn,
                            serves=b.pfn,
                        )
                    elif b.vaddr is not None:
                        add(
                            Text.assemble(
                                f"  {b.addr:x} → ", (f"vmalloc {b.vaddr:x}", style("vmalloc"))
                            )
                        )
                    else:
                        add(Text(f"  {b.addr:x}   free", style=style("free")))
        self._quiet = True
        self.set_options(options)
        self._quiet = False

    @staticmethod
    def _shown_slabs(view, heads: list[int]):
        """The slabs of ``heads``, in order, asked of the machine a few at a time: the list
        is cut at MAX_OPTIONS, so the blocks of the slabs after are never looked at."""
        for i in range(0, len(heads), SLABS_ASKED):
            first, last = heads[i], heads[min(i + SLABS_ASKED, len(heads)) - 1]
            yield from view.slabs(first, last - first + 1)

    def select_pfn(self, pfn: int) -> None:
        """Highlight the block serving pfn, or the slab/window holding it."""
        index = self._option_of_pfn.get(pfn)
        if index is not None and index != self.highlighted:
            self._quiet = True
            self.highlighted = index
            self._quiet = False

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if self._quiet:
            return
        pfn = self._pfn_of_option.get(event.option_index)
        if pfn is not None:
            self.post_message(self.PfnChosen(pfn))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        pfn = self._pfn_of_option.get(event.option_index)
        if pfn is not None:
            self.post_message(self.PfnChosen(pfn))

    def text(self) -> str:
        return "\n".join(str(self.get_option_at_index(i).prompt) for i in range(self.option_count))
