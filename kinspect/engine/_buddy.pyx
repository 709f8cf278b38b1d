"""The compiled page allocator: buddy.BuddyZone in C (issue 12).

``BuddyZone`` has buddy.py's interface and gives the same answers: ``alloc()`` is
``__rmqueue_smallest()`` (the lowest free block of the smallest order that fits, split by
``expand()``), ``free()`` is ``__free_one_page()`` (merge with free buddies up to
MAX_PAGE_ORDER), memory never handed out stays as ranges of max-order blocks. The Python zone
stays the reference: tests/test_native_buddy.py runs both on random allocations and frees.

The state is flat, indexed by pfn as the kernel indexes struct page:
- ``buddy_order``: per pfn, order + 1 when the page heads a free block of that order (the
  kernel's PageBuddy() and buddy_order(), page->private), 0 otherwise; kept in sections of
  SECTION_PAGES pages made when first written, so that a 1 TB zone costs nothing until used,
- per order, the heads of its free blocks in a min-heap of pfns, where the kernel has the
  free_area[order].free_list of page->lru links: the reference hands out the lowest block
  first, and a heap finds it without walking a list. A head leaves the heap lazily: an entry
  whose page no longer heads a free block of that order is skipped when it comes up.
"""

from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free, qsort, realloc
from libc.string cimport memset

cdef enum:
    SECTION_SHIFT = 16
    SECTION_PAGES = 1 << SECTION_SHIFT
    MAX_ORDERS = 32


cdef struct PfnHeap:
    int64_t *pfns
    Py_ssize_t len, cap


cdef bint heap_push(PfnHeap *heap, int64_t pfn) except False:
    cdef Py_ssize_t i, parent
    cdef int64_t *grown
    if heap.len == heap.cap:
        grown = <int64_t *>realloc(heap.pfns, (heap.cap * 2 + 16) * sizeof(int64_t))
        if grown == NULL:
            raise MemoryError()
        heap.pfns, heap.cap = grown, heap.cap * 2 + 16
    i = heap.len
    heap.len += 1
    while i > 0:
        parent = (i - 1) >> 1
        if heap.pfns[parent] <= pfn:
            break
        heap.pfns[i] = heap.pfns[parent]
        i = parent
    heap.pfns[i] = pfn
    return True


cdef int64_t heap_pop(PfnHeap *heap) noexcept:
    """The lowest pfn, taken out (the heap is not empty)."""
    cdef int64_t top = heap.pfns[0], last
    cdef Py_ssize_t i = 0, child
    heap.len -= 1
    last = heap.pfns[heap.len]
    while True:
        child = 2 * i + 1
        if child >= heap.len:
            break
        if child + 1 < heap.len and heap.pfns[child + 1] < heap.pfns[child]:
            child += 1
        if heap.pfns[child] >= last:
            break
        heap.pfns[i] = heap.pfns[child]
        i = child
    if heap.len:
        heap.pfns[i] = last
    return top


