# cython: language_level=3
"""The shadow schemes' hot paths, compiled (issue 12): every scheme of a lockstep written and
read without Python.

Four schemes in lockstep (lockstep.py) cost a Python call per scheme per shadow write, page
life-cycle hook and check. On the native engine, ``LockstepShadow.bind_engine()`` puts a
``Lockstep`` of this module in front of its schemes: its ``poison``/``write``/``set_byte``/
``shadow_byte``/``page_alloc``/``page_free`` do the common cases of each scheme in C, on the
very state of the Python scheme (flat.py's chunks; the flat arrays of pshadow.py and
pageptr.py: per-pfn chunks, pools of blocks and shadow pages in segments), and call the
Python scheme's own method, the reference, for the rest: a block attached lazily, mapping or
unmapping a window's shadow page, a page switched to BYPASS by a write, a chunk made, a pool
grown, the kernel image, the vmalloc space; after such a call, a twin takes the addresses of
the arrays again (``refresh()``). So the state, its pickles, views and footprints are the
Python schemes' (only the read counters are kept here:
lockstep.COMPILED_COUNTERS); each fast path below names the Python method whose common case
it is, and must stay in step with it (tests/test_schemes_agree.py, test_native_slab.py and
test_native_schemes.py run the schemes on both engines and compare every byte and counter).

The compiled slab allocator (_slab.pyx) calls the C methods directly (``Lockstep.write_``,
``Lockstep.check_byte``); the page allocator and the machine's Python paths call the Python
methods, bound to the LockstepShadow instance.
"""

cimport cython
from cpython.bytearray cimport (PyByteArray_AS_STRING, PyByteArray_FromStringAndSize,
                                PyByteArray_GET_SIZE)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem, PyDict_Contains
from cpython.memoryview cimport PyMemoryView_GET_BUFFER
from cpython.array cimport array
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memset

from .kasan import KASAN_PAGE_FREE as _KASAN_PAGE_FREE
from .memory import PAGE_DTYPE
from .shadow.base import BYTE_GRANULAR_USES, PageUse
from .shadow.flat import CHUNK_GRANULES as _FLAT_CHUNK_GRANULES, CHUNK_SHIFT as _FLAT_CHUNK_SHIFT
from .shadow.flat import FlatShadow
from .shadow.lockstep import COMPILED_COUNTERS
from .shadow.pageext import PageExtShadow
from .shadow.pageptr import (CHUNK_SHIFT as _PP_CHUNK_SHIFT, FREE_BLOCK as _FREE_BLOCK,
                             NO_BLOCK as _NO_BLOCK, NOT_ALLOCATED as _NOT_ALLOCATED,
                             PAGES as _PAGES, PagePtrShadow)
from .shadow.pshadow import (CHUNK_SHIFT as _PS_CHUNK_SHIFT, KASAN_PER_PAGE_BYPASS as _BYPASS,
                      KASAN_PER_PAGE_FREE as _PER_PAGE_FREE, NO_PAGE as _NO_PAGE,
                      PAGES_PER_WINDOW as _PPW, PerPageShadow)

cdef enum:
    SCALE_SHIFT = 3                      # KASAN_SHADOW_SCALE_SHIFT
    NOT_HANDLED = -2                     # a fast path's answer: the Python method decides

cdef uint8_t PAGE_FREE = _KASAN_PAGE_FREE
cdef uint8_t PER_PAGE_FREE = _PER_PAGE_FREE, PER_PAGE_BYPASS = _BYPASS
cdef int FLAT_CHUNK_SHIFT = _FLAT_CHUNK_SHIFT
cdef int64_t FLAT_CHUNK_GRANULES = _FLAT_CHUNK_GRANULES
cdef int PS_CHUNK_SHIFT = _PS_CHUNK_SHIFT
cdef int64_t PS_CHUNK_MASK = (1 << _PS_CHUNK_SHIFT) - 1
cdef int64_t PAGES_PER_WINDOW = _PPW
cdef int NO_PAGE_ = _NO_PAGE
cdef int USE_SHADOW = PageUse.SHADOW
cdef int PP_CHUNK_SHIFT = _PP_CHUNK_SHIFT
cdef int64_t PP_CHUNK_MASK = (1 << _PP_CHUNK_SHIFT) - 1
cdef int NO_BLOCK_ = _NO_BLOCK, FREE_BLOCK_ = _FREE_BLOCK, SPACE_PAGES = _PAGES
cdef int64_t NOT_ALLOCATED_ = _NOT_ALLOCATED
cdef int64_t RECORD_SIZE = PAGE_DTYPE.itemsize                  # struct page, as MemMap keeps it
cdef int64_t SHADOW_OFFSET = PAGE_DTYPE.fields["shadow"][1]    # its page->shadow (uint64)
assert PAGE_DTYPE.fields["shadow"][0].itemsize == 8
REFERENCE = {counted: reference for reference, counted in COMPILED_COUNTERS.items()}
cdef int BYTE_GRANULAR_MASK = sum(1 << int(u) for u in BYTE_GRANULAR_USES)
assert (_FLAT_CHUNK_GRANULES << SCALE_SHIFT) == (1 << _FLAT_CHUNK_SHIFT)


