"""The struct page store (SPARSEMEM style) and address conversions with kernel names.

``struct page`` fields live in per-section numpy arrays (struct of arrays), created on first
touch, so a 1 TB profile costs nothing until its pages are used. Untouched pages read as a
free page (refcount 0, no flags).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

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

PAGEFLAG_NAMES = {
    PG_locked: "locked",
    PG_referenced: "referenced",
    PG_uptodate: "uptodate",
    PG_dirty: "dirty",
    PG_lru: "lru",
    PG_head: "head",
    PG_reserved: "reserved",
    PG_private: "private",
}

# page_type (6.12): the top byte of page->page_type; 0xffffffff means no type (mapcount -1).
PGTY_buddy = 0xF0
PGTY_slab = 0xF5
PAGE_TYPE_NONE = 0xFFFFFFFF


class PageState:
    """How a page is used, for views: one small code per pfn (kinspect's own, not a kernel
    field)."""

    FREE = 0
    PAGE_ALLOC = 1
    SLAB = 2
    LARGE_KMALLOC = 3
    STACK = 4
    VMALLOC = 5
    SHADOW_SLAB = 6
    PAGE_EXT = 7
    RESERVED = 8

    NAMES = (
        "free",
        "page allocation",
        "slab",
        "large kmalloc",
        "kernel stack",
        "vmalloc",
        "shadow slab",
        "page_ext",
        "reserved",
    )


STATE_OF_USE = {
    PageUse.PAGE_ALLOC: PageState.PAGE_ALLOC,
    PageUse.SLAB: PageState.SLAB,
    PageUse.LARGE_KMALLOC: PageState.LARGE_KMALLOC,
    PageUse.STACK: PageState.STACK,
    PageUse.VMALLOC: PageState.VMALLOC,
    PageUse.SHADOW: PageState.SHADOW_SLAB,
}


# struct page as kinspect keeps it: one record per pfn (a structured numpy dtype).
PAGE_DTYPE = np.dtype(
    [
        ("flags", np.uint32),  # page->flags: PG_* bits (zone and section are added when shown)
        ("page_type", np.uint32),  # page->page_type: PGTY_* << 24, or PAGE_TYPE_NONE
        ("order", np.uint8),  # compound order, on the head page
        ("refcount", np.int32),  # page->_refcount
        ("cache", np.int32),  # slab->slab_cache (a cache id), -1 if not a slab page
        ("state", np.uint8),  # PageState, for views
        ("head", np.int64),  # compound_head() pfn of a tail page, -1 otherwise
        ("shadow", np.uint64),  # the shadow link of the per-page schemes (an address), 0 = NULL
    ]
)

FREE_PAGE = (0, PAGE_TYPE_NONE, 0, 0, -1, PageState.FREE, -1, 0)

# A record's bytes as PAGE_DTYPE lays them out (packed, native byte order): set_pages() writes
# them into the section's memory directly, ten times cheaper than numpy's structured assignment.
_PACK = struct.Struct("=IIBiiBqQ").pack
assert struct.calcsize("=IIBiiBqQ") == PAGE_DTYPE.itemsize
_RECORD_SIZE = PAGE_DTYPE.itemsize
# One field of a record: (its offset, a packer writing it in place), for set_field() on one page.
_PAGE_FIELD_NAMES, _PAGE_FIELDS = PAGE_DTYPE.names, PAGE_DTYPE.fields
assert _PAGE_FIELD_NAMES is not None and _PAGE_FIELDS is not None  # a structured dtype has both
_FIELD_PACK = {
    name: (_PAGE_FIELDS[name][1], struct.Struct("=" + code).pack_into)
    for name, code in zip(_PAGE_FIELD_NAMES, "IIBiiBqQ")
}
_RECORD_BYTES: dict[tuple, bytes] = {}  # record -> bytes, for the records seen most


def record_bytes(record: tuple) -> bytes:
    """A struct page record's bytes as a section holds them (PAGE_DTYPE, packed)."""
    return _PACK(*record)


def _record_bytes(record: tuple) -> bytes:
    raw = _PACK(*record)
    if record[6] < 0 and len(_RECORD_BYTES) < 4096:  # not a tail (their head= varies)
        _RECORD_BYTES[record] = raw
    return raw


def page_record(
    state: int,
    refcount: int = 0,
    flags: int = 0,
    order: int = 0,
    cache: int = -1,
    page_type: int = PAGE_TYPE_NONE,
    head: int = -1,
    shadow: int = 0,
) -> tuple:
    """A struct page record, fields in PAGE_DTYPE order."""
    return (flags, page_type, order, refcount, cache, state, head, shadow)


