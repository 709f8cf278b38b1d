"""Joonsoo Kim's per-page shadow ("pshadow"), v1 of May 2017: byte shadow only where needed.

The series: "[PATCH v1 00/11] mm/kasan: support per-page shadow memory to reduce memory
consumption", 2017-05-16
(https://lore.kernel.org/r/1494897409-14408-1-git-send-email-iamjoonsoo.kim@lge.com; patches
01-11 are ...14408-2 to ...14408-12). Never merged (Ryabinin's nack, 2017-06-13).

- **Per-page shadow** (patch 05): one byte per page of lowmem, reserved at boot,
  pshadow = (addr >> PAGE_SHIFT) + kasan_pshadow_offset. ``0``: page allocated, valid;
  ``KASAN_PER_PAGE_FREE``: page free; ``KASAN_PER_PAGE_BYPASS``: the byte shadow decides.
  ``kasan_alloc_pages()`` writes 0 and ``kasan_free_pages()`` writes FREE over whole pages.
- **Byte shadow** (patch 04): the flat 1/8 range stays reserved, mapped read-only to
  ``kasan_black_page`` (all 0xFF, the same byte as KASAN_PAGE_FREE and as BYPASS) wherever it has
  no real page. One real shadow page (PAGE_SIZE bytes) covers a window of 8 pages, an aligned
  order-3 block.
- **On demand** (patches 06, 08, 09): when a page becomes slab, kernel stack or large kmalloc
  (``kasan_slab_page_alloc``, ``kasan_stack_alloc``, ``kmalloc_order``), ``kasan_map_shadow``
  maps a real shadow page over its window, a copy of the black page, unpoisons the page's
  part and marks the page BYPASS. The shadow page comes from the buddy allocator of the
  simulated machine, so shadow competes with the workload for pages. kinspect also switches a
  page to BYPASS when a write gives it bytes its per-page value cannot say: neither what that
  value implies (00 or FF) nor a whole page of 00 or FF (which sets the per-page byte).
- **Kernel image and vmalloc** (patch 07): permanently BYPASS; kinspect maps their byte shadow
  window by window on first write (the kernel mapped the image's at boot), filled with the boot
  shadow of that address (``machine.initial_shadow_byte``), and never unmaps it.
- **Freeing** (patch 10): the series hooks ``__free_one_page()``; ``kasan_free_buddy`` takes
  free blocks of order >= 3 whose shadow is real, and a workqueue unmaps it and frees the shadow
  page. kinspect does it synchronously: a window's shadow page goes back to the buddy as soon as
  all 8 of its pages are free again.
- **Check order** (patch 11): byte shadow first (one load); only when it reads poisoned, the
  per-page byte too (a second load). A direct-map page that is not BYPASS reads the black page's
  FF, so its checks always cost two loads.

The window geometry is virtual: window = addr >> (PAGE_SHIFT + KASAN_SHADOW_SCALE_SHIFT), the
page of shadow that ``kasan_mem_to_shadow()`` gives; in the direct map that is pfn >> 3 when
PAGE_OFFSET - PHYS_OFFSET is window aligned, as on every profile.
"""

from __future__ import annotations

from array import array
from typing import NamedTuple

from ..kasan import KASAN_PAGE_FREE, KASAN_SHADOW_SCALE_SHIFT
from .base import BYTE_GRANULAR_USES, Footprint, PageUse, SegmentViews, ShadowScheme
from .pageptr import SEGMENT_SHIFT, SEGMENT_SIZE, grown

# Per-page shadow values, patch 05.
KASAN_PER_PAGE_FREE = 0xFE
KASAN_PER_PAGE_BYPASS = 0xFF

PAGES_PER_WINDOW = 1 << KASAN_SHADOW_SCALE_SHIFT  # pages covered by one shadow page
CHUNK_SHIFT = 12  # per-page shadow kept in 4096-page chunks
CHUNK_PAGES = 1 << CHUNK_SHIFT
CHUNK_MASK = CHUNK_PAGES - 1
WINDOWS_PER_CHUNK = CHUNK_PAGES >> KASAN_SHADOW_SCALE_SHIFT
NO_PAGE = -1  # a window without a real shadow page (the black page's)
assert KASAN_SHADOW_SCALE_SHIFT == 3  # spelled out in write(), shadow_byte()
ARM_PTRS_PER_PTE = 512  # arch/arm/include/asm/pgtable-2level.h: Linux + hardware tables
_FILL = [bytes([v]) for v in range(256)]