cdef inline bint uniform(const uint8_t *data, int64_t n, uint8_t value) noexcept:
    """All n bytes are value (``data.count(value) == len(data)``)."""
    for i in range(n):
        if data[i] != value:
            return False
    return True


cdef inline uint8_t *bytearray_at(object buf, int64_t start, int64_t n) except NULL:
    """Bytes [start, start + n) of a bytearray, checked against its size."""
    if start < 0 or start + n > PyByteArray_GET_SIZE(buf):
        raise IndexError("shadow write out of its buffer")
    return <uint8_t *>PyByteArray_AS_STRING(buf) + start


cdef uint8_t **segment_table(list segments, uint8_t **table) except NULL:
    """The addresses of a pool's segments (bytearrays, never resized), in table (grown)."""
    cdef Py_ssize_t i, n = len(segments)
    table = <uint8_t **>PyMem_Realloc(table, (n + 1) * sizeof(uint8_t *))
    if table == NULL:
        raise MemoryError()
    for i in range(n):
        table[i] = <uint8_t *>PyByteArray_AS_STRING(segments[i])
    return table


cdef class Scheme:
    """One scheme of a compiled lockstep: every method complete (its fast path in C, else the
    Python scheme's method). This base class is the latter alone, for a scheme with no
    compiled fast path."""


    def __init__(self, scheme):
        self.scheme = scheme

    cdef inline int count(self, int64_t checks, int64_t loads) except -1:
        """``scheme.checks += checks; scheme.loads += loads``: a scheme with compiled fast
        paths keeps its counters of shadow reads here (lockstep.COMPILED_COUNTERS)."""
        self.checks += checks
        self.loads += loads
        return 0

    cdef int poison(self, uint64_t addr, uint64_t size, uint8_t value) except -1:
        self.scheme.poison(addr, size, value)
        return 0

    cdef int write(self, uint64_t addr, const uint8_t *data, int64_t n, object obj) except -1:
        if obj is None:
            obj = PyBytes_FromStringAndSize(<char *>data, n)
        self.scheme.write(addr, obj)
        return 0

    cdef int shadow_byte(self, uint64_t addr) except -1:
        return self.scheme.shadow_byte(addr)

    cdef int page_alloc(self, int64_t pfn, int order, int use, object use_obj) except -1:
        return 1 if self.scheme.page_alloc(pfn, order, use_obj) else 0

    cdef int page_free(self, int64_t pfn, int order) except -1:
        self.scheme.page_free(pfn, order)
        return 0


@cython.final
cdef class Flat(Scheme):
    """flat.FlatShadow: its chunks written with memset/memcpy (FlatShadow.poison, .write,
    .shadow_byte); a chunk never touched, and the vmalloc space, by the Python methods."""


    def __init__(self, scheme):
        Scheme.__init__(self, scheme)
        self.chunks = scheme._chunks
        self.vmalloc_start, self.vmalloc_end = scheme._vmalloc_start, scheme._vmalloc_end

    cdef uint8_t *at(self, uint64_t addr, int64_t granules) except? NULL:
        """The chunk bytes of [addr, addr + granules * 8) when one existing chunk holds it."""
        cdef PyObject *chunk = PyDict_GetItem(self.chunks, addr >> FLAT_CHUNK_SHIFT)
        cdef int64_t start = (addr >> SCALE_SHIFT) & (FLAT_CHUNK_GRANULES - 1)
        if chunk == NULL or start + granules > FLAT_CHUNK_GRANULES:
            return NULL
        return bytearray_at(<object>chunk, start, granules)

    cdef int poison(self, uint64_t addr, uint64_t size, uint8_t value) except -1:
        cdef uint8_t *shadow
        cdef int64_t granules = size >> SCALE_SHIFT
        if not (self.vmalloc_start <= addr < self.vmalloc_end):
            shadow = self.at(addr, granules)
            if shadow != NULL:
                memset(shadow, value, granules)
                return 0
        return Scheme.poison(self, addr, size, value)

    cdef int write(self, uint64_t addr, const uint8_t *data, int64_t n, object obj) except -1:
        cdef uint8_t *shadow = self.at(addr, n)
        if shadow != NULL:
            memcpy(shadow, data, n)
            return 0
        return Scheme.write(self, addr, data, n, obj)

    cdef int shadow_byte(self, uint64_t addr) except -1:
        cdef uint8_t *shadow = self.at(addr, 1)
        if shadow == NULL:
            return self.scheme.shadow_byte(addr)
        self.count(1, 0)
        return shadow[0]