cdef class BuddyZone:
    """``struct zone``'s ``free_area[]`` for one zone."""

    cdef public str name
    cdef public int index, max_order
    cdef public long long present_pages, free_pages
    cdef list _untouched                 # [start, end) pfn runs of max-order blocks
    cdef uint8_t **sections              # buddy_order by pfn, SECTION_PAGES per section
    cdef Py_ssize_t nr_sections
    cdef PfnHeap heaps[MAX_ORDERS]
    cdef long long nr_listed[MAX_ORDERS]   # free blocks per order, outside _untouched

    def __cinit__(self):
        self.sections = NULL
        self.nr_sections = 0
        memset(self.heaps, 0, sizeof(self.heaps))
        memset(self.nr_listed, 0, sizeof(self.nr_listed))

    def __init__(self, str name, int index, int max_order):
        if not 0 <= max_order < MAX_ORDERS:
            raise ValueError(f"max_order {max_order} out of range")
        self.name = name
        self.index = index
        self.max_order = max_order
        self._untouched = []
        self.present_pages = 0
        self.free_pages = 0

    def __dealloc__(self):
        cdef Py_ssize_t k
        for k in range(self.nr_sections):
            free(self.sections[k])
        free(self.sections)
        for k in range(MAX_ORDERS):
            free(self.heaps[k].pfns)

    def __reduce__(self):
        """Pickled as its free blocks (checkpoints pickle the machine)."""
        return (_restore_zone, (self.name, self.index, self.max_order, self.present_pages,
                                self.free_pages, list(self._untouched),
                                [self._listed(order) for order in range(self.max_order + 1)]))

    cdef list _listed(self, int order):
        """The heads of the listed free blocks of an order, lowest first."""
        cdef Py_ssize_t k
        cdef PfnHeap *heap = &self.heaps[order]
        heads = set()
        for k in range(heap.len):
            if self.buddy_order(heap.pfns[k]) == order + 1:
                heads.add(heap.pfns[k])
        return sorted(heads)

    # ------------------------------------------------------------------ the per-pfn state

    cdef inline int buddy_order(self, int64_t pfn) noexcept:
        """order + 1 if pfn heads a free block of that order, else 0."""
        cdef Py_ssize_t k = pfn >> SECTION_SHIFT
        if pfn < 0 or k >= self.nr_sections or self.sections[k] == NULL:
            return 0
        return self.sections[k][pfn & (SECTION_PAGES - 1)]

    cdef bint set_buddy_order(self, int64_t pfn, int value) except False:
        cdef Py_ssize_t k = pfn >> SECTION_SHIFT, n
        cdef uint8_t **grown
        if k >= self.nr_sections:
            n = max(k + 1, 2 * self.nr_sections)
            grown = <uint8_t **>realloc(self.sections, n * sizeof(uint8_t *))
            if grown == NULL:
                raise MemoryError()
            memset(grown + self.nr_sections, 0, (n - self.nr_sections) * sizeof(uint8_t *))
            self.sections, self.nr_sections = grown, n
        if self.sections[k] == NULL:
            if value == 0:
                return True
            self.sections[k] = <uint8_t *>calloc(SECTION_PAGES, 1)
            if self.sections[k] == NULL:
                raise MemoryError()
        self.sections[k][pfn & (SECTION_PAGES - 1)] = value
        return True

    cdef inline void clear_buddy_order(self, int64_t pfn) noexcept:
        """The page heads no free block any more (its section exists: it did)."""
        self.sections[pfn >> SECTION_SHIFT][pfn & (SECTION_PAGES - 1)] = 0

    cdef bint push(self, int64_t pfn, int order) except False:
        """Put a free block on its order's list (``__add_to_free_list()``)."""
        cdef PfnHeap *heap = &self.heaps[order]
        self.set_buddy_order(pfn, order + 1)
        self.nr_listed[order] += 1
        heap_push(heap, pfn)
        if heap.len > 2 * self.nr_listed[order] + 64:
            self.compact(order)
        return True

    cdef void unlist(self, int64_t pfn, int order) noexcept:
        """Take a listed free block off its order's list (``__del_page_from_free_list()``);
        its heap entry goes when it comes up."""
        self.clear_buddy_order(pfn)
        self.nr_listed[order] -= 1

    cdef void compact(self, int order) noexcept:
        """Rebuild an order's heap from the blocks still listed: entries of blocks that
        merged away or were taken stay in the heap until popped, so now and then it is
        rebuilt lest it grow beyond the free blocks. Sorted pfns are a heap."""
        cdef PfnHeap *heap = &self.heaps[order]
        cdef Py_ssize_t k, kept = 0
        cdef int64_t pfn
        for k in range(heap.len):
            pfn = heap.pfns[k]
            if self.buddy_order(pfn) == order + 1:
                heap.pfns[kept] = pfn
                kept += 1
        heap.len = kept
        sort_unique(heap)

    cdef int64_t pop_lowest(self, int order) noexcept:
        """The lowest listed block of an order, taken off its list; -1 if none."""
        cdef PfnHeap *heap = &self.heaps[order]
        cdef int64_t pfn
        while heap.len:
            pfn = heap_pop(heap)
            if self.buddy_order(pfn) == order + 1:
                self.unlist(pfn, order)
                return pfn
        return -1

    cdef int64_t lowest(self, int order) noexcept:
        """The lowest listed block of an order, left listed; -1 if none."""
        cdef PfnHeap *heap = &self.heaps[order]
        while heap.len and self.buddy_order(heap.pfns[0]) != order + 1:
            heap_pop(heap)
        return heap.pfns[0] if heap.len else -1

    # ------------------------------------------------------------------ buddy.py's interface

    def add_range(self, long long start, long long end):
        """Give [start, end) (pfns) to the zone at boot (``memblock_free_all()``)."""
        self.present_pages += end - start
        cdef long long step = 1LL << self.max_order
        cdef long long first = (start + step - 1) // step * step       # pfns are >= 0
        cdef long long last = end // step * step
        if first >= last:
            self.free_unaligned(start, end)
            return
        self.free_unaligned(start, first)
        self._untouched.append((first, last))
        self._untouched.sort()
        self.free_pages += last - first
        self.free_unaligned(last, end)

    cdef free_unaligned(self, long long start, long long end):
        cdef long long pfn = start
        cdef int order
        while pfn < end:
            order = self.max_order
            while order and (pfn & ((1LL << order) - 1) or pfn + (1LL << order) > end):
                order -= 1
            self.push(pfn, order)
            self.free_pages += 1LL << order
            pfn += 1LL << order

    cdef int64_t take_max_order(self) except -2:
        """The lowest max-order block, listed or never handed out; -1 if none."""
        cdef int top = self.max_order
        cdef int64_t listed = self.lowest(top), start, end, nxt
        if self._untouched and (listed < 0 or self._untouched[0][0] < listed):
            start, end = self._untouched[0]
            nxt = start + (1LL << top)
            if nxt >= end:
                self._untouched.pop(0)
            else:
                self._untouched[0] = (nxt, end)
            return start
        if listed >= 0:
            return self.pop_lowest(top)
        return -1

    def alloc(self, int order):
        """``__rmqueue_smallest()``: the lowest block of the smallest order that fits, split."""
        cdef int current, top = self.max_order
        cdef int64_t pfn
        for current in range(order, top + 1):
            if current == top:
                pfn = self.take_max_order()
                if pfn < 0:
                    return None
            else:
                if self.nr_listed[current] == 0:
                    continue                # no free block of this order
                pfn = self.pop_lowest(current)
            while current > order:          # expand(): give back the upper halves
                current -= 1
                self.push(pfn + (1LL << current), current)
            self.free_pages -= 1LL << order
            return pfn
        return None

    def free(self, long long pfn, int order):
        """``__free_one_page()``: merge with free buddies up to MAX_PAGE_ORDER."""
        cdef long long buddy
        cdef int top = self.max_order
        self.free_pages += 1LL << order
        while order < top:
            buddy = pfn ^ (1LL << order)
            if self.buddy_order(buddy) != order + 1:
                break
            self.unlist(buddy, order)
            pfn &= ~(1LL << order)
            order += 1
        self.push(pfn, order)

    def find_free_block(self, long long pfn):
        """(head pfn, order) of the free block holding pfn, or None if pfn is allocated."""
        cdef int order
        cdef long long head, top
        for order in range(self.max_order + 1):
            head = pfn & ~((1LL << order) - 1)
            if self.buddy_order(head) == order + 1:
                return head, order
        top = pfn & ~((1LL << self.max_order) - 1)
        for start, end in self._untouched:
            if start <= top < end:
                return top, self.max_order
        return None

    def nr_free(self):
        """Free blocks per order (``/proc/buddyinfo``)."""
        counts = [self.nr_listed[order] for order in range(self.max_order + 1)]
        for start, end in self._untouched:
            counts[self.max_order] += (end - start) >> self.max_order
        return counts


cdef int compare_pfns(const void *a, const void *b) noexcept nogil:
    cdef int64_t x = (<const int64_t *>a)[0], y = (<const int64_t *>b)[0]
    return (x > y) - (x < y)


cdef void sort_unique(PfnHeap *heap) noexcept:
    """Sort a heap's pfns and drop repeats (a block freed, merged away and freed again while
    its first entry waited has two)."""
    cdef Py_ssize_t i, kept = 0
    qsort(heap.pfns, heap.len, sizeof(int64_t), compare_pfns)
    for i in range(heap.len):
        if kept == 0 or heap.pfns[kept - 1] != heap.pfns[i]:
            heap.pfns[kept] = heap.pfns[i]
            kept += 1
    heap.len = kept


def _restore_zone(name, index, max_order, present_pages, free_pages, untouched, listed):
    """A pickled BuddyZone back (its __reduce__)."""
    cdef BuddyZone zone = BuddyZone(name, index, max_order)
    cdef int order
    zone.present_pages = present_pages
    zone.free_pages = free_pages
    zone._untouched = untouched
    for order, heads in enumerate(listed):
        for pfn in heads:
            zone.push(pfn, order)
    return zone
