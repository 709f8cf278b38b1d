"""The shadow-scheme interface: where shadow bytes live.

A scheme stores the shadow of generic KASAN. The machine (allocators and KASAN hooks) writes
through ``poison``/``set_byte`` and tells the scheme about page life cycles through
``page_alloc``/``page_free``; the access check reads through ``shadow_byte``. Every scheme must
give byte-identical answers to the flat reference: only where the bytes live, and what that
costs, differs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import IntEnum


class PageUse(IntEnum):
    """Why a page was allocated: per-page schemes decide from this whether it needs byte shadow."""

    PAGE_ALLOC = 0      # alloc_pages(): shadow is only ever all-00 or all-FF
    SLAB = 1            # a slab (byte-granular)
    LARGE_KMALLOC = 2   # a kmalloc_large compound page (byte-granular tail redzone)
    STACK = 3           # a kernel stack (byte-granular frames)
    VMALLOC = 4         # a page backing vmalloc
    SHADOW = 5          # a page holding shadow itself (shadow-slab pages of per-page schemes)


@dataclass
class Footprint:
    """What a scheme costs, counted as a kernel would spend it (bytes), not simulator RSS."""

    static_bytes: int = 0          # reserved at boot
    dynamic_bytes: int = 0         # shadow allocated on demand now
    dynamic_peak_bytes: int = 0
    metadata_bytes: int = 0        # struct page growth, page_ext arrays
    virtual_range_bytes: int = 0   # contiguous virtual range reserved


class ShadowScheme(ABC):
    """Storage of generic-KASAN shadow bytes for one simulated machine."""

    name: str = ""

    @abstractmethod
    def poison(self, addr: int, size: int, value: int) -> None:
        """``kasan_poison()``: set the shadow of [addr, addr + size) (granule aligned) to value."""

    @abstractmethod
    def write(self, addr: int, data: bytes) -> None:
        """Write a run of shadow bytes, one per granule from addr (granule aligned)."""

    @abstractmethod
    def set_byte(self, addr: int, value: int) -> None:
        """Write the one shadow byte of the granule holding addr."""

    @abstractmethod
    def shadow_byte(self, addr: int) -> int:
        """The shadow byte of the granule holding addr (``*kasan_mem_to_shadow(addr)``)."""

    @abstractmethod
    def read(self, addr: int, size: int) -> bytes:
        """Shadow bytes of the granules [addr, addr + size), addr granule aligned."""

    def page_alloc(self, pfn: int, order: int, use: PageUse) -> None:
        """A block of 2^order pages left the buddy allocator (attach point)."""

    def page_free(self, pfn: int, order: int) -> None:
        """A block of 2^order pages returns to the buddy allocator (detach point)."""

    @abstractmethod
    def footprint(self) -> Footprint:
        """The scheme's memory bill now."""