# The scheme's state is a handful of flat arrays (issue 12), no object per page or window:
#
# * per lowmem pfn, in chunks of CHUNK_PAGES pfns made on first touch (at boot state):
#   ``_pshadow``, the per-page shadow byte (kasan_pshadow, patch 05), and ``_in_use``, 1 where
#   the page is not in the buddy; per direct-map window of those pfns (the chunk's
#   WINDOWS_PER_CHUNK windows, as the chunk is window aligned), ``_window_page``: its real
#   shadow page, an index in the pool (NO_PAGE: the black page). ``_chunk_of[pfn >>
#   CHUNK_SHIFT]`` is the chunk's index in them (-1: never made);
# * the pool of real shadow pages: ``_shadow``, segments of SEGMENT_SIZE bytes made as needed
#   (never moved nor copied), page i's PAGE_SIZE bytes in segment i >> _segment_shift at
#   (i & _segment_mask) * PAGE_SIZE;
#   ``_page_pfn``, the buddy page it is (NO_PAGE when the slot is free); ``_page_window``, the
#   window it is mapped over, or for a free slot the next free slot (``_free_page`` the
#   first); ``_page_bypass``, its window's pages that are KASAN_PER_PAGE_BYPASS;
# * ``_kernel_windows``: the windows of the kernel image and vmalloc space mapped (patch 07:
#   permanently BYPASS), window -> page, a small dict; ``_pte_pages``, the page-table pages
#   of the shadow mapping ever populated, a small set.
#
# Arrays grow by replacement, never in place (the compiled twin, _schemes.PerPage, points into
# them and takes their addresses again after any Python method).


class MappedWindow(NamedTuple):
    """A window with a real shadow page, for views."""

    pfn: int | None  # first pfn of the window; None outside the direct map (image, vmalloc)
    shadow_pfn: int  # the real shadow page mapped over it
    bypass_pages: int  # its pages whose per-page shadow is KASAN_PER_PAGE_BYPASS


