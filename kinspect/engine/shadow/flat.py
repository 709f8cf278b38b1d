"""The flat shadow of mainline generic KASAN: shadow = (addr >> 3) + KASAN_SHADOW_OFFSET.

The reference scheme. The whole shadow region is reserved at boot (1/8 of the covered memory);
the simulator stores it sparsely, in chunks created on first touch, so a 1 TB profile costs
nothing until used.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from ..kasan import KASAN_SHADOW_SCALE_SHIFT
from .base import Footprint, SegmentViews, ShadowScheme

CHUNK_SHIFT = 21  # one chunk shadows 2 MiB of memory
CHUNK_GRANULES = 1 << (CHUNK_SHIFT - KASAN_SHADOW_SCALE_SHIFT)
assert (CHUNK_SHIFT, CHUNK_GRANULES) == (21, 0x40000)  # spelled out in write(), poison()
_FILL = [bytes([v]) for v in range(256)]


class FlatShadow(SegmentViews, ShadowScheme):
    """Byte-per-granule shadow, as mm/kasan/generic.c sees it.

    Boot-time shadow comes from ``machine.initial_shadow_byte(addr)`` (free RAM is
    KASAN_PAGE_FREE, the vmalloc space KASAN_VMALLOC_INVALID...). Costs: the shadow of all
    lowmem is reserved at boot (1/8), inside a contiguous virtual range (the profile's shadow
    region); with KASAN_VMALLOC, vmalloc shadow pages are allocated on demand.
    """

    name = "flat"
    _SEGMENTS = ("_chunks", "_chunk_views")  # the chunks, by key (SegmentViews)

    def __init__(self, machine, **_options) -> None:
        p = machine.profile
        self._initial_byte = machine.initial_shadow_byte
        self._initial_edges = machine.initial_shadow_edges()
        self._chunks: dict[int, bytearray] = {}
        self._chunk_views: dict[int, memoryview] = {}  # the chunks' views, for writes
        self._static_bytes = machine.lowmem_bytes() >> KASAN_SHADOW_SCALE_SHIFT
        self._virtual_range_bytes = p.kasan_shadow_end - p.kasan_shadow_start
        self._vmalloc = (p.vmalloc_start, p.vmalloc_end)
        self._vmalloc_start, self._vmalloc_end = self._vmalloc
        self._page_shift = p.page_shift
        self._vmalloc_shadow_pages: set[int] = set()
        self._vmalloc_peak = 0
        self.inline_possible = p.inline_instrumentation

    def _initial_chunk(self, key: int) -> bytes:
        """The boot-time shadow of a chunk, page by page (a chunk may hold RAM and holes):
        each page's the shadow of its first byte, asked once for the pages between two of
        ``initial_shadow_edges`` (where the answer may change), not once a page."""
        base = key << CHUNK_SHIFT
        end = base + (1 << CHUNK_SHIFT)
        page_shift = self._page_shift
        per_page = 1 << (page_shift - KASAN_SHADOW_SCALE_SHIFT)
        edges = self._initial_edges
        cuts = [base, *edges[bisect_right(edges, base) : bisect_left(edges, end)], end]
        out = bytearray()
        for lo, hi in zip(cuts, cuts[1:]):
            first = (lo - base + (1 << page_shift) - 1) >> page_shift  # pages starting in it
            last = (hi - base + (1 << page_shift) - 1) >> page_shift
            if first < last:
                value = self._initial_byte(base + (first << page_shift))
                out += _FILL[value] * (per_page * (last - first))
        return bytes(out)

    def _chunk(self, key: int) -> bytearray:
        chunk = self._chunks.get(key)
        if chunk is None:
            chunk = self._chunks[key] = bytearray(self._initial_chunk(key))
            self._chunk_views[key] = memoryview(chunk)
        return chunk

    def _populate_vmalloc(self, addr: int, size: int) -> None:
        """``kasan_populate_vmalloc()``: shadow pages for a vmalloc range, allocated once."""
        first = (addr >> KASAN_SHADOW_SCALE_SHIFT) >> self._page_shift
        last = ((addr + size - 1) >> KASAN_SHADOW_SCALE_SHIFT) >> self._page_shift
        self._vmalloc_shadow_pages.update(range(first, last + 1))
        self._vmalloc_peak = max(self._vmalloc_peak, len(self._vmalloc_shadow_pages))

    def poison(self, addr: int, size: int, value: int) -> None:
        if self._vmalloc_start <= addr < self._vmalloc_end and size:
            self._populate_vmalloc(addr, size)
        granules = size >> 3  # KASAN_SHADOW_SCALE_SHIFT
        view = self._chunk_views.get(addr >> 21)  # CHUNK_SHIFT
        start = (addr >> 3) & 0x3FFFF  # granule index in the chunk
        if view is not None and start + granules <= 0x40000:  # CHUNK_GRANULES
            view[start : start + granules] = _FILL[value] * granules
            return
        while granules > 0:
            key = addr >> CHUNK_SHIFT
            chunk = self._chunks.get(key) or self._chunk(key)
            start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)
            n = min(granules, CHUNK_GRANULES - start)
            chunk[start : start + n] = _FILL[value] * n
            granules -= n
            addr += n << KASAN_SHADOW_SCALE_SHIFT

    def write(self, addr: int, data: bytes) -> None:
        view = self._chunk_views.get(addr >> 21)  # CHUNK_SHIFT
        start = (addr >> 3) & 0x3FFFF  # granule index in the chunk
        end = start + len(data)
        if view is not None and end <= 0x40000:  # CHUNK_GRANULES
            view[start:end] = data
            return
        n = len(data)
        done = 0
        while done < n:
            key = addr >> CHUNK_SHIFT
            chunk = self._chunks.get(key) or self._chunk(key)
            start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)
            k = min(n - done, CHUNK_GRANULES - start)
            chunk[start : start + k] = data[done : done + k]
            done += k
            addr += k << KASAN_SHADOW_SCALE_SHIFT

    def set_byte(self, addr: int, value: int) -> None:
        key = addr >> CHUNK_SHIFT
        chunk = self._chunks.get(key) or self._chunk(key)
        chunk[(addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)] = value

    def shadow_byte(self, addr: int) -> int:
        self.checks += 1
        chunk = self._chunks.get(addr >> CHUNK_SHIFT)
        if chunk is None:
            return self._initial_byte(addr)
        return chunk[(addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)]

    def read(self, addr: int, size: int) -> bytes:
        out = bytearray()
        granules = size >> KASAN_SHADOW_SCALE_SHIFT
        while granules > 0:
            key = addr >> CHUNK_SHIFT
            start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)
            n = min(granules, CHUNK_GRANULES - start)
            chunk = self._chunks.get(key)
            if chunk is None:
                out += self._initial_chunk(key)[start : start + n]
            else:
                out += chunk[start : start + n]
            granules -= n
            addr += n << KASAN_SHADOW_SCALE_SHIFT
        return bytes(out)

    def footprint(self) -> Footprint:
        page = 1 << self._page_shift
        return Footprint(
            static_bytes=self._static_bytes,
            dynamic_bytes=len(self._vmalloc_shadow_pages) * page,
            dynamic_peak_bytes=self._vmalloc_peak * page,
            virtual_range_bytes=self._virtual_range_bytes,
            checks=self.checks,
            loads=self.checks,  # one load per read
            inline_possible=self.inline_possible,
            stack_possible=True,
        )

    def shadow_link(self, pfn: int) -> str | None:
        return "flat shadow (KASAN_SHADOW_OFFSET + addr >> 3)"
