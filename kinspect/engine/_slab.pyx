"""The compiled slab allocator: slab.SlubAllocator in C (issue 12).

``SlubAllocator`` has slab.py's interface and gives the same answers: SLUB's caches, slabs and
freelists (mm/slub.c), generic KASAN's slab hooks (mm/kasan/common.c, generic.c) and the
quarantine (mm/kasan/quarantine.c). The Python allocator stays the reference:
tests/test_native_slab.py runs both on random programs and compares every answer, shadow byte
and report.

The state is flat, in bytearrays the object owns (a pickle is these buffers):
- per cache, a ``CacheRec`` (``struct kmem_cache`` and its ``kmem_cache_cpu``/node): sizes,
  the CPU slab, the partial list as links through the slabs, every slab of the cache as a
  second list (in allocation order: the order ``__kmem_cache_shutdown()`` frees them in),
- per slab, a ``SlabRec`` (``struct slab``): head pfn, first object, the freelist head as an
  object index (the kernel's free pointer), inuse, frozen. A discarded slab's record goes back
  to its cache and is reused by the cache's next slab, so the per-object records of a slab
  stay where they are,
- per object, an ``ObjRec``: the free pointer (index of the next free object), KASAN's alloc
  and free tracks, the requested size and the two aux stacks (``struct kasan_alloc_meta``),
- per pfn, the slab record of a slab page plus one (0: none), in sections of SECTION_PAGES
  pfns made when a slab is first placed there, so that a 1 TB machine costs nothing until used,
- the quarantine as one ring of object addresses (the ``qlist_node``s of every batch from the
  oldest, then the CPU queue), with the objects and bytes of each batch and of the CPU queue.

The KASAN hooks of the hot path write the flat scheme's shadow chunks directly (memset into
FlatShadow's bytearrays) when the machine's shadow is exactly a FlatShadow; any other shadow
(another scheme, several in lockstep, the session's recording wrapper) is written through its
``write()``, as the Python allocator does. Pages come from the machine (``alloc_pages()``,
``free_pages()``), reports are the machine's: ``kfree()`` returns what it found.
"""

from cpython.bytearray cimport (PyByteArray_AS_STRING, PyByteArray_Check,
                                PyByteArray_FromStringAndSize)
from cpython.dict cimport PyDict_GetItem
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from .kasan import KASAN_SLAB_FREE as _SLAB_FREE, KASAN_SLAB_FREE_META as _SLAB_FREE_META
from .kasan import KASAN_SLAB_REDZONE as _SLAB_REDZONE
from .shadow.base import PageUse
from .shadow.flat import CHUNK_GRANULES as _CHUNK_GRANULES, CHUNK_SHIFT as _CHUNK_SHIFT
from .shadow.flat import FlatShadow
from .slab import (FREE_BUG_TYPES, FREE_OK, INVALID_FREE, DOUBLE_FREE, KASAN_NO_FREE_META,
                   QUARANTINE_BATCHES as _QUARANTINE_BATCHES, QUARANTINE_FRACTION,
                   QUARANTINE_PERCPU_SIZE, SLAB_TYPESAFE_BY_RCU as _SLAB_TYPESAFE_BY_RCU,
                   ObjectMeta, SlabInfo, alloc_pattern)

assert _QUARANTINE_BATCHES == NR_BATCHES

cdef uint8_t SLAB_REDZONE = _SLAB_REDZONE, SLAB_FREE = _SLAB_FREE
cdef uint8_t SLAB_FREE_META = _SLAB_FREE_META
cdef int CHUNK_SHIFT_ = _CHUNK_SHIFT
cdef int64_t CHUNK_GRANULES_ = _CHUNK_GRANULES
cdef int64_t PERCPU_SIZE = QUARANTINE_PERCPU_SIZE
cdef int64_t FRACTION = QUARANTINE_FRACTION
cdef int64_t RCU_FLAG = _SLAB_TYPESAFE_BY_RCU
cdef uint64_t MACHINE_TRACK = 0xFFFFFFFFFFFFFFFF     # kmalloc_(): Machine._track()'s, made there
cdef int C_FREE_OK = FREE_OK, C_INVALID_FREE = INVALID_FREE, C_DOUBLE_FREE = DOUBLE_FREE


cdef bytearray grown(bytearray buf, Py_ssize_t need):
    """buf, or a copy of it twice as long when it is shorter than need bytes."""
    cdef Py_ssize_t have = len(buf), n
    if need <= have:
        return buf
    n = max(need, 2 * have, 4096)
    out = bytearray(n)
    memcpy(PyByteArray_AS_STRING(out), PyByteArray_AS_STRING(buf), have)
    return out


cdef inline void list_add_tail(SlabRec *slabs, int32_t s, bint all_slabs, int32_t *head,
                               int32_t *tail) noexcept:
    """``list_add_tail()`` of slab record s onto a list of slab records given its head and
    tail: a cache's partial list (``slab->slab_list``: next, prev) or, with all_slabs, the
    cache's list of every slab (all_next, all_prev)."""
    cdef SlabRec *slab = &slabs[s]
    if all_slabs:
        slab.all_prev, slab.all_next = tail[0], -1
    else:
        slab.prev, slab.next = tail[0], -1
    if tail[0] < 0:
        head[0] = s
    elif all_slabs:
        slabs[tail[0]].all_next = s
    else:
        slabs[tail[0]].next = s
    tail[0] = s


cdef inline void list_del(SlabRec *slabs, int32_t s, bint all_slabs, int32_t *head,
                          int32_t *tail) noexcept:
    """``list_del()`` of slab record s from the list of list_add_tail()."""
    cdef int32_t prev = slabs[s].all_prev if all_slabs else slabs[s].prev
    cdef int32_t next = slabs[s].all_next if all_slabs else slabs[s].next
    if prev < 0:
        head[0] = next
    elif all_slabs:
        slabs[prev].all_next = next
    else:
        slabs[prev].next = next
    if next < 0:
        tail[0] = prev
    elif all_slabs:
        slabs[next].all_prev = prev
    else:
        slabs[next].prev = prev