cdef class Paged(Scheme):
    """A per-page scheme (PagePtr, PerPage) on flat arrays that its Python scheme may replace
    by larger copies, and a pool of segments it may add to: after such a Python method, the
    twin takes their addresses again (refresh)."""


    def __init__(self, scheme):
        Scheme.__init__(self, scheme)
        self.segment_shift = scheme._segment_shift
        self.segment_mask = scheme._segment_mask
        # the views the Python hot paths made, by pfn: a pfn whose block or BYPASS goes is
        # dropped from them here too (detach, clear_bypass), as the Python methods do
        self.pfn_views = getattr(scheme, scheme._PFN_VIEWS)

    def __dealloc__(self):
        PyMem_Free(self.segments)

    cdef int refresh(self) except -1:
        """The addresses of the scheme's arrays, taken again (after a Python method, which may
        have replaced one by a larger copy, or added a segment to the pool)."""
        s = self.scheme
        arrays = self.take_arrays(s)
        self.arrays = arrays                # held: the pointers into them stay valid
        self.chunk_of = (<array>s._chunk_of).data.as_ints
        self.segments = segment_table(arrays[0], self.segments)
        return 0

    cdef tuple take_arrays(self, object s):
        """refresh() of the twin's own arrays: their addresses taken; the arrays, the pool
        (a list of segments) first."""
        raise NotImplementedError


