"""The shadow-scheme interface: where shadow bytes live.

A scheme stores the shadow of generic KASAN. The machine (allocators and KASAN hooks) writes
through ``poison``/``write``/``set_byte`` and tells the scheme about page life cycles through
``page_alloc``/``page_free``; the access check reads through ``shadow_byte``. Every scheme must
give byte-identical answers to the flat reference: only where the bytes live, and what that
costs, differs.

A scheme is built as ``SchemeClass(machine, **options)`` before the machine allocates anything,
then ``boot()`` is called once the machine's allocators exist (a per-page scheme creates its
shadow-block cache there, with ``machine.create_shadow_cache``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from enum import IntEnum

from ..kasan import KASAN_SHADOW_SCALE_SHIFT


class PageUse(IntEnum):
    """Why a page was allocated: per-page schemes decide from this whether it needs byte shadow."""

    PAGE_ALLOC = 0  # alloc_pages(): shadow is only ever all-00 or all-FF
    SLAB = 1  # a slab (byte-granular)
    LARGE_KMALLOC = 2  # a kmalloc_large compound page (byte-granular tail redzone)
    STACK = 3  # a kernel stack (byte-granular frames)
    VMALLOC = 4  # a page backing vmalloc (its vmalloc mapping is byte-granular)
    SHADOW = 5  # a page of a shadow-block cache: never instrumented, never shadowed


BYTE_GRANULAR_USES = frozenset({PageUse.SLAB, PageUse.LARGE_KMALLOC, PageUse.STACK})
_FILL = [bytes([v]) for v in range(256)]


@dataclass
class Footprint:
    """What a scheme costs, counted as a kernel would spend it (bytes), not simulator RSS."""

    static_bytes: int = 0  # RAM reserved at boot for shadow
    dynamic_bytes: int = 0  # RAM allocated on demand for shadow, now
    dynamic_peak_bytes: int = 0  # ... at its peak
    metadata_bytes: int = 0  # struct page growth, page_ext arrays
    virtual_range_bytes: int = 0  # contiguous virtual range reserved for shadow
    shadow_pages_mapped: int = 0  # pshadow: real byte-shadow pages mapped now
    shadow_pages_needed: int = 0  # pshadow: windows that have a byte-granular page now
    page_table_pages: int = 0  # pshadow: page-table pages of the on-demand shadow mapping
    blocks_in_use: int = 0  # pageptr/pageext: shadow blocks attached now
    blocks_capacity: int = 0  # pageptr/pageext: blocks the shadow slab's pages can hold
    shadow_slab_pages: int = 0  # pageptr/pageext: pages of the shadow-block cache
    checks: int = 0  # shadow reads made by checks
    loads: int = 0  # memory loads those reads cost in this scheme
    inline_possible: bool = True  # can the compiler emit the check inline?
    stack_possible: bool = True  # can gcc's prologues write stack shadow directly?

    def total_bytes(self) -> int:
        """Everything the scheme costs in RAM now: static + dynamic + metadata."""
        return self.static_bytes + self.dynamic_bytes + self.metadata_bytes

    def as_dict(self) -> dict:
        return asdict(self)


class SegmentViews:
    """A scheme whose hot paths go through memoryviews of its bytearrays: a write of bytes into
    a bytearray's slice copies them into a bytearray first, into a memoryview's it does not. A
    memoryview does not pickle: the views are left out of the state and made again on
    unpickling. ``_SEGMENTS``: the names of the segments and of their views, a list of each or
    a dict of each (by the same keys); or ``_PFN_VIEWS``: the name of a dict of views by pfn
    that the hot paths fill as they go (a restored scheme starts with it empty)."""

    _SEGMENTS: tuple[str, str] | None = None
    _PFN_VIEWS: str | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._SEGMENTS is None:
            assert self._PFN_VIEWS is not None
            del state[self._PFN_VIEWS]
        else:
            del state[self._SEGMENTS[1]]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._SEGMENTS is None:
            assert self._PFN_VIEWS is not None
            setattr(self, self._PFN_VIEWS, {})
            return
        segments, views = self._SEGMENTS
        found = getattr(self, segments)
        if isinstance(found, dict):
            setattr(self, views, {key: memoryview(segment) for key, segment in found.items()})
        else:
            setattr(self, views, [memoryview(segment) for segment in found])


class ShadowScheme(ABC):
    """Storage of generic-KASAN shadow bytes for one simulated machine."""

    name: str = ""
    # Counted by shadow_byte(): the shadow reads of checks, and the memory loads they cost.
    # The machine restores both after building a report (a report's reads are not checks).
    checks: int = 0
    loads: int = 0

    def boot(self) -> None:  # noqa: B027 (a hook: by default nothing to do at boot)
        """The machine's allocators exist: create caches, map what boot maps."""

    def poison(self, addr: int, size: int, value: int) -> None:
        """``kasan_poison()``: set the shadow of [addr, addr + size) (granule aligned) to value,
        a write of value into each granule's byte (the flat scheme populates vmalloc shadow
        first)."""
        self.write(addr, _FILL[value] * (size >> KASAN_SHADOW_SCALE_SHIFT))

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

    def page_alloc(self, pfn: int, order: int, use: PageUse) -> bool:
        """2^order pages left the buddy allocator for ``use`` (attach point).

        False when the scheme cannot shadow them (no memory for shadow): the allocation fails.
        """
        return True

    def page_free(self, pfn: int, order: int) -> None:  # noqa: B027 (a hook: by default nothing)
        """2^order pages return to the buddy allocator (detach point)."""

    @abstractmethod
    def footprint(self) -> Footprint:
        """The scheme's memory bill now."""

    def shadow_link(self, pfn: int) -> str | None:
        """For views: where this page's shadow lives ("block at 0x...", "shadow page ...")."""
        return None

    def has_own_shadow(self, pfn: int) -> bool:
        """For views: whether the page's shadow lives in storage of its own, taken on demand
        (a block, a mapped window's shadow page), not implied by its state. Never for the
        flat shadow, mapped for all memory at boot."""
        return False
