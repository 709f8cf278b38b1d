"""D. Vyukov's counter-proposal to the per-page shadow series (linux-mm, 2017-05-29).

Instead of J. Kim's pshadow, black page and TLB tricks, Vyukov proposed to "add a pointer to shadow
in struct page" and "a slab allocator for 512-byte shadow blocks" (the 1/8 shadow of one 4 KiB
page), attached to and detached from pages as needed (his reply in the thread of J. Kim's "[PATCH
v1 00/11] mm/kasan: support per-page shadow memory to reduce memory consumption",
https://lore.kernel.org/r/1494897409-14408-1-git-send-email-iamjoonsoo.kim@lge.com). His stated
costs: the shadow is no longer contiguous, hence outline instrumentation only, and slower for the
extra indirection. A. Ryabinin (05-30) added that gcc writes stack shadow directly in function
prologues even in outline mode, so stack instrumentation would have to go as well.

kinspect's model:

* ``page->shadow`` is one more word in ``struct page`` for all present memory (the
  metadata bill); kinspect records it in the memmap's ``shadow`` field.
* Blocks of ``PAGE_SIZE >> KASAN_SHADOW_SCALE_SHIFT`` bytes come from a ``kmem_cache`` of the
  simulated machine itself (``kasan_shadow_blocks``), whose slab pages come from the same buddy
  allocator as the workload's (PageUse.SHADOW pages: never shadowed, never given a block).
* Attach policy ``byte-granular`` (the proposal): slab, kernel-stack and large-kmalloc pages get
  blocks at allocation; any other page gets one the first time its shadow is written with a
  value its state does not imply (a mempool poisoning an allocated page, the globals' redzones
  in the reserved kernel image). ``always``: every allocated page gets blocks at allocation.
  Blocks are detached at page free. No memory for a block at allocation fails the
  allocation; a block needed lazily that cannot be had raises MemoryError (the machine's
  writes of shadow cannot fail).
* A page without a block is judged by its state alone: allocated reads 00, free reads
  KASAN_PAGE_FREE, never allocated reads its boot-time shadow (free RAM FF, reserved 00).
* Compound pages get one block per subpage, as the proposal attaches "per page"; one
  ``(PAGE_SIZE << order) >> 3`` block on the head page would be the alternative (fewer
  objects, but a kmalloc-sized block of up to order 10, i.e. 512 KiB).
* The vmalloc space: a vmalloc page's physical page already has a pointer, which serves its
  direct-map alias, so the vmalloc mapping's shadow cannot live there. kinspect keeps blocks per
  virtual page of the vmalloc space (same cache, counted as blocks), implied value
  KASAN_VMALLOC_INVALID, handed back when vfree() poisons a whole page back to it. This is
  kinspect's decision: KASAN_VMALLOC did not exist in 2017 and the thread does not discuss it.
* A kernel image mapped apart from the direct map (x86_64, riscv64): its reserved pages get
  blocks lazily, through their ``struct page``, for the image mapping only; their direct-map
  alias keeps the shadow flat KASAN gives it (00). Where the image lies in the direct map
  (arm32, ppc32) it is just reserved direct-map pages; where it lies in the vmalloc space
  (arm64) its blocks are vmalloc-space blocks, and its boot shadow is flat's for that space.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..errors import KinspectError
from ..kasan import KASAN_PAGE_FREE, KASAN_SHADOW_SCALE_SHIFT
from .base import BYTE_GRANULAR_USES, Footprint, PageUse, SegmentViews, ShadowScheme

if TYPE_CHECKING:  # slab.py imports this package
    from ..slab import KmemCache

ATTACH_POLICIES = ("byte-granular", "always")
_FILL = [bytes([v]) for v in range(256)]

# The scheme's state is a handful of flat arrays (issue 12), no object per page or block:
#
# * per direct-map pfn, in chunks of CHUNK_PAGES pfns made on first touch (a 1 TB profile costs
#   nothing until used): ``_slot``, the pfn's block (an index in the pool, NO_BLOCK for a NULL
#   page->shadow), and ``_head``, the head pfn of the allocation holding it (NOT_ALLOCATED when
#   none). ``_chunk_of[pfn >> CHUNK_SHIFT]`` is the chunk's index in those two arrays (-1: not
#   made yet, every pfn in it NULL and unallocated);
# * the block pool: ``_pool``, segments of SEGMENT_SIZE bytes made as needed (never moved
#   nor copied: a pool grows by a segment), block i's PAGE_SIZE >> 3 shadow bytes in segment
#   i >> _segment_shift, at (i & _segment_mask) * block_size;
#   ``_block_addr``, its simulated address (an object of the kasan_shadow_blocks cache), 0 when
#   free; ``_block_space``, which space it shadows (PAGES, IMAGE, VIRTUAL; FREE_BLOCK when free);
#   ``_block_user``, the pfn or virtual page it shadows, or for a free block the next free
#   block (a free list threaded through the pool, as SLUB threads its freelist through free
#   objects), ``_free_block`` its first (NO_BLOCK: empty);
# * the kernel image mapped apart and the vmalloc space: small dicts (page -> block), since
#   only the image's globals and vmalloc'd pages written with bytes they do not imply get one.
#
# Arrays grow by replacement (a new, larger object), never in place: the compiled twin
# (_schemes.PagePtr) holds raw pointers into them and takes them again after any growth.
SEGMENT_SHIFT = 20
SEGMENT_SIZE = 1 << SEGMENT_SHIFT  # bytes of a pool's segment (1 MiB)
CHUNK_SHIFT = 12
CHUNK_PAGES = 1 << CHUNK_SHIFT
CHUNK_MASK = CHUNK_PAGES - 1
NO_BLOCK = -1
NOT_ALLOCATED = -1
assert KASAN_SHADOW_SCALE_SHIFT == 3  # spelled out in write(), shadow_byte()
PAGES, IMAGE, VIRTUAL = 0, 1, 2  # the spaces a block may shadow (_block_space)
FREE_BLOCK = -1
SPACE_NAMES = ("direct map", "kernel image", "vmalloc space")
# Policy "always": every page allocated gets blocks, but those of the shadow-block cache.
_ALLOCATED_USES = frozenset(PageUse) - {PageUse.SHADOW}


class ShadowBlock(NamedTuple):
    """One object slot of the shadow-block cache, for views."""

    addr: int  # the block's address (in a shadow slab page)
    pfn: int | None  # the page it shadows (None if free, or a vmalloc-space block)
    vaddr: int | None  # the vmalloc-space page it shadows, for such a block


def grown(a, n: int, fill: int):
    """``a`` (an array.array or bytearray) as a new object of at least n items, the new ones
    fill: capacity doubles, so n appends cost O(n) copies in all."""
    if len(a) >= n:
        return a
    extra = max(n, 2 * len(a), 64) - len(a)
    if isinstance(a, bytearray):
        return a + _FILL[fill] * extra
    return a + array(a.typecode, [fill]) * extra


class PagePtrShadow(SegmentViews, ShadowScheme):
    """Shadow blocks hung off ``page->shadow`` (Vyukov, 2017-05-29): outline only, no stack."""

    name = "pageptr"
    link_home = "pageptr"  # what shadow_link() says the pointer is
    _PFN_VIEWS = "_block_views"  # direct-map pages' blocks, by pfn (SegmentViews)
    # Memory loads of one shadow read (virt_to_page() is arithmetic on the vmemmap base, not
    # counted). With a block: the pointer, then the byte. Without one: the pointer alone when
    # it is NULL, which means "allocated, all 00" (the common case of a good access). A
    # blockless page whose state implies another byte (freed: FF; vmalloc space: F8) costs one
    # more load, whether its pointer holds a shared read-only block of that byte (like the
    # series' kasan_black_page) or the check reads the page's state word: counted like a
    # block. vmalloc-space reads are counted the same, a lower bound: a real kernel would first
    # have to find the virtual page's pointer (a vmap-area or page-table lookup).
    loads_with_block = 2
    loads_null = 1

    def __init__(self, machine, attach: str = "byte-granular", **_options) -> None:
        if attach not in ATTACH_POLICIES:
            raise KinspectError(
                f"unknown attach policy {attach!r} (known: {', '.join(ATTACH_POLICIES)})",
                "--attach",
            )
        p = machine.profile
        self._machine = machine
        self.attach = attach
        self._always = attach == "always"
        self._page_shift = p.page_shift
        self._page_size = p.page_size
        self._page_mask = p.page_size - 1
        self._granules = p.page_size >> KASAN_SHADOW_SCALE_SHIFT  # bytes in a block
        self._lm_start, self._lm_end = p.page_offset, p.high_memory
        self._lm_delta = p.page_offset - p.phys_offset  # __pa() of the direct map
        self._pa_start, self._pa_end = p.phys_offset, p.high_memory - self._lm_delta  # __pa()
        self._lowmem = (p.phys_offset >> p.page_shift, p.max_low_pfn)
        self._vmalloc_start, self._vmalloc_end = p.vmalloc_start, p.vmalloc_end
        self._is_lowmem_pfn = p.is_lowmem_pfn
        self._initial_byte = machine.initial_shadow_byte
        # per direct-map pfn (see above)
        self._chunk_of = array("i", [-1]) * ((p.max_low_pfn >> CHUNK_SHIFT) + 1)
        self._nchunks = 0
        self._slot = array("i")
        self._head = array("q")
        # the block pool (see above)
        self._pool: list[bytearray] = []
        # A direct-map page's block as a view of the pool, by pfn: the hot paths' one look-up
        # (write, shadow_byte: _block_view() fills it on a miss). Whoever detaches a block
        # drops its pfn (_detach; on the native engine _schemes.PagePtr.detach), so a view is
        # never stale; blocks never move (the pool grows by a segment).
        self._block_views: dict[int, memoryview] = {}
        self._segment_shift = SEGMENT_SHIFT - (self._granules.bit_length() - 1)
        self._segment_mask = (1 << self._segment_shift) - 1
        self._block_addr = array("Q")
        self._block_space = array("b")
        self._block_user = array("q")
        self._nblocks = 0  # blocks ever used: the pool's high-water mark
        self._free_block = NO_BLOCK
        self._in_use = 0  # blocks attached now
        self._image: dict[int, int] = {}  # a kernel image mapped apart: pfn -> block
        self._virtual: dict[int, int] = {}  # the vmalloc space (and any other): page -> block
        self._allocations: dict = {}  # machine.pages (bound at boot)
        self._cache: KmemCache | None = None  # made at boot
        self._peak_slab_pages = 0
        self._metadata = self._metadata_bytes(p)
        self.block_size = self._granules

    def _metadata_bytes(self, p) -> int:
        """``struct page`` grows by one word, for every present page."""
        return p.word_size * (p.mem_total >> p.page_shift)

    def boot(self) -> None:
        self._cache = self._machine.create_shadow_cache("kasan_shadow_blocks", self.block_size)
        self._allocations = self._machine.pages

    # ------------------------------------------------------------- the flat arrays

    def _index(self, pfn: int) -> int:
        """Where a direct-map pfn's slot and head are in _slot and _head; -1 when its chunk
        was never made (NULL pointer, not allocated)."""
        c = self._chunk_of[pfn >> CHUNK_SHIFT]
        return -1 if c < 0 else (c << CHUNK_SHIFT) | (pfn & CHUNK_MASK)

    def _make_index(self, pfn: int) -> int:
        """_index(), the chunk made (every pfn NULL and unallocated) when it was not."""
        c = self._chunk_of[pfn >> CHUNK_SHIFT]
        if c < 0:
            c = self._chunk_of[pfn >> CHUNK_SHIFT] = self._nchunks
            self._nchunks += 1
            self._slot = grown(self._slot, self._nchunks << CHUNK_SHIFT, NO_BLOCK)
            self._head = grown(self._head, self._nchunks << CHUNK_SHIFT, NOT_ALLOCATED)
        return (c << CHUNK_SHIFT) | (pfn & CHUNK_MASK)

    def _block_of(self, pfn: int) -> int:
        """``page->shadow`` of a direct-map pfn, as a block index (NO_BLOCK: NULL)."""
        i = self._index(pfn)
        return NO_BLOCK if i < 0 else self._slot[i]

    def _new_block(self) -> int:
        """A block of the pool for a block just allocated from the shadow cache: the first
        free one, else one more (the arrays grown when full)."""
        b = self._free_block
        if b != NO_BLOCK:
            self._free_block = self._block_user[b]
            return b
        b = self._nblocks
        self._nblocks += 1
        if b >= len(self._pool) << self._segment_shift:
            self._pool.append(bytearray(SEGMENT_SIZE))
            n = len(self._pool) << self._segment_shift  # the pool's new capacity
            self._block_addr = grown(self._block_addr, n, 0)
            self._block_space = grown(self._block_space, n, FREE_BLOCK)
            self._block_user = grown(self._block_user, n, NO_BLOCK)
        return b

    def _at(self, b: int) -> tuple[bytearray, int]:
        """Block b's segment of the pool, and where the block starts in it."""
        return self._pool[b >> self._segment_shift], (b & self._segment_mask) * self._granules

    def _block(self, b: int) -> memoryview:
        """Block b's bytes (a view of the pool)."""
        segment, start = self._at(b)
        return memoryview(segment)[start : start + self._granules]

    # ------------------------------------------------------------------ attach, detach

    def _set_pointer(self, pfn: int, block_addr: int) -> None:
        """``page->shadow = block`` (0: NULL)."""
        self._machine.memmap.set_field(pfn, 1, "shadow", block_addr)

    def _attach(self, space: int, key: int, fill: int) -> int:
        """A block from the shadow cache, filled with ``fill``, hung off page ``key`` of
        ``space``: its index, NO_BLOCK when out of memory."""
        addr = self._machine.shadow_block_alloc(self._cache)
        if not addr:
            return NO_BLOCK
        b = self._new_block()
        segment, start = self._at(b)
        segment[start : start + self._granules] = _FILL[fill] * self._granules
        self._block_addr[b] = addr
        self._block_space[b] = space
        self._block_user[b] = key
        self._in_use += 1
        if space == PAGES:
            i = self._make_index(key)  # (may replace _slot: index it after)
            self._slot[i] = b
            self._set_pointer(key, addr)
        else:
            (self._image if space == IMAGE else self._virtual)[key] = b
        self._peak_slab_pages = max(self._peak_slab_pages, self._slab_pages())
        return b

    def _detach(self, b: int) -> None:
        """Block b goes back to the shadow cache (which may give a slab back to the buddy)."""
        space, key, addr = self._block_space[b], self._block_user[b], self._block_addr[b]
        if space == PAGES:
            self._slot[self._index(key)] = NO_BLOCK
            self._block_views.pop(key, None)
            self._set_pointer(key, 0)
        else:
            del (self._image if space == IMAGE else self._virtual)[key]
        self._block_addr[b] = 0
        self._block_space[b] = FREE_BLOCK
        self._block_user[b] = self._free_block
        self._free_block = b
        self._in_use -= 1
        self._machine.shadow_block_free(self._cache, addr)

    def page_alloc(self, pfn: int, order: int, use: PageUse) -> bool:
        lo, hi = self._lowmem
        if not lo <= pfn < hi:
            return True  # highmem: no direct-map shadow, nothing recorded
        pfns = range(pfn, pfn + (1 << order))
        if use in (_ALLOCATED_USES if self._always else BYTE_GRANULAR_USES):
            for p in pfns:
                if self._attach(PAGES, p, 0) == NO_BLOCK:
                    for q in range(pfn, p):
                        self._detach(self._block_of(q))
                    return False
        # A buddy block is aligned to its size, and MAX_PAGE_ORDER < CHUNK_SHIFT: one chunk's.
        assert (pfn & CHUNK_MASK) + len(pfns) <= CHUNK_PAGES, "a block across chunks"
        i = self._make_index(pfn)  # (may replace _head: index it after)
        head = self._head
        for j in range(i, i + len(pfns)):
            head[j] = pfn
        return True

    def page_free(self, pfn: int, order: int) -> None:
        lo, hi = self._lowmem
        if not lo <= pfn < hi:
            return
        n = 1 << order
        assert (pfn & CHUNK_MASK) + n <= CHUNK_PAGES, "a block across chunks"  # (as above)
        i = self._index(pfn)
        if i < 0:
            return
        head, slot = self._head, self._slot
        for j in range(i, i + n):
            head[j] = NOT_ALLOCATED
            if slot[j] != NO_BLOCK:
                self._detach(slot[j])

    # -------------------------------------------------------------------- the shadow

    def _page_state_byte(self, head: int, addr: int) -> int:
        """The shadow a direct-map page's state implies (what a NULL pointer stands for), from
        the head of the allocation holding it."""
        if head == NOT_ALLOCATED:
            return self._initial_byte(addr)  # free (since boot or freed), reserved, a hole
        # free_pages_prepare() poisons a page whose refcount already dropped to zero: the
        # machine forgets the allocation first, so that page is free, not poisoned while live.
        return 0 if head in self._allocations else KASAN_PAGE_FREE

    def _locate(self, addr: int) -> tuple[int, int, int, int]:
        """The space holding addr's page, its key there, its block (NO_BLOCK: none), and the
        byte the page reads without one."""
        if self._lm_start <= addr < self._lm_end:
            pfn = (addr - self._lm_delta) >> self._page_shift
            i = self._index(pfn)
            if i < 0:
                return PAGES, pfn, NO_BLOCK, self._page_state_byte(NOT_ALLOCATED, addr)
            return PAGES, pfn, self._slot[i], self._page_state_byte(self._head[i], addr)
        if not self._vmalloc_start <= addr < self._vmalloc_end:
            pfn = self._machine.addr_to_pfn(addr)
            if pfn is not None:  # the kernel image, mapped apart
                return IMAGE, pfn, self._image.get(pfn, NO_BLOCK), self._initial_byte(addr)
        key = addr >> self._page_shift
        return VIRTUAL, key, self._virtual.get(key, NO_BLOCK), self._initial_byte(addr)

    def _store(self, addr: int, data: bytes) -> None:
        """Write shadow bytes inside one page, attaching a block if they are not implied."""
        space, key, b, implied = self._locate(addr)
        as_implied = data.count(implied) == len(data)
        if b == NO_BLOCK:
            if as_implied:
                return
            b = self._attach(space, key, implied)
            if b == NO_BLOCK:
                raise MemoryError(f"no memory for a shadow block ({self.name}) at {addr:#x}")
        elif as_implied and space == VIRTUAL and len(data) == self._granules:
            # vfree(): the page's whole shadow is KASAN_VMALLOC_INVALID again.
            self._detach(b)
            return
        segment, start = self._at(b)
        start += (addr & self._page_mask) >> KASAN_SHADOW_SCALE_SHIFT
        segment[start : start + len(data)] = data

    def _write_pages(self, addr: int, data: bytes) -> None:
        n = len(data)
        done = 0
        while done < n:
            start = (addr & self._page_mask) >> KASAN_SHADOW_SCALE_SHIFT
            k = min(n - done, self._granules - start)
            self._store(addr, data[done : done + k])
            done += k
            addr += k << KASAN_SHADOW_SCALE_SHIFT

    # The hot paths look a direct-map page's block up first, as a view by pfn (_block_views:
    # one dict look-up, as __pa(addr) >> PAGE_SHIFT of an address outside the direct map is no
    # lowmem pfn). A write within one page without a block is _store()'s, inlined: nothing
    # when the bytes are those its state implies (a page allocation's kasan_unpoison_pages(),
    # most of the other writes). They spell the module's constants out (asserted above the
    # class).

    def _block_view(self, pfn: int) -> memoryview | None:
        """``page->shadow`` of a direct-map pfn as a view of its block (None: NULL), kept in
        _block_views."""
        b = self._block_of(pfn)
        if b == NO_BLOCK:
            return None
        view = self._block_views[pfn] = self._block(b)
        return view

    def write(self, addr: int, data: bytes) -> None:
        pa = addr - self._lm_delta  # __pa()
        start = (pa & self._page_mask) >> 3  # KASAN_SHADOW_SCALE_SHIFT
        end = start + len(data)
        if end <= self._granules:  # within this page
            view = self._block_views.get(pa >> self._page_shift)
            if view is not None:
                view[start:end] = data
                return
            if self._pa_start <= pa < self._pa_end:  # the direct map
                pfn = pa >> self._page_shift
                view = self._block_view(pfn)
                if view is not None:
                    view[start:end] = data
                    return
                i = self._index(pfn)
                head = NOT_ALLOCATED if i < 0 else self._head[i]
                if data.count(self._page_state_byte(head, addr)) == end - start:
                    return
        self._write_pages(addr, data)

    def set_byte(self, addr: int, value: int) -> None:
        self.write(addr, _FILL[value])

    def shadow_byte(self, addr: int) -> int:
        self.checks += 1
        pa = addr - self._lm_delta  # __pa()
        view = self._block_views.get(pa >> self._page_shift)
        if view is None and self._pa_start <= pa < self._pa_end:  # the direct map
            view = self._block_view(pa >> self._page_shift)
        if view is not None:
            self.loads += self.loads_with_block
            return view[(pa & self._page_mask) >> 3]  # KASAN_SHADOW_SCALE_SHIFT
        _, _, b, value = self._locate(addr)
        if b == NO_BLOCK:
            self.loads += self.loads_with_block if value else self.loads_null
            return value
        self.loads += self.loads_with_block
        segment, start = self._at(b)
        return segment[start + ((addr & self._page_mask) >> 3)]

    def read(self, addr: int, size: int) -> bytes:
        out = bytearray()
        granules = size >> KASAN_SHADOW_SCALE_SHIFT
        while granules > 0:
            start = (addr & self._page_mask) >> KASAN_SHADOW_SCALE_SHIFT
            n = min(granules, self._granules - start)
            _, _, b, implied = self._locate(addr)
            if b == NO_BLOCK:
                out += _FILL[implied] * n
            else:
                segment, b_start = self._at(b)
                out += segment[b_start + start : b_start + start + n]
            granules -= n
            addr += n << KASAN_SHADOW_SCALE_SHIFT
        return bytes(out)

    # ------------------------------------------------------------------ bill, views

    def _slab_pages(self) -> int:
        cache = self._cache
        assert cache is not None  # booted
        return self._machine.slub.nr_slabs(cache) << cache.layout.order

    def footprint(self) -> Footprint:
        cache = self._cache
        assert cache is not None  # booted
        slab_pages = self._slab_pages()
        return Footprint(
            static_bytes=0,
            dynamic_bytes=slab_pages * self._page_size,
            dynamic_peak_bytes=self._peak_slab_pages * self._page_size,
            metadata_bytes=self._metadata,
            virtual_range_bytes=0,  # no contiguous range: the point of it
            blocks_in_use=self._in_use,
            blocks_capacity=(self._machine.slub.nr_slabs(cache) * cache.objects),
            shadow_slab_pages=slab_pages,
            checks=self.checks,
            loads=self.loads,
            # "shadow no longer contiguous, hence outline only" (Vyukov);
            # gcc's prologues write stack shadow directly (Ryabinin).
            inline_possible=False,
            stack_possible=False,
        )

    @property
    def shadow_cache(self):
        """The dedicated ``kmem_cache`` the blocks come from (None before boot)."""
        return self._cache

    def has_own_shadow(self, pfn: int) -> bool:
        return (self._is_lowmem_pfn(pfn) and self._block_of(pfn) != NO_BLOCK) or pfn in self._image

    def block_address(self, pfn: int) -> int | None:
        """``page->shadow`` of a pfn: the address of its block (its direct-map page's, else
        its kernel-image page's), None when NULL."""
        b = self._block_of(pfn) if self._is_lowmem_pfn(pfn) else NO_BLOCK
        if b == NO_BLOCK:
            b = self._image.get(pfn, NO_BLOCK)
        return None if b == NO_BLOCK else self._block_addr[b]

    def shadow_link(self, pfn: int) -> str:
        addr = self.block_address(pfn)
        if addr is not None:
            return f"block {addr:#x} ({self.link_home})"
        return "no block: page state"

    def served_pfns(self) -> list[int]:
        """The pfns served by a block (a direct-map page's, a kernel-image page's: a pfn twice
        when both have one), sorted: read from the pool's arrays, no slab walked. (A stable
        sort, numpy's timsort: the pool's blocks are mostly in runs of pfns, attached as the
        pages were allocated; 0.2 ms for 59 000 blocks late in the real trace, against 2 ms.)"""
        n = self._nblocks
        if not n:
            return []
        space = np.frombuffer(self._block_space, np.int8, n)
        user = np.frombuffer(self._block_user, np.int64, n)
        return np.sort(user[(space == PAGES) | (space == IMAGE)], kind="stable").tolist()

    def _served(self, lo: int, hi: int) -> dict[int, int]:
        """The blocks attached whose address is in [lo, hi), by address: one pass of numpy
        over the pool's arrays, a dict of those only."""
        n = self._nblocks
        if not n:
            return {}
        addr = np.frombuffer(self._block_addr, np.uint64, n)
        space = np.frombuffer(self._block_space, np.int8, n)
        found = np.flatnonzero((addr >= lo) & (addr < hi) & (space != FREE_BLOCK))
        return dict(zip(addr[found].tolist(), found.tolist()))

    def shadow_slabs(
        self, first: int = 0, count: int | None = None
    ) -> dict[int, list[ShadowBlock]]:
        """The shadow-block cache's slabs whose head pfn is in [first, first + count) (all of
        them by default), by head pfn (a slab may span 2^order pages): each object slot as a
        ShadowBlock, in address order. Only those slabs' blocks are looked at."""
        cache = self._cache
        assert cache is not None  # booted
        heads = self._machine.slub.slab_heads(cache)
        if count is not None:
            heads = heads[bisect_left(heads, first) : bisect_left(heads, first + count)]
        if not heads:
            return {}
        page_address = self._machine.page_address
        # shadow slabs are lowmem pages: their slots' addresses grow with their pfns
        served = self._served(
            page_address(heads[0]), page_address(heads[-1]) + cache.objects * cache.size
        )
        slabs = {}
        for head in heads:
            base = page_address(head)
            blocks = []
            for i in range(cache.objects):
                addr = base + i * cache.size
                b = served.get(addr)
                if b is None:
                    blocks.append(ShadowBlock(addr, None, None))
                elif self._block_space[b] == VIRTUAL:
                    blocks.append(ShadowBlock(addr, None, self._block_user[b] << self._page_shift))
                else:
                    blocks.append(ShadowBlock(addr, self._block_user[b], None))
            slabs[head] = blocks
        return slabs

    def storage(self) -> dict:
        """The scheme's state as plain values, for tests comparing engines and checkpoints:
        every attached block (its space, page, address, bytes) in block order, and the
        allocation head of every direct-map pfn recorded."""
        blocks = [
            (
                b,
                SPACE_NAMES[self._block_space[b]],
                self._block_user[b],
                self._block_addr[b],
                bytes(self._block(b)),
            )
            for b in range(self._nblocks)
            if self._block_space[b] != FREE_BLOCK
        ]
        heads = {}
        for c, i in enumerate(self._chunk_of):
            if i >= 0:
                for k in range(CHUNK_PAGES):
                    head = self._head[(i << CHUNK_SHIFT) | k]
                    if head != NOT_ALLOCATED:
                        heads[(c << CHUNK_SHIFT) | k] = head
        return {
            "blocks": blocks,
            "heads": heads,
            "free_block": self._free_block,
            "nblocks": self._nblocks,
        }
