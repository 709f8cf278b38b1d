"""The struct page store (SPARSEMEM style) and address conversions with kernel names.

``struct page`` fields live in per-section numpy arrays (struct of arrays), created on first
touch, so a 1 TB profile costs nothing until its pages are used. Untouched pages read as a
free page (refcount 0, no flags).
"""

from __future__ import annotations

import numpy as np

from .profile import ArchProfile
from .shadow.base import PageUse

# enum pageflags bits, include/linux/page-flags.h (6.12, 64-bit).
PG_locked = 0
PG_referenced = 2
PG_uptodate = 3
PG_dirty = 4
PG_lru = 5
PG_head = 6
PG_reserved = 13
PG_private = 14

PAGEFLAG_NAMES = {PG_locked: "locked", PG_referenced: "referenced", PG_uptodate: "uptodate",
                  PG_dirty: "dirty", PG_lru: "lru", PG_head: "head", PG_reserved: "reserved",
                  PG_private: "private"}

# page_type (6.12): the top byte of page->page_type; 0xffffffff means no type (mapcount -1).
PGTY_buddy = 0xF0
PGTY_slab = 0xF5
PAGE_TYPE_NONE = 0xFFFFFFFF


class PageState:
    """How a page is used, for views: one small code per pfn (kinspect's own, not a kernel field)."""

    FREE = 0
    PAGE_ALLOC = 1
    SLAB = 2
    LARGE_KMALLOC = 3
    STACK = 4
    VMALLOC = 5
    SHADOW_SLAB = 6
    PAGE_EXT = 7
    RESERVED = 8

    NAMES = ("free", "page allocation", "slab", "large kmalloc", "kernel stack", "vmalloc",
             "shadow slab", "page_ext", "reserved")


STATE_OF_USE = {PageUse.PAGE_ALLOC: PageState.PAGE_ALLOC, PageUse.SLAB: PageState.SLAB,
                PageUse.LARGE_KMALLOC: PageState.LARGE_KMALLOC, PageUse.STACK: PageState.STACK,
                PageUse.VMALLOC: PageState.VMALLOC, PageUse.SHADOW: PageState.SHADOW_SLAB}


class MemSection:
    """``struct mem_section``'s memmap: the struct pages of one section, as arrays."""

    __slots__ = ("flags", "page_type", "order", "refcount", "cache", "state", "head", "shadow")

    def __init__(self, n: int) -> None:
        self.flags = np.zeros(n, dtype=np.uint32)
        self.page_type = np.full(n, PAGE_TYPE_NONE, dtype=np.uint32)
        self.order = np.zeros(n, dtype=np.uint8)          # compound order (on the head page)
        self.refcount = np.zeros(n, dtype=np.int32)
        self.cache = np.full(n, -1, dtype=np.int32)       # slab cache id (slab->slab_cache)
        self.state = np.zeros(n, dtype=np.uint8)          # PageState
        self.head = np.full(n, -1, dtype=np.int64)        # compound_head pfn for tail pages
        self.shadow = np.full(n, -1, dtype=np.int64)      # shadow link of per-page schemes

    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in self.__slots__)


class MemMap:
    """All struct pages of the machine, sparse by section (``mem_map`` / ``vmemmap``)."""

    def __init__(self, profile: ArchProfile) -> None:
        self.profile = profile
        self.section_shift = profile.section_size_bits - profile.page_shift
        self.pages_per_section = 1 << self.section_shift
        self._sections: dict[int, MemSection] = {}

    def section(self, pfn: int) -> MemSection:
        """``__pfn_to_section()``, creating the section's memmap on first touch."""
        nr = pfn >> self.section_shift
        sec = self._sections.get(nr)
        if sec is None:
            sec = MemSection(self.pages_per_section)
            self._sections[nr] = sec
        return sec

    def find_section(self, pfn: int) -> MemSection | None:
        return self._sections.get(pfn >> self.section_shift)

    def for_each_section(self):
        """(first pfn, MemSection) of every touched section, in pfn order."""
        for nr in sorted(self._sections):
            yield nr << self.section_shift, self._sections[nr]

    def set_range(self, pfn: int, count: int, **fields) -> None:
        """Set struct page fields of ``count`` pages from ``pfn``."""
        mask = self.pages_per_section - 1
        while count > 0:
            sec = self.section(pfn)
            i = pfn & mask
            n = min(count, self.pages_per_section - i)
            for name, value in fields.items():
                getattr(sec, name)[i:i + n] = value
            pfn += n
            count -= n

    def get(self, pfn: int, field: str, default):
        sec = self._sections.get(pfn >> self.section_shift)
        if sec is None:
            return default
        return getattr(sec, field)[pfn & (self.pages_per_section - 1)].item()

    def states(self, pfn: int, count: int) -> np.ndarray:
        """PageState of ``count`` pages from ``pfn`` (untouched sections read as free)."""
        out = np.zeros(count, dtype=np.uint8)
        mask = self.pages_per_section - 1
        done = 0
        while done < count:
            p = pfn + done
            i = p & mask
            n = min(count - done, self.pages_per_section - i)
            sec = self._sections.get(p >> self.section_shift)
            if sec is not None:
                out[done:done + n] = sec.state[i:i + n]
            done += n
        return out

    def nbytes(self) -> int:
        """Simulator memory held by touched sections."""
        return sum(s.nbytes() for s in self._sections.values())


# Address conversions, with kernel names.

def PFN_PHYS(profile: ArchProfile, pfn: int) -> int:
    return pfn << profile.page_shift


def PHYS_PFN(profile: ArchProfile, phys: int) -> int:
    return phys >> profile.page_shift


def pfn_to_virt(profile: ArchProfile, pfn: int) -> int:
    """``page_address(pfn_to_page(pfn))`` for a lowmem page."""
    return profile.phys_to_virt(pfn << profile.page_shift)


def virt_to_pfn(profile: ArchProfile, addr: int) -> int:
    """``virt_to_pfn()`` for a direct-map address."""
    return profile.virt_to_phys(addr) >> profile.page_shift


def virt_addr_valid(profile: ArchProfile, addr: int) -> bool:
    """``virt_addr_valid()``: a direct-map address of present lowmem."""
    try:
        pfn = profile.virt_to_phys(addr) >> profile.page_shift
    except ValueError:
        return False
    return profile.pfn_valid(pfn) and profile.is_lowmem_pfn(pfn)
