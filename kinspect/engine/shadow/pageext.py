"""V. Murzin's variant (linux-mm, 2017-05-30): the shadow pointer in ``page_ext``.

"... or you can just keep shadow in page extension": struct page has no room to spare, and
page_ext "is already here along with some other debug options" (his reply in the thread of
J. Kim's "[PATCH v1 00/11] mm/kasan: support per-page shadow memory to reduce memory
consumption", https://lore.kernel.org/r/1494897409-14408-1-git-send-email-iamjoonsoo.kim@lge.com;
lkml.iu.edu/hypermail/linux/kernel/1705.3/04011.html). The pointer, the blocks and the attach
policy are those of Vyukov's scheme (``PagePtrShadow``); only where the pointer lives, and so
what it costs, differ:

* page_ext is allocated at boot, one table per present memory section (SPARSEMEM), for all
  present memory whether it is ever allocated or not; each entry is the profile's
  ``page_ext_size`` (the shared flags header) plus the pointer (``mm/page_ext.c``,
  ``include/linux/page_ext.h``).
* ``lookup_page_ext()`` finds the entry through the section (``section->page_ext`` + pfn ×
  entry size): one more load per shadow read than a pointer in struct page. Vyukov's answer:
  "more overhead for no gain"; Murzin's: "still better than nothing".
"""

from __future__ import annotations

from dataclasses import replace

from .base import Footprint
from .pageptr import PagePtrShadow, ShadowBlock


class PageExtShadow(PagePtrShadow):
    """Shadow blocks hung off a page_ext entry (Murzin, 2017-05-30)."""

    name = "pageext"
    link_home = "page_ext"
    # section->page_ext (the table, less pfn × entry size), then the entry's pointer, then the
    # byte: one load more than pageptr. With SPARSEMEM_EXTREME, __pfn_to_section() also reads
    # the mem_section root table, not counted (like the vmemmap base of pageptr).
    loads_with_block = 3
    loads_null = 2

    def _metadata_bytes(self, p) -> int:
        """The page_ext tables: every present section, whole, at header + pointer per entry."""
        shift = p.section_size_bits
        sections: set[int] = set()
        for r in p.memory:
            sections.update(range(r.start >> shift, ((r.end - 1) >> shift) + 1))
        return len(sections) * p.pages_per_section * (p.page_ext_size + p.word_size)

    def _set_pointer(self, pfn: int, block_addr: int) -> None:
        """The pointer is the page_ext entry's (kept with the block): struct page is untouched."""

    # In lockstep with pageptr under the same attach policy, the blocks are the very same
    # blocks: one copy is kept (the twin's), and this scheme's own costs are counted from it.

    twin: PagePtrShadow | None = None

    def mirror(self, twin: PagePtrShadow) -> None:
        self.twin = twin

    def footprint(self) -> Footprint:
        if self.twin is None:
            return super().footprint()
        fp = self.twin.footprint()
        return replace(
            fp, metadata_bytes=self._metadata, loads=fp.loads + fp.checks
        )  # lookup_page_ext(): one more load

    def shadow_link(self, pfn: int) -> str:
        if self.twin is None:
            return super().shadow_link(pfn)
        return self.twin.shadow_link(pfn).replace(f"({self.twin.link_home})", f"({self.link_home})")

    def shadow_slabs(
        self, first: int = 0, count: int | None = None
    ) -> dict[int, list[ShadowBlock]]:
        if self.twin is None:
            return super().shadow_slabs(first, count)
        return self.twin.shadow_slabs(first, count)

    def served_pfns(self) -> list[int]:
        return super().served_pfns() if self.twin is None else self.twin.served_pfns()

    def block_address(self, pfn: int) -> int | None:
        if self.twin is None:
            return super().block_address(pfn)
        return self.twin.block_address(pfn)

    @property
    def shadow_cache(self):
        return self._cache if self.twin is None else self.twin.shadow_cache

    def has_own_shadow(self, pfn: int) -> bool:
        if self.twin is None:
            return super().has_own_shadow(pfn)
        return self.twin.has_own_shadow(pfn)

    # The reads too: a mirror's own tables stay empty (lockstep writes only to its twin), and
    # read as if no page had a block or an allocation (free RAM's FF everywhere).

    def shadow_byte(self, addr: int) -> int:
        if self.twin is None:
            return super().shadow_byte(addr)
        return self.twin.shadow_byte(addr)

    def read(self, addr: int, size: int) -> bytes:
        if self.twin is None:
            return super().read(addr, size)
        return self.twin.read(addr, size)
