"""The compiled page path: ``Machine.alloc_pages`` / ``Machine.free_pages`` in C (issue 12).

``PageAllocator(machine)`` holds the compiled twins of the Machine's page allocator entry
points (machine.py keeps the Python ones as the reference; on the native engine the Machine
calls these): ``alloc_pages()`` as ``alloc_pages()`` + ``post_alloc_hook()`` (mm/page_alloc.c,
6.12: the zone walk of get_page_from_freelist(), then kasan_unpoison_pages()), and
``free_pages()`` as ``__free_pages()`` -> ``free_pages_prepare()`` (kasan_poison_pages(),
KASAN_PAGE_FREE) -> ``__free_one_page()``. Their struct page writes go into the MemMap's
own section arrays (``MemMap.write_records``, the twin of ``MemMap.set_pages``: the same
sections, so views and pickles are unchanged) and, when the machine's shadow is exactly the
flat scheme, the page poison is a memset into the FlatShadow's chunk bytearrays; any other
scheme is called as the Python engine calls it. tests/test_native_replay.py runs both on
random allocation and free sequences and compares every page and shadow byte.
"""

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memset

from .kasan import KASAN_PAGE_FREE, KASAN_SHADOW_SCALE_SHIFT
from .machine import PAGE_ENTRIES
from .memory import FREE_PAGE, PAGE_DTYPE, PAGE_TYPE_NONE, record_bytes
from .shadow.base import PageUse, ShadowScheme
from .shadow.flat import CHUNK_SHIFT, FlatShadow

# The flat scheme attaches nothing to pages: its page_alloc()/page_free() are the base class's
# (True, nothing), which the compiled path does not call.
assert FlatShadow.page_alloc is ShadowScheme.page_alloc
assert FlatShadow.page_free is ShadowScheme.page_free

cdef Py_ssize_t RECORD_SIZE = PAGE_DTYPE.itemsize
cdef Py_ssize_t HEAD_OFFSET = PAGE_DTYPE.fields["head"][1]      # compound_head() of a tail
cdef bytes FREE_RECORD = record_bytes(FREE_PAGE)
cdef int SCALE_SHIFT = KASAN_SHADOW_SCALE_SHIFT
cdef int C_CHUNK_SHIFT = CHUNK_SHIFT
cdef unsigned char C_KASAN_PAGE_FREE = KASAN_PAGE_FREE
PAGE_ALLOC = PageUse.PAGE_ALLOC


cdef int write_records(memmap, uint64_t pfn, uint64_t count, const char *record,
                       bint tail_of_pfn, uint64_t head) except -1:
    """MemMap.set_pages() of a record's bytes into the sections' memory: ``count`` struct
    pages from ``pfn``; ``tail_of_pfn``: each names ``head`` as its compound head."""
    cdef Py_buffer view
    cdef uint64_t per_section = memmap.pages_per_section, i, n, k
    cdef int section_shift = memmap.section_shift
    cdef char *base
    cdef int64_t head_pfn = head
    written = memmap.written
    if written is not None:
        written.append((pfn, count))
    sections = memmap._bytes
    while count > 0:
        section = sections.get(pfn >> section_shift)
        if section is None:
            memmap.section(pfn)
            section = sections[pfn >> section_shift]
        i = pfn & (per_section - 1)
        n = min(count, per_section - i)
        PyObject_GetBuffer(section, &view, PyBUF_WRITABLE)
        try:
            base = <char *>view.buf + i * RECORD_SIZE
            for k in range(n):
                memcpy(base + k * RECORD_SIZE, record, RECORD_SIZE)
                if tail_of_pfn:
                    memcpy(base + k * RECORD_SIZE + HEAD_OFFSET, &head_pfn, sizeof(int64_t))
        finally:
            PyBuffer_Release(&view)
        pfn += n
        count -= n
    return 0


