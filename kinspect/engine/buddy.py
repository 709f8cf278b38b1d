"""The page allocator: a buddy allocator per zone, orders 0..MAX_PAGE_ORDER.

Deterministic: every order hands out its lowest free block first (the kernel takes the head of
a free list whose order depends on history; kinspect fixes "lowest address first" so that runs
are reproducible and memory fills from the bottom of each zone). Blocks merge with their buddy
on free as in ``__free_one_page()``. Memory never handed out is kept as ranges of max-order
blocks, so a 1 TB zone costs a few tuples until it is used.
"""

from __future__ import annotations

import heapq
from heapq import heappop, heappush


class BuddyZone:
    """``struct zone``'s ``free_area[]`` for one zone."""

    def __init__(self, name: str, index: int, max_order: int) -> None:
        self.name = name
        self.index = index
        self.max_order = max_order
        self._free: list[set[int]] = [set() for _ in range(max_order + 1)]
        self._heap: list[list[int]] = [[] for _ in range(max_order + 1)]
        self._untouched: list[tuple[int, int]] = []  # [start, end) pfn runs of max-order blocks
        self.present_pages = 0
        self.free_pages = 0

    def add_range(self, start: int, end: int) -> None:
        """Give [start, end) (pfns) to the zone at boot (``memblock_free_all()``)."""
        self.present_pages += end - start
        top = self.max_order
        step = 1 << top
        first = -(-start // step) * step
        last = end // step * step
        if first >= last:
            self._free_unaligned(start, end)
            return
        self._free_unaligned(start, first)
        self._untouched.append((first, last))
        self._untouched.sort()
        self.free_pages += last - first
        self._free_unaligned(last, end)

    def _free_unaligned(self, start: int, end: int) -> None:
        pfn = start
        while pfn < end:
            order = self.max_order
            while order and (pfn & ((1 << order) - 1) or pfn + (1 << order) > end):
                order -= 1
            self._push(pfn, order)
            self.free_pages += 1 << order
            pfn += 1 << order

    def _push(self, pfn: int, order: int) -> None:
        free = self._free[order]
        free.add(pfn)
        heap = self._heap[order]
        heappush(heap, pfn)
        if len(heap) > 2 * len(free) + 64:
            # Freed blocks that merged away stay in the heap until popped: rebuild it from
            # the free set now and then, so that it never grows beyond the free blocks.
            heap[:] = free
            heapq.heapify(heap)

    def _pop_lowest(self, order: int) -> int | None:
        heap = self._heap[order]
        free = self._free[order]
        while heap:
            pfn = heapq.heappop(heap)
            if pfn in free:
                free.discard(pfn)
                return pfn
        return None

    def _lowest(self, order: int) -> int | None:
        heap = self._heap[order]
        free = self._free[order]
        while heap and heap[0] not in free:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def _take_max_order(self) -> int | None:
        top = self.max_order
        listed = self._lowest(top)
        if self._untouched and (listed is None or self._untouched[0][0] < listed):
            start, end = self._untouched[0]
            nxt = start + (1 << top)
            if nxt >= end:
                self._untouched.pop(0)
            else:
                self._untouched[0] = (nxt, end)
            return start
        if listed is not None:
            return self._pop_lowest(top)
        return None

    def alloc(self, order: int) -> int | None:
        """``__rmqueue_smallest()``: the lowest block of the smallest order that fits, split."""
        free = self._free
        top = self.max_order
        for current in range(order, top + 1):
            if current == top:
                pfn = self._take_max_order()
                if pfn is None:
                    return None
            else:
                listed = free[current]
                if not listed:
                    continue  # no free block of this order
                # _pop_lowest(), inlined: a non-empty set has all its blocks in the heap.
                heap = self._heap[current]
                pfn = heappop(heap)
                while pfn not in listed:
                    pfn = heappop(heap)
                listed.discard(pfn)
            while current > order:  # expand(): give back the upper halves
                current -= 1
                self._push(pfn + (1 << current), current)
            self.free_pages -= 1 << order
            return pfn
        return None

    def free(self, pfn: int, order: int) -> None:
        """``__free_one_page()``: merge with free buddies up to MAX_PAGE_ORDER."""
        self.free_pages += 1 << order
        free = self._free
        top = self.max_order
        while order < top:
            buddy = pfn ^ (1 << order)
            listed = free[order]
            if buddy not in listed:
                break
            listed.discard(buddy)
            pfn &= ~(1 << order)
            order += 1
        self._push(pfn, order)

    def find_free_block(self, pfn: int) -> tuple[int, int] | None:
        """(head pfn, order) of the free block holding pfn, or None if pfn is allocated."""
        for order in range(self.max_order + 1):
            head = pfn & ~((1 << order) - 1)
            if head in self._free[order]:
                return head, order
        top = pfn & ~((1 << self.max_order) - 1)
        for start, end in self._untouched:
            if start <= top < end:
                return top, self.max_order
        return None

    def nr_free(self) -> list[int]:
        """Free blocks per order (``/proc/buddyinfo``)."""
        counts = [len(s) for s in self._free]
        counts[self.max_order] += sum((e - s) >> self.max_order for s, e in self._untouched)
        return counts
