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

from typing import NamedTuple

from ..kasan import KASAN_PAGE_FREE, KASAN_SHADOW_SCALE_SHIFT
from .base import BYTE_GRANULAR_USES, Footprint, PageUse, ShadowScheme

# Per-page shadow values, patch 05.
KASAN_PER_PAGE_FREE = 0xFE
KASAN_PER_PAGE_BYPASS = 0xFF

PAGES_PER_WINDOW = 1 << KASAN_SHADOW_SCALE_SHIFT    # pages covered by one shadow page
CHUNK_SHIFT = 12                                     # per-page shadow kept in 4096-page chunks
CHUNK_PAGES = 1 << CHUNK_SHIFT
CHUNK_MASK = CHUNK_PAGES - 1
ARM_PTRS_PER_PTE = 512          # arch/arm/include/asm/pgtable-2level.h: Linux + hardware tables
_FILL = [bytes([v]) for v in range(256)]


class MappedWindow(NamedTuple):
    """A window with a real shadow page, for views."""

    pfn: int | None         # first pfn of the window; None outside the direct map (image, vmalloc)
    shadow_pfn: int         # the real shadow page mapped over it
    bypass_pages: int       # its pages whose per-page shadow is KASAN_PER_PAGE_BYPASS


class _ShadowPage:
    """A real byte-shadow page mapped over one window (``kasan_map_shadow()``, patch 06)."""

    __slots__ = ("shadow", "pfn", "bypass")

    def __init__(self, pfn: int, page_size: int) -> None:
        self.shadow = bytearray(_FILL[KASAN_PAGE_FREE] * page_size)   # copy of kasan_black_page
        self.pfn = pfn
        self.bypass = 0