cdef class PageAllocator:
    """A Machine's page allocator entry points, compiled (see the module's docstring): the
    Python-callable alloc_pages() and free_pages() (the Machine's on the native engine) and
    their C bodies, alloc_pages_noprof() and free_pages_ok(), which other compiled modules
    call."""

    # (its state is declared in _page_alloc.pxd)

    def __init__(self, machine):
        self.machine = machine
        self.memmap = machine.memmap
        self.records = {}
        self.alloc_zones = machine._alloc_zones
        self.zone_ends = machine._zone_ends
        self.zones = machine.zones
        self.pages = machine.pages
        self.lowmem_lo, self.lowmem_hi = machine._lowmem_lo, machine._lowmem_hi
        self.lm_delta = machine._lm_delta
        self.page_shift = machine.page_shift
        self.max_order = machine._max_order
        self.vmalloc_start = machine.profile.vmalloc_start
        self.vmalloc_end = machine.profile.vmalloc_end

    cdef int poison(self, uint64_t pfn, int order, unsigned char value) except -1:
        """kasan_poison_pages()/kasan_unpoison_pages() of a lowmem block: into the flat
        shadow's chunks when the shadow is exactly FlatShadow, else shadow.poison()."""
        cdef uint64_t addr = (pfn << self.page_shift) + self.lm_delta
        cdef uint64_t size = (<uint64_t>1) << (self.page_shift + order)
        cdef uint64_t granules = size >> SCALE_SHIFT, start, n, per_chunk
        shadow = self.machine.shadow
        if type(shadow) is not FlatShadow or self.vmalloc_start <= addr < self.vmalloc_end:
            shadow.poison(addr, size, value)
            return 0
        chunks = (<object>shadow)._chunks
        per_chunk = (<uint64_t>1) << (C_CHUNK_SHIFT - SCALE_SHIFT)
        while granules > 0:
            key = addr >> C_CHUNK_SHIFT
            chunk = chunks.get(key)
            if chunk is None:
                chunk = shadow._chunk(key)
            start = (addr >> SCALE_SHIFT) & (per_chunk - 1)
            n = min(granules, per_chunk - start)
            assert start + n <= <uint64_t>PyByteArray_GET_SIZE(chunk)
            memset(PyByteArray_AS_STRING(chunk) + start, value, n)
            granules -= n
            addr += n << SCALE_SHIFT
        return 0

    cdef tuple raw_records(self, use, int order, bint compound, cache):
        """(the tails' record bytes or None if they name their head, the head's), made once
        per kind of allocation from Machine._page_records()."""
        key = (use, order, compound, -1 if cache is None else cache.id)
        raw = self.records.get(key)
        if raw is None:
            tails, head = self.machine._page_records(use, order, compound, cache)
            if tails is None:                   # (head= is written per allocation)
                tails = (0, PAGE_TYPE_NONE, 0, 0, head[4], head[5], 0, 0)
                raw = self.records[key] = (None, record_bytes(tails), record_bytes(head))
            else:
                raw = self.records[key] = (record_bytes(tails), None, record_bytes(head))
        return raw

    def alloc_pages(self, order_object, use=PAGE_ALLOC, compound=False, cache=None):
        """Machine.alloc_pages(), compiled: the head pfn, or None when out of memory."""
        cdef int64_t pfn
        if order_object > self.max_order:
            return None
        if order_object < 0:
            raise ValueError("negative shift count")
        pfn = self.alloc_pages_noprof(order_object, use, compound, cache)
        return None if pfn < 0 else pfn

    cdef int64_t alloc_pages_noprof(self, int order, use, bint compound, cache) except -2:
        """``alloc_pages_noprof()`` + ``post_alloc_hook()`` of an order in 0..max_order: the
        head pfn, or -1 when out of memory."""
        cdef uint64_t pfn, need = (<uint64_t>1) << order
        for zone in self.alloc_zones:               # highest zone first, no HighMem
            if zone.free_pages >= need:
                result = zone.alloc(order)
                if result is not None:
                    break
        else:
            return -1
        pfn = result
        compound = compound and order > 0
        tails, named_tails, head = self.raw_records(use, order, compound, cache)
        memmap = self.memmap
        if order:
            if tails is None:
                write_records(memmap, pfn + 1, need - 1, PyBytes_AS_STRING(named_tails), True,
                              pfn)
            else:
                write_records(memmap, pfn + 1, need - 1, PyBytes_AS_STRING(tails), False, 0)
        write_records(memmap, pfn, 1, PyBytes_AS_STRING(head), False, 0)
        self.pages[result] = PAGE_ENTRIES[order][use]
        shadow = self.machine.shadow
        if type(shadow) is not FlatShadow and not shadow.page_alloc(result, order, use):
            # No memory for its shadow: the allocation fails as a whole.
            del self.pages[result]
            write_records(memmap, pfn, need, PyBytes_AS_STRING(FREE_RECORD), False, 0)
            self.machine._zone_of(result).free(result, order)
            return -1
        if self.lowmem_lo <= pfn < self.lowmem_hi:  # kasan_unpoison_pages()
            self.poison(pfn, order, 0)
        return pfn

    def free_pages(self, pfn, int order):
        """Machine.free_pages(), compiled."""
        self.free_pages_ok(pfn, order)

    cdef int free_pages_ok(self, uint64_t pfn, int order) except -1:
        """``__free_pages_ok()``: free_pages_prepare() (kasan_poison_pages()), then the
        buddy's __free_one_page()."""
        pfn_object = pfn
        self.pages.pop(pfn_object, None)
        if self.lowmem_lo <= pfn < self.lowmem_hi:  # kasan_poison_pages()
            self.poison(pfn, order, C_KASAN_PAGE_FREE)
        shadow = self.machine.shadow
        if type(shadow) is not FlatShadow:
            shadow.page_free(pfn_object, order)
        write_records(self.memmap, pfn, (<uint64_t>1) << order, PyBytes_AS_STRING(FREE_RECORD),
                      False, 0)
        for end, zone in self.zone_ends:            # _zone_of()
            if pfn_object < end:
                break
        else:
            zone = self.zones[len(self.zones) - 1]
        zone.free(pfn_object, order)
        return 0
