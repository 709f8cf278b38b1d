"""The compiled slab allocator's C interface (_slab.pyx): the state's records and the
SlubAllocator's C methods, for other compiled modules (a compiled trace replayer calls
kmalloc_slab() and kfree_slab() without going through Python)."""

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t

from kinspect.engine._schemes cimport Lockstep

cdef enum:
    SECTION_SHIFT = 16
    SECTION_PAGES = 1 << SECTION_SHIFT
    NR_BATCHES = 1024                    # QUARANTINE_BATCHES, checked at import
    CACHE_RCU = 1                        # CacheRec.flags: SLAB_TYPESAFE_BY_RCU
    CACHE_FREE_META = 2                  #   the free track is kept (free_meta_offset)
    CACHE_SHADOW = 4                     #   a per-page scheme's shadow-block cache


cdef struct CacheRec:
    int64_t size                         # s->size, the slot
    int64_t object_size
    int64_t granules                     # shadow bytes of an object: round_up(object_size, 8) / 8
    int32_t objects                      # objects per slab
    int32_t order
    int32_t min_partial
    int32_t flags                        # CACHE_*
    int32_t cpu_slab                     # kmem_cache_cpu.slab: a slab record, -1 none
    int32_t partial_head, partial_tail   # kmem_cache_node.partial, oldest first
    int32_t nr_partial
    int32_t all_head, all_tail           # every slab of the cache, oldest first
    int32_t nr_slabs
    int32_t spare                        # records of discarded slabs, linked by next


cdef struct SlabRec:
    int64_t pfn                          # the head page
    uint64_t base                        # the first object
    int64_t meta                         # index of its first ObjRec
    int32_t cache
    int32_t freelist                     # slab->freelist: an object index, -1 when full
    int32_t inuse
    int32_t frozen
    int32_t on_partial
    int32_t next, prev                   # partial list (or the cache's spare records)
    int32_t all_next, all_prev           # the cache's slabs


cdef struct ObjRec:
    uint64_t alloc_track                 # kasan_alloc_meta.alloc_track
    uint64_t free_track                  # kasan_free_meta.free_track
    uint64_t alloc_size                  # the requested size
    uint64_t aux[2]                      # kasan_alloc_meta.aux_stack[], newest first
    int32_t next_free                    # the free pointer: next free object, -1 at the end
    int32_t nr_aux


@cython.final
cdef class SlubAllocator:
    cdef object machine
    cdef int page_shift
    cdef uint64_t lm_delta               # __pa() of the direct map: virt - phys
    cdef list kmem_caches                # KmemCache by id
    cdef bytearray caches_buf, slabs_buf, objs_buf, kmalloc_buf
    cdef CacheRec *caches
    cdef SlabRec *slabs
    cdef ObjRec *objs
    cdef int32_t *kmalloc_index          # kmalloc_slab(): cache id by request size
    cdef Py_ssize_t nr_caches, nr_slab_recs, nr_obj_recs, kmalloc_max
    cdef dict sections                   # section number -> bytearray of int32 (slab rec + 1)
    cdef int32_t **section_map
    cdef Py_ssize_t nr_section_map
    # the quarantine (one CPU)
    cdef bytearray ring_buf
    cdef uint64_t *ring
    cdef int64_t ring_mask, ring_head, ring_len
    cdef int64_t batch_count[NR_BATCHES]
    cdef int64_t batch_bytes[NR_BATCHES]
    cdef int64_t cpu_count, cpu_bytes
    cdef int64_t q_head, q_tail, q_size, q_max_size, q_batch_size, totalram, nr_cpus
    # objects of SLAB_TYPESAFE_BY_RCU caches waiting for a grace period
    cdef bytearray rcu_buf
    cdef Py_ssize_t rcu_len
    # the machine's, looked up by bind()
    cdef object shadow, shadow_write, shadow_byte_, flat, alloc_pages, free_pages
    cdef object page_address
    cdef dict chunks                     # FlatShadow._chunks when the shadow is one
    cdef Lockstep lockstep               # LockstepShadow.compiled when there is one

    cdef void repoint(self) noexcept
    cdef restore(self, list kmem_caches, tuple numbers, bytearray caches_buf,
                 bytearray slabs_buf, bytearray objs_buf, bytearray kmalloc_buf,
                 bytearray ring_buf, bytearray rcu_buf, bytearray batches, dict sections)
    cdef int32_t slab_index(self, int64_t pfn) noexcept
    cdef int32_t slab_of_addr(self, uint64_t addr) noexcept
    cdef int32_t slab_of_object(self, uint64_t addr) except -1
    cdef bint new_section(self, int64_t k, bytearray section) except False
    cdef bint set_slab_pages(self, int64_t pfn, int64_t n, int32_t value) except False
    cdef int32_t allocate_slab(self, int32_t cid) except -2
    cdef bint discard_slab(self, int32_t s) except False
    cdef void partial_append(self, CacheRec *c, int32_t s) noexcept
    cdef void partial_remove(self, CacheRec *c, int32_t s) noexcept
    cdef int32_t refill_cpu_slab(self, int32_t cid) except -2
    cdef bint do_slab_free(self, int32_t s, uint64_t obj) except False
    cdef uint64_t _slab_alloc_node(self, int32_t cid, int32_t *slab) except? 1
    cdef uint64_t take_object(self, int32_t s) noexcept
    cdef uint8_t *flat_shadow(self, uint64_t addr, int64_t granules) except? NULL
    cdef bint write_pattern(self, uint64_t obj, bytes pattern) except False
    cdef bint unpoison(self, int32_t cid, uint64_t obj, uint64_t size) except False
    cdef bint poison_free(self, int32_t cid, uint64_t obj) except False
    cdef int shadow_byte(self, uint64_t addr) except -1
    cdef uint64_t slab_alloc(self, int32_t cid, uint64_t size, uint64_t track) except? 1
    cdef int check(self, int32_t s, uint64_t addr) except -1
    cdef bint save_free_info(self, int32_t s, uint64_t obj, uint64_t track) except False
    cdef int slab_free_(self, int32_t s, uint64_t addr, uint64_t track) except -1
    cdef bint record_aux(self, int32_t s, uint64_t addr, uint64_t track) except False
    cdef bint quarantine_put(self, uint64_t obj, int64_t size) except False
    cdef bint grow_ring(self) except False
    cdef bint quarantine_reduce_(self) except False
    cdef Py_ssize_t quarantine_remove_cache(self, int32_t cid, uint64_t *out) except -1
    cdef uint64_t kmalloc_slab(self, uint64_t size, uint64_t track) except? 1
    cdef int kfree_slab(self, uint64_t addr, uint64_t track) except -2
    cdef int kfree_object(self, addr, uint64_t track) except -2
    cdef uint64_t machine_track(self) except? 0
    cdef object kmalloc_(self, size, uint64_t track)
    cdef int kfree_(self, addr, uint64_t track) except -1