cdef class PagePtr(Paged):
    """pageptr.PagePtrShadow (and pageext.PageExtShadow, its subclass), on its flat arrays: a
    direct-map page's block written in place (PagePtrShadow.write); a blockless page's shadow
    written with what its state implies left as it is (PagePtrShadow._store); the allocations
    recorded by pfn, blocks attached to and detached from direct-map pages (page_alloc,
    page_free: _attach, _detach, _new_block). Blocks attached lazily, the kernel image and the
    vmalloc space, a chunk of the per-pfn arrays made, the pool grown: the Python methods,
    after which the arrays' addresses are taken again (refresh: the Python scheme grows an
    array by replacing it)."""


    def __init__(self, scheme):
        Paged.__init__(self, scheme)
        self.initial_byte = scheme._initial_byte
        self.lm_start, self.lm_end, self.lm_delta = scheme._lm_start, scheme._lm_end, \
            scheme._lm_delta
        self.lowmem_lo, self.lowmem_hi = scheme._lowmem
        self.page_shift = scheme._page_shift
        self.page_mask = scheme._page_mask
        self.granules = scheme._granules
        self.always = scheme._always
        self.loads_with_block, self.loads_null = scheme.loads_with_block, scheme.loads_null
        self.cache = scheme._cache
        machine = scheme._machine
        self.allocations = scheme._allocations
        self.block_alloc = machine.shadow_block_alloc
        self.block_free = machine.shadow_block_free
        self.nr_slabs = machine.slub.nr_slabs
        self.memmap = machine.memmap
        self.section_shift = self.memmap.section_shift
        self.section_mask = self.memmap.pages_per_section - 1
        # pageext keeps the pointer in page_ext, beside the block: struct page is untouched
        self.in_struct_page = type(scheme)._set_pointer is PagePtrShadow._set_pointer
        self.refresh()

    cdef tuple take_arrays(self, object s):
        self.slot = (<array>s._slot).data.as_ints
        self.head = (<array>s._head).data.as_longlongs
        self.block_addr = (<array>s._block_addr).data.as_ulonglongs
        self.block_space = (<array>s._block_space).data.as_schars
        self.block_user = (<array>s._block_user).data.as_longlongs
        self.capacity = len(s._pool) << self.segment_shift
        return (s._pool, s._chunk_of, s._slot, s._head, s._block_addr, s._block_space,
                s._block_user)

    cdef inline uint8_t *block(self, int64_t b) noexcept:
        """Block b's bytes in the pool (PagePtrShadow._at)."""
        return self.segments[b >> self.segment_shift] + (b & self.segment_mask) * self.granules

    cdef inline int64_t index(self, int64_t pfn) noexcept:
        """PagePtrShadow._index() of a lowmem pfn: -1 when its chunk was never made."""
        cdef int c = self.chunk_of[pfn >> PP_CHUNK_SHIFT]
        return -1 if c < 0 else ((<int64_t>c) << PP_CHUNK_SHIFT) | (pfn & PP_CHUNK_MASK)

    cdef int64_t make_index(self, int64_t pfn) except -1:
        """PagePtrShadow._make_index(): a chunk never made, by the Python method."""
        cdef int64_t i = self.index(pfn)
        if i < 0:
            i = self.scheme._make_index(pfn)
            self.refresh()
        return i

    cdef int set_pointer(self, int64_t pfn, uint64_t addr) except -1:
        """``page->shadow = addr``: MemMap.set_field(pfn, 1, "shadow", addr), in place in the
        section's memory when it exists and no observer journals the writes."""
        cdef PyObject *view
        cdef uint64_t *field
        if self.memmap.written is None:
            view = PyDict_GetItem(self.memmap._bytes, pfn >> self.section_shift)
            if view != NULL:
                field = <uint64_t *>(<uint8_t *>PyMemoryView_GET_BUFFER(<object>view).buf
                                     + (pfn & self.section_mask) * RECORD_SIZE + SHADOW_OFFSET)
                field[0] = addr
                return 0
        self.memmap.set_field(pfn, 1, "shadow", addr)
        return 0

    cdef int64_t new_block(self) except -2:
        """PagePtrShadow._new_block(): the first free block, else one more (the pool grown by
        the Python method when full)."""
        cdef int64_t b = self.scheme._free_block
        if b != NO_BLOCK_:
            self.scheme._free_block = self.block_user[b]
            return b
        b = self.scheme._nblocks
        if b < self.capacity:
            self.scheme._nblocks = b + 1
            return b
        b = self.scheme._new_block()
        self.refresh()
        return b

    cdef int attach(self, int64_t pfn) except -1:
        """PagePtrShadow._attach() of a direct-map page, its block unpoisoned (00): 0 when
        the shadow cache has no memory."""
        cdef uint64_t addr = self.block_alloc(self.cache)
        cdef int64_t b, i, slab_pages
        if not addr:
            return 0
        b = self.new_block()
        i = self.make_index(pfn)
        memset(self.block(b), 0, self.granules)
        self.block_addr[b] = addr
        self.block_space[b] = SPACE_PAGES
        self.block_user[b] = pfn
        self.scheme._in_use += 1
        self.slot[i] = b
        if self.in_struct_page:
            self.set_pointer(pfn, addr)                              # page->shadow = block
        slab_pages = self.nr_slabs(self.cache) << self.cache.layout.order
        if slab_pages > self.scheme._peak_slab_pages:
            self.scheme._peak_slab_pages = slab_pages
        return 1

    cdef int detach(self, int64_t i) except -1:
        """PagePtrShadow._detach() of the block of a direct-map page (at i in the per-pfn
        arrays): back to the shadow cache."""
        cdef int64_t b = self.slot[i]
        cdef int64_t pfn = self.block_user[b]
        cdef uint64_t addr = self.block_addr[b]
        self.slot[i] = NO_BLOCK_
        if self.pfn_views:
            self.pfn_views.pop(pfn, None)
        if self.in_struct_page:
            self.set_pointer(pfn, 0)                                 # page->shadow = NULL
        self.block_addr[b] = 0
        self.block_space[b] = FREE_BLOCK_
        self.block_user[b] = self.scheme._free_block
        self.scheme._free_block = b
        self.scheme._in_use -= 1
        self.block_free(self.cache, addr)
        return 0

    cdef int page_state_byte(self, int64_t pfn, uint64_t addr) except -1:
        """PagePtrShadow._locate()'s _page_state_byte() of a pfn: what a NULL page->shadow
        stands for."""
        cdef int64_t i = self.index(pfn)
        cdef int64_t head = NOT_ALLOCATED_ if i < 0 else self.head[i]
        if head == NOT_ALLOCATED_:
            return self.initial_byte(addr)
        return 0 if PyDict_Contains(self.allocations, head) else PAGE_FREE

    cdef uint8_t *block_at(self, uint64_t addr, int64_t n) noexcept:
        """The block bytes of [addr, addr + n * 8) of a direct-map page with a block that holds
        them all; NULL otherwise."""
        cdef int64_t pfn = <int64_t>((addr - self.lm_delta) >> self.page_shift)
        cdef int64_t i = self.index(pfn)
        cdef int64_t start = (addr & self.page_mask) >> SCALE_SHIFT
        cdef int b
        if i < 0 or start + n > self.granules:
            return NULL
        b = self.slot[i]
        if b == NO_BLOCK_:
            return NULL
        return self.block(b) + start

    cdef int store(self, uint64_t addr, const uint8_t *data, int64_t n) except -1:
        """PagePtrShadow._store() of n bytes inside one direct-map page; NOT_HANDLED when a
        block must be attached."""
        cdef uint8_t *block = self.block_at(addr, n)
        if block != NULL:
            memcpy(block, data, n)
            return 0
        if uniform(data, n, <uint8_t>self.page_state_byte(
                <int64_t>((addr - self.lm_delta) >> self.page_shift), addr)):
            return 0
        return NOT_HANDLED

    cdef int write(self, uint64_t addr, const uint8_t *data, int64_t n, object obj) except -1:
        cdef int64_t k, done = 0
        if not (self.lm_start <= addr and addr + ((<uint64_t>n) << SCALE_SHIFT) <= self.lm_end):
            Scheme.write(self, addr, data, n, obj)
            return self.refresh()
        while done < n:          # PagePtrShadow._write_pages()
            k = min(n - done, self.granules - <int64_t>((addr & self.page_mask) >> SCALE_SHIFT))
            if self.store(addr, data + done, k) == NOT_HANDLED:
                self.scheme._store(addr, PyBytes_FromStringAndSize(<char *>data + done, k))
                self.refresh()
            done += k
            addr += (<uint64_t>k) << SCALE_SHIFT
        return 0

    cdef int poison(self, uint64_t addr, uint64_t size, uint8_t value) except -1:
        cdef int64_t k, start, granules = size >> SCALE_SHIFT
        cdef uint8_t *block
        if not (self.lm_start <= addr and
                addr + ((<uint64_t>granules) << SCALE_SHIFT) <= self.lm_end):
            Scheme.poison(self, addr, size, value)
            return self.refresh()
        while granules > 0:      # ShadowScheme.poison() -> write() -> _write_pages()
            start = (addr & self.page_mask) >> SCALE_SHIFT
            k = min(granules, self.granules - start)
            block = self.block_at(addr, k)
            if block != NULL:
                memset(block, value, k)
            elif self.page_state_byte(<int64_t>((addr - self.lm_delta) >> self.page_shift),
                                      addr) != value:
                self.scheme._store(addr, bytes([value]) * k)
                self.refresh()
            granules -= k
            addr += (<uint64_t>k) << SCALE_SHIFT
        return 0

    cdef int shadow_byte(self, uint64_t addr) except -1:
        cdef uint8_t *block
        cdef int value
        if not (self.lm_start <= addr < self.lm_end):
            return self.scheme.shadow_byte(addr)
        block = self.block_at(addr, 1)
        if block != NULL:
            self.count(1, self.loads_with_block)
            return block[0]
        value = self.page_state_byte(<int64_t>((addr - self.lm_delta) >> self.page_shift), addr)
        self.count(1, self.loads_with_block if value else self.loads_null)
        return value

    cdef int page_alloc(self, int64_t pfn, int order, int use, object use_obj) except -1:
        cdef int64_t p, q, i
        if not (self.lowmem_lo <= pfn < self.lowmem_hi):
            return 1                # highmem: no direct-map shadow, nothing recorded
        if use != USE_SHADOW and (self.always or (BYTE_GRANULAR_MASK >> use) & 1):
            for p in range(pfn, pfn + (1 << order)):
                if not self.attach(p):
                    for q in range(pfn, p):
                        self.detach(self.index(q))
                    return 0
        for p in range(pfn, pfn + (1 << order)):
            i = self.make_index(p)              # (may move the arrays: index them after)
            self.head[i] = pfn
        return 1

    cdef int page_free(self, int64_t pfn, int order) except -1:
        cdef int64_t p, i
        if not (self.lowmem_lo <= pfn < self.lowmem_hi):
            return 0
        for p in range(pfn, pfn + (1 << order)):
            i = self.index(p)
            if i < 0:
                continue
            self.head[i] = NOT_ALLOCATED_
            if self.slot[i] != NO_BLOCK_:
                self.detach(i)
        return 0


