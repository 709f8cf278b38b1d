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

from .kasan import round_up

SLAB_HWCACHE_ALIGN = 0x00002000
SLAB_TYPESAFE_BY_RCU = 0x00080000
SLAB_ACCOUNT = 0x04000000
SLAB_KMALLOC = 0x00001000
SLAB_KASAN = 0x08000000
SLAB_NO_MERGE = 0x01000000

SLAB_FLAG_NAMES = {"SLAB_HWCACHE_ALIGN": SLAB_HWCACHE_ALIGN,
                   "SLAB_TYPESAFE_BY_RCU": SLAB_TYPESAFE_BY_RCU,
                   "SLAB_ACCOUNT": SLAB_ACCOUNT}

KASAN_NO_FREE_META = 0x7FFFFFFF          # INT_MAX
PAGE_ALLOC_COSTLY_ORDER = 3              # slub_max_order
MAX_OBJS_PER_PAGE = 32767
L1_CACHE_BYTES = 64                      # cache_line_size() on the profiled arches

QUARANTINE_FRACTION = 32
QUARANTINE_PERCPU_SIZE = 1 << 20
QUARANTINE_BATCHES = 1024                # max(1024, 4 * CONFIG_NR_CPUS)


def optimal_redzone(object_size: int) -> int:
    """``optimal_redzone()`` of mm/kasan/generic.c (unchanged 4.12 .. 6.12)."""
    return (16 if object_size <= 64 - 16 else
            32 if object_size <= 128 - 32 else
            64 if object_size <= 512 - 64 else
            128 if object_size <= 4096 - 128 else
            256 if object_size <= (1 << 14) - 256 else
            512 if object_size <= (1 << 15) - 512 else
            1024 if object_size <= (1 << 16) - 1024 else 2048)


def get_order(size: int, page_shift: int) -> int:
    """``get_order()``: the smallest order whose block holds size bytes."""
    return max((size - 1).bit_length() - page_shift, 0)       # O(1) whatever the size


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
    size: int                   # s->size: the slot, after alignment
    align: int
    offset: int                 # free pointer offset
    alloc_meta_offset: int      # 0 = no alloc meta... except it is legitimately 0 never (>= object)
    free_meta_offset: int       # 0 = inside the object, KASAN_NO_FREE_META = none
    order: int
    objects: int                # objects per slab


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


def kmem_cache_layout(object_size: int, align: int, flags: int, has_ctor: bool, *,
                      word: int, page_shift: int, nr_cpus: int, max_order: int,
                      kmalloc_max_size: int) -> CacheLayout:
    """``calculate_sizes()`` with generic KASAN's ``kasan_cache_create()`` (slub_debug off)."""
    alloc_meta_size = 16                                  # struct kasan_alloc_meta
    free_meta_size = word + 8                             # qlist_node + kasan_track
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
    return CacheLayout(object_size=object_size, size=size, align=align, offset=offset,
                       alloc_meta_offset=alloc_meta_offset, free_meta_offset=free_meta_offset,
                       order=order, objects=objects)


class ObjectMeta(NamedTuple):
    """KASAN's per-object metadata: alloc meta (track + aux stacks) and free meta (track).

    A track is ``pid << 32 | stack handle`` (``struct kasan_track``: a pid and a stack depot
    handle), 0 when not saved.
    """

    alloc_track: int
    free_track: int
    aux_stacks: tuple           # tracks, newest first, at most two (alloc_meta.aux_stack[2])
    alloc_size: int             # the requested size (kmalloc size), for views


META_WORDS = 3                  # per object in Slab.meta: alloc track, free track, alloc size


@dataclass(eq=False, slots=True)
class Slab:
    """``struct slab``: a slab of one cache, 2^order pages from pfn."""

    cache: "KmemCache"
    pfn: int
    base: int                   # virtual address of the first object
    freelist: list[int]         # object addresses, head at the end (pop/append)
    meta: array                 # META_WORDS per object: alloc track, free track, alloc size
    inuse: int = 0
    frozen: bool = False        # the CPU slab

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
    addr: int = 0                          # where the struct kmem_cache object lives
    cpu_slab: Slab | None = None
    partial: deque = field(default_factory=deque)
    slabs: dict[int, Slab] = field(default_factory=dict)     # pfn of head -> slab
    min_partial: int = 5
    alloc_patterns: dict[int, bytes] = field(default_factory=dict)   # size -> object shadow
    free_pattern: bytes = b""              # the object's shadow once freed (FA FB FB ...)
    destroyed: bool = False
    is_kmalloc: bool = False
    is_shadow: bool = False                # the shadow-block cache of a per-page scheme
    # Copies of the layout's hot numbers (read on every alloc and free).
    size: int = field(init=False)          # s->size, the slot
    objects: int = field(init=False)       # objects per slab
    slab_bytes: int = field(init=False)
    has_free_meta: bool = field(init=False)

    def __post_init__(self) -> None:
        self.size = self.layout.size
        self.objects = self.layout.objects
        self.slab_bytes = self.size * self.objects      # bytes of a slab holding objects
        self.has_free_meta = self.layout.free_meta_offset != KASAN_NO_FREE_META

    def nearest_obj(self, slab: Slab, addr: int) -> int:
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
        self.size = 0                   # quarantine_size: bytes in the global ring
        self.max_size = 0               # quarantine_max_size, set by the first reduce
        self.batch_size = 0             # quarantine_batch_size, likewise

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
