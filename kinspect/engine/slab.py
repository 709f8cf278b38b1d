"""SLUB as generic KASAN shapes it (Linux 6.12): kmem_cache layout, kmalloc classes, slabs.

Sources: mm/slub.c (calculate_sizes, calculate_order, calculate_alignment), mm/slab_common.c
(kmalloc_info, create_kmalloc_cache), mm/kasan/generic.c (kasan_cache_create,
optimal_redzone), mm/kasan/quarantine.c.

Freelist order (documented choice, deterministic): a new slab's freelist runs in address order
(no CONFIG_SLAB_FREELIST_RANDOM); a freed object goes to the head of its slab's freelist
(LIFO); when the CPU slab is exhausted, the oldest partial slab is used next, then a new slab.
"""

from __future__ import annotations

from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from .kasan import KASAN_GRANULE_SIZE, KASAN_SLAB_REDZONE, round_up
from .shadow.base import PageUse

SLAB_HWCACHE_ALIGN = 0x00002000
SLAB_TYPESAFE_BY_RCU = 0x00080000
SLAB_ACCOUNT = 0x04000000
SLAB_KMALLOC = 0x00001000
SLAB_KASAN = 0x08000000
SLAB_NO_MERGE = 0x01000000

SLAB_FLAG_NAMES = {
    "SLAB_HWCACHE_ALIGN": SLAB_HWCACHE_ALIGN,
    "SLAB_TYPESAFE_BY_RCU": SLAB_TYPESAFE_BY_RCU,
    "SLAB_ACCOUNT": SLAB_ACCOUNT,
}

KASAN_NO_FREE_META = 0x7FFFFFFF  # INT_MAX
PAGE_ALLOC_COSTLY_ORDER = 3  # slub_max_order
MAX_OBJS_PER_PAGE = 32767
L1_CACHE_BYTES = 64  # cache_line_size() on the profiled arches

QUARANTINE_FRACTION = 32
QUARANTINE_PERCPU_SIZE = 1 << 20
QUARANTINE_BATCHES = 1024  # max(1024, 4 * CONFIG_NR_CPUS)


def optimal_redzone(object_size: int) -> int:
    """``optimal_redzone()`` of mm/kasan/generic.c (unchanged 4.12 .. 6.12)."""
    return (
        16
        if object_size <= 64 - 16
        else 32
        if object_size <= 128 - 32
        else 64
        if object_size <= 512 - 64
        else 128
        if object_size <= 4096 - 128
        else 256
        if object_size <= (1 << 14) - 256
        else 512
        if object_size <= (1 << 15) - 512
        else 1024
        if object_size <= (1 << 16) - 1024
        else 2048
    )


def get_order(size: int, page_shift: int) -> int:
    """``get_order()``: the smallest order whose block holds size bytes."""
    return max((size - 1).bit_length() - page_shift, 0)  # O(1) whatever the size


def kmalloc_cache_name(size: int) -> str:
    """kmalloc_info[] names of 6.12: kmalloc-8 .. kmalloc-512, kmalloc-1k, kmalloc-2M."""
    if size < 1024:
        return f"kmalloc-{size}"
    if size < 1 << 20:
        return f"kmalloc-{size >> 10}k"
    return f"kmalloc-{size >> 20}M"


@dataclass
class CacheLayout:
    """What ``calculate_sizes()`` + ``kasan_cache_create()`` decide for a cache."""

    object_size: int
    size: int  # s->size: the slot, after alignment
    align: int
    offset: int  # free pointer offset
    alloc_meta_offset: int  # 0 = no alloc meta... except it is legitimately 0 never (>= object)
    free_meta_offset: int  # 0 = inside the object, KASAN_NO_FREE_META = none
    order: int
    objects: int  # objects per slab


def calculate_alignment(flags: int, align: int, size: int, slab_minalign: int, word: int) -> int:
    """``calculate_alignment()`` of mm/slab_common.c."""
    if flags & SLAB_HWCACHE_ALIGN:
        ralign = L1_CACHE_BYTES
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = max(align, slab_minalign)
    return round_up(align, word)