@cython.final
cdef class PerPage(Paged):
    """pshadow.PerPageShadow, on its flat arrays: a BYPASS page's byte shadow written in place
    (_store); a write its per-page byte can say set there (_claim); the per-page bytes of
    pages allocated and freed, BYPASS set and cleared (page_alloc, page_free: _set_pages,
    _set_bypass, _clear_bypass). Mapping and unmapping a window's shadow page, a chunk made, a
    page switched to BYPASS by a write, the kernel image and the vmalloc space: the Python
    methods, after which the arrays' addresses are taken again (refresh)."""


    def __init__(self, scheme):
        Paged.__init__(self, scheme)
        self.kernel_windows = scheme._kernel_windows
        self.lm_start, self.lm_end = scheme._direct_map
        self.lm_delta = scheme._lm_delta
        self.lowmem_lo, self.lowmem_hi = scheme._lowmem
        self.vpn_of_pfn = scheme._vpn_of_pfn
        self.page_shift = scheme._page_shift
        self.window_shift = scheme._window_shift
        self.page_size = scheme._page_size
        self.granules_per_page = scheme._granules_per_page
        self.shadow_mask = scheme._shadow_mask
        self.refresh()

    cdef tuple take_arrays(self, object s):
        self.pshadow = <uint8_t *>PyByteArray_AS_STRING(s._pshadow)
        self.in_use = <uint8_t *>PyByteArray_AS_STRING(s._in_use)
        self.window_page = (<array>s._window_page).data.as_ints
        self.page_pfn = (<array>s._page_pfn).data.as_longlongs
        self.page_bypass = (<array>s._page_bypass).data.as_ints
        return (s._shadow, s._chunk_of, s._pshadow, s._in_use, s._window_page, s._page_pfn,
                s._page_bypass)

    cdef inline uint8_t *shadow_page(self, int page) noexcept:
        """A real shadow page's bytes in the pool (PerPageShadow._at)."""
        return (self.segments[page >> self.segment_shift]
                + ((<int64_t>(page & self.segment_mask)) << self.page_shift))

    cdef int64_t index(self, int64_t pfn) except -1:
        """PerPageShadow._index() of a lowmem pfn: a chunk never made, by _make_chunk()."""
        cdef int c = self.chunk_of[pfn >> PS_CHUNK_SHIFT]
        if c < 0:
            c = self.scheme._make_chunk(pfn >> PS_CHUNK_SHIFT)
            self.refresh()
        return ((<int64_t>c) << PS_CHUNK_SHIFT) | (pfn & PS_CHUNK_MASK)

    cdef int bypass_page(self, uint64_t addr) noexcept:
        """PerPageShadow._bypass_page(): the real shadow page of addr's BYPASS page, else
        NO_PAGE."""
        cdef int64_t pfn, i
        cdef int c
        cdef PyObject *page
        if self.lm_start <= addr < self.lm_end:
            pfn = <int64_t>((addr - self.lm_delta) >> self.page_shift)
            c = self.chunk_of[pfn >> PS_CHUNK_SHIFT]
            if c < 0:
                return NO_PAGE_
            i = ((<int64_t>c) << PS_CHUNK_SHIFT) | (pfn & PS_CHUNK_MASK)
            if self.pshadow[i] != PER_PAGE_BYPASS:
                return NO_PAGE_
            return self.window_page[i >> SCALE_SHIFT]
        page = PyDict_GetItem(self.kernel_windows, <int64_t>(addr >> self.window_shift))
        return NO_PAGE_ if page == NULL else <int>(<object>page)

    cdef uint8_t *bypass_at(self, uint64_t addr, int64_t n) noexcept:
        """The byte shadow of [addr, addr + n * 8) when its page is BYPASS and holds it all."""
        cdef int page = self.bypass_page(addr)
        cdef int64_t start = (addr >> SCALE_SHIFT) & self.shadow_mask
        if page == NO_PAGE_ or start + n > (start | (self.granules_per_page - 1)) + 1:
            return NULL
        return self.shadow_page(page) + start

    cdef int claim(self, uint64_t addr, int64_t k, uint8_t value, bint is_uniform) except -1:
        """PerPageShadow._claim() of a direct-map page that is not BYPASS, when the per-page
        byte can say the write (0); NOT_HANDLED when it cannot."""
        cdef int64_t i, pfn = <int64_t>((addr - self.lm_delta) >> self.page_shift)
        cdef uint8_t *state
        if not is_uniform or not (self.lowmem_lo <= pfn < self.lowmem_hi):
            return NOT_HANDLED
        i = self.index(pfn)                     # (may move the arrays: index them after)
        state = self.pshadow + i
        if k == self.granules_per_page and (value == 0 or value == PAGE_FREE):
            state[0] = 0 if value == 0 else PER_PAGE_FREE
            return 0
        if value == (0 if state[0] == 0 else PAGE_FREE):
            return 0
        return NOT_HANDLED

    cdef int store(self, uint64_t addr, int64_t n, uint8_t value, const uint8_t *data) except -1:
        """PerPageShadow._store(): n shadow bytes from addr, page by page (value repeated when
        data is NULL), the pieces its C paths cannot do by the Python method."""
        cdef int64_t k, gpp = self.granules_per_page, done = 0
        cdef uint8_t *shadow
        cdef bint one_value
        while done < n:
            k = min(n - done, gpp - <int64_t>((addr >> SCALE_SHIFT) & (gpp - 1)))
            shadow = self.bypass_at(addr, k)
            if shadow != NULL:
                if data == NULL:
                    memset(shadow, value, k)
                else:
                    memcpy(shadow, data + done, k)
            else:
                if data != NULL:
                    value = data[done]
                    one_value = uniform(data + done, k, value)
                else:
                    one_value = True
                if not (self.lm_start <= addr < self.lm_end) or \
                        self.claim(addr, k, value, one_value) == NOT_HANDLED:
                    if data == NULL:
                        self.scheme._store(addr, k, value, None)
                    else:
                        self.scheme._store(addr, k, 0,
                                           PyBytes_FromStringAndSize(<char *>data + done, k))
                    self.refresh()
            done += k
            addr += (<uint64_t>k) << SCALE_SHIFT
        return 0

    cdef int poison(self, uint64_t addr, uint64_t size, uint8_t value) except -1:
        return self.store(addr, size >> SCALE_SHIFT, value, NULL)

    cdef int write(self, uint64_t addr, const uint8_t *data, int64_t n, object obj) except -1:
        return self.store(addr, n, 0, data)

    cdef int shadow_byte(self, uint64_t addr) except -1:
        cdef uint8_t *shadow = self.bypass_at(addr, 1)
        cdef int64_t pfn
        cdef int c, value
        if shadow != NULL:
            value = shadow[0]
            self.count(1, 2 if value else 1)         # poisoned: patch 11 reads the page byte
            return value
        if not (self.lm_start <= addr < self.lm_end):
            return self.scheme.shadow_byte(addr)
        pfn = <int64_t>((addr - self.lm_delta) >> self.page_shift)
        c = self.chunk_of[pfn >> PS_CHUNK_SHIFT]
        if c < 0:
            return self.scheme.shadow_byte(addr)     # _page_state() of a chunk never made
        value = PAGE_FREE if self.pshadow[((<int64_t>c) << PS_CHUNK_SHIFT)
                                          | (pfn & PS_CHUNK_MASK)] else 0
        self.count(1, 2)                             # the black page's FF, then the page byte
        return value

    cdef uint8_t *page_part(self, int page, int64_t vpn) noexcept:
        """A page's granules in its window's shadow page (PerPageShadow._page_part)."""
        return self.shadow_page(page) + (vpn & (PAGES_PER_WINDOW - 1)) * self.granules_per_page

    cdef int set_bypass(self, int64_t i, int64_t vpn) except -1:
        """PerPageShadow._set_bypass() of a page just allocated, at i in the per-pfn arrays
        (its part of the shadow page unpoisoned)."""
        cdef int page = self.window_page[i >> SCALE_SHIFT]
        memset(self.page_part(page, vpn), 0, self.granules_per_page)
        if self.pshadow[i] == PER_PAGE_BYPASS:
            return 0
        self.pshadow[i] = PER_PAGE_BYPASS
        self.page_bypass[page] += 1
        if self.page_bypass[page] == 1:
            self.scheme._needed += 1
        return 0

    cdef int clear_bypass(self, int64_t i, int64_t vpn, uint8_t state) except -1:
        """PerPageShadow._clear_bypass(): the per-page byte says state again, the page's part
        of the shadow page is the black page's FF."""
        cdef int page = self.window_page[i >> SCALE_SHIFT]
        self.pshadow[i] = state
        if self.pfn_views:
            self.pfn_views.pop(vpn - self.vpn_of_pfn, None)
        memset(self.page_part(page, vpn), PAGE_FREE, self.granules_per_page)
        self.page_bypass[page] -= 1
        if self.page_bypass[page] == 0:
            self.scheme._needed -= 1
        return 0

    cdef int set_pages(self, int64_t pfn, int64_t n, uint8_t used, uint8_t state) except -1:
        """PerPageShadow._set_pages(): the per-page bytes (state) and in-use bytes (used) of
        [pfn, pfn + n), a BYPASS page among them cleared first."""
        cdef int64_t p, i
        for p in range(pfn, pfn + n):
            i = self.index(p)
            self.in_use[i] = used
            if self.pshadow[i] == PER_PAGE_BYPASS:
                self.clear_bypass(i, p + self.vpn_of_pfn, state)
            self.pshadow[i] = state
        return 0

    cdef int page_of_window(self, int64_t window) except -2:
        """PerPageShadow._page_of() of a direct-map window (its chunk made)."""
        cdef int64_t i = self.index((window << SCALE_SHIFT) - self.vpn_of_pfn)
        return self.window_page[i >> SCALE_SHIFT]

    cdef int page_alloc(self, int64_t pfn, int order, int use, object use_obj) except -1:
        """PerPageShadow.page_alloc(): a slab, stack or large kmalloc page gets BYPASS over its
        window's shadow page, mapped here when it is not yet (_map_shadow, in Python); any other
        page's per-page byte says 0."""
        cdef int64_t n = 1 << order, window, p, first, last, i
        cdef list mapped
        if not (self.lowmem_lo <= pfn < self.lowmem_hi):
            return 1                                  # highmem has no shadow
        if not (BYTE_GRANULAR_MASK >> use) & 1:
            self.set_pages(pfn, n, 1, 0)
            return 1
        first = (pfn + self.vpn_of_pfn) >> SCALE_SHIFT
        last = (pfn + n - 1 + self.vpn_of_pfn) >> SCALE_SHIFT
        mapped = None
        for window in range(first, last + 1):
            if self.page_of_window(window) == NO_PAGE_:
                page = self.scheme._map_shadow(window)
                self.refresh()
                if page == NO_PAGE_:
                    for w in mapped or ():
                        self.scheme._unmap_shadow(w)
                    self.refresh()
                    return 0
                if mapped is None:
                    mapped = []
                mapped.append(window)
        for p in range(pfn, pfn + n):
            i = self.index(p)                   # (may move the arrays: index them after)
            self.in_use[i] = 1
        for p in range(pfn, pfn + n):
            self.set_bypass(self.index(p), p + self.vpn_of_pfn)
        return 1

    cdef int page_free(self, int64_t pfn, int order) except -1:
        cdef int64_t window, i
        cdef int64_t n = 1 << order
        cdef int page
        if not (self.lowmem_lo <= pfn < self.lowmem_hi):
            return 0
        self.set_pages(pfn, n, 0, PER_PAGE_FREE)
        for window in range((pfn + self.vpn_of_pfn) >> SCALE_SHIFT,
                            ((pfn + n - 1 + self.vpn_of_pfn) >> SCALE_SHIFT) + 1):
            i = self.index((window << SCALE_SHIFT) - self.vpn_of_pfn)
            page = self.window_page[i >> SCALE_SHIFT]
            if page == NO_PAGE_ or self.page_bypass[page]:
                continue
            if uniform(self.in_use + i, PAGES_PER_WINDOW, 0):      # _window_is_free()
                self.scheme._unmap_shadow(window)
                self.refresh()
        return 0