cdef class SlubAllocator:
    """SLUB with generic KASAN's slab hooks and quarantine, for one machine."""

    def __cinit__(self):
        self.section_map = NULL
        self.nr_section_map = 0

    def __init__(self, machine):
        p = machine.profile
        self.machine = machine
        self.page_shift = p.page_shift
        self.lm_delta = p.page_offset - p.phys_offset
        self.kmem_caches = []
        self.caches_buf = bytearray()
        self.slabs_buf = bytearray()
        self.objs_buf = bytearray()
        self.kmalloc_buf = bytearray()
        self.ring_buf = bytearray(8 * 1024)
        self.rcu_buf = bytearray()
        self.sections = {}
        self.nr_caches = self.nr_slab_recs = self.nr_obj_recs = self.kmalloc_max = 0
        self.ring_mask = 1023
        self.ring_head = self.ring_len = 0
        memset(self.batch_count, 0, sizeof(self.batch_count))
        memset(self.batch_bytes, 0, sizeof(self.batch_bytes))
        self.cpu_count = self.cpu_bytes = 0
        self.q_head = self.q_tail = self.q_size = self.q_max_size = self.q_batch_size = 0
        self.totalram, self.nr_cpus = p.mem_total, p.nr_cpus
        self.rcu_len = 0
        self.repoint()

    def __dealloc__(self):
        free(self.section_map)

    cdef void repoint(self) noexcept:
        """The raw pointers into the buffers, after one of them was replaced."""
        self.caches = <CacheRec *>PyByteArray_AS_STRING(self.caches_buf)
        self.slabs = <SlabRec *>PyByteArray_AS_STRING(self.slabs_buf)
        self.objs = <ObjRec *>PyByteArray_AS_STRING(self.objs_buf)
        self.kmalloc_index = <int32_t *>PyByteArray_AS_STRING(self.kmalloc_buf)
        self.ring = <uint64_t *>PyByteArray_AS_STRING(self.ring_buf)

    def bind(self, machine):
        """The machine's page allocator and shadow, looked up once (after boot, a change of
        the machine's shadow, or an unpickling)."""
        self.machine = machine
        self.shadow = machine.shadow
        self.shadow_write = machine._shadow_write
        self.shadow_byte_ = machine._shadow_byte
        self.alloc_pages = machine.alloc_pages
        self.free_pages = machine.free_pages
        self.page_address = machine.page_address
        if type(self.shadow) is FlatShadow:
            self.flat = self.shadow
            self.chunks = self.shadow._chunks
        else:
            self.flat = None
            self.chunks = None
        # several schemes in lockstep, compiled (_schemes.pyx): written and read in C
        self.lockstep = getattr(self.shadow, "compiled", None)

    def dispose(self):
        """Forget the machine (one no one uses any more: no cycles left to collect)."""
        self.machine = self.shadow = self.shadow_write = self.shadow_byte_ = None
        self.flat = self.alloc_pages = self.free_pages = self.page_address = None
        self.chunks = self.lockstep = None
        self.kmem_caches = []

    def __reduce__(self):
        """Pickled as its buffers and a few numbers (checkpoints pickle the machine)."""
        numbers = (self.page_shift, self.lm_delta, self.nr_caches, self.nr_slab_recs,
                   self.nr_obj_recs, self.kmalloc_max, self.ring_mask, self.ring_head,
                   self.ring_len, self.cpu_count, self.cpu_bytes, self.q_head, self.q_tail,
                   self.q_size, self.q_max_size, self.q_batch_size, self.totalram,
                   self.nr_cpus, self.rcu_len)
        batches = PyByteArray_FromStringAndSize(<char *>self.batch_count,
                                                sizeof(self.batch_count)) + \
            PyByteArray_FromStringAndSize(<char *>self.batch_bytes, sizeof(self.batch_bytes))
        return (_restore_slub, (self.machine, list(self.kmem_caches), numbers,
                                self.caches_buf, self.slabs_buf, self.objs_buf,
                                self.kmalloc_buf, self.ring_buf, self.rcu_buf, batches,
                                self.sections))

    cdef restore(self, list kmem_caches, tuple numbers, bytearray caches_buf,
                 bytearray slabs_buf, bytearray objs_buf, bytearray kmalloc_buf,
                 bytearray ring_buf, bytearray rcu_buf, bytearray batches, dict sections):
        (self.page_shift, self.lm_delta, self.nr_caches, self.nr_slab_recs, self.nr_obj_recs,
         self.kmalloc_max, self.ring_mask, self.ring_head, self.ring_len, self.cpu_count,
         self.cpu_bytes, self.q_head, self.q_tail, self.q_size, self.q_max_size,
         self.q_batch_size, self.totalram, self.nr_cpus, self.rcu_len) = numbers
        self.kmem_caches = kmem_caches
        # The buffers given are the unpickler's, this allocator's alone (a checkpoint's restore
        # makes each anew from its chunks, or writes them into those of the machine it
        # replaces, which is not used any more): kept, not copied (20 MiB late in a trace).
        self.caches_buf, self.slabs_buf = caches_buf, slabs_buf
        self.objs_buf, self.kmalloc_buf = objs_buf, kmalloc_buf
        self.ring_buf, self.rcu_buf = ring_buf, rcu_buf
        memcpy(<char *>self.batch_count, PyByteArray_AS_STRING(batches),
               sizeof(self.batch_count))
        memcpy(<char *>self.batch_bytes, PyByteArray_AS_STRING(batches) +
               sizeof(self.batch_count), sizeof(self.batch_bytes))
        self.sections = {}
        for k, section in sections.items():
            self.new_section(k, section)
        self.repoint()

    # ------------------------------------------------------------------ per-pfn slab map

    cdef int32_t slab_index(self, int64_t pfn) noexcept:
        """The slab record of a page, -1 when it is no slab page."""
        cdef int64_t k = pfn >> SECTION_SHIFT
        if pfn < 0 or k >= self.nr_section_map or self.section_map[k] == NULL:
            return -1
        return self.section_map[k][pfn & (SECTION_PAGES - 1)] - 1

    cdef int32_t slab_of_addr(self, uint64_t addr) noexcept:
        """``virt_to_slab()``: the slab record of a direct-map address, -1 when none."""
        if addr < self.lm_delta:
            return -1
        return self.slab_index(<int64_t>((addr - self.lm_delta) >> self.page_shift))

    cdef int32_t slab_of_object(self, uint64_t addr) except -1:
        """``virt_to_slab()`` of an address the caller says is in a slab (the Python-facing
        methods below): KeyError when it is in none."""
        cdef int32_t s = self.slab_of_addr(addr)
        if s < 0:
            raise KeyError(addr)
        return s

    cdef bint new_section(self, int64_t k, bytearray section) except False:
        cdef int32_t **grown
        cdef Py_ssize_t n, i
        if k >= self.nr_section_map:
            n = max(k + 1, 2 * self.nr_section_map)
            grown = <int32_t **>malloc(n * sizeof(int32_t *))
            if grown == NULL:
                raise MemoryError()
            for i in range(n):
                grown[i] = self.section_map[i] if i < self.nr_section_map else NULL
            free(self.section_map)
            self.section_map, self.nr_section_map = grown, n
        self.sections[k] = section
        self.section_map[k] = <int32_t *>PyByteArray_AS_STRING(section)
        return True

    cdef bint set_slab_pages(self, int64_t pfn, int64_t n, int32_t value) except False:
        """The per-pfn map of n pages from pfn: slab record value (-1: none)."""
        cdef int64_t p, k
        for p in range(pfn, pfn + n):
            k = p >> SECTION_SHIFT
            if k >= self.nr_section_map or self.section_map[k] == NULL:
                self.new_section(k, bytearray(SECTION_PAGES * sizeof(int32_t)))
            self.section_map[k][p & (SECTION_PAGES - 1)] = value + 1
        return True

    # ------------------------------------------------------------------ caches

    def add_cache(self, cache):
        """A new ``struct kmem_cache`` (its id is its index in the machine's caches)."""
        cdef Py_ssize_t cid = cache.id
        cdef CacheRec *c
        del self.kmem_caches[cid:]
        self.kmem_caches.append(cache)
        self.caches_buf = grown(self.caches_buf, (cid + 1) * sizeof(CacheRec))
        self.repoint()
        self.nr_caches = cid + 1
        c = &self.caches[cid]
        memset(c, 0, sizeof(CacheRec))
        c.size = cache.size
        c.object_size = cache.object_size
        c.granules = (cache.object_size + 7) >> 3
        c.objects = cache.objects
        c.order = cache.layout.order
        c.min_partial = cache.min_partial
        c.flags = ((CACHE_RCU if cache.flags & RCU_FLAG else 0)
                   | (CACHE_FREE_META if cache.has_free_meta else 0)
                   | (CACHE_SHADOW if cache.is_shadow else 0))
        c.cpu_slab = c.partial_head = c.partial_tail = c.all_head = c.all_tail = -1
        c.spare = -1

    def set_kmalloc_caches(self, index):
        """``kmalloc_caches[]`` by request size (``kmalloc_slab()``), 0..KMALLOC_MAX_CACHE_SIZE,
        for the native machine's kmalloc() (machine_kmalloc(), kmalloc_()): a native Machine
        gives them at boot; slab.py has no twin of this (Machine.kmalloc picks the cache)."""
        cdef Py_ssize_t i
        self.kmalloc_buf = bytearray(len(index) * sizeof(int32_t))
        self.repoint()
        for i in range(len(index)):
            self.kmalloc_index[i] = index[i].id
        self.kmalloc_max = len(index) - 1

    def set_quarantine_size(self, totalram_bytes, nr_cpus):
        """A quarantine sized for another amount of RAM (only before anything is freed)."""
        self.totalram, self.nr_cpus = totalram_bytes, nr_cpus

    # ------------------------------------------------------------------ read API

    def slab_of(self, pfn):
        """The slab a page belongs to (``page_slab(compound_head())``), or None."""
        cdef int32_t s = self.slab_index(pfn)
        if s < 0:
            return None
        cdef SlabRec *slab = &self.slabs[s]
        return SlabInfo(self.kmem_caches[slab.cache], slab.pfn, slab.base,
                        self.caches[slab.cache].objects, slab.inuse, bool(slab.frozen))

    def slab_heads(self, cache):
        """Head pfns of every slab of a cache, lowest first."""
        cdef int32_t s = self.caches[<int>cache.id].all_head
        heads = []
        while s >= 0:
            heads.append(self.slabs[s].pfn)
            s = self.slabs[s].all_next
        return sorted(heads)

    def nr_slabs(self, cache=None):
        """Slabs of a cache (``nr_slabs`` of its node), or of every cache."""
        cdef Py_ssize_t i, n = 0
        if cache is not None:
            return self.caches[<int>cache.id].nr_slabs
        for i in range(self.nr_caches):
            n += self.caches[i].nr_slabs
        return n

    def objects_in_use(self, cache=None):
        """Allocated objects (the sum of ``slab->inuse``) in a cache's slabs, or in all."""
        cdef Py_ssize_t i, n = 0
        cdef int32_t s
        for i in range(self.nr_caches):
            if cache is not None and i != cache.id:
                continue
            s = self.caches[i].all_head
            while s >= 0:
                n += self.slabs[s].inuse
                s = self.slabs[s].all_next
        return n

    def quarantine_bytes(self):
        """Bytes held by the quarantine (the global ring and the CPU queue)."""
        return self.q_size + self.cpu_bytes

    def object_meta(self, obj):
        """KASAN's metadata of a slab object (``kasan_get_alloc_meta``/``_free_meta``)."""
        cdef uint64_t addr = obj
        cdef int32_t s = self.slab_of_object(addr)
        cdef SlabRec *slab = &self.slabs[s]
        cdef CacheRec *c = &self.caches[slab.cache]
        cdef uint64_t offset = addr - slab.base
        cdef ObjRec *o = &self.objs[slab.meta + <int64_t>(offset // <uint64_t>c.size)]
        aux = ()
        if offset % <uint64_t>c.size == 0 and o.nr_aux:
            aux = (o.aux[0], o.aux[1])[:o.nr_aux]
        return ObjectMeta(o.alloc_track, o.free_track, aux, o.alloc_size)

    # ------------------------------------------------------------------ slabs

    cdef int32_t allocate_slab(self, int32_t cid) except -2:
        """``allocate_slab()``: pages from the buddy, kasan_poison_slab(), object setup
        (the freelist in address order); the new slab record, -1 without memory."""
        cdef CacheRec *c = &self.caches[cid]
        cdef int32_t s, i, objects = c.objects, order = c.order
        cdef bint is_shadow = c.flags & CACHE_SHADOW
        cdef SlabRec *slab
        cdef ObjRec *o
        pfn = self.alloc_pages(order, PageUse.SHADOW if is_shadow else PageUse.SLAB,
                               compound=True, cache=self.kmem_caches[cid])
        if pfn is None:
            return -1
        base = self.page_address(pfn)
        c = &self.caches[cid]                    # the callback may have moved the buffers
        s = c.spare
        if s >= 0:
            c.spare = self.slabs[s].next
        else:
            s = self.nr_slab_recs
            self.slabs_buf = grown(self.slabs_buf, (s + 1) * sizeof(SlabRec))
            self.objs_buf = grown(self.objs_buf, (self.nr_obj_recs + objects) * sizeof(ObjRec))
            self.repoint()
            self.nr_slab_recs += 1
            self.slabs[s].meta = self.nr_obj_recs
            self.nr_obj_recs += objects
            c = &self.caches[cid]
        slab = &self.slabs[s]
        slab.pfn = pfn
        slab.base = base
        slab.cache = cid
        slab.freelist = 0
        slab.inuse = 0
        slab.frozen = 0
        slab.on_partial = 0
        slab.next = slab.prev = -1
        o = &self.objs[slab.meta]
        memset(o, 0, objects * sizeof(ObjRec))
        for i in range(objects):
            o[i].next_free = i + 1 if i + 1 < objects else -1
        # the cache's list of slabs, newest last
        list_add_tail(self.slabs, s, True, &c.all_head, &c.all_tail)
        c.nr_slabs += 1
        self.set_slab_pages(pfn, 1 << order, s)
        # kasan_poison_slab(): the whole slab is KASAN_SLAB_REDZONE; setup_object() leaves it.
        # The shadow-block caches of per-page schemes are KASAN's own: never poisoned.
        if not is_shadow:
            self.shadow.poison(base, (1 << order) << self.page_shift, SLAB_REDZONE)
        return s

    cdef bint discard_slab(self, int32_t s) except False:
        """``discard_slab()``: an empty slab's pages back to the buddy allocator."""
        cdef SlabRec *slab = &self.slabs[s]
        cdef int32_t cid = slab.cache
        cdef CacheRec *c = &self.caches[cid]
        cdef int64_t pfn = slab.pfn
        list_del(self.slabs, s, True, &c.all_head, &c.all_tail)
        c.nr_slabs -= 1
        slab.next = c.spare
        c.spare = s
        self.set_slab_pages(pfn, 1 << c.order, -1)
        self.free_pages(pfn, c.order)
        return True

    cdef void partial_append(self, CacheRec *c, int32_t s) noexcept:
        """``add_partial(n, slab, DEACTIVATE_TO_TAIL)``."""
        self.slabs[s].on_partial = 1
        list_add_tail(self.slabs, s, False, &c.partial_head, &c.partial_tail)
        c.nr_partial += 1

    cdef void partial_remove(self, CacheRec *c, int32_t s) noexcept:
        """``remove_partial()``."""
        list_del(self.slabs, s, False, &c.partial_head, &c.partial_tail)
        self.slabs[s].on_partial = 0
        c.nr_partial -= 1

    cdef int32_t refill_cpu_slab(self, int32_t cid) except -2:
        """``___slab_alloc()``: the CPU slab is empty; take a partial slab, or a new one."""
        cdef CacheRec *c = &self.caches[cid]
        cdef int32_t s
        if c.cpu_slab >= 0:
            self.slabs[c.cpu_slab].frozen = 0
        if c.nr_partial:
            s = c.partial_head
            self.partial_remove(c, s)
        else:
            s = self.allocate_slab(cid)
        c = &self.caches[cid]
        if s >= 0:
            self.slabs[s].frozen = 1
        c.cpu_slab = s
        return s

    cdef bint do_slab_free(self, int32_t s, uint64_t obj) except False:
        """``do_slab_free()``: back onto its slab's freelist; empty slabs may go to the buddy."""
        cdef SlabRec *slab = &self.slabs[s]
        cdef CacheRec *c = &self.caches[slab.cache]
        cdef int32_t i = <int32_t>((obj - slab.base) // <uint64_t>c.size)
        cdef bint was_full = slab.freelist < 0
        self.objs[slab.meta + i].next_free = slab.freelist
        slab.freelist = i
        slab.inuse -= 1
        if slab.frozen:
            return True
        if slab.inuse == 0:
            if slab.on_partial:
                if c.nr_partial > c.min_partial:
                    self.partial_remove(c, s)
                    self.discard_slab(s)
            elif c.nr_partial >= c.min_partial:
                self.discard_slab(s)
            else:
                self.partial_append(c, s)
        elif was_full:
            self.partial_append(c, s)
        return True

    cdef uint64_t _slab_alloc_node(self, int32_t cid, int32_t *slab) except? 1:
        """``__slab_alloc_node()`` (in SlubAllocator.kmem_cache_alloc): the next object of the
        cache's CPU slab, ``___slab_alloc()`` (refill_cpu_slab) taking a partial or new slab
        when its freelist is empty, the slab in ``slab``; 0 (NULL) without memory. No hooks:
        slab_alloc() adds KASAN's; a shadow cache has none (shadow_block_alloc)."""
        cdef int32_t s = self.caches[cid].cpu_slab
        if s < 0 or self.slabs[s].freelist < 0:
            s = self.refill_cpu_slab(cid)
            if s < 0:
                return 0
        slab[0] = s
        return self.take_object(s)

    cdef uint64_t take_object(self, int32_t s) noexcept:
        """The freelist's head object of a slab, taken (``get_freepointer()``)."""
        cdef SlabRec *slab = &self.slabs[s]
        cdef int32_t i = slab.freelist
        slab.freelist = self.objs[slab.meta + i].next_free
        slab.inuse += 1
        return slab.base + <uint64_t>i * <uint64_t>self.caches[slab.cache].size

    # ------------------------------------------------------------------ the shadow

    cdef uint8_t *flat_shadow(self, uint64_t addr, int64_t granules) except? NULL:
        """Where the flat scheme keeps the shadow of [addr, addr + granules * 8), when the
        machine's shadow is exactly a FlatShadow and one chunk holds it all; NULL otherwise."""
        cdef PyObject *chunk
        cdef int64_t start
        if self.chunks is None:
            return NULL
        chunk = PyDict_GetItem(self.chunks, addr >> CHUNK_SHIFT_)
        if chunk == NULL or not PyByteArray_Check(<object>chunk):
            return NULL
        start = (addr >> 3) & (CHUNK_GRANULES_ - 1)
        if start + granules > CHUNK_GRANULES_:
            return NULL
        return <uint8_t *>PyByteArray_AS_STRING(<object>chunk) + start

    cdef bint write_pattern(self, uint64_t obj, bytes pattern) except False:
        """An object's shadow bytes written where the flat shadow's memory is not at hand:
        through the compiled lockstep when there is one, else the shadow's own write()."""
        if self.lockstep is not None:
            self.lockstep.write_(obj, <const uint8_t *>PyBytes_AS_STRING(pattern),
                                 PyBytes_GET_SIZE(pattern), pattern)
        else:
            self.shadow_write(obj, pattern)
        return True

    cdef bint unpoison(self, int32_t cid, uint64_t obj, uint64_t size) except False:
        """``unpoison_slab_object()`` + ``poison_kmalloc_redzone()``: size bytes accessible
        (00 ... partial), KASAN_SLAB_REDZONE up to object_size."""
        cdef CacheRec *c = &self.caches[cid]
        cdef int64_t granules = c.granules, full = size >> 3
        cdef uint8_t *shadow = self.flat_shadow(obj, granules)
        if shadow == NULL:
            cache = self.kmem_caches[cid]
            pattern = cache.alloc_patterns.get(size) or alloc_pattern(cache, size)
            return self.write_pattern(obj, pattern)
        memset(shadow, 0, full)
        if size & 7:
            shadow[full] = size & 7
            full += 1
        memset(shadow + full, SLAB_REDZONE, granules - full)
        return True

    cdef bint poison_free(self, int32_t cid, uint64_t obj) except False:
        """``poison_slab_object()``'s shadow: KASAN_SLAB_FREE, KASAN_SLAB_FREE_META on the
        first granule when the free track is saved."""
        cdef CacheRec *c = &self.caches[cid]
        cdef uint8_t *shadow = self.flat_shadow(obj, c.granules)
        if shadow == NULL:
            return self.write_pattern(obj, self.kmem_caches[cid].free_pattern)
        memset(shadow, SLAB_FREE, c.granules)
        if c.flags & CACHE_FREE_META:
            shadow[0] = SLAB_FREE_META
        return True

    cdef int shadow_byte(self, uint64_t addr) except -1:
        """The shadow byte of addr, counted as the scheme counts a read."""
        cdef uint8_t *shadow = self.flat_shadow(addr, 1)
        if shadow == NULL:
            if self.lockstep is not None:
                return self.lockstep.check_byte(addr)
            return self.shadow_byte_(addr)
        self.flat.checks += 1
        return shadow[0]

    # ------------------------------------------------------------------ allocation

    cdef uint64_t slab_alloc(self, int32_t cid, uint64_t size, uint64_t track) except? 1:
        """``slab_alloc_node()`` + ``kasan_slab_alloc()``/``kasan_kmalloc()``."""
        cdef int32_t s
        cdef uint64_t obj
        cdef SlabRec *slab
        cdef ObjRec *o
        if self.q_size > self.q_max_size:
            self.quarantine_reduce_()
        obj = self._slab_alloc_node(cid, &s)
        if not obj:
            return 0
        self.unpoison(cid, obj, size)
        # kasan_save_alloc_info()
        slab = &self.slabs[s]
        o = &self.objs[slab.meta + <int64_t>((obj - slab.base) // <uint64_t>self.caches[cid].size)]
        o.alloc_track = track
        o.free_track = 0
        o.alloc_size = size
        o.nr_aux = 0
        return obj

    def kmem_cache_alloc(self, cache, uint64_t size, uint64_t track):
        """``slab_alloc_node()`` + ``kasan_slab_alloc()``/``kasan_kmalloc()``: an object of
        the cache with size bytes unpoisoned and its alloc track saved; 0 (NULL) without
        memory. ``kasan_quarantine_reduce()`` runs first, as from ``slab_pre_alloc_hook()``."""
        return self.slab_alloc(cache.id, size, track)

    cdef uint64_t kmalloc_slab(self, uint64_t size, uint64_t track) except? 1:
        """``kmalloc()`` of 1..KMALLOC_MAX_CACHE_SIZE bytes: ``kmalloc_slab()``'s cache."""
        if size > <uint64_t>self.kmalloc_max:
            raise IndexError(size)
        return self.slab_alloc(self.kmalloc_index[size], size, track)

    def unpoison_object(self, obj, uint64_t size, uint64_t track):
        """``__kasan_krealloc()``, ``__kasan_mempool_unpoison_object()`` of a slab object: its
        size bytes unpoisoned, its kmalloc redzone poisoned, its alloc track saved
        (``kasan_save_alloc_info()``: old stacks invalidated)."""
        cdef uint64_t addr = obj
        cdef int32_t s = self.slab_of_object(addr)
        self.unpoison(self.slabs[s].cache, addr, size)
        cdef SlabRec *slab = &self.slabs[s]
        cdef uint64_t slot = <uint64_t>self.caches[slab.cache].size
        cdef ObjRec *o = &self.objs[slab.meta + <int64_t>((addr - slab.base) // slot)]
        o.alloc_track = track
        o.free_track = 0
        o.alloc_size = size
        if (addr - slab.base) % slot == 0:
            o.nr_aux = 0

    def shadow_block_alloc(self, cache):
        """A block from a shadow cache (plain SLUB, no KASAN hooks): its address, 0 if none."""
        cdef int32_t s
        return self._slab_alloc_node(cache.id, &s)

    def shadow_block_free(self, addr):
        """Give a shadow block back to its cache (plain SLUB, no KASAN hooks)."""
        cdef int32_t s = self.slab_of_object(addr)
        self.do_slab_free(s, addr)

    # ------------------------------------------------------------------ free

    cdef int check(self, int32_t s, uint64_t addr) except -1:
        """``check_slab_allocation()``: FREE_OK, INVALID_FREE or DOUBLE_FREE."""
        cdef SlabRec *slab = &self.slabs[s]
        cdef CacheRec *c = &self.caches[slab.cache]
        cdef uint64_t offset = addr - slab.base
        if addr < slab.base or offset % <uint64_t>c.size or \
                offset >= <uint64_t>(c.size * c.objects):      # nearest_obj() != obj
            return C_INVALID_FREE
        if self.shadow_byte(addr) >= 8:
            return C_DOUBLE_FREE
        return C_FREE_OK

    def check_slab_allocation(self, addr):
        """``check_slab_allocation()`` of a slab address: FREE_OK, INVALID_FREE (not the
        start of an object) or DOUBLE_FREE (its shadow says it is free)."""
        cdef int32_t s = self.slab_of_object(addr)
        return self.check(s, addr)

    cdef bint save_free_info(self, int32_t s, uint64_t obj, uint64_t track) except False:
        """``poison_slab_object()`` + ``kasan_save_free_info()``."""
        cdef int32_t cid = self.slabs[s].cache
        self.poison_free(cid, obj)
        cdef SlabRec *slab = &self.slabs[s]
        cdef CacheRec *c = &self.caches[cid]
        if c.flags & CACHE_FREE_META:
            self.objs[slab.meta + <int64_t>((obj - slab.base) // <uint64_t>c.size)].free_track \
                = track
        return True

    def poison_slab_object(self, obj, uint64_t track):
        """``poison_slab_object()`` + ``kasan_save_free_info()``: FB, and FA on the first
        granule when the free track is saved."""
        cdef int32_t s = self.slab_of_object(obj)
        self.save_free_info(s, obj, track)

    cdef int slab_free_(self, int32_t s, uint64_t addr, uint64_t track) except -1:
        """``slab_free()`` → ``slab_free_hook()`` → KASAN → quarantine, RCU or freelist."""
        cdef int bug = self.check(s, addr)
        cdef int32_t cid = self.slabs[s].cache
        if bug != C_FREE_OK:
            return bug
        if self.caches[cid].flags & CACHE_RCU:
            # CONFIG_SLUB_RCU_DEBUG: the real free waits for a grace period.
            self.record_aux(s, addr, track)
            self.rcu_buf = grown(self.rcu_buf, (self.rcu_len + 1) * sizeof(uint64_t))
            (<uint64_t *>PyByteArray_AS_STRING(self.rcu_buf))[self.rcu_len] = addr
            self.rcu_len += 1
            return C_FREE_OK
        self.save_free_info(s, addr, track)
        if self.caches[cid].flags & CACHE_FREE_META:
            self.quarantine_put(addr, self.caches[cid].size)
        else:
            self.do_slab_free(s, addr)
        return C_FREE_OK

    cdef int kfree_slab(self, uint64_t addr, uint64_t track) except -2:
        """``kfree()`` of a slab object: slab_free(); -1 when addr is in no slab."""
        cdef int32_t s = self.slab_of_addr(addr)
        if s < 0:
            return -1
        return self.slab_free_(s, addr, track)

    def kfree(self, addr, uint64_t track):
        """``kfree()`` of a slab object: slab_free(); -1 when addr is in no slab (a large
        kmalloc's pages, or no allocation at all: the caller's business)."""
        return self.kfree_object(addr, track)

    cdef int kfree_object(self, addr, uint64_t track) except -2:
        """kfree_slab() of an address given as a Python int; -1 for one outside every slab,
        or no address at all (below 0 or above 2^64 - 1)."""
        cdef uint64_t a
        try:
            a = addr
        except OverflowError:
            return -1
        return self.kfree_slab(a, track)

    # ------------------------------------------------- the Machine's slab entry points
    # On the native engine Machine.kmalloc, kfree, kmem_cache_alloc and kmem_cache_free are
    # these (Machine._bind_compiled(); machine.py's methods are the reference): one compiled
    # call each, with the track Machine._track() makes, the rare cases (ZERO_SIZE_PTR, a large
    # kmalloc, a bad free's report) left to the Machine's Python methods.

    cdef uint64_t machine_track(self) except? 0:
        """``Machine._track()``: task.pid << 32 | ip_handle (in C when both are small, as
        they are: a pid below 2^31, a stack depot handle below 2^32)."""
        cdef int64_t pid, handle
        machine = self.machine
        task_pid, ip_handle = machine.task.pid, machine.ip_handle
        try:
            pid, handle = task_pid, ip_handle
        except OverflowError:
            return task_pid << 32 | ip_handle
        if 0 <= pid < (<int64_t>1) << 31 and 0 <= handle < (<int64_t>1) << 32:
            return (<uint64_t>pid) << 32 | <uint64_t>handle
        return task_pid << 32 | ip_handle

    def machine_kmalloc(self, size):
        """``Machine.kmalloc()``: ``kmalloc(size, GFP_KERNEL)``, a kmalloc cache's object or
        a large kmalloc's pages above KMALLOC_MAX_CACHE_SIZE. 0 = NULL."""
        return self.kmalloc_(size, MACHINE_TRACK)

    cdef object kmalloc_(self, size, uint64_t track):
        """machine_kmalloc() with the track of the event (MACHINE_TRACK: Machine._track()'s,
        made here when needed), for the compiled workload runner (_runner.pyx) too."""
        cdef uint64_t n
        try:
            n = size
        except OverflowError:                   # below 0 (or above 2^64 - 1): not a slab's
            n = 0
        else:
            if 0 < n <= <uint64_t>self.kmalloc_max:
                return self.kmalloc_slab(n, self.machine_track() if track == MACHINE_TRACK
                                         else track)
        if size == 0:
            return 16       # ZERO_SIZE_PTR
        return self.machine._kmalloc_large(size)

    def machine_kmem_cache_alloc(self, cache, size=None):
        """``Machine.kmem_cache_alloc()``."""
        return self.slab_alloc(cache.id, cache.object_size if size is None else size,
                               self.machine_track())

    def machine_kfree(self, addr):
        """``Machine.kfree()``: a slab object, or a large kmalloc's compound page."""
        self.kfree_(addr, self.machine_track())

    cdef int kfree_(self, addr, uint64_t track) except -1:
        """machine_kfree() with the track of the event, for the compiled workload runner too."""
        cdef int bug = self.kfree_object(addr, track)
        if bug > 0:
            self.machine._report_invalid_free(addr, FREE_BUG_TYPES[bug])
        elif bug < 0 and addr > 16:             # not ZERO_OR_NULL_PTR
            self.machine._free_large_kmalloc(addr)
        return 0

    def machine_kmem_cache_free(self, cache, addr):
        """``Machine.kmem_cache_free()``: the object's own slab decides."""
        cdef int bug = self.kfree_object(addr, self.machine_track())
        if bug:
            self.machine._report_invalid_free(addr, FREE_BUG_TYPES.get(bug, "invalid-free"))

    cdef bint record_aux(self, int32_t s, uint64_t addr, uint64_t track) except False:
        """``kasan_record_aux_stack()`` on the object holding addr (``nearest_obj()``)."""
        cdef SlabRec *slab = &self.slabs[s]
        cdef CacheRec *c = &self.caches[slab.cache]
        cdef int64_t i = <int64_t>((addr - slab.base) // <uint64_t>c.size)
        if addr < slab.base:
            i = 0
        if i > c.objects - 1:
            i = c.objects - 1
        cdef ObjRec *o = &self.objs[slab.meta + i]
        o.aux[1] = o.aux[0]
        o.aux[0] = track
        if o.nr_aux < 2:
            o.nr_aux += 1
        return True

    def record_aux_stack(self, addr, uint64_t track):
        """``kasan_record_aux_stack()``: remember the last two work creations on an object."""
        cdef uint64_t a
        try:
            a = addr
        except OverflowError:           # no address: below 0 or above 2^64 - 1
            return
        cdef int32_t s = self.slab_of_addr(a)
        if s >= 0:
            self.record_aux(s, a, track)

    def rcu_barrier(self, uint64_t track):
        """Run pending ``slab_free_after_rcu_debug()`` callbacks, their frees tracked as
        ``track`` (task 0, in softirq)."""
        cdef Py_ssize_t i, n = self.rcu_len
        cdef uint64_t obj
        cdef int32_t s
        pending = self.rcu_buf
        self.rcu_buf = bytearray()
        self.rcu_len = 0
        for i in range(n):
            obj = (<uint64_t *>PyByteArray_AS_STRING(pending))[i]
            s = self.slab_of_addr(obj)
            self.save_free_info(s, obj, track)
            if self.caches[self.slabs[s].cache].flags & CACHE_FREE_META:
                self.quarantine_put(obj, self.caches[self.slabs[s].cache].size)
            else:
                self.do_slab_free(s, obj)

    # ------------------------------------------------------------------ the quarantine

    cdef bint quarantine_put(self, uint64_t obj, int64_t size) except False:
        """``kasan_quarantine_put()``: counted at the cache's slot size."""
        cdef int64_t tail, new_tail
        if self.ring_len > self.ring_mask:
            self.grow_ring()
        self.ring[(self.ring_head + self.ring_len) & self.ring_mask] = obj
        self.ring_len += 1
        self.cpu_count += 1
        self.cpu_bytes += size
        if self.cpu_bytes > PERCPU_SIZE:
            tail = self.q_tail
            self.q_size += self.cpu_bytes
            self.batch_count[tail] += self.cpu_count
            self.batch_bytes[tail] += self.cpu_bytes
            self.cpu_count = self.cpu_bytes = 0
            if self.batch_bytes[tail] >= self.q_batch_size:
                new_tail = (tail + 1) % NR_BATCHES
                if new_tail != self.q_head:
                    self.q_tail = new_tail
        return True

    cdef bint grow_ring(self) except False:
        """Twice the ring, its objects moved to the front in order."""
        cdef int64_t i, n = self.ring_mask + 1
        ring = bytearray(2 * n * sizeof(uint64_t))
        cdef uint64_t *to = <uint64_t *>PyByteArray_AS_STRING(ring)
        for i in range(self.ring_len):
            to[i] = self.ring[(self.ring_head + i) & self.ring_mask]
        self.ring_buf = ring
        self.ring_head = 0
        self.ring_mask = 2 * n - 1
        self.repoint()
        return True

    cdef bint quarantine_reduce_(self) except False:
        """``kasan_quarantine_reduce()``: free the oldest batch back to the slabs."""
        cdef int64_t total, percpu, n, head
        cdef uint64_t obj
        if self.q_size <= self.q_max_size:
            return True
        total = self.totalram // FRACTION
        percpu = PERCPU_SIZE * self.nr_cpus
        self.q_max_size = 0 if total < percpu else total - percpu
        self.q_batch_size = max(PERCPU_SIZE, 2 * total // NR_BATCHES)
        if self.q_size <= self.q_max_size:
            return True
        head = self.q_head
        n = self.batch_count[head]
        self.q_size -= self.batch_bytes[head]
        self.batch_count[head] = self.batch_bytes[head] = 0
        self.q_head = (head + 1) % NR_BATCHES
        while n > 0:
            obj = self.ring[self.ring_head]
            self.ring_head = (self.ring_head + 1) & self.ring_mask
            self.ring_len -= 1
            n -= 1
            self.do_slab_free(self.slab_of_addr(obj), obj)
        return True

    def quarantine_reduce(self):
        """``kasan_quarantine_reduce()``: free the oldest batch back to the slabs."""
        self.quarantine_reduce_()

    cdef Py_ssize_t quarantine_remove_cache(self, int32_t cid, uint64_t *out) except -1:
        """``kasan_quarantine_remove_cache()``: take out every object of a dying cache, into
        out, in slab.Quarantine.remove_cache()'s order (the CPU queue, then batch by batch
        by index); their number."""
        cdef int64_t start[NR_BATCHES]
        cdef int64_t j, b, off = 0, k, mine, pos, kept = 0
        cdef int64_t size = self.caches[cid].size
        cdef Py_ssize_t n = 0
        cdef uint64_t obj
        cdef uint8_t *gone = <uint8_t *>malloc(self.ring_len + 1)
        if gone == NULL:
            raise MemoryError()
        memset(gone, 0, self.ring_len + 1)
        for j in range(NR_BATCHES):          # where each batch lies in the ring
            b = (self.q_head + j) % NR_BATCHES
            start[b] = off
            off += self.batch_count[b]
        mine = 0
        for k in range(off, off + self.cpu_count):
            obj = self.ring[(self.ring_head + k) & self.ring_mask]
            if self.slabs[self.slab_of_addr(obj)].cache == cid:
                gone[k] = 1
                out[n] = obj
                n += 1
                mine += 1
        self.cpu_count -= mine
        self.cpu_bytes -= mine * size
        for b in range(NR_BATCHES):
            mine = 0
            for k in range(start[b], start[b] + self.batch_count[b]):
                obj = self.ring[(self.ring_head + k) & self.ring_mask]
                if self.slabs[self.slab_of_addr(obj)].cache == cid:
                    gone[k] = 1
                    out[n] = obj
                    n += 1
                    mine += 1
            self.batch_count[b] -= mine
            self.batch_bytes[b] -= mine * size
            self.q_size -= mine * size
        for k in range(self.ring_len):       # the others keep their order
            if not gone[k]:
                pos = (self.ring_head + k) & self.ring_mask
                self.ring[(self.ring_head + kept) & self.ring_mask] = self.ring[pos]
                kept += 1
        self.ring_len = kept
        free(gone)
        return n

    def kmem_cache_shutdown(self, cache):
        """``kasan_cache_shutdown()`` (the quarantine gives the cache's objects back) and
        ``__kmem_cache_shutdown()``: False (-EBUSY) while an object is in use, else every
        slab is discarded."""
        cdef int32_t cid = cache.id, s, nxt
        cdef Py_ssize_t i, n
        cdef CacheRec *c
        cdef uint64_t *out = <uint64_t *>malloc((self.ring_len + 1) * sizeof(uint64_t))
        if out == NULL:
            raise MemoryError()
        try:
            n = self.quarantine_remove_cache(cid, out)
            for i in range(n):
                self.do_slab_free(self.slab_of_addr(out[i]), out[i])
        finally:
            free(out)
        s = self.caches[cid].all_head
        while s >= 0:
            if self.slabs[s].inuse:
                return False
            s = self.slabs[s].all_next
        c = &self.caches[cid]
        c.cpu_slab = -1
        while c.nr_partial:
            self.partial_remove(c, c.partial_head)
        s = self.caches[cid].all_head
        while s >= 0:
            nxt = self.slabs[s].all_next
            self.slabs[s].frozen = 0
            self.discard_slab(s)
            s = nxt
        return True


def _restore_slub(machine, kmem_caches, numbers, caches_buf, slabs_buf, objs_buf, kmalloc_buf,
                  ring_buf, rcu_buf, batches, sections):
    """A pickled SlubAllocator back (its __reduce__); the machine binds it once it is whole."""
    cdef SlubAllocator slub = SlubAllocator.__new__(SlubAllocator)
    slub.machine = machine
    slub.restore(kmem_caches, numbers, caches_buf, slabs_buf, objs_buf, kmalloc_buf, ring_buf,
                 rcu_buf, batches, sections)
    return slub
