"""Virtual addresses of an x86_64 kernel in a dump: the direct map, and a page-table walk
(4-level, or 5-level when CR4.LA57 is set) for everything else: the KASAN shadow (mapped by
kasan_init() in arch/x86/mm/kasan_init_64.c), vmalloc, the kernel image.

A walk that meets a not-present entry, or an entry whose table is not in the dump (a corrupt
entry), answers None ("unmapped or unknown"), never an exception.
"""

from __future__ import annotations

from .core import ElfCore

__all__ = ["PageTables", "PAGE_SIZE", "START_KERNEL_MAP"]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
# arch/x86/include/asm/pgtable_types.h
_PAGE_PRESENT = 1 << 0
_PAGE_PSE = 1 << 7
# arch/x86/include/asm/page_64_types.h: __PHYSICAL_MASK_SHIFT 52
_PHYSICAL_MASK = (1 << 52) - 1
PTE_PFN_MASK = _PHYSICAL_MASK & ~(PAGE_SIZE - 1)
X86_CR4_LA57 = 1 << 12  # arch/x86/include/uapi/asm/processor-flags.h
START_KERNEL_MAP = 0xFFFFFFFF80000000  # __START_KERNEL_map, page_64_types.h
# the shifts of the levels, top first: PGDIR (P4D with 5 levels), PUD, PMD, PTE
_SHIFTS_4 = (39, 30, 21, 12)
_SHIFTS_5 = (48, 39, 30, 21, 12)
PTRS_PER_TABLE = 512


class PageTables:
    """Translation of kernel virtual addresses through the page tables at physical ``root``
    (CR3 without its PCID bits, or ``init_top_pgt``)."""

    def __init__(self, core: ElfCore, root: int, la57: bool = False) -> None:
        self.core = core
        self.root = root & PTE_PFN_MASK
        self.la57 = la57
        self._shifts = _SHIFTS_5 if la57 else _SHIFTS_4
        self._cache: dict[int, tuple[int, int] | None] = {}

    def translate(self, vaddr: int) -> int | None:
        """The physical address of ``vaddr``, or None (not present, or not in the dump)."""
        hit = self._page(vaddr)
        if hit is None:
            return None
        base, size = hit
        return base + (vaddr & (size - 1))

    def mapping(self, vaddr: int) -> tuple[int, int] | None:
        """(physical base, page size) of the page holding ``vaddr``, or None."""
        return self._page(vaddr)

    def _page(self, vaddr: int) -> tuple[int, int] | None:
        key = vaddr >> PAGE_SHIFT
        if key in self._cache:
            return self._cache[key]
        hit = self._walk(vaddr)
        if len(self._cache) > 1 << 16:
            self._cache.clear()
        self._cache[key] = hit
        return hit

    def _walk(self, vaddr: int) -> tuple[int, int] | None:
        table = self.root
        last = len(self._shifts) - 1
        for level, shift in enumerate(self._shifts):
            index = (vaddr >> shift) & (PTRS_PER_TABLE - 1)
            entry = self.core.read_phys_u64(table + 8 * index)
            if entry is None or not entry & _PAGE_PRESENT:
                return None
            # a large page: a PUD (1G) or PMD (2M) entry with _PAGE_PSE (pud_leaf, pmd_leaf)
            if level < last and level >= last - 2 and entry & _PAGE_PSE:
                size = 1 << shift
                return entry & _PHYSICAL_MASK & ~(size - 1), size
            table = entry & PTE_PFN_MASK
        return table, PAGE_SIZE