class MemMap:
    """All struct pages of the machine, sparse by section (``mem_map`` / ``vmemmap``).

    Each touched section (``struct mem_section``) holds its memmap as one PAGE_DTYPE array.
    """

    def __init__(self, profile: ArchProfile) -> None:
        self.profile = profile
        self.section_shift = profile.section_size_bits - profile.page_shift
        self.pages_per_section = 1 << self.section_shift
        self._sections: dict[int, np.ndarray] = {}
        self._bytes: dict[int, memoryview] = {}  # the same sections' memory, as bytes
        # An observer's journal: while it is a list, every write appends its (first pfn,
        # count) to it; the observer empties it (kinspect.session.recording: after each event).
        self.written: list[tuple[int, int]] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_bytes"]  # memoryviews: rebuilt on unpickling
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._bytes = {nr: sec.view(np.uint8).data for nr, sec in self._sections.items()}

    def section(self, pfn: int) -> np.ndarray:
        """``__pfn_to_section()``'s memmap, created on first touch (all pages free)."""
        nr = pfn >> self.section_shift
        sec = self._sections.get(nr)
        if sec is None:
            sec = np.empty(self.pages_per_section, dtype=PAGE_DTYPE)
            sec[:] = FREE_PAGE
            self._sections[nr] = sec
            self._bytes[nr] = sec.view(np.uint8).data
        return sec

    def find_section(self, pfn: int) -> np.ndarray | None:
        return self._sections.get(pfn >> self.section_shift)

    def for_each_section(self):
        """(first pfn, memmap array) of every touched section, in pfn order."""
        for nr in sorted(self._sections):
            yield nr << self.section_shift, self._sections[nr]

    def set_pages(self, pfn: int, count: int, record: tuple) -> None:
        """Set the whole struct page of ``count`` pages from ``pfn`` to ``record``."""
        if self.written is not None:
            self.written.append((pfn, count))
        raw = _RECORD_BYTES.get(record) or _record_bytes(record)
        i = pfn & (self.pages_per_section - 1)
        if i + count <= self.pages_per_section:  # one section (nearly always)
            view = self._bytes.get(pfn >> self.section_shift)
            if view is not None:
                view[i * _RECORD_SIZE : (i + count) * _RECORD_SIZE] = (
                    raw if count == 1 else raw * count
                )
                return
        mask = self.pages_per_section - 1
        while count > 0:
            view = self._bytes.get(pfn >> self.section_shift)
            if view is None:
                self.section(pfn)
                view = self._bytes[pfn >> self.section_shift]
            i = pfn & mask
            n = min(count, self.pages_per_section - i)
            view[i * _RECORD_SIZE : (i + n) * _RECORD_SIZE] = raw * n
            pfn += n
            count -= n

    def set_field(self, pfn: int, count: int, field: str, value) -> None:
        """Set one struct page field of ``count`` pages from ``pfn``."""
        if self.written is not None:
            self.written.append((pfn, count))
        mask = self.pages_per_section - 1
        if count == 1:
            view = self._bytes.get(pfn >> self.section_shift)
            if view is not None:
                offset, pack_into = _FIELD_PACK[field]
                pack_into(view, (pfn & mask) * _RECORD_SIZE + offset, value)
                return
        while count > 0:
            sec = self.section(pfn)
            i = pfn & mask
            n = min(count, self.pages_per_section - i)
            sec[field][i : i + n] = value
            pfn += n
            count -= n

    def get(self, pfn: int, field: str, default):
        sec = self._sections.get(pfn >> self.section_shift)
        if sec is None:
            return default
        return sec[field][pfn & (self.pages_per_section - 1)].item()

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
                out[done : done + n] = sec["state"][i : i + n]
            done += n
        return out

    def nbytes(self) -> int:
        """Simulator memory held by touched sections."""
        return sum(s.nbytes for s in self._sections.values())


class Page(NamedTuple):
    """A read-only ``struct page``: a pfn and its fields, as the kernel would name them."""

    pfn: int
    flags: int
    page_type: int
    order: int
    refcount: int
    cache: int
    state: int
    head: int
    shadow: int

    def PageHead(self) -> bool:
        return bool(self.flags & (1 << PG_head))

    def PageTail(self) -> bool:
        return self.head >= 0

    def PageSlab(self) -> bool:
        return self.page_type >> 24 == PGTY_slab

    def PageReserved(self) -> bool:
        return bool(self.flags & (1 << PG_reserved))


def pfn_to_page(memmap: MemMap, pfn: int) -> Page:
    """``pfn_to_page()``: the struct page of a pfn (an untouched section reads as free)."""
    sec = memmap.find_section(pfn)
    fields = FREE_PAGE if sec is None else sec[pfn & (memmap.pages_per_section - 1)].item()
    return Page(pfn, *fields)


def page_to_pfn(page: Page) -> int:
    return page.pfn


def virt_to_page(memmap: MemMap, addr: int) -> Page:
    """``virt_to_page()`` of a direct-map address."""
    return pfn_to_page(memmap, virt_to_pfn(memmap.profile, addr))


# Address conversions, with kernel names: the one copy (the Machine's page_address() and
# direct-map lookups call these; the profile holds only the arch's __pa()/__va(), its
# virt_to_phys()/phys_to_virt(); the compiled engine has its own inlined copies).


def PFN_PHYS(profile: ArchProfile, pfn: int) -> int:
    return pfn << profile.page_shift


def PHYS_PFN(profile: ArchProfile, phys: int) -> int:
    return phys >> profile.page_shift


def pfn_to_virt(profile: ArchProfile, pfn: int) -> int:
    """``page_address(pfn_to_page(pfn))`` for a lowmem page."""
    return profile.phys_to_virt(PFN_PHYS(profile, pfn))


def virt_to_pfn(profile: ArchProfile, addr: int) -> int:
    """``virt_to_pfn()`` for a direct-map address (ValueError for any other)."""
    return PHYS_PFN(profile, profile.virt_to_phys(addr))


def virt_addr_valid(profile: ArchProfile, addr: int) -> bool:
    """``virt_addr_valid()``: a direct-map address of present lowmem."""
    try:
        pfn = virt_to_pfn(profile, addr)
    except ValueError:
        return False
    return profile.pfn_valid(pfn) and profile.is_lowmem_pfn(pfn)