@cython.final
cdef class Lockstep:
    """lockstep.LockstepShadow's writes, reads and page hooks over compiled schemes."""


    def __init__(self, lockstep):
        self.lockstep = lockstep
        self.rebind()

    def rebind(self):
        """Look the schemes' containers up again (after their boot(), which binds some). A
        scheme with compiled fast paths gets its read counters kept here: its class becomes its
        counted twin (lockstep.COMPILED_COUNTERS), whose checks and loads are these."""
        schemes = []
        for s in self.lockstep.active:
            compiled = compiled_scheme(s)
            if type(compiled) is not Scheme:
                attrs = s.__dict__
                before = attrs.get("_compiled")
                if before is not None:
                    compiled.checks, compiled.loads = before.checks, before.loads
                else:
                    compiled.checks = attrs.pop("checks", 0)
                    compiled.loads = attrs.pop("loads", 0)
                attrs["_compiled"] = compiled
                s.__class__ = COMPILED_COUNTERS[REFERENCE.get(type(s), type(s))]
            schemes.append(compiled)
        self.schemes = schemes
        self.n = len(self.schemes)

    cdef int poison_(self, uint64_t addr, uint64_t size, uint8_t value) except -1:
        cdef Py_ssize_t i
        for i in range(self.n):
            (<Scheme>self.schemes[i]).poison(addr, size, value)
        return 0

    cdef int write_(self, uint64_t addr, const uint8_t *data, int64_t n, object obj) except -1:
        cdef Py_ssize_t i
        for i in range(self.n):
            (<Scheme>self.schemes[i]).write(addr, data, n, obj)
        return 0

    cdef int check_byte(self, uint64_t addr) except -1:
        """LockstepShadow.shadow_byte(): the reference's byte, every other scheme's checked."""
        cdef int want = (<Scheme>self.schemes[0]).shadow_byte(addr)
        cdef Py_ssize_t i
        for i in range(1, self.n):
            if (<Scheme>self.schemes[i]).shadow_byte(addr) != want:
                self.lockstep._diverged(addr, want)     # raises ShadowDivergence
                break
        return want

    # The Python methods, bound to the LockstepShadow instance (lockstep.py).

    def poison(self, uint64_t addr, uint64_t size, int value):
        self.poison_(addr, size, value)

    def write(self, uint64_t addr, data):
        if type(data) is not bytes:
            data = bytes(data)
        self.write_(addr, <const uint8_t *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), data)

    def set_byte(self, uint64_t addr, int value):
        cdef uint8_t byte = value
        self.write_(addr, &byte, 1, None)

    def shadow_byte(self, uint64_t addr):
        return self.check_byte(addr)

    def page_alloc(self, int64_t pfn, int order, use):
        """All schemes attach, or none: those that did are told to detach again."""
        cdef Py_ssize_t i, j
        cdef int u = use
        for i in range(self.n):
            if not (<Scheme>self.schemes[i]).page_alloc(pfn, order, u, use):
                for j in range(i):
                    (<Scheme>self.schemes[j]).page_free(pfn, order)
                return False
        return True

    def page_free(self, int64_t pfn, int order):
        cdef Py_ssize_t i
        for i in range(self.n):
            (<Scheme>self.schemes[i]).page_free(pfn, order)


def compiled_scheme(scheme) -> Scheme:
    """The compiled twin of a Python scheme's hot paths (its own methods when it has none)."""
    kind = REFERENCE.get(type(scheme), type(scheme))
    if kind is FlatShadow:
        return Flat(scheme)
    if kind is PerPageShadow:
        return PerPage(scheme)
    if kind in (PagePtrShadow, PageExtShadow) and getattr(scheme, "twin", None) is None:
        return PagePtr(scheme)
    return Scheme(scheme)
