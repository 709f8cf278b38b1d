"""The simulated machine: memory, the buddy allocator, SLUB, and generic KASAN's hooks.

Each public method is one kernel call (``kmalloc``, ``kfree``, ``alloc_pages`` ...) or one
instrumented access (``check_access``). KASAN hooks are called where mm/ calls them in 6.12
(mm/kasan/common.c, generic.c, shadow.c), and write the shadow through the machine's
``ShadowScheme``. Bad accesses become ``BadAccess`` records appended to ``self.reports``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from . import native
from .buddy import BuddyZone
from .errors import KinspectError
from .kasan import (
    KASAN_ALLOCA_LEFT,
    KASAN_ALLOCA_REDZONE_SIZE,
    KASAN_ALLOCA_RIGHT,
    KASAN_GLOBAL_REDZONE,
    KASAN_GRANULE_SIZE,
    KASAN_PAGE_FREE,
    KASAN_PAGE_REDZONE,
    KASAN_SLAB_FREE,
    KASAN_SLAB_FREE_META,
    KASAN_STACK_LEFT,
    KASAN_STACK_MID,
    KASAN_STACK_RIGHT,
    KASAN_VMALLOC_INVALID,
    get_shadow_bug_type,
    get_wild_bug_type,
    kasan_find_first_bad_addr,
    memory_is_poisoned,
    round_down,
    round_up,
)
from .memory import (
    FREE_PAGE,
    PAGE_TYPE_NONE,
    PAGEFLAG_NAMES,
    STATE_OF_USE,
    MemMap,
    PageState,
    PG_head,
    PG_reserved,
    PGTY_buddy,
    PGTY_slab,
    page_record,
    pfn_to_virt,
    virt_to_pfn,
)
from .profile import ArchProfile
from .report import META_BYTES_PER_ROW, META_ROWS_AROUND_ADDR, BadAccess, Frame, StackDepot, Track
from .shadow import scheme_class
from .shadow.base import PageUse, ShadowScheme
from .shadow.lockstep import LockstepShadow, bind_engine
from .slab import (
    FREE_BUG_TYPES,
    FREE_OK,
    KASAN_NO_FREE_META,
    SLAB_HWCACHE_ALIGN,
    SLAB_KMALLOC,
    CacheLayout,
    KmemCache,
    ObjectMeta,
    SlabInfo,
    calculate_alignment,
    calculate_order,
    get_order,
    kmalloc_cache_name,
    kmem_cache_layout,
    slab_min_partial,
)

KERNEL_IMAGE_RESERVED = {64: 48 << 20, 32: 16 << 20}
LARGE_ACCESS = 1 << 20  # bytes: a bigger access reads its shadow in chunks of this much


class KernelOops(KinspectError):
    """The simulated kernel cannot go on: it would oops or panic here (a NULL pointer
    dereferenced outside KASAN's instrumentation, a kernel stack overflow). The run stops;
    the workload runner names the statement."""


LIST_POISON2 = {64: 0xDEAD000000000122, 32: 0x122}


@dataclass
class VmArea:
    """``struct vm_struct`` of a vmalloc() allocation."""

    addr: int
    size: int  # including the guard page
    requested: int
    pfns: list[int]
    caller: Frame


@dataclass
class StackFrame:
    """An instrumented stack frame: where it is and its description (``frame[0..2]``)."""

    base: int
    size: int
    pc: Frame
    objects: list[tuple[int, int, str]]


@dataclass
class Task:
    """``struct task_struct`` as far as KASAN reports need it: comm, pid, the stack."""

    comm: str
    pid: int
    stack_pfn: int | None = None
    fork_failed: bool = False  # no memory for its stack: copy_process() gave -ENOMEM
    stack_base: int = 0  # lowest address (end_of_stack)
    stack_top: int = 0
    sp: int = 0
    frames: list[StackFrame] = field(default_factory=list)


@dataclass
class Mempool:
    """``mempool_t``: a reserve of preallocated elements."""

    kind: str  # "kmalloc", "slab" or "page"
    min_nr: int
    size: int = 0  # kmalloc element size, or page order
    cache: KmemCache | None = None
    elements: list[int] = field(default_factory=list)


# A native Machine's attributes bound to compiled code (_bind_page_allocator(),
# _bind_slab_entry_points()): left out of its pickle, bound again when unpickled.
COMPILED_ENTRY_POINTS = (
    "alloc_pages",
    "free_pages",
    "page_allocator",
    "kmalloc",
    "kfree",
    "kmem_cache_alloc",
    "kmem_cache_free",
)

# machine.pages' values: one (order, use) tuple per pair, shared by every allocation of it (a
# checkpoint's pickle holds each once and refers to it: restoring 50 000 allocations costs a
# third of what a tuple each costs). PAGE_ENTRIES[order][use]; orders up to 63, any profile's.
PAGE_ENTRIES = tuple(tuple((order, use) for use in PageUse) for order in range(64))


class Machine:
    """A whole simulated kernel, booted on an ``ArchProfile``."""

    def __init__(
        self,
        profile: ArchProfile,
        schemes: Sequence[str] = ("flat",),
        multi_shot: bool = True,
        scheme_options: dict | None = None,
        engine: str | None = None,
    ) -> None:
        """Boot a machine; ``schemes`` name the shadow schemes (several run in lockstep, the
        first being the reference that reads come from); ``engine`` as native.engine()."""
        self.profile = profile
        self.engine = native.engine(engine)
        p = profile
        self.bits = p.bits
        self.word = p.bits // 8
        self.page_shift = p.page_shift
        self.page_size = 1 << p.page_shift
        self.multi_shot = multi_shot
        self._lm_delta = p.page_offset - p.phys_offset  # __pa() of the direct map
        self.kmalloc_max_cache_size = 1 << (p.page_shift + 1)
        self.kmalloc_max_size = 1 << (p.max_order + p.page_shift)
        self.memmap = MemMap(p)
        self._image_size = KERNEL_IMAGE_RESERVED[p.bits]
        image_pfn = p.kernel_image_phys >> p.page_shift
        self._reserved = [(image_pfn, image_pfn + (self._image_size >> p.page_shift))]
        options = scheme_options or {}
        self.schemes: list[ShadowScheme] = [scheme_class(name)(self, **options) for name in schemes]
        self.shadow = self.schemes[0] if len(self.schemes) == 1 else LockstepShadow(self.schemes)
        # SLUB, KASAN's slab hooks and the quarantine (slab.SlubAllocator or its twin).
        self.slub = native.slub_allocator_class(self.engine)(self)
        self.zones = self._boot_zones()
        self._alloc_zones = [z for z in reversed(self.zones) if z.name != "HighMem"]
        # zone_of_pfn(): pfn << PAGE_SHIFT < zone.end, i.e. pfn < ceil(zone.end / PAGE_SIZE)
        self._zone_ends: list[tuple[int, BuddyZone]] = []
        for zone, bz in zip(p.zones[:-1], self.zones[:-1]):
            assert zone.end is not None  # only the last zone runs to the end of memory
            self._zone_ends.append((-(-zone.end >> p.page_shift), bz))
        self._max_order = p.max_order
        self._lowmem_lo = p.phys_offset >> p.page_shift  # is_lowmem_pfn(), cached
        self._lowmem_hi = p.max_low_pfn
        self._records: dict[tuple, tuple] = {}  # _page_records()
        self.caches: list[KmemCache] = []
        self.large: dict[int, tuple[int, int]] = {}  # large kmalloc head pfn -> (order, size)
        self.pages: dict[int, tuple[int, PageUse]] = {}  # allocated head pfn -> (order, use)
        self._bind_page_allocator()
        self._bind_shadow()  # (after: SLUB binds the page allocator's entry points)
        self.vm_areas: list[VmArea] = []
        self._vmalloc_next = p.vmalloc_start
        self._globals_next = p.kernel_image_start
        self.globals: list[tuple[int, int, int, str]] = []  # addr, size, size+redzone, name
        self.tasks: dict[int, Task] = {}
        self.reports: list[BadAccess] = []
        self.failed: Counter = Counter()  # allocations that failed (NULL, -ENOMEM), by call
        self.tainted = False
        self.depot = StackDepot()
        self.set_ip(Frame("kinspect_main", 0, 0x400))
        self.task = self._get_task("swapper/0", 1)
        self.kmem_cache_cache = self._create_boot_cache(
            "kmem_cache", p.sizeof_kmem_cache, SLAB_HWCACHE_ALIGN
        )
        self.kmalloc_caches = self._create_kmalloc_caches()
        self._kmalloc_index = self._build_kmalloc_index()
        if self.engine == "native":  # the compiled kmalloc() takes its cache in C
            self.slub.set_kmalloc_caches(self._kmalloc_index)
        self.shadow.boot()
        # bootstrap(): the boot caches' struct kmem_cache move into kmem_cache objects.
        for cache in list(self.caches):
            cache.addr = self.kmem_cache_alloc(self.kmem_cache_cache)
        self._bind_slab_entry_points()

    # ----------------------------------------------------------------------------- boot

    def lowmem_bytes(self) -> int:
        """Present RAM in the direct map (all of it, except highmem on 32-bit)."""
        return sum(
            min(r.end, self._lowmem_end()) - r.start
            for r in self.profile.memory
            if r.start < self._lowmem_end()
        )

    def _lowmem_end(self) -> int:
        limit = self.profile.lowmem_limit
        return limit if limit is not None else 1 << 64

    def _boot_zones(self) -> list[BuddyZone]:
        p = self.profile
        zones = []
        start = 0
        for index, zone in enumerate(p.zones):
            end = zone.end if zone.end is not None else 1 << 64
            bz = native.buddy_zone_class(self.engine)(zone.name, index, p.max_order)
            for r in p.memory:
                lo, hi = max(r.start, start), min(r.end, end)
                if lo < hi:
                    for a, b in self._minus_reserved(lo >> p.page_shift, hi >> p.page_shift):
                        bz.add_range(a, b)
            zones.append(bz)
            start = end
        for a, b in self._reserved:
            self.memmap.set_pages(
                a, b - a, page_record(PageState.RESERVED, refcount=1, flags=1 << PG_reserved)
            )
        return zones

    def _minus_reserved(self, a: int, b: int):
        for ra, rb in self._reserved:
            if rb <= a or ra >= b:
                continue
            if a < ra:
                yield a, ra
            a = max(a, rb)
        if a < b:
            yield a, b

    def _bind_shadow(self) -> None:
        """The shadow's write and read, looked up once: the hottest paths call them (on the
        native engine, a lockstep's are compiled: LockstepShadow.bind_engine); SLUB's binding
        of the shadow and of the page allocator's entry points."""
        bind_engine(self.shadow, self.engine)
        self._shadow_write = self.shadow.write
        self._shadow_byte = self.shadow.shadow_byte
        self.slub.bind(self)

    def _bind_page_allocator(self) -> None:
        """On the native engine, alloc_pages() and free_pages() are their compiled twins
        (_page_alloc.pyx), bound to this machine's state, and ``page_allocator`` is their
        PageAllocator (whose C methods the compiled replayer calls); the methods below are
        the reference."""
        if self.engine == "native":
            allocator = native.compiled_for_native("_page_alloc").PageAllocator(self)
            self.page_allocator = allocator
            # the compiled twins shadow the reference methods on this instance
            self.alloc_pages = allocator.alloc_pages  # type: ignore[method-assign]
            self.free_pages = allocator.free_pages  # type: ignore[method-assign]

    def _bind_slab_entry_points(self) -> None:
        """On the native engine (once boot has made the kmalloc caches), kmalloc(), kfree(),
        kmem_cache_alloc() and kmem_cache_free() are the compiled SLUB's machine_* twins
        (_slab.pyx), one compiled call each; the methods below are the reference."""
        if self.engine == "native":
            slub = self.slub
            # the compiled twins shadow the reference methods on this instance
            self.kmalloc = slub.machine_kmalloc  # type: ignore[method-assign]
            self.kfree = slub.machine_kfree  # type: ignore[method-assign]
            self.kmem_cache_alloc = slub.machine_kmem_cache_alloc  # type: ignore[method-assign]
            self.kmem_cache_free = slub.machine_kmem_cache_free  # type: ignore[method-assign]

    def tables(self) -> tuple[dict, ...]:
        """The machine's big dicts whose values are immutable (``pages``: 49 000 entries late
        in the real trace at 1 TiB), which a checkpoint keeps apart, each as one chunk, and a
        restore copies (kinspect/session/checkpoints.py): half of what unpickling a machine
        costs otherwise."""
        return (self.pages,)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_shadow_write"], state["_shadow_byte"]  # may be closures (lockstep)
        for name in COMPILED_ENTRY_POINTS:  # compiled: bound again
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._bind_page_allocator()
        self._bind_shadow()
        self._bind_slab_entry_points()

    def boot_free_runs(self, a: int, b: int):
        """Runs [x, y) of the pfns in [a, b) that are free RAM at boot: present, not reserved
        (the kernel image). Their boot shadow is KASAN_PAGE_FREE, that of the others 0."""
        ps = self.page_shift
        for r in self.profile.memory:
            x, y = max(a, r.start >> ps), min(b, r.end >> ps)
            if x < y:
                yield from self._minus_reserved(x, y)

    def initial_shadow_byte(self, addr: int) -> int:
        """Boot-time shadow: free RAM KASAN_PAGE_FREE, the vmalloc space KASAN_VMALLOC_INVALID."""
        p = self.profile
        if self._is_kernel_image(addr):
            return 0  # kasan_init() maps the image's shadow zeroed (arm64: in vmalloc)
        if p.vmalloc_start <= addr < p.vmalloc_end:
            return KASAN_VMALLOC_INVALID
        pfn = self._direct_map_pfn(addr)
        if pfn is None or not p.pfn_valid(pfn):
            return 0
        for a, b in self._reserved:
            if a <= pfn < b:
                return 0
        return KASAN_PAGE_FREE

    def initial_shadow_edges(self) -> list[int]:
        """The addresses where ``initial_shadow_byte``'s answer may change, sorted: the edges
        of the ranges it tests (the kernel image, the vmalloc space, the direct map, and, on
        it, the memory ranges and the reserved pfns); between two of them it is the same."""
        p = self.profile
        shift = self.page_shift

        def direct_map(pfn: int) -> int:  # (lowmem or not: an edge all the same)
            return (pfn << shift) - p.phys_offset + p.page_offset

        edges = {p.vmalloc_start, p.vmalloc_end, p.page_offset, p.high_memory}
        edges |= {p.kernel_image_start, p.kernel_image_start + self._image_size}
        for r in p.memory:
            edges |= {direct_map(r.start >> shift), direct_map(r.end >> shift)}
        for a, b in self._reserved:
            edges |= {direct_map(a), direct_map(b)}
        return sorted(edges)

    # ------------------------------------------------------------------ address helpers

    def _direct_map_pfn(self, addr: int) -> int | None:
        try:
            return virt_to_pfn(self.profile, addr)
        except ValueError:
            return None

    def page_address(self, pfn: int) -> int:
        """``page_address()`` of a lowmem page."""
        return pfn_to_virt(self.profile, pfn)

    def _is_kernel_image(self, addr: int) -> bool:
        p = self.profile
        return (
            p.kernel_image_start <= addr < p.kernel_image_start + self._image_size
            and p.kernel_image_start != p.page_offset
        )

    def addr_to_pfn(self, addr: int) -> int | None:
        """The pfn backing a kernel address (direct map, kernel image or vmalloc), or None."""
        p = self.profile
        if self._is_kernel_image(addr):
            return (addr - p.kernel_image_start + p.kernel_image_phys) >> self.page_shift
        if p.vmalloc_start <= addr < p.vmalloc_end:
            area = self.find_vm_area(addr)
            if area is None:
                return None
            index = (addr - area.addr) >> self.page_shift
            return area.pfns[index] if index < len(area.pfns) else None
        pfn = self._direct_map_pfn(addr)
        if pfn is None or not p.pfn_valid(pfn) or not p.is_lowmem_pfn(pfn):
            return None
        return pfn

    def compound_head(self, pfn: int) -> int:
        head = self.memmap.get(pfn, "head", -1)
        return pfn if head < 0 else head

    def find_slab(self, addr: int) -> SlabInfo | None:
        """``virt_to_slab()``: the slab holding a direct-map address, or None."""
        # Slabs are lowmem: __pa() of any other address gives no slab pfn.
        return self.slub.slab_of((addr - self._lm_delta) >> self.page_shift)

    def slab_of(self, pfn: int) -> SlabInfo | None:
        """The slab a page belongs to (``page_slab()``), or None."""
        return self.slub.slab_of(pfn)

    def find_vm_area(self, addr: int) -> VmArea | None:
        for area in self.vm_areas:
            if area.addr <= addr < area.addr + area.size:
                return area
        return None

    def shadow_byte(self, addr: int) -> int:
        return self.shadow.shadow_byte(addr)

    def addr_has_metadata(self, addr: int) -> bool:
        return self.profile.addr_has_metadata(addr)

    # ------------------------------------------------------------------- page allocator

    def _get_task(self, comm: str, pid: int) -> Task:
        task = self.tasks.get(pid)
        if task is None or task.comm != comm:
            task = Task(comm, pid)
            self.tasks[pid] = task
        return task

    def set_task(self, comm: str, pid: int) -> None:
        self.task = self._get_task(comm, pid)

    def _buddy_alloc(self, order: int) -> int | None:
        need = 1 << order
        for zone in self._alloc_zones:  # highest zone first, no HighMem
            if zone.free_pages >= need:  # (fewer free pages: it cannot fit)
                pfn = zone.alloc(order)
                if pfn is not None:
                    return pfn
        return None

    def _zone_of(self, pfn: int) -> BuddyZone:
        """The zone of a pfn (``profile.zone_of_pfn()``, from pfn bounds made at boot)."""
        for end, zone in self._zone_ends:
            if pfn < end:
                return zone
        return self.zones[-1]

    def _page_records(
        self, use: PageUse, order: int, compound: bool, cache: KmemCache | None
    ) -> tuple[tuple | None, tuple]:
        """struct page records of a new allocation: (tails or None if they name their head,
        head), made once per kind of allocation."""
        key = (use, order, compound, -1 if cache is None else cache.id)
        records = self._records.get(key)
        if records is None:
            state = STATE_OF_USE[use]
            cache_id = -1 if cache is None else cache.id
            head_type = PAGE_TYPE_NONE if cache is None else PGTY_slab << 24
            tails = None if compound else page_record(state, cache=cache_id)
            head = page_record(
                state,
                refcount=1,
                order=order,
                cache=cache_id,
                flags=(1 << PG_head) if compound else 0,
                page_type=head_type,
            )
            records = self._records[key] = (tails, head)
        return records

    def alloc_pages(
        self,
        order: int,
        use: PageUse = PageUse.PAGE_ALLOC,
        compound: bool = False,
        cache: KmemCache | None = None,
    ) -> int | None:
        """``alloc_pages()`` + ``post_alloc_hook()``: the head pfn, or None when out of memory.

        A slab's pages carry their cache (``slab->slab_cache``) and the head the slab type."""
        if order > self._max_order:
            return None
        need = 1 << order
        for zone in self._alloc_zones:  # _buddy_alloc(), inlined
            if zone.free_pages >= need:
                pfn = zone.alloc(order)
                if pfn is not None:
                    break
        else:
            return None
        compound = compound and order > 0
        tails, head = self._records.get(
            (use, order, compound, -1 if cache is None else cache.id)
        ) or self._page_records(use, order, compound, cache)
        memmap = self.memmap
        if order:
            if tails is None:
                tails = (0, PAGE_TYPE_NONE, 0, 0, head[4], head[5], pfn, 0)  # head=pfn
            memmap.set_pages(pfn + 1, (1 << order) - 1, tails)
        memmap.set_pages(pfn, 1, head)
        self.pages[pfn] = PAGE_ENTRIES[order][use]
        if not self.shadow.page_alloc(pfn, order, use):
            # No memory for its shadow: the allocation fails as a whole.
            del self.pages[pfn]
            self.memmap.set_pages(pfn, 1 << order, FREE_PAGE)
            self._zone_of(pfn).free(pfn, order)
            return None
        # kasan_unpoison_pages(): highmem pages have no shadow.
        if self._lowmem_lo <= pfn < self._lowmem_hi:
            self.shadow.poison(
                (pfn << self.page_shift) + self._lm_delta, self.page_size << order, 0
            )
        return pfn

    def free_pages(self, pfn: int, order: int) -> None:
        """``__free_pages()`` → ``free_pages_prepare()`` (kasan_poison_pages) → buddy."""
        self.pages.pop(pfn, None)
        shadow = self.shadow
        if self._lowmem_lo <= pfn < self._lowmem_hi:
            shadow.poison(
                (pfn << self.page_shift) + self._lm_delta, self.page_size << order, KASAN_PAGE_FREE
            )
        shadow.page_free(pfn, order)
        self.memmap.set_pages(pfn, 1 << order, FREE_PAGE)
        # _zone_of(), inlined; `zone` is read after the loop (break keeps it)
        for end, zone in self._zone_ends:  # noqa: B007
            if pfn < end:
                break
        else:
            zone = self.zones[-1]
        zone.free(pfn, order)

    # ----------------------------------------------------------------------------- slab

    def _new_cache(
        self, name: str, object_size: int, align: int, flags: int, has_ctor: bool
    ) -> KmemCache:
        p = self.profile
        layout = kmem_cache_layout(
            object_size,
            align,
            flags,
            has_ctor,
            word=self.word,
            page_shift=p.page_shift,
            nr_cpus=p.nr_cpus,
            max_order=p.max_order,
            kmalloc_max_size=self.kmalloc_max_size,
        )
        cache = KmemCache(
            id=len(self.caches),
            name=name,
            object_size=object_size,
            flags=flags,
            has_ctor=has_ctor,
            layout=layout,
            min_partial=slab_min_partial(layout.size),
        )
        granules = round_up(object_size, KASAN_GRANULE_SIZE) >> 3
        first = KASAN_SLAB_FREE_META if cache.has_free_meta else KASAN_SLAB_FREE
        cache.free_pattern = bytes([first]) + bytes([KASAN_SLAB_FREE]) * (granules - 1)
        self.caches.append(cache)
        self.slub.add_cache(cache)
        return cache

    def _create_boot_cache(self, name: str, size: int, flags: int) -> KmemCache:
        align = calculate_alignment(flags, 0, size, self.profile.slab_minalign, self.word)
        return self._new_cache(name, size, align, flags, False)

    def _create_kmalloc_caches(self) -> list[tuple[int, KmemCache]]:
        """kmalloc-8 .. kmalloc-8k (``KMALLOC_MAX_CACHE_SIZE``) with 96 and 192, as 6.12."""
        p = self.profile
        minsize = max(p.kmalloc_minalign, 8)
        sizes = []
        s = minsize
        while s <= self.kmalloc_max_cache_size:
            sizes.append(s)
            s <<= 1
        if minsize <= 32:
            sizes.append(96)
        if minsize <= 64:
            sizes.append(192)
        caches = []
        for size in sorted(sizes):
            align = max(p.kmalloc_minalign, size & -size)
            align = calculate_alignment(SLAB_KMALLOC, align, size, p.slab_minalign, self.word)
            cache = self._new_cache(kmalloc_cache_name(size), size, align, SLAB_KMALLOC, False)
            cache.is_kmalloc = True
            caches.append((size, cache))
        return caches

    def kmalloc_cache(self, size: int) -> KmemCache:
        """``kmalloc_slab()``: the kmalloc cache for a request of size bytes."""
        return self._kmalloc_index[size]

    def _build_kmalloc_index(self) -> list[KmemCache]:
        """``kmalloc_size_index[]`` + ``__kmalloc_index()`` as one table, 0..8 KiB."""
        index = []
        limits = iter(self.kmalloc_caches)
        limit, cache = next(limits)
        for size in range(self.kmalloc_max_cache_size + 1):
            while size > limit:
                limit, cache = next(limits)
            index.append(cache)
        return index

    def set_ip(self, frame: Frame) -> None:
        """Where the next calls come from (the stack saved by their tracks)."""
        self.ip = frame
        self.ip_handle = self.depot.save(frame)

    def _track(self) -> int:
        """``kasan_save_track()``: pid << 32 | the stack depot handle of the current frame."""
        return self.task.pid << 32 | self.ip_handle

    def _unpack_track(self, track: int) -> Track | None:
        return Track(track >> 32, self.depot.fetch(track & 0xFFFFFFFF)) if track else None

    def object_meta(self, obj: int) -> ObjectMeta:
        """KASAN's metadata of a slab object (``kasan_get_alloc_meta``/``_free_meta``)."""
        return self.slub.object_meta(obj)

    def create_shadow_cache(self, name: str, block_size: int) -> KmemCache:
        """A cache of shadow blocks for a per-page scheme: no KASAN layout, no redzones,
        naturally aligned blocks (it would be created with KASAN disabled)."""
        p = self.profile
        order = calculate_order(block_size, p.page_shift, p.nr_cpus, p.max_order)
        objects = (self.page_size << order) // block_size
        layout = CacheLayout(
            object_size=block_size,
            size=block_size,
            align=block_size,
            offset=0,
            alloc_meta_offset=0,
            free_meta_offset=KASAN_NO_FREE_META,
            order=order,
            objects=objects,
        )
        cache = KmemCache(
            id=len(self.caches),
            name=name,
            object_size=block_size,
            flags=0,
            has_ctor=False,
            layout=layout,
            is_shadow=True,
            min_partial=slab_min_partial(block_size),
        )
        self.caches.append(cache)
        self.slub.add_cache(cache)
        return cache

    def shadow_block_alloc(self, cache: KmemCache) -> int:
        """A block from a shadow cache (plain SLUB, no KASAN hooks): its address, 0 if none."""
        return self.slub.shadow_block_alloc(cache)

    def shadow_block_free(self, cache: KmemCache, addr: int) -> None:
        """Give a shadow block back to its cache (plain SLUB, no KASAN hooks)."""
        self.slub.shadow_block_free(addr)

    def kmem_cache_alloc(self, cache: KmemCache, size: int | None = None) -> int:
        """``kmem_cache_alloc()`` (or the slab part of ``kmalloc()`` when size is given)."""
        return self.slub.kmem_cache_alloc(
            cache, cache.object_size if size is None else size, self.task.pid << 32 | self.ip_handle
        )

    def kmalloc(self, size: int) -> int:
        """``kmalloc(size, GFP_KERNEL)``: a kmalloc cache, or pages above 8 KiB. 0 = NULL."""
        if 0 < size <= self.kmalloc_max_cache_size:
            return self.slub.kmem_cache_alloc(  # kmalloc_slab()'s cache
                self._kmalloc_index[size], size, self.task.pid << 32 | self.ip_handle
            )
        if size == 0:
            return 16  # ZERO_SIZE_PTR
        return self._kmalloc_large(size)

    def _kmalloc_large(self, size: int) -> int:
        """``__kmalloc_large_node()`` + ``__kasan_kmalloc_large()``."""
        self.slub.quarantine_reduce()
        order = get_order(size, self.page_shift)
        pfn = self.alloc_pages(order, PageUse.LARGE_KMALLOC, compound=True)
        if pfn is None:
            return 0
        self.large[pfn] = (order, size)
        addr = self.page_address(pfn)
        self._poison_large_redzone(addr, size, order)
        return addr

    def _poison_large_redzone(self, addr: int, size: int, order: int) -> None:
        if size & 7:
            self.shadow.set_byte(addr + size, size & 7)
        redzone = round_up(size, KASAN_GRANULE_SIZE)
        end = self.page_size << order
        if redzone < end:
            self.shadow.poison(addr + redzone, end - redzone, KASAN_PAGE_REDZONE)

    # ------------------------------------------------------------------------ free path

    def _report_invalid_free(self, addr: int, bug_type: str) -> None:
        self._report(addr, None, False, bug_type=bug_type)

    def _check_slab_allocation(self, obj: int) -> bool:
        """``check_slab_allocation()``: report invalid-free / double-free; True if reported."""
        bug = self.slub.check_slab_allocation(obj)
        if bug != FREE_OK:
            self._report_invalid_free(obj, FREE_BUG_TYPES[bug])
            return True
        return False

    def kfree(self, addr: int) -> None:
        """``kfree()``: a slab object, or a large kmalloc's compound page."""
        bug = self.slub.kfree(addr, self.task.pid << 32 | self.ip_handle)
        if bug > 0:
            self._report_invalid_free(addr, FREE_BUG_TYPES[bug])
        elif bug < 0 and addr > 16:  # not ZERO_OR_NULL_PTR
            self._free_large_kmalloc(addr)

    def _free_large_kmalloc(self, addr: int) -> None:
        """``free_large_kmalloc()``: check_page_allocation(), then the pages go back anyway."""
        pfn = self._direct_map_pfn(addr)
        if pfn is None or not self.profile.pfn_valid(pfn):
            self._report(addr, 1, False)  # the kernel would oops in virt_to_folio()
            return
        head = self.compound_head(pfn)
        if addr != self.page_address(head):
            self._report_invalid_free(addr, "invalid-free")
        elif self.shadow.shadow_byte(addr) >= KASAN_GRANULE_SIZE:
            self._report_invalid_free(addr, "double-free")
            return  # the folio is already free: nothing to put
        entry = self.large.pop(head, None)
        if entry is not None:
            self.free_pages(head, entry[0])
        elif head in self.pages:
            self.free_pages(head, self.pages[head][0])

    def kmem_cache_free(self, cache: KmemCache, addr: int) -> None:
        """``kmem_cache_free()``: the object's own slab decides (``cache_from_obj()``)."""
        bug = self.slub.kfree(addr, self.task.pid << 32 | self.ip_handle)
        if bug:
            self._report_invalid_free(addr, FREE_BUG_TYPES.get(bug, "invalid-free"))

    def rcu_barrier(self) -> None:
        """Run pending ``slab_free_after_rcu_debug()`` callbacks (as task 0, in softirq)."""
        self.slub.rcu_barrier(self._get_task("swapper/0", 0).pid << 32 | self.ip_handle)

    def _record_aux_stack(self, addr: int) -> None:
        """``kasan_record_aux_stack()``: remember the last two work creations on an object."""
        self.slub.record_aux_stack(addr, self._track())

    def call_rcu(self, addr: int) -> None:
        self._record_aux_stack(addr)

    def queue_work(self, addr: int) -> None:
        self._record_aux_stack(addr)

    # ------------------------------------------------------------- ksize, krealloc, ...

    def kasan_check_byte(self, addr: int) -> bool:
        """``__kasan_check_byte()``: report a 1-byte read if addr is not accessible."""
        if not self.addr_has_metadata(addr) or self.shadow.shadow_byte(addr) >= KASAN_GRANULE_SIZE:
            self._report(addr, 1, False)
            return False
        return True

    def ksize(self, addr: int) -> int:
        """``ksize()`` (6.12): kasan_check_byte(), then the usable size."""
        if addr <= 16:
            return 0
        if not self.kasan_check_byte(addr):
            return 0
        slab = self.find_slab(addr)
        if slab is not None:
            return slab.cache.object_size
        pfn = self._direct_map_pfn(addr)
        head = self.compound_head(pfn) if pfn is not None else None
        if head in self.large:
            return self.page_size << self.large[head][0]
        return 0

    def krealloc(self, addr: int, size: int) -> int:
        """``krealloc()``: in place when ksize allows, else kmalloc + copy + kfree."""
        if addr <= 16:
            return self.kmalloc(size)
        if size == 0:
            self.kfree(addr)
            return 16
        if not self.kasan_check_byte(addr):
            return 0
        slab = self.find_slab(addr)
        if slab is not None:
            ks = slab.cache.object_size
        else:
            # __ksize() of a page that is no large kmalloc is 0: allocate, copy, kfree().
            pfn = self._direct_map_pfn(addr)
            head = (
                self.compound_head(pfn) if pfn is not None and self.profile.pfn_valid(pfn) else None
            )
            ks = self.page_size << self.large[head][0] if head in self.large else 0
        if size <= ks:
            if slab is not None:
                # __kasan_krealloc(): unpoison the new size, poison the kmalloc redzone.
                self.slub.unpoison_object(addr, size, self._track())
            else:
                assert head is not None  # 0 < size <= ks: a large kmalloc's head page
                order = self.large[head][0]
                self.large[head] = (order, size)
                self.shadow.poison(addr, round_down(size, KASAN_GRANULE_SIZE), 0)
                self._poison_large_redzone(addr, size, order)
            return addr
        new = self.kmalloc(size)
        if new:
            self.kfree(addr)
        return new

    def kfree_sensitive(self, addr: int) -> None:
        """``kfree_sensitive()``: ksize() (which checks the first byte), memzero, kfree()."""
        if addr > 16:
            self.ksize(addr)
        self.kfree(addr)

    # -------------------------------------------------------------------- kmem_cache

    def kmem_cache_create(
        self, name: str, size: int, align: int, flags: int, has_ctor: bool
    ) -> KmemCache | None:
        """``kmem_cache_create()``: the struct kmem_cache itself is a slab object. None (NULL)
        when no slab can hold the object (``calculate_sizes()`` fails: the kernel returns NULL
        after ``kmem_cache_open()`` gives -EINVAL) or there is no memory for the struct."""
        align = calculate_alignment(flags, align, size, self.profile.slab_minalign, self.word)
        if size > self.kmalloc_max_size:
            return None  # no slab order holds it: rejected in O(1)
        try:
            cache = self._new_cache(name, size, align, flags, has_ctor)
        except ValueError:
            return None
        cache.addr = self.kmem_cache_alloc(self.kmem_cache_cache)
        if not cache.addr:
            self.caches.pop()
            return None
        return cache

    def kmem_cache_destroy(self, cache: KmemCache) -> None:
        """``kmem_cache_destroy()``: a second call reads the freed struct kmem_cache."""
        if cache.destroyed:
            self.kasan_check_byte(cache.addr)
            return
        self.rcu_barrier()
        if not self.slub.kmem_cache_shutdown(cache):
            # __kmem_cache_shutdown() gives -EBUSY: "Slab cache still has objects" (a WARN,
            # not a KASAN report), and the cache stays, its objects still usable.
            return
        cache.destroyed = True
        if self.find_slab(cache.addr) is not None:
            self.kmem_cache_free(self.kmem_cache_cache, cache.addr)

    # ------------------------------------------------------------------------- mempool

    def mempool_create(
        self, kind: str, min_nr: int, size: int = 0, cache: KmemCache | None = None
    ) -> Mempool | None:
        """``mempool_create()``: preallocate min_nr elements, poisoned as if freed."""
        pool = Mempool(kind, min_nr, size, cache)
        # mempool_init_node(): the elements array is kmalloc_array(min_nr, sizeof(void *)),
        # and every element must be allocated, or the pool is not made (NULL, -ENOMEM).
        # What cannot fit in the free memory fails at once, without a loop over min_nr.
        if kind == "page":
            element_bytes = self.page_size << size
        elif kind == "slab":
            assert cache is not None  # mempool_create_slab_pool() names its cache
            element_bytes = cache.size
        else:
            element_bytes = max(size, 8)
        if (
            min_nr * self.word > self.kmalloc_max_size
            or min_nr * element_bytes > self._free_bytes()
        ):
            return None
        for _ in range(min_nr):
            element = self._mempool_alloc_element(pool)
            if not element:
                self.mempool_destroy(pool)  # mempool_exit()
                return None
            self._mempool_poison(pool, element)
            pool.elements.append(element)
        return pool

    def _free_bytes(self) -> int:
        """Free memory in the zones allocations come from (nr_free_pages() of those)."""
        return sum(zone.free_pages for zone in self._alloc_zones) << self.page_shift

    def _mempool_alloc_element(self, pool: Mempool) -> int:
        if pool.kind == "kmalloc":
            return self.kmalloc(pool.size)
        if pool.kind == "slab":
            assert pool.cache is not None  # a slab pool has its cache
            return self.kmem_cache_alloc(pool.cache)
        pfn = self.alloc_pages(pool.size)
        return 0 if pfn is None else self.page_address(pfn)

    def _mempool_poison(self, pool: Mempool, element: int) -> bool:
        """``kasan_mempool_poison_object()`` / ``_pages()``; False when a bug was reported."""
        if element <= 16:
            return True  # ZERO_SIZE_PTR (a pool of kmalloc(0)): no memory, no shadow
        slab = None if pool.kind == "page" else self.find_slab(element)
        if slab is None:
            # check_page_allocation(): pages (a page pool's, or a large kmalloc's). An element
            # that is neither (no page of the direct map, a page no pool could have given) is
            # reported as an invalid free, as kfree() reports one.
            pfn = self._direct_map_pfn(element)
            head = (
                self.compound_head(pfn) if pfn is not None and self.profile.pfn_valid(pfn) else None
            )
            if (
                head is None
                or element != self.page_address(head)
                or (pool.kind != "page" and head not in self.large)
            ):
                self._report_invalid_free(element, "invalid-free")
                return False
            if self.shadow.shadow_byte(element) >= KASAN_GRANULE_SIZE:
                self._report_invalid_free(element, "double-free")
                return False
            order = pool.size if pool.kind == "page" else self.large[head][0]
            self.shadow.poison(element, self.page_size << order, KASAN_PAGE_FREE)
            return True
        if self._check_slab_allocation(element):
            return False
        self.slub.poison_slab_object(element, self._track())
        return True

    def mempool_alloc(self, pool: Mempool) -> int:
        """``mempool_alloc()``: a fresh element if possible... the pool's reserve otherwise.

        Like the kernel, the reserve is used first only when the allocator fails; kinspect takes
        from the reserve when it holds elements (the KUnit cases allocate from a full pool whose
        fresh allocation succeeds, so the result differs only in which slot is returned).
        """
        if not pool.elements:
            element = self._mempool_alloc_element(pool)
            return element
        element = pool.elements.pop()
        self._mempool_unpoison(pool, element)
        return element

    def _mempool_unpoison(self, pool: Mempool, element: int) -> None:
        """``kasan_mempool_unpoison_object()`` / ``_pages()``."""
        if element <= 16:
            return  # ZERO_SIZE_PTR: no shadow
        if pool.kind == "page":
            self.shadow.poison(element, self.page_size << pool.size, 0)
            return
        slab = self.find_slab(element)
        # kasan_unpoison_element(): the size is the pool's (pool_data), not the element's
        if pool.kind == "kmalloc":
            size = pool.size
        else:
            assert pool.cache is not None  # a slab pool has its cache
            size = pool.cache.object_size
        if slab is None:
            # A large kmalloc: kasan_unpoison() and poison_kmalloc_large_redzone() up to the
            # end of its pages; pages freed under the pool (a kfree() of the element while
            # the pool held it) are a page each now.
            entry = self.large.get(self.compound_head(virt_to_pfn(self.profile, element)))
            self.shadow.poison(element, round_down(size, KASAN_GRANULE_SIZE), 0)
            self._poison_large_redzone(element, size, entry[0] if entry else 0)
            return
        # an element of another cache (mempool_free() of a foreign object): its own size at
        # most, as unpoison_slab_object() covers object_size
        size = min(size, slab.cache.object_size)
        self.slub.unpoison_object(element, size, self._track())

    def mempool_free(self, element: int, pool: Mempool) -> None:
        """``mempool_free()``: back into the reserve while it is below min_nr."""
        if element <= 16:
            return
        if len(pool.elements) < pool.min_nr:
            if self._mempool_poison(pool, element):
                pool.elements.append(element)
            return
        if pool.kind == "page":
            self.free_pages_addr(element, pool.size)  # mempool_free_pages()
        else:
            self.kfree(element)

    def mempool_destroy(self, pool: Mempool) -> None:
        for element in pool.elements:
            if pool.kind == "page":
                self.free_pages(virt_to_pfn(self.profile, element), pool.size)
            else:
                # remove_element() unpoisons before the element goes back to its allocator.
                self._mempool_unpoison(pool, element)
                self.kfree(element)
        pool.elements = []

    # ------------------------------------------------------------------ vmalloc, pages

    def vmalloc(self, size: int) -> int:
        """``vmalloc()`` with KASAN_VMALLOC: pages mapped, exactly size bytes unpoisoned."""
        if size == 0:
            return 0
        npages = round_up(size, self.page_size) >> self.page_shift
        if (
            self._vmalloc_next + ((npages + 1) << self.page_shift) > self.profile.vmalloc_end
            or npages > self._free_bytes() >> self.page_shift
        ):
            return 0  # no room in the vmalloc space or in memory: O(1)
        pfns: list[int] = []
        for _ in range(npages):
            pfn = self.alloc_pages(0, PageUse.VMALLOC)
            if pfn is None:
                for got in pfns:
                    self.free_pages(got, 0)
                return 0
            pfns.append(pfn)
        addr = self._vmalloc_next
        area_size = (npages + 1) << self.page_shift  # with the guard page
        if addr + area_size > self.profile.vmalloc_end:
            for got in pfns:
                self.free_pages(got, 0)
            return 0
        self._vmalloc_next += area_size
        self.vm_areas.append(VmArea(addr, area_size, size, pfns, self.ip))
        # kasan_populate_vmalloc(): fresh shadow is KASAN_VMALLOC_INVALID; then unpoison.
        self.shadow.poison(addr, area_size, KASAN_VMALLOC_INVALID)
        self.shadow.poison(addr, round_down(size, KASAN_GRANULE_SIZE), 0)
        if size & 7:
            self.shadow.set_byte(addr + size, size & 7)
        return addr

    def vfree(self, addr: int) -> None:
        area = self.find_vm_area(addr)
        if area is None or area.addr != addr:
            return
        self.vm_areas.remove(area)
        self.shadow.poison(area.addr, area.size, KASAN_VMALLOC_INVALID)
        for pfn in area.pfns:
            self.free_pages(pfn, 0)

    def alloc_pages_addr(self, order: int) -> int:
        pfn = self.alloc_pages(order)
        return 0 if pfn is None else self.page_address(pfn)

    def free_pages_addr(self, addr: int, order: int) -> None:
        pfn = self._direct_map_pfn(addr)
        if pfn is None or self.pages.get(pfn) != (order, PageUse.PAGE_ALLOC):
            raise ValueError(
                "__free_pages() of a page that is not allocated at that order by alloc_pages()"
            )
        self.free_pages(pfn, order)

    # -------------------------------------------------------- globals, stack, alloca

    def register_global(self, name: str, size: int) -> int:
        """``__asan_register_globals()`` for a global the compiler padded with a redzone."""
        rem = size % 32
        size_with_redzone = size + (64 - rem if rem else 32)
        addr = round_up(self._globals_next, 64)
        if addr + size_with_redzone > self.profile.kernel_image_start + self._image_size:
            # Past the image's data: a module's would not load (load_module() -ENOMEM).
            return 0
        self._globals_next = addr + size_with_redzone
        self.shadow.poison(addr, round_down(size, KASAN_GRANULE_SIZE), 0)
        if size & 7:
            self.shadow.set_byte(addr + size, size & 7)
        start = round_up(size, KASAN_GRANULE_SIZE)
        self.shadow.poison(addr + start, size_with_redzone - start, KASAN_GLOBAL_REDZONE)
        self.globals.append((addr, size, size_with_redzone, name))
        return addr

    def _task_stack(self, task: Task) -> bool:
        """The task's stack (``alloc_thread_stack_node()`` of its fork), made when first
        needed; False when there was no memory for it: the fork failed with -ENOMEM (counted
        once), and the task has no stack."""
        if task.stack_pfn is not None:
            return True
        if task.fork_failed:
            return False
        order = self.profile.thread_size_order
        if self.profile.vmap_stack:
            # CONFIG_VMAP_STACK: __vmalloc_node_range(THREAD_SIZE, ...) of order-0 pages in
            # the vmalloc space (kernel/fork.c alloc_thread_stack_node()); KASAN reports name
            # its vmalloc region (mm/kasan/report.c print_address_description())
            base = self.vmalloc(self.page_size << order)
            area = self.find_vm_area(base) if base else None
            pfn = area.pfns[0] if area is not None else None
        else:
            pfn = self.alloc_pages(order, PageUse.STACK)
            base = 0 if pfn is None else self.page_address(pfn)
        if pfn is None:
            task.fork_failed = True
            self.failed["fork"] += 1
            return False
        task.stack_pfn = pfn
        task.stack_base = base
        task.stack_top = task.stack_base + (self.page_size << order)
        task.sp = task.stack_top - 256  # pt_regs and the callers above us
        return True

    def _stack_room(self, task: Task, size: int, what: str) -> None:
        """A frame or alloca of ``size`` bytes must fit above the stack's end; below it the
        kernel runs into the guard page and dies (``handle_stack_overflow()``)."""
        if task.sp - size < task.stack_base:
            raise KernelOops(
                f"kernel stack overflow: {what} of {size} bytes does not fit in "
                f"the {task.sp - task.stack_base} bytes left of task "
                f"{task.comm}/{task.pid}'s stack (THREAD_SIZE "
                f"{self.page_size << self.profile.thread_size_order})"
            )

    def push_frame(self, objects: list[tuple[int, int, str]]) -> int:
        """A function prologue: the frame's shadow as the compiler writes it; its base (0 when
        the task has no stack: its fork failed)."""
        task = self.task
        if not self._task_stack(task):
            return 0
        last_end = max(off + size for off, size, _ in objects)
        frame_size = round_up(last_end + 1, 32)
        self._stack_room(task, frame_size + 32, "a stack frame")
        base = round_down(task.sp - frame_size, 32)
        task.sp = base
        sh = self.shadow
        sh.poison(base, frame_size, KASAN_STACK_MID)
        first = min(off for off, _, _ in objects)
        sh.poison(base, round_down(first, KASAN_GRANULE_SIZE), KASAN_STACK_LEFT)
        for off, size, _ in objects:
            sh.poison(base + off, round_down(size, KASAN_GRANULE_SIZE), 0)
            if size & 7:
                sh.set_byte(base + off + size, size & 7)
        right = round_up(last_end, KASAN_GRANULE_SIZE)
        sh.poison(base + right, frame_size - right, KASAN_STACK_RIGHT)
        # frame[2] is the function's own address: its symbol has offset 0.
        frame = StackFrame(
            base,
            frame_size,
            self.ip._replace(offset=0),
            [(off, off + size, name) for off, size, name in objects],
        )
        task.frames.append(frame)
        return base

    def pop_frames(self) -> None:
        """Function epilogues: the frames' shadow is cleared, the stack pointer restored."""
        task = self.task
        while task.frames:
            frame = task.frames.pop()
            self.shadow.poison(frame.base, frame.size, 0)
        if task.stack_pfn is not None:
            self.shadow.poison(
                task.stack_top - 256 - (task.stack_top - 256 - task.sp),
                task.stack_top - 256 - task.sp,
                0,
            )
            task.sp = task.stack_top - 256

    def alloca(self, size: int) -> int:
        """``__asan_alloca_poison()``: CA left redzone, the buffer, CB up to round_up(32) + 32."""
        task = self.task
        if not self._task_stack(task):
            return 0
        total = KASAN_ALLOCA_REDZONE_SIZE + round_up(size, 32) + KASAN_ALLOCA_REDZONE_SIZE
        self._stack_room(task, total + 32, "an alloca")
        left = round_down(task.sp - total, 32)
        task.sp = left
        addr = left + KASAN_ALLOCA_REDZONE_SIZE
        sh = self.shadow
        sh.poison(left, KASAN_ALLOCA_REDZONE_SIZE, KASAN_ALLOCA_LEFT)
        sh.poison(addr, round_down(size, KASAN_GRANULE_SIZE), 0)
        if size & 7:
            sh.set_byte(addr + size, size & 7)
        start = round_up(size, KASAN_GRANULE_SIZE)
        sh.poison(
            addr + start, round_up(size, 32) + KASAN_ALLOCA_REDZONE_SIZE - start, KASAN_ALLOCA_RIGHT
        )
        return addr

    # ------------------------------------------------------------------------- checks

    def check_access(self, addr: int, size: int, is_write: bool) -> bool:
        """``check_region_inline()``: True if the access is good, else a report is made."""
        if size == 0:
            return True
        mask = (1 << self.bits) - 1
        if addr + size - 1 > mask or size > mask:
            self._report(addr, size, is_write, bug_type="out-of-bounds")
            return False
        if not self.addr_has_metadata(addr):
            self._report(addr, size, is_write)
            return False
        if size > LARGE_ACCESS:
            poisoned = self._large_access_poisoned(addr, size)
        else:
            poisoned = memory_is_poisoned(self.shadow.shadow_byte, addr, size)
        if poisoned:
            self._report(addr, size, is_write)
            return False
        return True

    def _first_bad_granule(self, start: int, end: int) -> tuple[int, int]:
        """(address, shadow byte) of the first granule in [start, end) (granule aligned)
        whose shadow is not 0, or (end, 0): the shadow read a chunk at a time, not a byte,
        and only where it can be other than 0 (``shadowed_ranges``): a terabyte over memory
        the machine does not have reads the zero shadow of its holes as the kernel's early
        shadow page, without a million chunk reads."""
        for a, b in self.shadowed_ranges:
            lo, hi = max(start, a), min(end, b)
            while lo < hi:
                n = min(LARGE_ACCESS, hi - lo)
                chunk = self.shadow.read(lo, n)
                rest = chunk.lstrip(b"\0")
                if rest:
                    return lo + ((len(chunk) - len(rest)) << 3), rest[0]
                lo += n
        return end, 0

    @cached_property
    def shadowed_ranges(self) -> list[tuple[int, int]]:
        """The kernel addresses whose shadow can be other than 0, sorted and granule
        aligned: the direct map of present lowmem, the kernel image and the vmalloc space
        (``initial_shadow_byte`` gives 0 everywhere else, and every poisoning is of memory
        that one of these holds: slab, pages, stacks, globals, vmalloc)."""
        p = self.profile
        low_end = p.max_low_pfn << p.page_shift
        ranges = [
            (p.phys_to_virt(r.start), p.phys_to_virt(min(r.end, low_end) - 1) + 1)
            for r in p.memory
            if r.start < low_end
        ]
        ranges.append((p.kernel_image_start, p.kernel_image_start + self._image_size))
        ranges.append((p.vmalloc_start, p.vmalloc_end))
        return sorted(ranges)

    def _large_access_poisoned(self, addr: int, size: int) -> bool:
        """``memory_is_poisoned_n()`` for an access of more than LARGE_ACCESS bytes (a
        memset of 64M of memory the machine does not have took 24 s a granule at a time):
        the first non-zero shadow byte decides. The shadow is read in chunks, so the
        schemes' check/load counters do not count these granules one by one."""
        last = addr + size - 1
        bad, value = self._first_bad_granule(
            round_down(addr, KASAN_GRANULE_SIZE), round_down(last, KASAN_GRANULE_SIZE) + 8
        )
        if not value:
            return False
        if bad != round_down(last, KASAN_GRANULE_SIZE):
            return True
        return (last & (KASAN_GRANULE_SIZE - 1)) >= (value - 256 if value >= 128 else value)

    def memmove(self, dst: int, src: int, size: int) -> None:
        """``__asan_memmove()``/``memcpy``: the source is checked first, then the destination."""
        if self.check_access(src, size, False):
            self.check_access(dst, size, True)

    # ------------------------------------------------------------------------ reports

    def _report(
        self, addr: int, size: int | None, is_write: bool, bug_type: str | None = None
    ) -> None:
        """``kasan_report()`` / ``kasan_report_invalid_free()``: build the BadAccess."""
        if self.reports and not self.multi_shot:
            return
        counters = [(s.checks, s.loads) for s in self.schemes]
        p = self.profile
        kind = "Free" if size is None else ("Write" if is_write else "Read")
        has_meta = self.addr_has_metadata(addr)
        sb = self.shadow.shadow_byte
        if size is None or not has_meta:  # kind == "Free": no size
            first_bad = addr
        else:
            # size_t arithmetic: addr + size may wrap (a negative memmove size).
            end = (addr + size) & ((1 << self.bits) - 1)
            if end - addr > LARGE_ACCESS:
                first_bad = min(
                    self._first_bad_granule(
                        round_down(addr, KASAN_GRANULE_SIZE), round_up(end, KASAN_GRANULE_SIZE)
                    )[0],
                    end,
                )
                first_bad = max(first_bad, addr)
            else:
                first_bad = kasan_find_first_bad_addr(sb, addr, end - addr)
        if bug_type is None:
            if not has_meta:
                bug_type = get_wild_bug_type(addr, self.page_size, p.task_size)
            else:
                bug_type = get_shadow_bug_type(sb, first_bad)
        r = BadAccess(
            bug_type=bug_type,
            kind=kind,
            addr=addr,
            size=size,
            first_bad_addr=first_bad,
            ip=self.ip,
            comm=self.task.comm,
            pid=self.task.pid,
            bits=self.bits,
            kernel_release=p.kernel_release,
            hardware=f"kinspect simulated {p.arch} ({p.name})",
            arch=p.arch,
            tainted=self.tainted,
            has_metadata=has_meta,
        )
        if has_meta:
            self._describe_address(r, addr)
            row = (
                round_down(first_bad, META_BYTES_PER_ROW * 8)
                - META_ROWS_AROUND_ADDR * META_BYTES_PER_ROW * 8
            )
            r.meta_row_start = row
            r.meta_rows = [
                self.shadow.read(row + i * 128, 128) for i in range(2 * META_ROWS_AROUND_ADDR + 1)
            ]
        for scheme, (checks, loads) in zip(self.schemes, counters):
            scheme.checks, scheme.loads = checks, loads
        self.tainted = True
        self.reports.append(r)

    def _describe_address(self, r: BadAccess, addr: int) -> None:
        """``complete_report_info()`` + ``print_address_description()``'s findings."""
        slab = self.find_slab(addr)
        if slab is not None:
            cache = slab.cache
            obj = cache.nearest_obj(slab, addr)
            r.cache_name = cache.name
            r.cache_object_size = cache.object_size
            r.object_addr = obj
            r.alloc_size = self._kasan_get_alloc_size(cache, obj) or cache.object_size
            meta = self.slub.object_meta(obj)
            r.alloc_track = self._unpack_track(meta.alloc_track)
            if self.shadow.shadow_byte(obj) == KASAN_SLAB_FREE_META:
                r.free_track = self._unpack_track(meta.free_track)
            r.aux_stacks = [self._unpack_track(t) for t in meta.aux_stacks]
        if self._is_kernel_image(addr):
            for gaddr, _size, gsize, name in self.globals:
                if gaddr <= addr < gaddr + gsize:
                    r.variable = f"{name}+{addr - gaddr:#x}/{gsize:#x}"
                    break
            else:
                r.variable = f"{addr:#x}"
        task = self.task
        if task.stack_pfn is not None and task.stack_base <= addr < task.stack_top:
            r.stack_comm = f"{task.comm}/{task.pid}"
            frame = self._find_stack_frame(task, addr)
            if frame is not None:
                r.stack_frame_offset = addr - frame.base
                r.stack_frame_pc = frame.pc
                r.stack_frame_objects = list(frame.objects)
        pfn = self.addr_to_pfn(addr)
        p = self.profile
        if p.vmalloc_start <= addr < p.vmalloc_end:
            area = self.find_vm_area(addr)
            if area is None:
                r.vmalloc_description = "vmalloc virtual mapping"
                pfn = None
            else:
                r.vmalloc_description = (
                    f"{len(area.pfns)}-page vmalloc region starting at "
                    f"{area.addr:#x} allocated at {area.caller.symbol()}"
                )
        if pfn is not None:
            r.pfn = self.compound_head(pfn)
            r.page_lines = self.dump_page(r.pfn)

    def _kasan_get_alloc_size(self, cache: KmemCache, obj: int) -> int:
        """``kasan_get_alloc_size()``: scan the object's shadow (0 for a freed object)."""
        size = 0
        sb = self.shadow.shadow_byte
        while size < cache.object_size:
            s = sb(obj + size)
            if s == 0:
                size += KASAN_GRANULE_SIZE
            elif s < KASAN_GRANULE_SIZE:
                return size + s
            else:
                return size
        return cache.object_size

    def _find_stack_frame(self, task: Task, addr: int) -> StackFrame | None:
        """``get_address_stack_frame_info()``: walk the shadow down to the frame's F1 run."""
        sb = self.shadow.shadow_byte
        p = round_down(round_down(addr, self.word), KASAN_GRANULE_SIZE)
        bottom = task.stack_base
        while p >= bottom and sb(p) != KASAN_STACK_LEFT:
            p -= KASAN_GRANULE_SIZE
        while p >= bottom and sb(p) == KASAN_STACK_LEFT:
            p -= KASAN_GRANULE_SIZE
        if p < bottom:
            return None
        base = p + KASAN_GRANULE_SIZE
        for frame in task.frames:
            if frame.base == base:
                return frame
        return None

    # ------------------------------------------------------------------------ dump_page

    def page_flags_word(self, pfn: int) -> int:
        """page->flags: page flags, then zone and section in the top bits (SPARSEMEM)."""
        p = self.profile
        sections_width = p.max_physmem_bits - p.section_size_bits
        sections_shift = self.bits - sections_width
        zones_shift = sections_shift - 2
        section = pfn >> (p.section_size_bits - p.page_shift)
        zone = p.zone_of_pfn(pfn)
        return (
            self.memmap.get(pfn, "flags", 0) | (zone << zones_shift) | (section << sections_shift)
        )

    def dump_page(self, pfn: int) -> list[str]:
        """``dump_page()`` (``__dump_folio()`` of 6.12) for the head page pfn."""
        p = self.profile
        w = self.bits // 4
        flags = self.memmap.get(pfn, "flags", 0)
        refcount = self.memmap.get(pfn, "refcount", 0)
        order = self.memmap.get(pfn, "order", 0)
        page_type = self.memmap.get(pfn, "page_type", PAGE_TYPE_NONE)
        free_block = self._zone_of(pfn).find_free_block(pfn)
        if free_block is not None and free_block[0] == pfn:
            page_type = PGTY_buddy << 24
        lines = [f"page: refcount:{refcount} mapcount:0 mapping:{0:0{w}x} index:0x0 pfn:{pfn:#x}"]
        if flags & (1 << PG_head):
            lines.append(
                f"head: order:{order} mapcount:0 entire_mapcount:0 nr_pages_mapped:0 pincount:0"
            )
        names = [PAGEFLAG_NAMES[b] for b in sorted(PAGEFLAG_NAMES) if flags & (1 << b)]
        section = pfn >> (p.section_size_bits - p.page_shift)
        names += [f"section={section}", f"zone={p.zone_of_pfn(pfn)}"]
        lines.append(f"flags: {self.page_flags_word(pfn):#x}({'|'.join(names)})")
        if page_type != PAGE_TYPE_NONE:
            kind = {PGTY_slab: "slab", PGTY_buddy: "buddy"}[page_type >> 24]
            lines.append(f"page_type: {page_type >> 24:x}({kind})")
        words = self._struct_page_words(
            pfn, page_type, refcount, free_block[1] if free_block else 0
        )
        lines += self._raw_lines("raw", words)
        if flags & (1 << PG_head):
            tail = [2 | (order & 0xFF), 0, 0, 0] + [0] * (len(words) - 4)
            tail[1] = 0  # _head_1: kinspect keeps no struct page virtual addresses
            tail[4 if self.bits == 64 else 5] = 1 << order
            lines += self._raw_lines("head", words) + self._raw_lines("head", tail)
        return lines

    def _struct_page_words(
        self, pfn: int, page_type: int, refcount: int, buddy_order: int
    ) -> list[int]:
        """The words of struct page (64-bit: 8 words; 32-bit: as many as the profile says)."""
        nwords = self.profile.sizeof_struct_page // self.word
        words = [0] * nwords
        words[0] = self.page_flags_word(pfn)
        slab = self.slub.slab_of(pfn)
        if slab is not None:
            words[1] = slab.cache.addr
            words[2] = LIST_POISON2[self.bits]
            counters = slab.inuse | (slab.objects << 16) | (int(slab.frozen) << 31)
            words[5] = counters
        elif page_type == PGTY_buddy << 24:
            words[5] = buddy_order
        else:
            words[2] = LIST_POISON2[self.bits] if refcount else 0
        if self.bits == 64:
            words[6] = (refcount << 32) | page_type
        else:
            words[6] = page_type
            words[7] = refcount
        return words

    def _raw_lines(self, prefix: str, words: list[int]) -> list[str]:
        per_line = 32 // self.word
        w = self.bits // 4
        return [
            f"{prefix}: " + " ".join(f"{x:0{w}x}" for x in words[i : i + per_line])
            for i in range(0, len(words), per_line)
        ]

    # ------------------------------------------------------------------------ summary

    def free_area_counts(self) -> list[tuple[str, int, list[int]]]:
        """Per zone: its name, free pages and ``free_area[order].nr_free`` for each order."""
        return [(zone.name, zone.free_pages, list(zone.nr_free())) for zone in self.zones]

    def summary(self) -> dict:
        """Counters for the end of a run: pages and slabs in use, shadow, quarantine."""
        pages_in_use = sum(1 << order for order, _ in self.pages.values())
        fp = self.shadow.footprint()
        return {
            "pages_in_use": pages_in_use,
            "slabs": self.slub.nr_slabs(),
            "objects_in_use": self.slub.objects_in_use(),
            "quarantine_bytes": self.slub.quarantine_bytes(),
            "shadow_static_bytes": fp.static_bytes,
            "shadow_dynamic_bytes": fp.dynamic_bytes,
            "reports": len(self.reports),
            "failed_allocations": dict(sorted(self.failed.items())),
        }
