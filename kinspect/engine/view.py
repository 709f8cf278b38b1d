"""The read API: everything the views and the session read from a simulated machine.

The widgets, the app and the session's view helpers (``SchemeView``) read a machine only
through the ``MachineView`` protocol below, never through ``Machine`` attributes (``zones``,
``slab_of_pfn``, ``large``, ``pages``, ``caches``, ``memmap``...): those are the engine's own
state, and the engines keep it differently (issue 12: the native engine holds it in flat
buffers). ``MachineReader`` is the one implementation, for both engines
(``Machine(engine="python")`` and ``Machine(engine="native")``); it is the only code outside
the engine that touches a machine's internals, so a change to them is adapted here, once.
tests/test_view.py holds both engines' answers equal and checks that no view reaches past it.

Every answer is a value (an immutable record, a number, a fresh array or bytes): a view may
keep it, it does not change under the view's feet when the machine steps. Unknown is an
answer: a lookup that finds nothing returns None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import numpy as np

from .memory import Page, pfn_to_page
from .report import Track
from .shadow.base import Footprint, ShadowScheme
from .shadow.pageptr import PagePtrShadow
from .shadow.pshadow import PerPageShadow


class FreeBlock(NamedTuple):
    """A free buddy block holding a pfn: ``PageBuddy()`` on its head, ``buddy_order()``."""

    pfn: int  # the head pfn of the block
    order: int


class SlabInfo(NamedTuple):
    """``struct slab`` of a pfn, with what the views show of its ``struct kmem_cache``."""

    cache: str  # slab->slab_cache->name
    cache_id: int  # the cache's id (struct page's ``cache`` field)
    pfn: int  # the slab's head pfn (slab_pfn())
    pages: int  # 2^order pages
    base: int  # slab_address(): the first object's address
    objects: int  # slab->objects
    inuse: int  # slab->inuse
    frozen: bool  # slab->frozen: the CPU slab
    object_size: int  # s->object_size
    slot_size: int  # s->size: the object's slot, with its redzone and metadata


class LargeKmalloc(NamedTuple):
    """A ``kmalloc_large()`` allocation: a compound page from the page allocator."""

    pfn: int  # its head pfn
    order: int
    size: int  # the size asked of kmalloc


class PageBlock(NamedTuple):
    """A block of 2^order pages handed out by the page allocator, by its head pfn."""

    pfn: int
    order: int
    use: int  # shadow.base.PageUse: why it was allocated


class CacheInfo(NamedTuple):
    """A ``struct kmem_cache`` as ``/proc/slabinfo`` would show it."""

    name: str
    cache_id: int
    object_size: int  # s->object_size
    slot_size: int  # s->size
    objects_per_slab: int  # oo_objects(s->oo)
    slabs: tuple[int, ...]  # head pfns of its slabs, sorted
    objects_in_use: int  # slab->inuse summed over its slabs


class GlobalVariable(NamedTuple):
    """A global registered with KASAN (``struct kasan_global``)."""

    addr: int  # ->beg
    size: int  # ->size
    size_with_redzone: int  # ->size_with_redzone
    name: str  # ->name


class ObjectTracks(NamedTuple):
    """KASAN's metadata of a slab object: ``kasan_alloc_meta`` and ``kasan_free_meta``."""

    addr: int  # the object's address (nearest_obj())
    cache: str
    alloc: Track | None  # alloc_meta->alloc_track, None when not saved
    free: Track | None  # free_meta->free_track
    aux_stacks: tuple[Track | None, ...]  # alloc_meta->aux_stack[], newest first
    alloc_size: int  # the size asked of kmalloc (what kasan_get_alloc_size() finds)


class ShadowSlab(NamedTuple):
    """One slab of a per-page scheme's shadow-block cache (pageptr, pageext)."""

    pfn: int  # its head pfn
    pages: int  # 2^order pages
    blocks: tuple  # pageptr.ShadowBlock(addr, pfn | None, vaddr | None) per slot