class PerPageShadow(ShadowScheme):
    """Per-page shadow for all lowmem, byte shadow mapped per 8-page window on demand."""

    name = "pshadow"

    def __init__(self, machine, **_options) -> None:
        p = machine.profile
        self._machine = machine
        self._profile = p
        self._initial_byte = machine.initial_shadow_byte
        ps = p.page_shift
        self._page_shift = ps
        self._page_size = 1 << ps
        self._window_shift = ps + KASAN_SHADOW_SCALE_SHIFT
        self._shadow_mask = self._page_size - 1          # a granule's byte in its shadow page
        self._granules_per_page = self._page_size >> KASAN_SHADOW_SCALE_SHIFT
        self._lm_delta = p.page_offset - p.phys_offset
        self._vpn_of_pfn = self._lm_delta >> ps          # virtual page number = pfn + this
        self._direct_map = (p.page_offset, p.high_memory)
        self._lowmem = (p.phys_offset >> ps, p.max_low_pfn)
        self._pshadow: dict[int, bytearray] = {}         # chunk -> per-page shadow bytes
        self._in_use: dict[int, bytearray] = {}          # chunk -> 1 where the page is not free
        self._bypass: dict[int, bytearray] = {}          # virtual page number -> its shadow page
        self._windows: dict[int, _ShadowPage] = {}       # window -> its real shadow page
        self._needed = 0                                 # windows holding a BYPASS page
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

    def _chunk(self, key: int) -> tuple[bytearray, bytearray]:
        """The per-page shadow and in-use bytes of 4096 pages, at boot state on first touch:
        free RAM is KASAN_PER_PAGE_FREE; reserved pages, holes and highmem are 0 and never free."""
        pshadow = self._pshadow.get(key)
        if pshadow is not None:
            return pshadow, self._in_use[key]
        pshadow = bytearray(CHUNK_PAGES)
        in_use = bytearray(b"\x01" * CHUNK_PAGES)
        lo, hi = self._lowmem
        first = key << CHUNK_SHIFT
        for a, b in self._machine.boot_free_runs(max(first, lo), min(first + CHUNK_PAGES, hi)):
            pshadow[a - first:b - first] = _FILL[KASAN_PER_PAGE_FREE] * (b - a)
            in_use[a - first:b - first] = bytes(b - a)
        self._pshadow[key] = pshadow
        self._in_use[key] = in_use
        return pshadow, in_use

    def _page_state(self, pfn: int) -> int:
        """The per-page shadow byte of a lowmem pfn."""
        pshadow = self._pshadow.get(pfn >> CHUNK_SHIFT)
        if pshadow is not None:
            return pshadow[pfn & CHUNK_MASK]
        free = self._initial_byte((pfn << self._page_shift) + self._lm_delta) == KASAN_PAGE_FREE
        return KASAN_PER_PAGE_FREE if free else 0

    def _is_lowmem(self, pfn: int) -> bool:
        return self._lowmem[0] <= pfn < self._lowmem[1]

    def _window_of_pfn(self, pfn: int) -> int:
        return (pfn + self._vpn_of_pfn) >> KASAN_SHADOW_SCALE_SHIFT

    def _window_first_pfn(self, window: int) -> int:
        return (window << KASAN_SHADOW_SCALE_SHIFT) - self._vpn_of_pfn

    # -------------------------------------------------------------- byte shadow windows

    def _map_shadow(self, window: int) -> _ShadowPage | None:
        """``kasan_map_shadow()``: a real shadow page for the window, from the buddy allocator
        (None when it is empty), a copy of the black page."""
        pfn = self._machine.alloc_pages(0, PageUse.SHADOW)
        if pfn is None:
            return None
        page = _ShadowPage(pfn, self._page_size)
        self._windows[window] = page
        shadow_addr = self._profile.kasan_mem_to_shadow(window << self._window_shift)
        self._pte_pages.add(shadow_addr >> self._pte_shift)
        self._dynamic_peak = max(self._dynamic_peak, self._dynamic_bytes())
        return page

    def _map_shadow_or_fail(self, window: int) -> _ShadowPage:
        page = self._windows.get(window) or self._map_shadow(window)
        if page is None:
            raise MemoryError(f"pshadow: no free page for the byte shadow of the window at "
                              f"{window << self._window_shift:#x}")
        return page

    def _unmap_shadow(self, window: int) -> None:
        """``kasan_unmap_shadow_workfn()`` (patch 10): the PTE goes back to the black page and
        the shadow page back to the buddy allocator."""
        page = self._windows.pop(window)
        self._machine.free_pages(page.pfn, 0)

    def _window_is_free(self, window: int) -> bool:
        """All 8 pages of the window are in the buddy: the order-3 block kasan_free_buddy takes."""
        first = self._window_first_pfn(window)
        for pfn in range(first, first + PAGES_PER_WINDOW):
            if self._chunk(pfn >> CHUNK_SHIFT)[1][pfn & CHUNK_MASK]:
                return False
        return True

    def _page_part(self, vpn: int) -> slice:
        """Where a page's granules sit in its window's shadow page."""
        start = (vpn & (PAGES_PER_WINDOW - 1)) * self._granules_per_page
        return slice(start, start + self._granules_per_page)

    def _set_bypass(self, pshadow: bytearray, i: int, vpn: int, page: _ShadowPage,
                    fill: bytes) -> None:
        """Mark a lowmem page (byte i of its per-page shadow chunk, virtual page vpn)
        KASAN_PER_PAGE_BYPASS, its part of the shadow page set to fill (a page of granules)."""
        page.shadow[self._page_part(vpn)] = fill
        if pshadow[i] == KASAN_PER_PAGE_BYPASS:
            return
        pshadow[i] = KASAN_PER_PAGE_BYPASS
        self._bypass[vpn] = page.shadow
        page.bypass += 1
        if page.bypass == 1:
            self._needed += 1

    def _clear_bypass(self, pfn: int, state: int) -> None:
        """A BYPASS page gets a per-page value again; its part of the shadow page goes back to
        the black page's FF, so that the byte shadow sends checks to the per-page byte."""
        pshadow, _ = self._chunk(pfn >> CHUNK_SHIFT)
        pshadow[pfn & CHUNK_MASK] = state
        vpn = pfn + self._vpn_of_pfn
        del self._bypass[vpn]
        page = self._windows[vpn >> KASAN_SHADOW_SCALE_SHIFT]
        page.shadow[self._page_part(vpn)] = _FILL[KASAN_PAGE_FREE] * self._granules_per_page
        page.bypass -= 1
        if page.bypass == 0:
            self._needed -= 1

    def _populate_kernel_window(self, addr: int) -> bytearray:
        """First write to the kernel image or vmalloc space (patch 07: permanently BYPASS): map
        the window, its pages' byte shadow as at boot."""
        window = addr >> self._window_shift
        page = self._map_shadow_or_fail(window)
        lo, hi = self._direct_map
        gpp = self._granules_per_page
        for i in range(PAGES_PER_WINDOW):
            vpn = (window << KASAN_SHADOW_SCALE_SHIFT) + i
            page_addr = vpn << self._page_shift
            if vpn in self._bypass or lo <= page_addr < hi:
                continue
            page.shadow[self._page_part(vpn)] = _FILL[self._initial_byte(page_addr)] * gpp
            self._bypass[vpn] = page.shadow
            page.bypass += 1
            if page.bypass == 1:
                self._needed += 1
        return page.shadow

    # ------------------------------------------------------------------------- writes

    def _claim(self, addr: int, k: int, value: int, data: bytes | None,
               done: int) -> bytearray | None:
        """A write of k bytes to the shadow of a page that is not BYPASS: None when the per-page
        byte can say it, else the byte shadow to write it into."""
        lo, hi = self._direct_map
        if not lo <= addr < hi:
            return self._populate_kernel_window(addr)
        if data is not None:
            value = data[done]
            uniform = data.count(value, done, done + k) == k
        else:
            uniform = True
        pfn = (addr - self._lm_delta) >> self._page_shift
        pshadow, _ = self._chunk(pfn >> CHUNK_SHIFT)
        state = pshadow[pfn & CHUNK_MASK]
        if uniform:
            if k == self._granules_per_page and value in (0, KASAN_PAGE_FREE):
                # All of the page 00 or FF: kasan_alloc_pages() / kasan_free_pages() of the
                # series, as mempool's page pools call them too.
                pshadow[pfn & CHUNK_MASK] = 0 if value == 0 else KASAN_PER_PAGE_FREE
                return None
            if value == (0 if state == 0 else KASAN_PAGE_FREE):
                return None                                     # what the page byte implies
        page = self._map_shadow_or_fail(self._window_of_pfn(pfn))
        fill = _FILL[0 if state == 0 else KASAN_PAGE_FREE] * self._granules_per_page
        self._set_bypass(pshadow, pfn & CHUNK_MASK, pfn + self._vpn_of_pfn, page, fill)
        return page.shadow

    def _store(self, addr: int, n: int, value: int, data: bytes | None) -> None:
        """Write n shadow bytes from addr, page by page: value repeated, or data."""
        gpp = self._granules_per_page
        done = 0
        while done < n:
            k = min(n - done, gpp - ((addr >> KASAN_SHADOW_SCALE_SHIFT) & (gpp - 1)))
            shadow = self._bypass.get(addr >> self._page_shift)
            if shadow is None:
                shadow = self._claim(addr, k, value, data, done)
            if shadow is not None:
                start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & self._shadow_mask
                shadow[start:start + k] = (_FILL[value] * k if data is None
                                           else data[done:done + k])
            done += k
            addr += k << KASAN_SHADOW_SCALE_SHIFT

    def poison(self, addr: int, size: int, value: int) -> None:
        n = size >> KASAN_SHADOW_SCALE_SHIFT
        shadow = self._bypass.get(addr >> self._page_shift)
        if shadow is not None:
            start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & self._shadow_mask
            if start + n <= (start | (self._granules_per_page - 1)) + 1:
                shadow[start:start + n] = _FILL[value] * n
                return
        self._store(addr, n, value, None)

    def write(self, addr: int, data: bytes) -> None:
        shadow = self._bypass.get(addr >> self._page_shift)
        if shadow is not None:
            start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & self._shadow_mask
            end = start + len(data)
            if end <= (start | (self._granules_per_page - 1)) + 1:    # within this page
                shadow[start:end] = data
                return
        self._store(addr, len(data), 0, data)

    def set_byte(self, addr: int, value: int) -> None:
        shadow = self._bypass.get(addr >> self._page_shift)
        if shadow is not None:
            shadow[(addr >> KASAN_SHADOW_SCALE_SHIFT) & self._shadow_mask] = value
        else:
            self._store(addr, 1, value, None)

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
        self.checks += 1
        self.loads += 1                         # the byte shadow
        shadow = self._bypass.get(addr >> self._page_shift)
        if shadow is not None:
            value = shadow[(addr >> KASAN_SHADOW_SCALE_SHIFT) & self._shadow_mask]
            if value:
                self.loads += 1        # poisoned byte: patch 11 reads the page byte too
            return value
        lo, hi = self._direct_map
        if lo <= addr < hi:
            # Not BYPASS: the byte shadow is the black page's FF (or its copy), so the per-page
            # byte is always read too.
            self.loads += 1
            state = self._page_state((addr - self._lm_delta) >> self._page_shift)
            return KASAN_PAGE_FREE if state else 0
        value = self._initial_byte(addr)
        if value:
            self.loads += 1
        return value

    def read(self, addr: int, size: int) -> bytes:
        out = bytearray()
        gpp = self._granules_per_page
        n = size >> KASAN_SHADOW_SCALE_SHIFT
        while n > 0:
            k = min(n, gpp - ((addr >> KASAN_SHADOW_SCALE_SHIFT) & (gpp - 1)))
            shadow = self._bypass.get(addr >> self._page_shift)
            if shadow is None:
                out += _FILL[self._per_page_byte(addr)] * k
            else:
                start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & self._shadow_mask
                out += shadow[start:start + k]
            n -= k
            addr += k << KASAN_SHADOW_SCALE_SHIFT
        return bytes(out)

    # --------------------------------------------------------------------- page life

    def _for_each_chunk_run(self, pfn: int, n: int):
        """(per-page shadow, in-use, first index, end index) runs of [pfn, pfn + n)."""
        end = pfn + n
        while pfn < end:
            pshadow, in_use = self._chunk(pfn >> CHUNK_SHIFT)
            i = pfn & CHUNK_MASK
            j = min(CHUNK_PAGES, i + end - pfn)
            yield pshadow, in_use, i, j
            pfn += j - i

    def page_alloc(self, pfn: int, order: int, use: PageUse) -> bool:
        """``kasan_alloc_pages()``: the pages' per-page shadow becomes 0 (valid); slab, stack
        and large-kmalloc pages become BYPASS over a real shadow page (patches 06, 08, 09).
        False when the buddy has no page left for that shadow."""
        if not self._is_lowmem(pfn):
            return True                             # highmem has no shadow
        n = 1 << order
        if use in BYTE_GRANULAR_USES:
            mapped = []
            for window in range(self._window_of_pfn(pfn), self._window_of_pfn(pfn + n - 1) + 1):
                if window not in self._windows:
                    if self._map_shadow(window) is None:
                        for w in mapped:
                            self._unmap_shadow(w)
                        return False
                    mapped.append(window)
            unpoisoned = bytes(self._granules_per_page)
            windows = self._windows
            vpn = pfn + self._vpn_of_pfn
            for pshadow, in_use, i, j in self._for_each_chunk_run(pfn, n):
                in_use[i:j] = b"\x01" * (j - i)
                for k in range(i, j):
                    self._set_bypass(pshadow, k, vpn, windows[vpn >> KASAN_SHADOW_SCALE_SHIFT],
                                     unpoisoned)
                    vpn += 1
            return True
        p = pfn
        for pshadow, in_use, i, j in self._for_each_chunk_run(pfn, n):
            in_use[i:j] = b"\x01" * (j - i)
            if KASAN_PER_PAGE_BYPASS in pshadow[i:j]:
                for k in range(i, j):
                    if pshadow[k] == KASAN_PER_PAGE_BYPASS:
                        self._clear_bypass(p - i + k, 0)
            pshadow[i:j] = bytes(j - i)
            p += j - i
        return True

    def page_free(self, pfn: int, order: int) -> None:
        """``kasan_free_pages()``: KASAN_PER_PAGE_FREE; windows left entirely free give their
        shadow page back (patch 10)."""
        if not self._is_lowmem(pfn):
            return
        n = 1 << order
        p = pfn
        for pshadow, in_use, i, j in self._for_each_chunk_run(pfn, n):
            in_use[i:j] = bytes(j - i)
            if KASAN_PER_PAGE_BYPASS in pshadow[i:j]:
                for k in range(i, j):
                    if pshadow[k] == KASAN_PER_PAGE_BYPASS:
                        self._clear_bypass(p - i + k, KASAN_PER_PAGE_FREE)
            pshadow[i:j] = _FILL[KASAN_PER_PAGE_FREE] * (j - i)
            p += j - i
        for window in range(self._window_of_pfn(pfn), self._window_of_pfn(pfn + n - 1) + 1):
            page = self._windows.get(window)
            if page is not None and not page.bypass and self._window_is_free(window):
                self._unmap_shadow(window)

    # ------------------------------------------------------------------------ figures

    def _dynamic_bytes(self) -> int:
        return (len(self._windows) + len(self._pte_pages)) * self._page_size

    def footprint(self) -> Footprint:
        return Footprint(static_bytes=self._static_bytes,
                         dynamic_bytes=self._dynamic_bytes(),
                         dynamic_peak_bytes=self._dynamic_peak,
                         virtual_range_bytes=self._virtual_range_bytes,
                         shadow_pages_mapped=len(self._windows),
                         shadow_pages_needed=self._needed,
                         page_table_pages=len(self._pte_pages),
                         checks=self.checks, loads=self.loads,
                         # v1 did not handle inline instrumentation, where the compiler reads the
                         # byte shadow directly: D. Vyukov (2017-05-16) on inline, "the main
                         # mode", outline being "merely a rudiment to support gcc 4.9".
                         inline_possible=False,
                         stack_possible=True)

    def windows(self) -> list[MappedWindow]:
        """The windows with a real shadow page, in address order."""
        lo, hi = self._direct_map
        out = []
        for window in sorted(self._windows):
            page = self._windows[window]
            in_direct_map = lo <= window << self._window_shift < hi
            out.append(MappedWindow(self._window_first_pfn(window) if in_direct_map else None,
                                    page.pfn, page.bypass))
        return out

    def has_own_shadow(self, pfn: int) -> bool:
        """A lowmem page whose per-page byte is KASAN_PER_PAGE_BYPASS: its byte shadow is its
        window's real shadow page."""
        return (self._is_lowmem(pfn) and self._profile.pfn_valid(pfn)
                and self._page_state(pfn) == KASAN_PER_PAGE_BYPASS)

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
        return (f"pshadow ff (bypass) -> shadow page pfn {self._windows[window].pfn:#x} "
                f"(window pfn {first:#x}-{first + PAGES_PER_WINDOW - 1:#x})")