def calculate_order(size: int, page_shift: int, nr_cpus: int, max_order: int) -> int:
    """``calculate_order()`` of mm/slub.c (slub_min_objects = 0, slub_min_order = 0)."""
    page_size = 1 << page_shift
    min_objects = 4 * (nr_cpus.bit_length() + 1)
    max_objects = max((page_size << PAGE_ALLOC_COSTLY_ORDER) // size, 1)
    min_objects = min(min_objects, max_objects)
    min_order = get_order(min_objects * size, page_shift)
    if (page_size << min_order) // size > MAX_OBJS_PER_PAGE:
        return get_order(size * MAX_OBJS_PER_PAGE, page_shift) - 1
    fraction = 16
    while fraction > 1:
        for order in range(min_order, PAGE_ALLOC_COSTLY_ORDER + 1):
            slab_size = page_size << order
            if slab_size % size <= slab_size // fraction:
                return order
        fraction //= 2
    order = get_order(size, page_shift)
    if order <= max_order:
        return order
    raise ValueError(f"object of {size} bytes cannot be placed in a slab")


def kmem_cache_layout(
    object_size: int,
    align: int,
    flags: int,
    has_ctor: bool,
    *,
    word: int,
    page_shift: int,
    nr_cpus: int,
    max_order: int,
    kmalloc_max_size: int,
) -> CacheLayout:
    """``calculate_sizes()`` with generic KASAN's ``kasan_cache_create()`` (slub_debug off)."""
    alloc_meta_size = 16  # struct kasan_alloc_meta
    free_meta_size = word + 8  # qlist_node + kasan_track
    size = round_up(object_size, word)
    if flags & SLAB_TYPESAFE_BY_RCU or has_ctor:
        offset = size
        size += word
    else:
        offset = (object_size // 2) // word * word
    # kasan_cache_create()
    ok_size = size
    alloc_meta_offset = size
    size += alloc_meta_size
    if size > kmalloc_max_size:
        alloc_meta_offset = 0
        size = ok_size
    ok_size = size
    orig_alloc_meta_offset = alloc_meta_offset
    free_meta_offset = 0
    if flags & SLAB_TYPESAFE_BY_RCU or has_ctor:
        free_meta_offset = size
        size += free_meta_size
    elif free_meta_size > object_size:
        rem = free_meta_size - object_size
        size += rem
        if alloc_meta_offset:
            alloc_meta_offset += rem
    if size > kmalloc_max_size:
        free_meta_offset = KASAN_NO_FREE_META
        alloc_meta_offset = orig_alloc_meta_offset
        size = ok_size
    size = max(size, min(object_size + optimal_redzone(object_size), kmalloc_max_size))
    size = round_up(size, align)
    order = calculate_order(size, page_shift, nr_cpus, max_order)
    objects = ((1 << page_shift) << order) // size
    return CacheLayout(
        object_size=object_size,
        size=size,
        align=align,
        offset=offset,
        alloc_meta_offset=alloc_meta_offset,
        free_meta_offset=free_meta_offset,
        order=order,
        objects=objects,
    )


class ObjectMeta(NamedTuple):
    """KASAN's per-object metadata: alloc meta (track + aux stacks) and free meta (track).

    A track is ``pid << 32 | stack handle`` (``struct kasan_track``: a pid and a stack depot
    handle), 0 when not saved.
    """

    alloc_track: int
    free_track: int
    aux_stacks: tuple  # tracks, newest first, at most two (alloc_meta.aux_stack[2])
    alloc_size: int  # the requested size (kmalloc size), for views


META_WORDS = 3  # per object in Slab.meta: alloc track, free track, alloc size


@dataclass(eq=False, slots=True)
class Slab:
    """``struct slab``: a slab of one cache, 2^order pages from pfn."""

    cache: KmemCache
    pfn: int
    base: int  # virtual address of the first object
    freelist: list[int]  # object addresses, head at the end (pop/append)
    meta: array  # META_WORDS per object: alloc track, free track, alloc size
    inuse: int = 0
    frozen: bool = False  # the CPU slab

    @property
    def objects(self) -> int:
        return self.cache.objects


@dataclass(eq=False, slots=True)
class KmemCache:
    """``struct kmem_cache``."""

    id: int
    name: str
    object_size: int
    flags: int
    has_ctor: bool
    layout: CacheLayout
    addr: int = 0  # where the struct kmem_cache object lives
    min_partial: int = 5
    alloc_patterns: dict[int, bytes] = field(default_factory=dict)  # size -> object shadow
    free_pattern: bytes = b""  # the object's shadow once freed (FA FB FB ...)
    destroyed: bool = False
    is_kmalloc: bool = False
    is_shadow: bool = False  # the shadow-block cache of a per-page scheme
    # Copies of the layout's hot numbers (read on every alloc and free).
    size: int = field(init=False)  # s->size, the slot
    objects: int = field(init=False)  # objects per slab
    slab_bytes: int = field(init=False)
    has_free_meta: bool = field(init=False)

    def __post_init__(self) -> None:
        self.size = self.layout.size
        self.objects = self.layout.objects
        self.slab_bytes = self.size * self.objects  # bytes of a slab holding objects
        self.has_free_meta = self.layout.free_meta_offset != KASAN_NO_FREE_META

    def nearest_obj(self, slab: Slab | SlabInfo, addr: int) -> int:
        """``nearest_obj()``: the object whose slot holds addr (clamped to the last object)."""
        index = min((addr - slab.base) // self.size, self.objects - 1)
        return slab.base + index * self.size


def slab_min_partial(size: int) -> int:
    """``set_min_partial(s, ilog2(s->size) / 2)`` clamped to [MIN_PARTIAL, MAX_PARTIAL]."""
    return min(10, max(5, (size.bit_length() - 1) // 2))


class Quarantine:
    """The generic quarantine of mm/kasan/quarantine.c, one CPU queue (CPU 0) plus the ring.

    Entries are object addresses (``qlist_node``s); their cache is found from the address,
    as ``qlink_to_cache()`` does.
    """

    def __init__(self, totalram_bytes: int, nr_cpus: int) -> None:
        self.totalram_bytes = totalram_bytes
        self.nr_cpus = nr_cpus
        self.cpu_queue: list[int] = []
        self.cpu_bytes = 0
        self.batches: list[list[int]] = [[] for _ in range(QUARANTINE_BATCHES)]
        self.batch_bytes = [0] * QUARANTINE_BATCHES
        self.head = 0
        self.tail = 0
        self.size = 0  # quarantine_size: bytes in the global ring
        self.max_size = 0  # quarantine_max_size, set by the first reduce
        self.batch_size = 0  # quarantine_batch_size, likewise

    def put(self, cache: KmemCache, obj: int) -> None:
        """``kasan_quarantine_put()``: counted at the cache's slot size."""
        self.cpu_queue.append(obj)
        self.cpu_bytes += cache.size
        if self.cpu_bytes > QUARANTINE_PERCPU_SIZE:
            tail = self.tail
            self.size += self.cpu_bytes
            self.batches[tail].extend(self.cpu_queue)
            self.batch_bytes[tail] += self.cpu_bytes
            self.cpu_queue = []
            self.cpu_bytes = 0
            if self.batch_bytes[tail] >= self.batch_size:
                new_tail = (tail + 1) % QUARANTINE_BATCHES
                if new_tail != self.head:
                    self.tail = new_tail

    def reduce(self) -> list[int]:
        """``kasan_quarantine_reduce()``: the objects of the oldest batch, to be freed."""
        if self.size <= self.max_size:
            return []
        total = self.totalram_bytes // QUARANTINE_FRACTION
        percpu = QUARANTINE_PERCPU_SIZE * self.nr_cpus
        self.max_size = 0 if total < percpu else total - percpu
        self.batch_size = max(QUARANTINE_PERCPU_SIZE, 2 * total // QUARANTINE_BATCHES)
        if self.size <= self.max_size:
            return []
        head = self.head
        to_free = self.batches[head]
        self.size -= self.batch_bytes[head]
        self.batches[head] = []
        self.batch_bytes[head] = 0
        self.head = (head + 1) % QUARANTINE_BATCHES
        return to_free

    def remove_cache(self, cache: KmemCache, cache_of) -> list[int]:
        """``kasan_quarantine_remove_cache()``: take out every object of a dying cache."""
        mine = [o for o in self.cpu_queue if cache_of(o) is cache]
        if mine:
            self.cpu_queue = [o for o in self.cpu_queue if cache_of(o) is not cache]
            self.cpu_bytes -= len(mine) * cache.size
        out = mine
        for i, batch in enumerate(self.batches):
            mine = [o for o in batch if cache_of(o) is cache]
            if mine:
                self.batches[i] = [o for o in batch if cache_of(o) is not cache]
                self.batch_bytes[i] -= len(mine) * cache.size
                self.size -= len(mine) * cache.size
                out.extend(mine)
        return out

    def total_bytes(self) -> int:
        return self.size + self.cpu_bytes


class SlabInfo(NamedTuple):
    """What ``struct slab`` says of a slab page, read-only: the allocator's answer to
    ``virt_to_slab()`` / ``page_slab()`` for the views, reports and dump_page()."""

    cache: KmemCache  # slab->slab_cache
    pfn: int  # the slab's head page
    base: int  # virtual address of its first object
    objects: int  # slab->objects
    inuse: int  # slab->inuse
    frozen: bool  # slab->frozen: the CPU slab


@dataclass(eq=False, slots=True)
class CacheSlabs:
    """A cache's slabs as SLUB holds them: ``kmem_cache_cpu.slab`` and the node's partial
    list (``kmem_cache_node.partial``), plus every slab of the cache by head pfn."""

    cpu_slab: Slab | None = None
    partial: deque = field(default_factory=deque)
    slabs: dict[int, Slab] = field(default_factory=dict)  # pfn of head -> slab


# What SlubAllocator.check_slab_allocation() finds wrong with a free (0: nothing).
FREE_OK, INVALID_FREE, DOUBLE_FREE = 0, 1, 2
FREE_BUG_TYPES = {INVALID_FREE: "invalid-free", DOUBLE_FREE: "double-free"}


class SlubAllocator:
    """SLUB (mm/slub.c) with generic KASAN's slab hooks (mm/kasan/common.c, generic.c,
    quarantine.c): the Python reference. ``_slab.SlubAllocator`` is its compiled twin, with
    the same methods and the same answers (tests/test_native_slab.py), and the native
    machine's entry points besides (``machine_kmalloc()``..., with the kmalloc caches it is
    given by ``set_kmalloc_caches()``; here ``Machine.kmalloc`` picks the cache).

    The machine gives it pages (``alloc_pages()``/``free_pages()``), the shadow to write and
    the reports to make; the allocator owns every slab, every freelist, KASAN's object
    metadata, the quarantine and the objects waiting for an RCU grace period. Nothing else
    reads those but through the methods below. A track is ``pid << 32 | stack handle``
    (``kasan_save_track()``), given by the caller.
    """

    def __init__(self, machine) -> None:
        p = machine.profile
        self.machine = machine
        self.page_shift = p.page_shift
        self.lm_delta = p.page_offset - p.phys_offset  # __pa() of the direct map
        self.caches: list[CacheSlabs] = []  # by cache id
        self.slab_of_pfn: dict[int, Slab] = {}
        self.aux_stacks: dict[int, tuple] = {}  # object -> aux stack tracks, newest first
        self.quarantine = Quarantine(p.mem_total, p.nr_cpus)
        self.rcu_pending: list[tuple[KmemCache, int]] = []

    def bind(self, machine) -> None:
        """The machine's page allocator, shadow and reports, looked up once (after boot, a
        change of the machine's shadow, or an unpickling)."""
        self._shadow_write = machine._shadow_write
        self._shadow_byte = machine._shadow_byte
        self._quarantine_put = self.quarantine.put

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in ("_shadow_write", "_shadow_byte", "_quarantine_put"):
            state.pop(name, None)
        return state

    def dispose(self) -> None:
        """Forget everything (a machine no one uses any more: no cycles left to collect)."""
        vars(self).clear()

    # ------------------------------------------------------------------ caches

    def add_cache(self, cache: KmemCache) -> None:
        """A new ``struct kmem_cache`` (its id is its index in the machine's caches)."""
        del self.caches[cache.id :]
        self.caches.append(CacheSlabs())

    def set_quarantine_size(self, totalram_bytes: int, nr_cpus: int) -> None:
        """A quarantine sized for another amount of RAM (only before anything is freed)."""
        self.quarantine = Quarantine(totalram_bytes, nr_cpus)
        self._quarantine_put = self.quarantine.put

    # ------------------------------------------------------------------ read API

    def slab_of(self, pfn: int) -> SlabInfo | None:
        """The slab a page belongs to (``page_slab(compound_head())``), or None."""
        slab = self.slab_of_pfn.get(pfn)
        if slab is None:
            return None
        return SlabInfo(
            slab.cache, slab.pfn, slab.base, slab.cache.objects, slab.inuse, slab.frozen
        )

    def slab_heads(self, cache: KmemCache) -> list[int]:
        """Head pfns of every slab of a cache, lowest first."""
        return sorted(self.caches[cache.id].slabs)

    def nr_slabs(self, cache: KmemCache | None = None) -> int:
        """Slabs of a cache (``nr_slabs`` of its node), or of every cache."""
        if cache is not None:
            return len(self.caches[cache.id].slabs)
        return sum(len(c.slabs) for c in self.caches)

    def objects_in_use(self, cache: KmemCache | None = None) -> int:
        """Allocated objects (the sum of ``slab->inuse``) in a cache's slabs, or in all."""
        caches = self.caches if cache is None else [self.caches[cache.id]]
        return sum(s.inuse for c in caches for s in c.slabs.values())

    def quarantine_bytes(self) -> int:
        """Bytes held by the quarantine (the global ring and the CPU queue)."""
        return self.quarantine.total_bytes()

    def object_meta(self, obj: int) -> ObjectMeta:
        """KASAN's metadata of a slab object (``kasan_get_alloc_meta``/``_free_meta``)."""
        slab = self.slab_of_pfn[(obj - self.lm_delta) >> self.page_shift]
        i = (obj - slab.base) // slab.cache.size * META_WORDS
        m = slab.meta
        return ObjectMeta(m[i], m[i + 1], self.aux_stacks.get(obj, ()), m[i + 2])

    # ------------------------------------------------------------------ slabs

    def allocate_slab(self, cache: KmemCache) -> Slab | None:
        """``allocate_slab()``: pages from the buddy, kasan_poison_slab(), object setup."""
        m = self.machine
        order = cache.layout.order
        pfn = m.alloc_pages(
            order, PageUse.SHADOW if cache.is_shadow else PageUse.SLAB, compound=True, cache=cache
        )
        if pfn is None:
            return None
        n = 1 << order
        base = m.page_address(pfn)
        objects = cache.objects
        slab = Slab(
            cache=cache,
            pfn=pfn,
            base=base,
            freelist=[base + i * cache.size for i in range(objects - 1, -1, -1)],
            meta=array("Q", bytes(8 * META_WORDS * objects)),
        )
        for i in range(n):
            self.slab_of_pfn[pfn + i] = slab
        self.caches[cache.id].slabs[pfn] = slab
        # kasan_poison_slab(): the whole slab is KASAN_SLAB_REDZONE; setup_object() leaves it.
        # The shadow-block caches of per-page schemes are KASAN's own: never poisoned.
        if not cache.is_shadow:
            m.shadow.poison(base, n << self.page_shift, KASAN_SLAB_REDZONE)
        return slab

    def discard_slab(self, slab: Slab) -> None:
        """``discard_slab()``: an empty slab's pages back to the buddy allocator."""
        cache = slab.cache
        n = 1 << cache.layout.order
        del self.caches[cache.id].slabs[slab.pfn]
        for i in range(n):
            del self.slab_of_pfn[slab.pfn + i]
        if self.aux_stacks:
            for i in range(cache.objects):
                self.aux_stacks.pop(slab.base + i * cache.size, None)
        self.machine.free_pages(slab.pfn, cache.layout.order)

    def refill_cpu_slab(self, cache: KmemCache, cs: CacheSlabs) -> Slab | None:
        """``___slab_alloc()``: the CPU slab is empty; take a partial slab, or a new one."""
        if cs.cpu_slab is not None:
            cs.cpu_slab.frozen = False
        slab = cs.partial.popleft() if cs.partial else self.allocate_slab(cache)
        if slab is not None:
            slab.frozen = True
        cs.cpu_slab = slab
        return slab

    def do_slab_free(self, slab: Slab, obj: int) -> None:
        """``do_slab_free()``: back onto its slab's freelist; empty slabs may go to the buddy."""
        cache = slab.cache
        was_full = not slab.freelist
        slab.freelist.append(obj)
        slab.inuse -= 1
        if slab.frozen:
            return
        partial = self.caches[cache.id].partial
        if slab.inuse == 0:
            if slab in partial:
                if len(partial) > cache.min_partial:
                    partial.remove(slab)
                    self.discard_slab(slab)
            elif len(partial) >= cache.min_partial:
                self.discard_slab(slab)
            else:
                partial.append(slab)
        elif was_full:
            partial.append(slab)

    # ------------------------------------------------------------------ allocation

    def kmem_cache_alloc(self, cache: KmemCache, size: int, track: int) -> int:
        """``slab_alloc_node()``: the next object of the cache's CPU slab
        (``__slab_alloc_node()``), ``___slab_alloc()`` (refill_cpu_slab) taking a partial or new
        slab when its freelist is empty; 0 (NULL) without memory. KASAN's hooks around it:
        ``kasan_quarantine_reduce()`` first, as from ``slab_pre_alloc_hook()``, then
        ``kasan_slab_alloc()``/``kasan_kmalloc()`` (_kasan_kmalloc: size bytes unpoisoned, the
        alloc track saved). A shadow cache has none (shadow_block_alloc): it would be created
        with KASAN disabled."""
        hooked = not cache.is_shadow
        if hooked:
            q = self.quarantine
            if q.size > q.max_size:
                self.quarantine_reduce()
        cs = self.caches[cache.id]
        slab = cs.cpu_slab
        if slab is None or not slab.freelist:
            slab = self.refill_cpu_slab(cache, cs)
            if slab is None:
                return 0
        slab.inuse += 1
        obj = slab.freelist.pop()
        if hooked:
            self._kasan_kmalloc(slab, obj, size, track)
        return obj

    def _kasan_kmalloc(self, slab: Slab, obj: int, size: int, track: int) -> None:
        """``unpoison_slab_object()`` + ``poison_kmalloc_redzone()`` of an object of slab (size
        bytes accessible, KASAN_SLAB_REDZONE up to object_size) and
        ``kasan_save_alloc_info()`` (old stacks invalidated, the alloc track saved)."""
        cache = slab.cache
        self._shadow_write(obj, cache.alloc_patterns.get(size) or alloc_pattern(cache, size))
        i = (obj - slab.base) // cache.size * META_WORDS
        meta = slab.meta
        meta[i] = track
        meta[i + 1] = 0
        meta[i + 2] = size
        if self.aux_stacks:
            self.aux_stacks.pop(obj, None)

    def unpoison_object(self, obj: int, size: int, track: int) -> None:
        """``__kasan_krealloc()``, ``__kasan_mempool_unpoison_object()`` of a slab object: its
        size bytes unpoisoned, its kmalloc redzone poisoned, its alloc track saved
        (_kasan_kmalloc)."""
        self._kasan_kmalloc(
            self.slab_of_pfn[(obj - self.lm_delta) >> self.page_shift], obj, size, track
        )

    def shadow_block_alloc(self, cache: KmemCache) -> int:
        """A block from a shadow cache (plain SLUB, no KASAN hooks): its address, 0 if none."""
        return self.kmem_cache_alloc(cache, cache.object_size, 0)

    def shadow_block_free(self, addr: int) -> None:
        """Give a shadow block back to its cache (plain SLUB, no KASAN hooks)."""
        self.do_slab_free(self.slab_of_pfn[(addr - self.lm_delta) >> self.page_shift], addr)

    # ------------------------------------------------------------------ free

    def check_slab_allocation(self, addr: int) -> int:
        """``check_slab_allocation()`` of a slab address: FREE_OK, INVALID_FREE (not the
        start of an object) or DOUBLE_FREE (its shadow says it is free)."""
        slab = self.slab_of_pfn[(addr - self.lm_delta) >> self.page_shift]
        cache = slab.cache
        offset = addr - slab.base
        if offset % cache.size or offset >= cache.slab_bytes:  # nearest_obj() != obj
            return INVALID_FREE
        if self._shadow_byte(addr) >= KASAN_GRANULE_SIZE:
            return DOUBLE_FREE
        return FREE_OK

    def poison_slab_object(self, obj: int, track: int) -> None:
        """``poison_slab_object()`` + ``kasan_save_free_info()``: FB, and FA on the first
        granule when the free track is saved."""
        slab = self.slab_of_pfn[(obj - self.lm_delta) >> self.page_shift]
        cache = slab.cache
        self._shadow_write(obj, cache.free_pattern)
        if cache.has_free_meta:
            slab.meta[(obj - slab.base) // cache.size * META_WORDS + 1] = track

    def kfree(self, addr: int, track: int) -> int:
        """``kfree()``/``kmem_cache_free()`` of an address in a slab: ``slab_free()`` →
        ``slab_free_hook()`` → KASAN (checks, poison, free track) → the quarantine, an RCU
        grace period or the freelist. Returns what check_slab_allocation() found: the caller
        reports it; -1 when addr is in no slab (a large kmalloc's pages, or no allocation at
        all: the caller's business)."""
        slab = self.slab_of_pfn.get((addr - self.lm_delta) >> self.page_shift)
        if slab is None:
            return -1
        cache = slab.cache
        offset = addr - slab.base
        if offset % cache.size or offset >= cache.slab_bytes:
            return INVALID_FREE
        if self._shadow_byte(addr) >= KASAN_GRANULE_SIZE:
            return DOUBLE_FREE
        if cache.flags & SLAB_TYPESAFE_BY_RCU:
            # CONFIG_SLUB_RCU_DEBUG: the real free waits for a grace period.
            self.record_aux_stack(addr, track)
            self.rcu_pending.append((cache, addr))
            return FREE_OK
        # poison_slab_object(), as above (inlined: the hottest path).
        self._shadow_write(addr, cache.free_pattern)
        if cache.has_free_meta:
            slab.meta[offset // cache.size * META_WORDS + 1] = track
            self._quarantine_put(cache, addr)
        else:
            self.do_slab_free(slab, addr)
        return FREE_OK

    def record_aux_stack(self, addr: int, track: int) -> None:
        """``kasan_record_aux_stack()``: remember the last two work creations on an object."""
        slab = self.slab_of_pfn.get((addr - self.lm_delta) >> self.page_shift)
        if slab is None:
            return
        obj = slab.cache.nearest_obj(slab, addr)
        self.aux_stacks[obj] = (track,) + self.aux_stacks.get(obj, ())[:1]

    def rcu_barrier(self, track: int) -> None:
        """Run pending ``slab_free_after_rcu_debug()`` callbacks, their frees tracked as
        ``track`` (task 0, in softirq)."""
        pending, self.rcu_pending = self.rcu_pending, []
        for cache, obj in pending:
            self.poison_slab_object(obj, track)
            if cache.has_free_meta:
                self._quarantine_put(cache, obj)
            else:
                self.do_slab_free(self.slab_of_pfn[(obj - self.lm_delta) >> self.page_shift], obj)

    def quarantine_reduce(self) -> None:
        """``kasan_quarantine_reduce()``: free the oldest batch back to the slabs."""
        q = self.quarantine
        if q.size > q.max_size:
            slab_of_pfn = self.slab_of_pfn
            for obj in q.reduce():
                self.do_slab_free(slab_of_pfn[(obj - self.lm_delta) >> self.page_shift], obj)

    def kmem_cache_shutdown(self, cache: KmemCache) -> bool:
        """``kasan_cache_shutdown()`` (the quarantine gives the cache's objects back) and
        ``__kmem_cache_shutdown()``: False (-EBUSY) while an object is in use, else every
        slab is discarded."""
        slab_of_pfn = self.slab_of_pfn

        def cache_of(obj: int) -> KmemCache:
            return slab_of_pfn[(obj - self.lm_delta) >> self.page_shift].cache

        for obj in self.quarantine.remove_cache(cache, cache_of):
            self.do_slab_free(slab_of_pfn[(obj - self.lm_delta) >> self.page_shift], obj)
        cs = self.caches[cache.id]
        if any(slab.inuse for slab in cs.slabs.values()):
            return False
        cs.cpu_slab = None
        cs.partial.clear()
        for slab in list(cs.slabs.values()):
            self.discard_slab(slab)
        return True


def alloc_pattern(cache: KmemCache, size: int) -> bytes:
    """The object's shadow after ``unpoison_slab_object()`` + ``poison_kmalloc_redzone()``:
    size bytes accessible (00 ... partial), KASAN_SLAB_REDZONE up to object_size; kept in
    the cache's alloc_patterns."""
    pattern = cache.alloc_patterns.get(size)
    if pattern is None:
        granules = round_up(cache.object_size, KASAN_GRANULE_SIZE) >> 3
        out = bytearray([KASAN_SLAB_REDZONE]) * granules
        out[: size >> 3] = bytes(size >> 3)
        if size & 7:
            out[size >> 3] = size & 7
        pattern = cache.alloc_patterns[size] = bytes(out)
    return pattern