class PerPageShadow(SegmentViews, ShadowScheme):
    """Per-page shadow for all lowmem, byte shadow mapped per 8-page window on demand."""

    name = "pshadow"
    _PFN_VIEWS = "_bypass_views"  # BYPASS pages' byte shadow, by pfn (SegmentViews)

    def __init__(self, machine, **_options) -> None:
        p = machine.profile
        self._machine = machine
        self._profile = p
        self._initial_byte = machine.initial_shadow_byte
        ps = p.page_shift
        self._page_shift = ps
        self._page_size = 1 << ps
        self._window_shift = ps + KASAN_SHADOW_SCALE_SHIFT
        self._shadow_mask = self._page_size - 1  # a granule's byte in its shadow page
        self._granules_per_page = self._page_size >> KASAN_SHADOW_SCALE_SHIFT
        self._granule_mask = self._granules_per_page - 1  # a granule's place in its page
        self._lm_delta = p.page_offset - p.phys_offset
        self._vpn_of_pfn = self._lm_delta >> ps  # virtual page number = pfn + this
        # a chunk of pfns is a whole number of windows: a window's slot is its pfns' index >> 3
        assert self._vpn_of_pfn % PAGES_PER_WINDOW == 0, "direct map not window aligned"
        self._direct_map = (p.page_offset, p.high_memory)
        self._lm_start, self._lm_end = self._direct_map
        self._pa_start, self._pa_end = p.phys_offset, p.high_memory - self._lm_delta  # __pa()
        self._lowmem = (p.phys_offset >> ps, p.max_low_pfn)
        # per lowmem pfn and window (see above)
        self._chunk_of = array("i", [-1]) * ((p.max_low_pfn >> CHUNK_SHIFT) + 1)
        self._nchunks = 0
        self._pshadow = bytearray()
        self._in_use = bytearray()
        self._window_page = array("i")
        # the pool of real shadow pages (see above)
        self._shadow: list[bytearray] = []
        # A BYPASS lowmem page's part of its window's shadow page as a view of the pool, by
        # pfn: the hot paths' one look-up (write, shadow_byte: _bypass_view() fills it on a
        # miss). Whoever clears a page's BYPASS drops its pfn (_clear_bypass; on the native
        # engine _schemes.PerPage.clear_bypass), so a view is never stale: a window keeps its
        # shadow page while one of its pages is BYPASS, and the pool's pages never move.
        self._bypass_views: dict[int, memoryview] = {}
        self._segment_shift = SEGMENT_SHIFT - ps
        self._segment_mask = (1 << self._segment_shift) - 1
        self._page_pfn = array("q")
        self._page_window = array("q")
        self._page_bypass = array("i")
        self._npages = 0  # slots ever used (high-water mark)
        self._free_page = NO_PAGE
        self._mapped = 0  # real shadow pages mapped now
        self._kernel_windows: dict[int, int] = {}  # image/vmalloc window -> its page
        self._needed = 0  # windows holding a BYPASS page
        # Page-table pages: the on-demand mapping needs a real PTE page (in place of the shared
        # kasan_black_pte) for each PTRS_PER_PTE slots of byte-shadow virtual range that get a
        # real shadow page: 512 x 8-byte entries per 4K page on 64-bit (2 MiB of shadow), 1024
        # on 32-bit with 4-byte entries, 512 on arm (two hardware tables and their Linux shadow
        # in one page). Like vunmap(), unmapping leaves the PTE page in place, so these are PTE
        # pages ever populated. Upper levels (a PMD page per PTRS_PER_PMD PTE pages) are not
        # counted.
        ptrs_per_pte = ARM_PTRS_PER_PTE if p.arch == "arm" else self._page_size // p.word_size
        self._pte_shift = ps + ptrs_per_pte.bit_length() - 1
        self._pte_pages: set[int] = set()
        self._dynamic_peak = 0
        self.checks = 0
        # Static: the per-page shadow of all lowmem (kasan_pshadow, patch 05), plus the shared
        # read-only kasan_zero_page and kasan_black_page (patch 04), counted once.
        self._static_bytes = (machine.lowmem_bytes() >> ps) + 2 * self._page_size
        # Virtual: the whole byte-shadow region stays reserved (black and zero mappings), and the
        # per-page shadow needs one byte per page of the address space the byte shadow covers:
        # KASAN_PSHADOW_SIZE = 1 << (47 - PAGE_SHIFT) on x86_64 4-level (16 TiB << 3 = 2^47).
        byte_shadow = p.kasan_shadow_end - p.kasan_shadow_start
        self._virtual_range_bytes = byte_shadow + ((byte_shadow << KASAN_SHADOW_SCALE_SHIFT) >> ps)

    # ------------------------------------------------------------------- per-page shadow

    def _index(self, pfn: int) -> int:
        """Where a lowmem pfn's bytes are in _pshadow and _in_use (its window's slot in
        _window_page: this >> 3), the chunk made at boot state on first touch: free RAM is
        KASAN_PER_PAGE_FREE; reserved pages and holes are 0 and never free."""
        c = self._chunk_of[pfn >> CHUNK_SHIFT]
        if c < 0:
            c = self._make_chunk(pfn >> CHUNK_SHIFT)
        return (c << CHUNK_SHIFT) | (pfn & CHUNK_MASK)

    def _make_chunk(self, key: int) -> int:
        c = self._chunk_of[key] = self._nchunks
        self._nchunks += 1
        n = self._nchunks << CHUNK_SHIFT
        self._pshadow = grown(self._pshadow, n, 0)
        self._in_use = grown(self._in_use, n, 1)
        self._window_page = grown(self._window_page, n >> KASAN_SHADOW_SCALE_SHIFT, NO_PAGE)
        base = c << CHUNK_SHIFT
        self._pshadow[base : base + CHUNK_PAGES] = bytes(CHUNK_PAGES)
        self._in_use[base : base + CHUNK_PAGES] = b"\x01" * CHUNK_PAGES
        lo, hi = self._lowmem
        first = key << CHUNK_SHIFT
        for a, b in self._machine.boot_free_runs(max(first, lo), min(first + CHUNK_PAGES, hi)):
            self._pshadow[base + a - first : base + b - first] = _FILL[KASAN_PER_PAGE_FREE] * (
                b - a
            )
            self._in_use[base + a - first : base + b - first] = bytes(b - a)
        return c

    def _page_state(self, pfn: int) -> int:
        """The per-page shadow byte of a lowmem pfn."""
        c = self._chunk_of[pfn >> CHUNK_SHIFT]
        if c >= 0:
            return self._pshadow[(c << CHUNK_SHIFT) | (pfn & CHUNK_MASK)]
        free = self._initial_byte((pfn << self._page_shift) + self._lm_delta) == KASAN_PAGE_FREE
        return KASAN_PER_PAGE_FREE if free else 0

    def _is_lowmem(self, pfn: int) -> bool:
        return self._lowmem[0] <= pfn < self._lowmem[1]

    def _window_of_pfn(self, pfn: int) -> int:
        return (pfn + self._vpn_of_pfn) >> KASAN_SHADOW_SCALE_SHIFT

    def _window_first_pfn(self, window: int) -> int:
        return (window << KASAN_SHADOW_SCALE_SHIFT) - self._vpn_of_pfn

    def _in_direct_map(self, window: int) -> bool:
        lo, hi = self._direct_map
        return lo <= window << self._window_shift < hi

    # -------------------------------------------------------------- byte shadow windows

    def _page_of(self, window: int) -> int:
        """The real shadow page mapped over a window (NO_PAGE: the black page)."""
        if self._in_direct_map(window):
            pfn = self._window_first_pfn(window)
            c = self._chunk_of[pfn >> CHUNK_SHIFT]
            if c < 0:
                return NO_PAGE
            return self._window_page[
                ((c << CHUNK_SHIFT) | (pfn & CHUNK_MASK)) >> KASAN_SHADOW_SCALE_SHIFT
            ]
        return self._kernel_windows.get(window, NO_PAGE)

    def _set_page_of(self, window: int, page: int) -> None:
        if self._in_direct_map(window):
            i = self._index(self._window_first_pfn(window))  # (may replace _window_page)
            self._window_page[i >> KASAN_SHADOW_SCALE_SHIFT] = page
        elif page == NO_PAGE:
            del self._kernel_windows[window]
        else:
            self._kernel_windows[window] = page

    def _at(self, page: int) -> tuple[bytearray, int]:
        """A real shadow page's segment of the pool, and where the page starts in it."""
        return (
            self._shadow[page >> self._segment_shift],
            (page & self._segment_mask) << self._page_shift,
        )

    def _page_bytes(self, page: int) -> memoryview:
        """A real shadow page's bytes (a view of the pool)."""
        segment, start = self._at(page)
        return memoryview(segment)[start : start + self._page_size]

    def _map_shadow(self, window: int) -> int:
        """``kasan_map_shadow()``: a real shadow page for the window, from the buddy allocator
        (NO_PAGE when it is empty), a copy of the black page."""
        pfn = self._machine.alloc_pages(0, PageUse.SHADOW)
        if pfn is None:
            return NO_PAGE
        page = self._free_page
        if page != NO_PAGE:
            self._free_page = self._page_window[page]
        else:
            page = self._npages
            self._npages += 1
            if page >= len(self._shadow) << self._segment_shift:
                self._shadow.append(bytearray(SEGMENT_SIZE))
                n = len(self._shadow) << self._segment_shift  # the pool's new capacity
                self._page_pfn = grown(self._page_pfn, n, NO_PAGE)
                self._page_window = grown(self._page_window, n, NO_PAGE)
                self._page_bypass = grown(self._page_bypass, n, 0)
        self._page_bytes(page)[:] = _FILL[KASAN_PAGE_FREE] * self._page_size
        self._page_pfn[page] = pfn
        self._page_window[page] = window
        self._page_bypass[page] = 0
        self._mapped += 1
        self._set_page_of(window, page)
        shadow_addr = self._profile.kasan_mem_to_shadow(window << self._window_shift)
        self._pte_pages.add(shadow_addr >> self._pte_shift)
        self._dynamic_peak = max(self._dynamic_peak, self._dynamic_bytes())
        return page

    def _map_shadow_or_fail(self, window: int) -> int:
        page = self._page_of(window)
        if page == NO_PAGE:
            page = self._map_shadow(window)
            if page == NO_PAGE:
                raise MemoryError(
                    f"pshadow: no free page for the byte shadow of the window at "
                    f"{window << self._window_shift:#x}"
                )
        return page

    def _unmap_shadow(self, window: int) -> None:
        """``kasan_unmap_shadow_workfn()`` (patch 10): the PTE goes back to the black page and
        the shadow page back to the buddy allocator."""
        page = self._page_of(window)
        self._set_page_of(window, NO_PAGE)
        pfn = self._page_pfn[page]
        self._page_pfn[page] = NO_PAGE
        self._page_window[page] = self._free_page
        self._free_page = page
        self._mapped -= 1
        self._machine.free_pages(pfn, 0)

    def _window_is_free(self, window: int) -> bool:
        """All 8 pages of the window are in the buddy: the order-3 block kasan_free_buddy takes."""
        i = self._index(self._window_first_pfn(window))
        return self._in_use[i : i + PAGES_PER_WINDOW].count(0) == PAGES_PER_WINDOW

    def _page_part(self, page: int, vpn: int) -> memoryview:
        """A page's granules in its window's shadow page (a view of the pool)."""
        segment, start = self._at(page)
        start += (vpn & (PAGES_PER_WINDOW - 1)) * self._granules_per_page
        return memoryview(segment)[start : start + self._granules_per_page]

    def _set_bypass(self, i: int, vpn: int, page: int, fill: bytes) -> None:
        """Mark a lowmem page (at i in the per-pfn arrays, virtual page vpn)
        KASAN_PER_PAGE_BYPASS, its part of its window's shadow page set to fill (a page of
        granules)."""
        self._page_part(page, vpn)[:] = fill
        if self._pshadow[i] == KASAN_PER_PAGE_BYPASS:
            return
        self._pshadow[i] = KASAN_PER_PAGE_BYPASS
        self._page_bypass[page] += 1
        if self._page_bypass[page] == 1:
            self._needed += 1

    def _clear_bypass(self, pfn: int, state: int) -> None:
        """A BYPASS page gets a per-page value again; its part of the shadow page goes back to
        the black page's FF, so that the byte shadow sends checks to the per-page byte."""
        self._pshadow[self._index(pfn)] = state
        self._bypass_views.pop(pfn, None)
        vpn = pfn + self._vpn_of_pfn
        page = self._page_of(vpn >> KASAN_SHADOW_SCALE_SHIFT)
        self._page_part(page, vpn)[:] = _FILL[KASAN_PAGE_FREE] * self._granules_per_page
        self._page_bypass[page] -= 1
        if self._page_bypass[page] == 0:
            self._needed -= 1

    def _populate_kernel_window(self, addr: int) -> int:
        """First write to the kernel image or vmalloc space (patch 07: permanently BYPASS): map
        the window, its pages' byte shadow as at boot. The window's page."""
        window = addr >> self._window_shift
        page = self._map_shadow_or_fail(window)
        self._kernel_windows[window] = page
        lo, hi = self._direct_map
        gpp = self._granules_per_page
        for i in range(PAGES_PER_WINDOW):
            vpn = (window << KASAN_SHADOW_SCALE_SHIFT) + i
            page_addr = vpn << self._page_shift
            if lo <= page_addr < hi:
                continue
            self._page_part(page, vpn)[:] = _FILL[self._initial_byte(page_addr)] * gpp
            self._page_bypass[page] += 1
            if self._page_bypass[page] == 1:
                self._needed += 1
        return page

    def _bypass_page(self, addr: int) -> int:
        """The real shadow page holding addr's byte shadow when addr's page is BYPASS (a
        lowmem page marked so, a page of a kernel window), else NO_PAGE."""
        if self._lm_start <= addr < self._lm_end:
            pfn = (addr - self._lm_delta) >> self._page_shift
            c = self._chunk_of[pfn >> CHUNK_SHIFT]
            if c < 0:
                return NO_PAGE
            i = (c << CHUNK_SHIFT) | (pfn & CHUNK_MASK)
            if self._pshadow[i] != KASAN_PER_PAGE_BYPASS:
                return NO_PAGE
            return self._window_page[i >> KASAN_SHADOW_SCALE_SHIFT]
        return self._kernel_windows.get(addr >> self._window_shift, NO_PAGE)

    # ------------------------------------------------------------------------- writes

    def _claim(self, addr: int, k: int, value: int, data: bytes | None, done: int) -> int:
        """A write of k bytes to the shadow of addr's page: the shadow page to write them into
        (a BYPASS page's, a kernel window's, mapped on its first write), else NO_PAGE when the
        page's per-page byte can say them, else a shadow page mapped and the page made BYPASS.
        """
        if not self._lm_start <= addr < self._lm_end:
            page = self._kernel_windows.get(addr >> self._window_shift, NO_PAGE)
            return self._populate_kernel_window(addr) if page == NO_PAGE else page
        pfn = (addr - self._lm_delta) >> self._page_shift
        i = self._index(pfn)  # (the same after _map_shadow_or_fail())
        state = self._pshadow[i]
        if state == KASAN_PER_PAGE_BYPASS:
            return self._window_page[i >> KASAN_SHADOW_SCALE_SHIFT]
        return self._claim_page(pfn, i, state, k, value, data, done)

    def _claim_page(
        self, pfn: int, i: int, state: int, k: int, value: int, data: bytes | None, done: int
    ) -> int:
        """_claim() of a lowmem page that is not BYPASS (at i in the per-pfn arrays, its
        per-page byte state)."""
        if data is not None:
            value = data[done]
            uniform = data.count(value, done, done + k) == k
        else:
            uniform = True
        if uniform:
            if k == self._granules_per_page and value in (0, KASAN_PAGE_FREE):
                # All of the page 00 or FF: kasan_alloc_pages() / kasan_free_pages() of the
                # series, as mempool's page pools call them too.
                self._pshadow[i] = 0 if value == 0 else KASAN_PER_PAGE_FREE
                return NO_PAGE
            if value == (0 if state == 0 else KASAN_PAGE_FREE):
                return NO_PAGE  # what the page byte implies
        page = self._map_shadow_or_fail(self._window_of_pfn(pfn))
        fill = _FILL[0 if state == 0 else KASAN_PAGE_FREE] * self._granules_per_page
        self._set_bypass(i, pfn + self._vpn_of_pfn, page, fill)
        return page

    def _store(self, addr: int, n: int, value: int, data: bytes | None) -> None:
        """Write n shadow bytes from addr, page by page: value repeated, or data."""
        gpp = self._granules_per_page
        done = 0
        while done < n:
            k = min(n - done, gpp - ((addr >> KASAN_SHADOW_SCALE_SHIFT) & (gpp - 1)))
            page = self._claim(addr, k, value, data, done)
            if page != NO_PAGE:
                segment, start = self._at(page)
                start += (addr >> KASAN_SHADOW_SCALE_SHIFT) & self._shadow_mask
                segment[start : start + k] = (
                    _FILL[value] * k if data is None else data[done : done + k]
                )
            done += k
            addr += k << KASAN_SHADOW_SCALE_SHIFT

    # The hot paths look a direct-map page's byte shadow up first, as a view by pfn of a
    # BYPASS page (_bypass_views: one dict look-up, as __pa(addr) >> PAGE_SHIFT of an address
    # outside the direct map is no lowmem pfn): a slab's pages are BYPASS, and nearly every
    # write is a slab hook's. Another write within one page asks _claim_page() alone (_store()
    # of one page): most are a page allocation's kasan_unpoison_pages(), which the per-page
    # byte says. They spell KASAN_SHADOW_SCALE_SHIFT out (asserted above the class).

    def _bypass_view(self, pfn: int) -> memoryview | None:
        """A direct-map pfn's part of its window's shadow page when the page is BYPASS (else
        None), kept in _bypass_views."""
        page = self._bypass_page((pfn << self._page_shift) + self._lm_delta)
        if page == NO_PAGE:
            return None
        view = self._bypass_views[pfn] = self._page_part(page, pfn + self._vpn_of_pfn)
        return view

    def write(self, addr: int, data: bytes) -> None:
        pa = addr - self._lm_delta  # __pa()
        start = (pa >> 3) & self._granule_mask  # the granule's place in its page
        end = start + len(data)
        if start < end <= self._granules_per_page:  # within this page
            view = self._bypass_views.get(pa >> self._page_shift)
            if view is not None:
                view[start:end] = data
                return
            if self._pa_start <= pa < self._pa_end:  # the direct map
                pfn = pa >> self._page_shift
                view = self._bypass_view(pfn)
                if view is not None:
                    view[start:end] = data
                    return
                i = self._index(pfn)
                if self._claim_page(pfn, i, self._pshadow[i], end - start, 0, data, 0) == NO_PAGE:
                    return  # (else the page is BYPASS now: _store() writes its shadow page)
        self._store(addr, len(data), 0, data)

    def set_byte(self, addr: int, value: int) -> None:
        self.write(addr, _FILL[value])

    # -------------------------------------------------------------------------- reads

    def _per_page_byte(self, addr: int) -> int:
        """The shadow of a granule whose page is not BYPASS: from its per-page byte in the
        direct map, else the boot shadow (never written)."""
        lo, hi = self._direct_map
        if lo <= addr < hi:
            state = self._page_state((addr - self._lm_delta) >> self._page_shift)
            return KASAN_PAGE_FREE if state else 0
        return self._initial_byte(addr)

    def shadow_byte(self, addr: int) -> int:
        # Loads: the byte shadow, and the per-page byte too when the byte shadow reads
        # poisoned (patch 11), which a direct-map page that is not BYPASS always does (the
        # black page's FF, or its copy).
        self.checks += 1
        pa = addr - self._lm_delta  # __pa()
        view = self._bypass_views.get(pa >> self._page_shift)
        if view is None and self._pa_start <= pa < self._pa_end:  # the direct map
            pfn = pa >> self._page_shift
            view = self._bypass_view(pfn)
            if view is None:
                self.loads += 2
                return KASAN_PAGE_FREE if self._page_state(pfn) else 0
        if view is not None:
            value = view[(pa >> 3) & self._granule_mask]  # KASAN_SHADOW_SCALE_SHIFT
            self.loads += 2 if value else 1
            return value
        page = self._kernel_windows.get(addr >> self._window_shift, NO_PAGE)
        if page != NO_PAGE:
            segment, start = self._at(page)
            value = segment[start + ((addr >> KASAN_SHADOW_SCALE_SHIFT) & self._shadow_mask)]
        else:
            value = self._initial_byte(addr)
        self.loads += 2 if value else 1
        return value

    def read(self, addr: int, size: int) -> bytes:
        out = bytearray()
        gpp = self._granules_per_page
        n = size >> KASAN_SHADOW_SCALE_SHIFT
        while n > 0:
            k = min(n, gpp - ((addr >> KASAN_SHADOW_SCALE_SHIFT) & (gpp - 1)))
            page = self._bypass_page(addr)
            if page == NO_PAGE:
                out += _FILL[self._per_page_byte(addr)] * k
            else:
                segment, start = self._at(page)
                start += (addr >> KASAN_SHADOW_SCALE_SHIFT) & self._shadow_mask
                out += segment[start : start + k]
            n -= k
            addr += k << KASAN_SHADOW_SCALE_SHIFT
        return bytes(out)

    # --------------------------------------------------------------------- page life

    def page_alloc(self, pfn: int, order: int, use: PageUse) -> bool:
        """``kasan_alloc_pages()``: the pages' per-page shadow becomes 0 (valid); slab, stack
        and large-kmalloc pages become BYPASS over a real shadow page (patches 06, 08, 09).
        False when the buddy has no page left for that shadow."""
        if not self._is_lowmem(pfn):
            return True  # highmem has no shadow
        n = 1 << order
        if use in BYTE_GRANULAR_USES:
            mapped: list[int] = []
            for window in range(self._window_of_pfn(pfn), self._window_of_pfn(pfn + n - 1) + 1):
                if self._page_of(window) == NO_PAGE:
                    if self._map_shadow(window) == NO_PAGE:
                        for w in mapped:
                            self._unmap_shadow(w)
                        return False
                    mapped.append(window)
            unpoisoned = bytes(self._granules_per_page)
            # A buddy block is aligned to its size, and MAX_PAGE_ORDER < CHUNK_SHIFT: one
            # chunk's, at i in the per-pfn arrays, its windows' pages at i >> 3 in _window_page.
            assert (pfn & CHUNK_MASK) + n <= CHUNK_PAGES, "a block across chunks"
            i = self._index(pfn)
            self._in_use[i : i + n] = _FILL[1] * n
            vpn = pfn + self._vpn_of_pfn
            for j in range(i, i + n):
                page = self._window_page[j >> KASAN_SHADOW_SCALE_SHIFT]
                self._set_bypass(j, vpn + j - i, page, unpoisoned)
            return True
        self._set_pages(pfn, n, 1, 0)
        return True

    def _set_pages(self, pfn: int, n: int, used: int, state: int) -> None:
        """The per-page bytes (state) and in-use bytes (used) of [pfn, pfn + n), a BYPASS page
        among them cleared first."""
        # A buddy block is aligned to its size, and MAX_PAGE_ORDER < CHUNK_SHIFT: one chunk's.
        assert (pfn & CHUNK_MASK) + n <= CHUNK_PAGES, "a block across chunks"
        i = self._index(pfn)
        pshadow, in_use = self._pshadow, self._in_use
        for j in range(i, i + n):
            in_use[j] = used
            if pshadow[j] == KASAN_PER_PAGE_BYPASS:
                self._clear_bypass(pfn + j - i, state)
            pshadow[j] = state

    def page_free(self, pfn: int, order: int) -> None:
        """``kasan_free_pages()``: KASAN_PER_PAGE_FREE; windows left entirely free give their
        shadow page back (patch 10)."""
        if not self._is_lowmem(pfn):
            return
        n = 1 << order
        self._set_pages(pfn, n, 0, KASAN_PER_PAGE_FREE)
        for window in range(self._window_of_pfn(pfn), self._window_of_pfn(pfn + n - 1) + 1):
            page = self._page_of(window)
            if page != NO_PAGE and not self._page_bypass[page] and self._window_is_free(window):
                self._unmap_shadow(window)

    # ------------------------------------------------------------------------ figures

    def _dynamic_bytes(self) -> int:
        return (self._mapped + len(self._pte_pages)) * self._page_size

    def footprint(self) -> Footprint:
        return Footprint(
            static_bytes=self._static_bytes,
            dynamic_bytes=self._dynamic_bytes(),
            dynamic_peak_bytes=self._dynamic_peak,
            virtual_range_bytes=self._virtual_range_bytes,
            shadow_pages_mapped=self._mapped,
            shadow_pages_needed=self._needed,
            page_table_pages=len(self._pte_pages),
            checks=self.checks,
            loads=self.loads,
            # v1 did not handle inline instrumentation, where the compiler reads the
            # byte shadow directly: D. Vyukov (2017-05-16) on inline, "the main
            # mode", outline being "merely a rudiment to support gcc 4.9".
            inline_possible=False,
            stack_possible=True,
        )

    def _mapped_pages(self) -> list[tuple[int, int]]:
        """(window, page) of every real shadow page mapped, in address order."""
        return sorted(
            (self._page_window[page], page)
            for page in range(self._npages)
            if self._page_pfn[page] != NO_PAGE
        )

    def windows(self) -> list[MappedWindow]:
        """The windows with a real shadow page, in address order."""
        return [
            MappedWindow(
                self._window_first_pfn(window) if self._in_direct_map(window) else None,
                self._page_pfn[page],
                self._page_bypass[page],
            )
            for window, page in self._mapped_pages()
        ]

    def storage(self) -> dict:
        """The scheme's state as plain values, for tests comparing engines and checkpoints:
        the per-page and in-use bytes of every chunk made, by chunk; every real shadow page's
        bytes, by window; the counters."""
        chunks = {
            key: (
                bytes(self._pshadow[c << CHUNK_SHIFT : (c + 1) << CHUNK_SHIFT]),
                bytes(self._in_use[c << CHUNK_SHIFT : (c + 1) << CHUNK_SHIFT]),
            )
            for key, c in enumerate(self._chunk_of)
            if c >= 0
        }
        return {
            "chunks": chunks,
            "shadow pages": [
                (window, page, bytes(self._page_bytes(page)))
                for window, page in self._mapped_pages()
            ],
            "windows": [tuple(w) for w in self.windows()],
            "needed": self._needed,
            "pte pages": sorted(self._pte_pages),
            "free page": self._free_page,
        }

    def has_own_shadow(self, pfn: int) -> bool:
        """A lowmem page whose per-page byte is KASAN_PER_PAGE_BYPASS: its byte shadow is its
        window's real shadow page."""
        return (
            self._is_lowmem(pfn)
            and self._profile.pfn_valid(pfn)
            and self._page_state(pfn) == KASAN_PER_PAGE_BYPASS
        )

    def shadow_link(self, pfn: int) -> str | None:
        if not self._profile.pfn_valid(pfn):
            return None
        if not self._is_lowmem(pfn):
            return "no shadow (highmem)"
        state = self._page_state(pfn)
        if state == 0:
            return "pshadow 00 (allocated)"
        if state == KASAN_PER_PAGE_FREE:
            return "pshadow fe (free)"
        window = self._window_of_pfn(pfn)
        first = self._window_first_pfn(window)
        return (
            f"pshadow ff (bypass) -> shadow page pfn "
            f"{self._page_pfn[self._page_of(window)]:#x} "
            f"(window pfn {first:#x}-{first + PAGES_PER_WINDOW - 1:#x})"
        )
