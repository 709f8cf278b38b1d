"""struct page: the selected page's fields as the kernel names them, its shadow under every
running scheme, and ``dump_page()`` as KASAN prints it."""

from __future__ import annotations

import re
from collections.abc import Callable

from rich.style import Style

from ..engine.memory import PAGE_TYPE_NONE, PAGEFLAG_NAMES, PageState, PGTY_buddy, PGTY_slab
from ..engine.view import machine_view
from .base_style import unstyled
from .text_lines import StyledLines, TextLines

_BLOCK = re.compile(r"block (0x[0-9a-f]+)")


def describe_page(session, pfn: int, style: Callable[[str], Style] = unstyled) -> StyledLines:
    """Everything about one pfn, drgn ``show_page_info`` style; ``style(role)`` colours each
    part (StructPageView: its component classes ``structpage--ROLE``; unstyled without)."""
    label = style("label")
    m = machine_view(session)
    p = session.profile
    t = StyledLines()
    w = p.bits // 4
    if not p.pfn_valid(pfn):
        t.append(f"pfn {pfn:#x}: no RAM here (a hole in the memory map)", style("hole"))
        return t
    page = m.page(pfn)
    phys = pfn << p.page_shift
    t.append("struct page ", "bold")
    t.append(f"pfn {pfn:#x}", style("pfn"))
    t.append(f"  phys {phys:#x}")
    if p.is_lowmem_pfn(pfn):
        t.append(f"  virt {m.page_address(pfn):0{w}x}")
    else:
        t.append("  highmem (no direct map)")
    t.append("\n")
    names = [PAGEFLAG_NAMES[b] for b in sorted(PAGEFLAG_NAMES) if page.flags & (1 << b)]
    t.append(" flags      ", label)
    t.append(f"{m.page_flags_word(pfn):#x}({'|'.join(names + [f'zone={p.zone_of_pfn(pfn)}'])})\n")
    ptype = page.page_type
    head_pfn = m.compound_head(pfn)
    free = m.find_free_block(pfn)
    if free is not None and free.pfn == pfn and ptype == PAGE_TYPE_NONE:
        ptype = PGTY_buddy << 24
    kind = {PGTY_slab: "slab", PGTY_buddy: "buddy"}.get(ptype >> 24, "")
    t.append(" page_type  ", label)
    t.append(f"{ptype >> 24:x}({kind})" if ptype != PAGE_TYPE_NONE else "none (ffffffff)")
    t.append("   _refcount ", label)
    t.append(f"{page.refcount}")
    t.append("   order ", label)
    order = m.page(head_pfn).order
    t.append(f"{order}\n")
    t.append(" compound   ", label)
    if page.PageHead():
        t.append(f"head of {1 << order} pages\n")
    elif page.PageTail():
        t.append(f"tail of head pfn {page.head:#x}\n")
    elif free is not None:
        t.append(f"in a free buddy block of order {free.order} from pfn {free.pfn:#x}\n")
    else:
        t.append("-\n")
    slab = m.find_slab(pfn)
    if slab is not None:
        t.append(" slab_cache ", label)
        t.append(f"{slab.cache}", style("cache"))
        t.append(
            f" (object {slab.object_size}, slot {slab.slot_size}) inuse "
            f"{slab.inuse}/{slab.objects}"
            f"{' frozen (cpu slab)' if slab.frozen else ''}\n"
        )
    t.append(" kinspect   ", label)
    t.append(PageState.NAMES[page.state] if page.state < len(PageState.NAMES) else "?")
    large = m.find_large_kmalloc(head_pfn)
    if large is not None:
        t.append(f" · kmalloc({large.size})")
    t.append("\n")
    t.append(" shadow\n", label)
    for name in session.scheme_names:
        link = m.shadow_link(name, pfn)
        if name == "flat" and p.is_lowmem_pfn(pfn):
            link = (
                f"KASAN_SHADOW_OFFSET + (addr >> 3) = "
                f"{p.kasan_mem_to_shadow(m.page_address(pfn)):0{w}x}"
            )
        mark = "▶" if name == session.shown else " "
        t.append(f"  {mark} {name:<8} ", "bold" if name == session.shown else "")
        t.append(f"{link or '-'}")
        block = _BLOCK.search(link or "")
        if block is not None:
            # where the pointer points: the block's own page, a page of the shadow slab
            home = m.addr_to_pfn(int(block.group(1), 16))
            if home is not None:
                t.append(f" in shadow slab page pfn {home:#x}", style("shadow-home"))
        t.append("\n")
    if p.is_lowmem_pfn(pfn) or p.pfn_valid(pfn):
        t.append("dump_page()\n", label)
        for line in m.dump_page(head_pfn):
            t.append(f" {line}\n", style("dump"))
    return t


class StructPageView(TextLines):
    """The selected page's struct page (lines longer than the pane is wide fold)."""

    DEFAULT_CSS = "StructPageView { height: 1fr; overflow-x: hidden; }"
    # describe_page()'s colours (kinspect.tcss): a field's name, the pfn, the slab cache, the
    # shadow slab page a block lives in, a hole in the memory map, dump_page()'s lines
    COMPONENT_CLASSES = {
        "structpage--label",
        "structpage--pfn",
        "structpage--cache",
        "structpage--shadow-home",
        "structpage--hole",
        "structpage--dump",
    }
    wrap = True

    def show(self, session, pfn: int) -> None:
        self.set_lines(describe_page(session, pfn, self._style))

    def _style(self, role: str) -> Style:
        return self.get_component_rich_style(f"structpage--{role}", partial=True)

    def text(self) -> str:
        return self.plain
