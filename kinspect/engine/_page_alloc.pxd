"""The compiled page path's C interface (_page_alloc.pyx): PageAllocator's state and C
methods, for other compiled modules (the compiled trace replayer, _replay.pyx, calls
alloc_pages_noprof() and free_pages_ok() without going through Python)."""

from libc.stdint cimport int64_t, uint64_t


cdef class PageAllocator:
    cdef object machine, memmap
    cdef dict records                   # as Machine._records, each record as bytes
    cdef list alloc_zones, zone_ends, zones
    cdef dict pages
    cdef uint64_t lowmem_lo, lowmem_hi, lm_delta, vmalloc_start, vmalloc_end
    cdef int page_shift, max_order

    cdef int poison(self, uint64_t pfn, int order, unsigned char value) except -1
    cdef tuple raw_records(self, use, int order, bint compound, cache)
    cdef int64_t alloc_pages_noprof(self, int order, use, bint compound, cache) except -2
    cdef int free_pages_ok(self, uint64_t pfn, int order) except -1
