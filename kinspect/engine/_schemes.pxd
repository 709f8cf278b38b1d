"""The compiled shadow schemes' C interface (_schemes.pyx), for the compiled slab allocator
(_slab.pyx), which writes and reads every scheme of a lockstep through Lockstep's C methods."""

from libc.stdint cimport int64_t, uint8_t, uint64_t


cdef class Scheme:
    cdef readonly object scheme          # the Python scheme (its state, its reference methods)
    cdef public int64_t checks, loads    # its read counters, when its own fast paths count

    cdef int count(self, int64_t checks, int64_t loads) except -1

    cdef int poison(self, uint64_t addr, uint64_t size, uint8_t value) except -1
    cdef int write(self, uint64_t addr, const uint8_t *data, int64_t n, object obj) except -1
    cdef int shadow_byte(self, uint64_t addr) except -1
    cdef int page_alloc(self, int64_t pfn, int order, int use, object use_obj) except -1
    cdef int page_free(self, int64_t pfn, int order) except -1


cdef class Flat(Scheme):
    cdef dict chunks                     # FlatShadow._chunks
    cdef uint64_t vmalloc_start, vmalloc_end

    cdef uint8_t *at(self, uint64_t addr, int64_t granules) except? NULL


cdef class Paged(Scheme):
    # a per-page scheme's flat arrays (pageptr.py, pshadow.py), their addresses taken by
    # refresh(): the chunk map and the pool's segments here, the others by take_arrays()
    cdef object arrays                   # the arrays themselves, held while pointed into
    cdef int *chunk_of                   # _chunk_of: pfn >> CHUNK_SHIFT -> chunk, -1: none
    cdef uint8_t **segments              # the pool's segments' bytes (_pool, _shadow)
    cdef int segment_shift               # pool index (block, shadow page) -> segment
    cdef int64_t segment_mask
    cdef dict pfn_views                  # the Python hot paths' views by pfn (_PFN_VIEWS)

    cdef int refresh(self) except -1
    cdef tuple take_arrays(self, object s)


cdef class PagePtr(Paged):
    # the scheme's other flat arrays (pageptr.py), their addresses taken by take_arrays()
    cdef int *slot                       # _slot: per pfn, its block (-1: NULL page->shadow)
    cdef long long *head                 # _head: per pfn, its allocation's head (-1: none)
    cdef unsigned long long *block_addr  # _block_addr: per block, its address (0: free)
    cdef signed char *block_space        # _block_space: per block, the space it shadows
    cdef long long *block_user           # _block_user: its page, or the next free block
    cdef int64_t capacity                # blocks the pool's arrays hold
    cdef dict allocations                # machine.pages: allocated head pfn -> (order, use)
    cdef object initial_byte             # machine.initial_shadow_byte
    cdef uint64_t lm_start, lm_end, lm_delta
    cdef int64_t lowmem_lo, lowmem_hi
    cdef int page_shift
    cdef uint64_t page_mask
    cdef int64_t granules                # bytes in a block
    cdef bint always                     # attach policy "always"
    cdef int64_t loads_with_block, loads_null
    cdef object cache                    # the shadow-block kmem_cache (after boot)
    cdef object block_alloc, block_free, nr_slabs, memmap    # the machine's
    cdef bint in_struct_page             # page->shadow (pageptr), not page_ext (pageext)
    cdef int section_shift               # the memmap's pfn -> section
    cdef int64_t section_mask

    cdef int64_t index(self, int64_t pfn) noexcept
    cdef int64_t make_index(self, int64_t pfn) except -1
    cdef int set_pointer(self, int64_t pfn, uint64_t addr) except -1
    cdef int64_t new_block(self) except -2
    cdef int attach(self, int64_t pfn) except -1
    cdef int detach(self, int64_t i) except -1
    cdef int page_state_byte(self, int64_t pfn, uint64_t addr) except -1
    cdef uint8_t *block(self, int64_t b) noexcept
    cdef uint8_t *block_at(self, uint64_t addr, int64_t n) noexcept
    cdef int store(self, uint64_t addr, const uint8_t *data, int64_t n) except -1


cdef class PerPage(Paged):
    # the scheme's other flat arrays (pshadow.py), their addresses taken by take_arrays()
    cdef uint8_t *pshadow                # _pshadow: per lowmem pfn, its per-page byte
    cdef uint8_t *in_use                 # _in_use: per lowmem pfn, 1 unless free
    cdef int *window_page                # _window_page: per window, its shadow page (-1)
    cdef long long *page_pfn             # _page_pfn: per shadow page, its pfn
    cdef int *page_bypass                # _page_bypass: per shadow page, its BYPASS pages
    cdef dict kernel_windows             # _kernel_windows: image/vmalloc window -> page
    cdef uint64_t lm_start, lm_end, lm_delta
    cdef int64_t lowmem_lo, lowmem_hi, vpn_of_pfn
    cdef int page_shift, window_shift
    cdef int64_t page_size, granules_per_page, shadow_mask

    cdef int64_t index(self, int64_t pfn) except -1
    cdef uint8_t *shadow_page(self, int page) noexcept
    cdef int bypass_page(self, uint64_t addr) noexcept
    cdef uint8_t *bypass_at(self, uint64_t addr, int64_t n) noexcept
    cdef int claim(self, uint64_t addr, int64_t k, uint8_t value, bint is_uniform) except -1
    cdef int store(self, uint64_t addr, int64_t n, uint8_t value, const uint8_t *data) except -1
    cdef uint8_t *page_part(self, int page, int64_t vpn) noexcept
    cdef int set_bypass(self, int64_t i, int64_t vpn) except -1
    cdef int clear_bypass(self, int64_t i, int64_t vpn, uint8_t state) except -1
    cdef int set_pages(self, int64_t pfn, int64_t n, uint8_t used, uint8_t state) except -1
    cdef int page_of_window(self, int64_t window) except -2


cdef class Lockstep:
    cdef readonly list schemes           # Scheme, the active ones, the reference first
    cdef readonly object lockstep        # the LockstepShadow (its _diverged())
    cdef Py_ssize_t n

    cdef int poison_(self, uint64_t addr, uint64_t size, uint8_t value) except -1
    cdef int write_(self, uint64_t addr, const uint8_t *data, int64_t n, object obj) except -1
    cdef int check_byte(self, uint64_t addr) except -1