class MachineView(Protocol):
    """What views read from a machine. Schemes are named as ``Session.scheme_names``."""

    # -- struct page and the page allocator
    def page(self, pfn: int) -> Page:
        """``pfn_to_page()``: the struct page of a pfn (an untouched one reads as free)."""

    def page_states(self, first: int, count: int) -> np.ndarray:
        """``memory.PageState`` of ``count`` pages from ``first`` (uint8, a fresh array)."""

    def for_each_section_states(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first pfn, PageState per page) of every memory section touched, in pfn order:
        the sections not listed hold free pages (or holes) only."""

    def page_flags_word(self, pfn: int) -> int:
        """page->flags as the kernel prints it (flags, zone and section bits)."""

    def compound_head(self, pfn: int) -> int:
        """``compound_head()``'s pfn (the pfn itself if it is no tail page)."""

    def dump_page(self, pfn: int) -> list[str]:
        """``dump_page()``'s lines for a head pfn, as a KASAN report prints them."""

    def page_address(self, pfn: int) -> int:
        """``page_address()`` of a lowmem pfn."""

    def addr_to_pfn(self, addr: int) -> int | None:
        """The pfn backing a kernel address (direct map, kernel image, vmalloc), or None."""

    def find_free_block(self, pfn: int) -> FreeBlock | None:
        """The free buddy block holding pfn, or None if the pfn is allocated (or reserved)."""

    def find_slab(self, pfn: int) -> SlabInfo | None:
        """The slab a pfn belongs to (any of its pages), or None."""

    def find_large_kmalloc(self, pfn: int) -> LargeKmalloc | None:
        """The large kmalloc a pfn belongs to (any of its pages), or None."""

    def allocated_pages(self) -> list[PageBlock]:
        """Every block the page allocator has handed out now, by head pfn."""

    def highest_allocated_pfn(self) -> int | None:
        """The highest head pfn handed out now (where SLUB's first slabs are), or None."""

    # -- slab
    def caches(self) -> list[CacheInfo]:
        """Every kmem_cache, in creation order."""

    def find_cache(self, name: str) -> CacheInfo | None:
        """The kmem_cache of that name (the first made, as ``kmem_cache_create()`` names
        need not be unique), or None."""

    def object_tracks(self, addr: int) -> ObjectTracks | None:
        """KASAN's tracks of the slab object holding a direct-map address, or None."""

    def global_variables(self) -> list[GlobalVariable]:
        """The globals registered with KASAN, in registration order."""

    # -- shadow
    def shadow_bytes(self, scheme: str, addr: int, size: int) -> bytes:
        """The scheme's shadow bytes of the granules [addr, addr + size)."""

    def shadow_reader(self, scheme: str) -> Callable[[int, int], bytes]:
        """``shadow_bytes`` of one scheme as a function of (addr, size)."""

    def shadow_link(self, scheme: str, pfn: int) -> str | None:
        """Where the scheme keeps the pfn's shadow ("block at 0x...", "shadow page ...")."""

    def has_own_shadow(self, scheme: str, pfn: int) -> bool:
        """Whether the pfn's shadow lives in storage of its own, taken on demand."""

    def footprint(self, scheme: str) -> Footprint:
        """The scheme's memory bill now."""

    def shadow_storage(self, scheme: str) -> str:
        """How the scheme keeps shadow: "flat" (one range mapped at boot), "blocks" (a
        shadow-block cache: pageptr, pageext) or "windows" (pshadow's shadow pages)."""

    def shadow_block_size(self, scheme: str) -> int:
        """Bytes of one shadow block ("blocks" schemes)."""

    def shadow_windows(self, scheme: str) -> list:
        """pshadow.MappedWindow of every window with a real shadow page ("windows")."""

    def shadow_slabs(
        self, scheme: str, first: int = 0, count: int | None = None
    ) -> list[ShadowSlab]:
        """The shadow-block cache's slabs whose head pfn is in [first, first + count) (all of
        them by default), in pfn order ("blocks"); [] otherwise. Only the blocks of those
        slabs are looked at: a view asks for those it shows."""

    def shadow_slab_heads(self, scheme: str) -> list[int]:
        """Head pfns of the shadow-block cache's slabs, sorted ("blocks"); [] otherwise. No
        block is looked at."""

    def shadow_block_pfns(self, scheme: str) -> list[int]:
        """Sorted pfns served by a shadow block ("blocks": the pfns of every slot of
        ``shadow_slabs`` that serves one, a pfn twice when its direct-map page and its kernel
        image page both have one); [] otherwise. Read from the scheme's block pool, no slab
        walked."""

    def shadow_block_of_pfn(self, scheme: str, pfn: int) -> int | None:
        """The address of the shadow block serving pfn ("blocks": its ``page->shadow``, the
        direct-map page's, else the kernel image page's), or None."""

    def shadow_slab_pages(self, scheme: str) -> list[int]:
        """Sorted pfns of the scheme's own shadow pages (its shadow slabs' pages, or
        pshadow's shadow pages); [] for flat."""


