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

from typing import NamedTuple

from ..errors import KinspectError
from ..kasan import KASAN_PAGE_FREE, KASAN_SHADOW_SCALE_SHIFT
from .base import BYTE_GRANULAR_USES, Footprint, PageUse, ShadowScheme

ATTACH_POLICIES = ("byte-granular", "always")
_FILL = [bytes([v]) for v in range(256)]


class ShadowBlock(NamedTuple):
    """One object slot of the shadow-block cache, for views."""

    addr: int                   # the block's address (in a shadow slab page)
    pfn: int | None             # the page it shadows (None if free, or a vmalloc-space block)
    vaddr: int | None           # the vmalloc-space page it shadows, for such a block


class _BlockTable:
    """The blocks of one address space, by page: pfn for pages, virtual page for vmalloc."""

    __slots__ = ("by_pfn", "shadow", "addr")

    def __init__(self, by_pfn: bool) -> None:
        self.by_pfn = by_pfn
        self.shadow: dict[int, bytearray] = {}   # key -> the block's bytes
        self.addr: dict[int, int] = {}           # key -> the block's address


class PagePtrShadow(ShadowScheme):
    """Shadow blocks hung off ``page->shadow`` (Vyukov, 2017-05-29): outline only, no stack."""

    name = "pageptr"
    link_home = "pageptr"       # what shadow_link() says the pointer is
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
            raise KinspectError(f"unknown attach policy {attach!r} "
                                f"(known: {', '.join(ATTACH_POLICIES)})", "--attach")
        p = machine.profile
        self._machine = machine
        self.attach = attach
        self._always = attach == "always"
        self._page_shift = p.page_shift
        self._page_size = p.page_size
        self._page_mask = p.page_size - 1
        self._granules = p.page_size >> KASAN_SHADOW_SCALE_SHIFT     # bytes in a block
        self._lm_start, self._lm_end = p.page_offset, p.high_memory
        self._lm_delta = p.page_offset - p.phys_offset               # __pa() of the direct map
        self._vmalloc_start, self._vmalloc_end = p.vmalloc_start, p.vmalloc_end
        self._is_lowmem_pfn = p.is_lowmem_pfn
        self._initial_byte = machine.initial_shadow_byte
        self._pages = _BlockTable(by_pfn=True)       # direct-map pages: page->shadow
        self._page_shadow = self._pages.shadow       # (the hot paths' dict)
        self._image = _BlockTable(by_pfn=True)       # a kernel image mapped apart
        self._virtual = _BlockTable(by_pfn=False)    # the vmalloc space (and any other)
        self._served: dict[int, tuple[_BlockTable, int]] = {}   # block address -> user
        self._allocated: dict[int, int] = {}         # allocated pfn -> its allocation's head
        self._allocations: dict = {}                 # machine.pages (bound at boot)
        self._cache = None
        self._peak_slab_pages = 0
        self._metadata = self._metadata_bytes(p)
        self.block_size = self._granules

    def _metadata_bytes(self, p) -> int:
        """``struct page`` grows by one word, for every present page."""
        return p.word_size * (p.mem_total >> p.page_shift)

    def boot(self) -> None:
        self._cache = self._machine.create_shadow_cache("kasan_shadow_blocks", self.block_size)
        self._allocations = self._machine.pages

    # ------------------------------------------------------------------ attach, detach

    def _set_pointer(self, pfn: int, block_addr: int) -> None:
        """``page->shadow = block`` (0: NULL)."""
        self._machine.memmap.set_field(pfn, 1, "shadow", block_addr)

    def _attach(self, table: _BlockTable, key: int, fill: int) -> bytearray | None:
        """A block from the shadow cache, filled with ``fill``; None when out of memory."""
        addr = self._machine.shadow_block_alloc(self._cache)
        if not addr:
            return None
        block = bytearray(_FILL[fill] * self._granules)
        table.shadow[key] = block
        table.addr[key] = addr
        self._served[addr] = (table, key)
        if table.by_pfn:
            self._set_pointer(key, addr)
        self._peak_slab_pages = max(self._peak_slab_pages, self._slab_pages())
        return block

    def _detach(self, table: _BlockTable, key: int) -> None:
        """The block goes back to the shadow cache (which may give a slab back to the buddy)."""
        del table.shadow[key]
        addr = table.addr.pop(key)
        del self._served[addr]
        if table.by_pfn:
            self._set_pointer(key, 0)
        self._machine.shadow_block_free(self._cache, addr)

    def page_alloc(self, pfn: int, order: int, use: PageUse) -> bool:
        pfns = range(pfn, pfn + (1 << order))
        if (use != PageUse.SHADOW and self._is_lowmem_pfn(pfn)
                and (self._always or use in BYTE_GRANULAR_USES)):
            for p in pfns:
                if self._attach(self._pages, p, 0) is None:
                    for q in range(pfn, p):
                        self._detach(self._pages, q)
                    return False
        self._allocated.update(dict.fromkeys(pfns, pfn))
        return True

    def page_free(self, pfn: int, order: int) -> None:
        for p in range(pfn, pfn + (1 << order)):
            self._allocated.pop(p, None)
            if p in self._page_shadow:
                self._detach(self._pages, p)

    # -------------------------------------------------------------------- the shadow

    def _page_state_byte(self, pfn: int, addr: int) -> int:
        """The shadow a direct-map page's state implies (what a NULL pointer stands for)."""
        head = self._allocated.get(pfn)
        if head is None:
            return self._initial_byte(addr)      # free (since boot or freed), reserved, a hole
        # free_pages_prepare() poisons a page whose refcount already dropped to zero: the
        # machine forgets the allocation first, so that page is free, not poisoned while live.
        return 0 if head in self._allocations else KASAN_PAGE_FREE

    def _locate(self, addr: int) -> tuple[_BlockTable, int, int]:
        """The table holding addr's block, its key there, and the byte a blockless page reads."""
        if self._lm_start <= addr < self._lm_end:
            pfn = (addr - self._lm_delta) >> self._page_shift
            return self._pages, pfn, self._page_state_byte(pfn, addr)
        if not self._vmalloc_start <= addr < self._vmalloc_end:
            pfn = self._machine.addr_to_pfn(addr)
            if pfn is not None:                  # the kernel image, mapped apart
                return self._image, pfn, self._initial_byte(addr)
        return self._virtual, addr >> self._page_shift, self._initial_byte(addr)

    def _store(self, addr: int, data: bytes) -> None:
        """Write shadow bytes inside one page, attaching a block if they are not implied."""
        table, key, implied = self._locate(addr)
        block = table.shadow.get(key)
        as_implied = data.count(implied) == len(data)
        if block is None:
            if as_implied:
                return
            block = self._attach(table, key, implied)
            if block is None:
                raise MemoryError(f"no memory for a shadow block ({self.name}) at {addr:#x}")
        elif as_implied and not table.by_pfn and len(data) == self._granules:
            # vfree(): the page's whole shadow is KASAN_VMALLOC_INVALID again.
            self._detach(table, key)
            return
        start = (addr & self._page_mask) >> KASAN_SHADOW_SCALE_SHIFT
        block[start:start + len(data)] = data

    def _write_pages(self, addr: int, data: bytes) -> None:
        n = len(data)
        done = 0
        while done < n:
            start = (addr & self._page_mask) >> KASAN_SHADOW_SCALE_SHIFT
            k = min(n - done, self._granules - start)
            self._store(addr, data[done:done + k])
            done += k
            addr += k << KASAN_SHADOW_SCALE_SHIFT

    # The hot paths look the page's block up first, without a range check: blocks in
    # _page_shadow are keyed by lowmem pfns, and __pa() arithmetic maps no address but a
    # direct-map one to such a pfn, so a hit is always a direct-map page.

    def write(self, addr: int, data: bytes) -> None:
        block = self._page_shadow.get((addr - self._lm_delta) >> self._page_shift)
        if block is not None:
            start = (addr & self._page_mask) >> 3                 # KASAN_SHADOW_SCALE_SHIFT
            end = start + len(data)
            if end <= self._granules:
                block[start:end] = data
                return
        self._write_pages(addr, data)

    def poison(self, addr: int, size: int, value: int) -> None:
        self.write(addr, _FILL[value] * (size >> KASAN_SHADOW_SCALE_SHIFT))

    def set_byte(self, addr: int, value: int) -> None:
        self.write(addr, _FILL[value])

    def shadow_byte(self, addr: int) -> int:
        self.checks += 1
        block = self._page_shadow.get((addr - self._lm_delta) >> self._page_shift)
        if block is None:
            table, key, value = self._locate(addr)
            block = table.shadow.get(key)
            if block is None:
                self.loads += self.loads_with_block if value else self.loads_null
                return value
        self.loads += self.loads_with_block
        return block[(addr & self._page_mask) >> 3]               # KASAN_SHADOW_SCALE_SHIFT

    def read(self, addr: int, size: int) -> bytes:
        out = bytearray()
        granules = size >> KASAN_SHADOW_SCALE_SHIFT
        while granules > 0:
            start = (addr & self._page_mask) >> KASAN_SHADOW_SCALE_SHIFT
            n = min(granules, self._granules - start)
            table, key, implied = self._locate(addr)
            block = table.shadow.get(key)
            out += _FILL[implied] * n if block is None else block[start:start + n]
            granules -= n
            addr += n << KASAN_SHADOW_SCALE_SHIFT
        return bytes(out)

    # ------------------------------------------------------------------ bill, views

    def _slab_pages(self) -> int:
        return self._machine.slub.nr_slabs(self._cache) << self._cache.layout.order

    def footprint(self) -> Footprint:
        slab_pages = self._slab_pages()
        return Footprint(static_bytes=0,
                         dynamic_bytes=slab_pages * self._page_size,
                         dynamic_peak_bytes=self._peak_slab_pages * self._page_size,
                         metadata_bytes=self._metadata,
                         virtual_range_bytes=0,          # no contiguous range: the point of it
                         blocks_in_use=len(self._served),
                         blocks_capacity=(self._machine.slub.nr_slabs(self._cache)
                                          * self._cache.objects),
                         shadow_slab_pages=slab_pages,
                         checks=self.checks, loads=self.loads,
                         # "shadow no longer contiguous, hence outline only" (Vyukov);
                         # gcc's prologues write stack shadow directly (Ryabinin).
                         inline_possible=False, stack_possible=False)

    @property
    def shadow_cache(self):
        """The dedicated ``kmem_cache`` the blocks come from (None before boot)."""
        return self._cache

    def has_own_shadow(self, pfn: int) -> bool:
        return pfn in self._pages.addr or pfn in self._image.addr

    def shadow_link(self, pfn: int) -> str | None:
        for table in (self._pages, self._image):
            addr = table.addr.get(pfn)
            if addr is not None:
                return f"block {addr:#x} ({self.link_home})"
        return "no block: page state"

    def shadow_slabs(self) -> dict[int, list[ShadowBlock]]:
        """The shadow-block cache's slabs, by head pfn (a slab may span 2^order pages): each
        object slot as a ShadowBlock, in address order."""
        cache = self._cache
        slabs = {}
        for head in self._machine.slub.slab_heads(cache):
            base = self._machine.page_address(head)
            blocks = []
            for i in range(cache.objects):
                addr = base + i * cache.size
                table, key = self._served.get(addr, (None, None))
                if table is None:
                    blocks.append(ShadowBlock(addr, None, None))
                elif table.by_pfn:
                    blocks.append(ShadowBlock(addr, key, None))
                else:
                    blocks.append(ShadowBlock(addr, None, key << self._page_shift))
            slabs[head] = blocks
        return slabs