class MachineReader:
    """``MachineView`` over a ``kinspect.engine.machine.Machine`` (either engine).

    Cheap to make: ``machine_view(session)`` makes one per question, so a view never holds
    a machine that going back has replaced.
    """

    __slots__ = ("_m", "_schemes")

    def __init__(self, machine) -> None:
        self._m = machine
        self._schemes: dict[str, ShadowScheme] | None = None

    # -- struct page and the page allocator

    def page(self, pfn: int) -> Page:
        return pfn_to_page(self._m.memmap, pfn)

    def page_states(self, first: int, count: int) -> np.ndarray:
        return self._m.memmap.states(first, count)

    def for_each_section_states(self) -> Iterator[tuple[int, np.ndarray]]:
        for start, sec in self._m.memmap.for_each_section():
            yield start, sec["state"]

    def page_flags_word(self, pfn: int) -> int:
        return self._m.page_flags_word(pfn)

    def compound_head(self, pfn: int) -> int:
        return self._m.compound_head(pfn)

    def dump_page(self, pfn: int) -> list[str]:
        return self._m.dump_page(pfn)

    def page_address(self, pfn: int) -> int:
        return self._m.page_address(pfn)

    def addr_to_pfn(self, addr: int) -> int | None:
        return self._m.addr_to_pfn(addr)

    def find_free_block(self, pfn: int) -> FreeBlock | None:
        m = self._m
        found = m.zones[m.profile.zone_of_pfn(pfn)].find_free_block(pfn)
        return FreeBlock(*found) if found is not None else None

    def find_slab(self, pfn: int) -> SlabInfo | None:
        slab = self._m.slab_of(pfn)
        if slab is None:
            return None
        c = slab.cache
        return SlabInfo(
            c.name,
            c.id,
            slab.pfn,
            1 << c.layout.order,
            slab.base,
            c.objects,
            slab.inuse,
            bool(slab.frozen),
            c.object_size,
            c.size,
        )

    def find_large_kmalloc(self, pfn: int) -> LargeKmalloc | None:
        head = self._m.compound_head(pfn)
        found = self._m.large.get(head)
        return LargeKmalloc(head, *found) if found is not None else None

    def allocated_pages(self) -> list[PageBlock]:
        return [
            PageBlock(pfn, order, int(use)) for pfn, (order, use) in sorted(self._m.pages.items())
        ]

    def highest_allocated_pfn(self) -> int | None:
        pages = self._m.pages
        return max(pages) if pages else None

    # -- slab

    def _cache_info(self, c) -> CacheInfo:
        m = self._m
        heads = m.slub.slab_heads(c)
        return CacheInfo(
            c.name,
            c.id,
            c.object_size,
            c.size,
            c.objects,
            tuple(heads),
            sum(m.slab_of(head).inuse for head in heads),
        )

    def caches(self) -> list[CacheInfo]:
        return [self._cache_info(c) for c in self._m.caches]

    def find_cache(self, name: str) -> CacheInfo | None:
        for c in self._m.caches:
            if c.name == name:
                return self._cache_info(c)
        return None

    def object_tracks(self, addr: int) -> ObjectTracks | None:
        m = self._m
        slab = m.find_slab(addr)
        if slab is None:
            return None
        obj = slab.cache.nearest_obj(slab, addr)
        meta = m.object_meta(obj)
        unpack = m._unpack_track
        return ObjectTracks(
            obj,
            slab.cache.name,
            unpack(meta.alloc_track),
            unpack(meta.free_track),
            tuple(unpack(t) for t in meta.aux_stacks),
            meta.alloc_size,
        )

    def global_variables(self) -> list[GlobalVariable]:
        return [GlobalVariable(*g) for g in self._m.globals]

    # -- shadow

    def _scheme(self, name: str) -> ShadowScheme:
        if self._schemes is None:
            self._schemes = {s.name: s for s in self._m.schemes}
        return self._schemes[name]

    def shadow_bytes(self, scheme: str, addr: int, size: int) -> bytes:
        return self._scheme(scheme).read(addr, size)

    def shadow_reader(self, scheme: str) -> Callable[[int, int], bytes]:
        return self._scheme(scheme).read

    def shadow_link(self, scheme: str, pfn: int) -> str | None:
        return self._scheme(scheme).shadow_link(pfn)

    def has_own_shadow(self, scheme: str, pfn: int) -> bool:
        return self._scheme(scheme).has_own_shadow(pfn)

    def footprint(self, scheme: str) -> Footprint:
        return self._scheme(scheme).footprint()

    def shadow_storage(self, scheme: str) -> str:
        s = self._scheme(scheme)
        return (
            "blocks"
            if isinstance(s, PagePtrShadow)
            else "windows"
            if isinstance(s, PerPageShadow)
            else "flat"
        )

    def shadow_block_size(self, scheme: str) -> int:
        s = self._scheme(scheme)
        if not isinstance(s, PagePtrShadow):
            raise ValueError(f"scheme {scheme!r} keeps no shadow blocks")
        return s.block_size

    def shadow_windows(self, scheme: str) -> list:
        s = self._scheme(scheme)
        return s.windows() if isinstance(s, PerPageShadow) else []

    def shadow_slabs(
        self, scheme: str, first: int = 0, count: int | None = None
    ) -> list[ShadowSlab]:
        s = self._scheme(scheme)
        if not isinstance(s, PagePtrShadow):
            return []
        slab_of = self._m.slab_of
        out = []
        for head, blocks in s.shadow_slabs(first, count).items():
            slab = slab_of(head)
            pages = 1 << slab.cache.layout.order if slab is not None else 1
            out.append(ShadowSlab(head, pages, tuple(blocks)))
        return out

    def shadow_slab_heads(self, scheme: str) -> list[int]:
        s = self._scheme(scheme)
        cache = s.shadow_cache if isinstance(s, PagePtrShadow) else None
        return [] if cache is None else self._m.slub.slab_heads(cache)

    def shadow_block_pfns(self, scheme: str) -> list[int]:
        s = self._scheme(scheme)
        return s.served_pfns() if isinstance(s, PagePtrShadow) else []

    def shadow_block_of_pfn(self, scheme: str, pfn: int) -> int | None:
        s = self._scheme(scheme)
        return s.block_address(pfn) if isinstance(s, PagePtrShadow) else None

    def shadow_slab_pages(self, scheme: str) -> list[int]:
        s = self._scheme(scheme)
        if isinstance(s, PerPageShadow):
            return sorted(w.shadow_pfn for w in s.windows())
        cache = s.shadow_cache if isinstance(s, PagePtrShadow) else None
        if cache is None:
            return []
        heads = np.array(self._m.slub.slab_heads(cache), np.int64)  # (sorted, apart)
        return (heads[:, None] + np.arange(1 << cache.layout.order)).ravel().tolist()


def machine_view(session) -> MachineView:
    """The read API over a session's machine now (going back replaces the machine: ask
    again after a step rather than keeping the answer's reader)."""
    return MachineReader(session.machine)
