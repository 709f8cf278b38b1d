"""The inspector's read API (kinspect/engine/view.py ``MachineView``) over a crash dump.

The views read a simulated machine only through ``MachineView``; :class:`DumpReader`
answers the same questions from a dump's memory, for the questions a dump can answer:

* struct page: ``page(pfn)``, ``page_states()`` (the views' ``PageState`` of each pfn, from
  the real struct pages: a slab page by its ``PGTY_slab`` page type, a free page by a
  ``PGTY_buddy`` head or a zero ``_refcount``, a reserved one by ``PG_reserved``, any
  other in-use page as a page allocation; a tail page takes its head's), ``dump_page()``,
  ``compound_head()``, ``page_flags_word()``, ``page_address()``, ``addr_to_pfn()``,
  ``find_free_block()`` (the buddy head of the block and its order in ``page->private``, as
  ``buddy_order()`` reads it), ``find_slab()`` (struct slab and its kmem_cache);
* the shadow: ``shadow_bytes("generic", addr, size)`` (the real shadow, through the page
  tables), ``shadow_link()`` (where the pfn's shadow page is), ``footprint("generic")`` (the
  real kernel's bill: the shadow pages its page tables map for the RAM, and the shadow's
  virtual range).

A struct page or shadow byte the dump does not hold is unknown: ``page_states`` marks the pfn
a hole (``palette.HOLE``), ``page()``/``find_slab()`` give None, ``shadow_bytes`` gives None.
Only the real kernel's scheme ("generic") is there: the simulated schemes' shadows
(pageptr, pageext, pshadow) do not exist in a real kernel, and the questions of the session's
history (``allocated_pages``, ``caches``' counts, the globals) are not asked of a dump.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from kinspect.engine.memory import Page, PageState
from kinspect.engine.shadow.base import Footprint
from kinspect.engine.view import FreeBlock, SlabInfo

from .command import _x86_64
from .kernel import Kernel
from .objects import addr_to_slab
from .page import _cstr, _pageflag_bit, dump_page_lines, pfn_of

__all__ = ["DumpReader", "REAL_SCHEME"]

REAL_SCHEME = "generic"  # the real kernel's: CONFIG_KASAN_GENERIC's flat shadow
PGTY_buddy = 0xF0  # include/linux/page-flags.h enum pagetype
PGTY_slab = 0xF5
MAX_PAGE_ORDER = 10  # include/linux/mmzone.h (x86_64 default)
PAGES_PER_SECTION = 1 << (27 - 12)  # SECTION_SIZE_BITS 27 (arch/x86/include/asm/sparsemem.h)
_HOLE = 9  # kinspect.widgets.palette.HOLE (no RAM / not in the dump)


class DumpReader:
    """``MachineView``'s questions, answered from a dump (see the module's docstring)."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.prof = _x86_64()
        lay = k.layouts["page"]
        self.page_size = lay.size
        # the page frames with a struct page: up to max_pfn (the kernel's, read from the
        # dump), else as far as the dump goes
        max_pfn = k.u64(k.symbols["max_pfn"]) if "max_pfn" in k.symbols else None
        self.end_pfn = (
            max_pfn if max_pfn and max_pfn <= k.core.ram_end >> 12 else k.core.ram_end >> 12
        )
        self._dtype = np.dtype(
            {
                "names": ["flags", "compound_head", "private", "page_type", "refcount"],
                "formats": ["<u8", "<u8", "<u8", "<u4", "<i4"],
                "offsets": [
                    lay["flags"].offset,
                    lay["compound_head"].offset,
                    lay["private"].offset,
                    lay["page_type"].offset,
                    lay["_refcount"].offset,
                ],
                "itemsize": lay.size,
            }
        )
        self.pg_reserved = _pageflag_bit(k, "reserved")
        self.pg_head = _pageflag_bit(k, "head")
        self._chunk = 4096 // lay.size if 4096 % lay.size == 0 else 1
        self._states: dict[int, np.ndarray] = {}  # section -> PageState per pfn

    # -- struct page

    def _raw_pages(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(struct pages of [first, first + count), known mask): one read per vmemmap page."""
        out = np.zeros(count, self._dtype)
        known = np.zeros(count, bool)
        c = self._chunk
        pfn = first - first % c
        while pfn < first + count:
            data = self.k.read(self.k.vmemmap_base + pfn * self.page_size, c * self.page_size)
            if data is not None:
                arr = np.frombuffer(data, self._dtype)
                lo, hi = max(pfn, first), min(pfn + c, first + count)
                out[lo - first : hi - first] = arr[lo - pfn : hi - pfn]
                known[lo - first : hi - first] = True
            pfn += c
        return out, known

    def page(self, pfn: int) -> Page | None:
        raw, known = self._raw_pages(pfn, 1)
        if not known[0]:
            return None
        p = raw[0]
        head = int(p["compound_head"])
        state = int(self.page_states(pfn, 1)[0])
        return Page(
            pfn,
            int(p["flags"]),
            int(p["page_type"]),
            self._order(pfn, p),
            int(p["refcount"]),
            0,
            state,
            (head - 1 - self.k.vmemmap_base) // self.page_size if head & 1 else -1,
            0,
        )

    def _order(self, pfn: int, p) -> int:
        if int(p["page_type"]) >> 24 == PGTY_buddy:
            return int(p["private"])  # buddy_order()
        if self.pg_head is not None and int(p["flags"]) >> self.pg_head & 1:
            nxt, ok = self._raw_pages(pfn + 1, 1)  # folio_order(): the first tail's _flags_1
            return int(nxt[0]["flags"]) & 0xFF if ok[0] else 0
        return 0

    def page_states(self, first: int, count: int) -> np.ndarray:
        out = np.empty(count, np.uint8)
        pfn = first
        while pfn < first + count:
            sec = pfn // PAGES_PER_SECTION
            states = self._section_states(sec)
            lo = pfn - sec * PAGES_PER_SECTION
            n = min(PAGES_PER_SECTION - lo, first + count - pfn)
            out[pfn - first : pfn - first + n] = states[lo : lo + n]
            pfn += n
        return out

    def _section_states(self, sec: int) -> np.ndarray:
        states = self._states.get(sec)
        if states is None:
            first = sec * PAGES_PER_SECTION
            count = max(0, min(PAGES_PER_SECTION, self.end_pfn - first))
            states = np.full(PAGES_PER_SECTION, _HOLE, np.uint8)
            if count:
                states[:count] = self._classify(first, count)
            self._states[sec] = states
        return states

    def _classify(self, first: int, count: int) -> np.ndarray:
        """PageState of each pfn from its struct page (see the module's docstring)."""
        raw, known = self._raw_pages(first, count)
        ptype = raw["page_type"] >> 24
        flags = raw["flags"]
        state = np.where(raw["refcount"] == 0, PageState.FREE, PageState.PAGE_ALLOC)
        state = state.astype(np.uint8)
        if self.pg_reserved is not None:
            state[(flags >> np.uint64(self.pg_reserved)) & np.uint64(1) == 1] = PageState.RESERVED
        state[ptype == PGTY_slab] = PageState.SLAB
        state[ptype == PGTY_buddy] = PageState.FREE
        # a tail page (compound_head bit 0) is its head's
        head = raw["compound_head"]
        tail = (head & np.uint64(1)) == 1
        if tail.any():
            head_pfn = (
                (head[tail] - np.uint64(1) - np.uint64(self.k.vmemmap_base))
                // np.uint64(self.page_size)
            ).astype(np.int64) - first
            inside = (head_pfn >= 0) & (head_pfn < count)
            idx = np.nonzero(tail)[0]
            state[idx[inside]] = state[head_pfn[inside]]
        state[~known] = _HOLE
        return state

    def for_each_section_states(self) -> Iterator[tuple[int, np.ndarray]]:
        for sec in range((self.end_pfn + PAGES_PER_SECTION - 1) // PAGES_PER_SECTION):
            yield sec * PAGES_PER_SECTION, self._section_states(sec)

    def page_flags_word(self, pfn: int) -> int | None:
        raw, known = self._raw_pages(pfn, 1)
        return int(raw[0]["flags"]) if known[0] else None

    def compound_head(self, pfn: int) -> int:
        raw, known = self._raw_pages(pfn, 1)
        head = int(raw[0]["compound_head"]) if known[0] else 0
        return (head - 1 - self.k.vmemmap_base) // self.page_size if head & 1 else pfn

    def dump_page(self, pfn: int) -> list[str]:
        lines, notes = dump_page_lines(self.k, pfn)
        return lines + [f"note: {n}" for n in notes]

    def page_address(self, pfn: int) -> int:
        return self.k.page_offset_base + pfn * 4096

    def addr_to_pfn(self, addr: int) -> int | None:
        pfn = pfn_of(self.k, addr)
        if pfn is not None:
            return pfn
        phys = self.k.pt.translate(addr)
        return None if phys is None else phys >> 12

    def find_free_block(self, pfn: int) -> FreeBlock | None:
        """The buddy block holding pfn: a head at pfn rounded down to 2^order with
        ``PGTY_buddy`` and ``buddy_order()`` >= order (mm/page_alloc.c)."""
        for order in range(MAX_PAGE_ORDER + 1):
            head = pfn & ~((1 << order) - 1)
            raw, known = self._raw_pages(head, 1)
            if (
                known[0]
                and int(raw[0]["page_type"]) >> 24 == PGTY_buddy
                and int(raw[0]["private"]) >= order
            ):
                return FreeBlock(head, int(raw[0]["private"]))
        return None

    def find_slab(self, pfn: int) -> SlabInfo | None:
        k = self.k
        slab = addr_to_slab(k, self.page_address(pfn))
        if slab is None:
            return None
        cache = k.field("slab", slab, "slab_cache")
        head = (slab - k.vmemmap_base) // self.page_size
        objects, inuse, frozen = (k.field("slab", slab, m) for m in ("objects", "inuse", "frozen"))
        if not cache or objects is None:
            return None
        size, object_size, name = (
            k.field("kmem_cache", cache, m) for m in ("size", "object_size", "name")
        )
        if size is None or object_size is None or name is None:
            return None
        raw, _ = self._raw_pages(head, 1)
        order = self._order(head, raw[0])
        return SlabInfo(
            _cstr(k, name) or "?",
            cache,
            head,
            1 << order,
            self.page_address(head),
            objects,
            inuse or 0,
            bool(frozen),
            object_size,
            size,
        )

    # -- the shadow (the real kernel's scheme only)

    def _check(self, scheme: str) -> None:
        if scheme != REAL_SCHEME:
            raise KeyError(
                f"a dump has only the real kernel's shadow ({REAL_SCHEME}), not {scheme}'s"
            )

    def shadow_bytes(self, scheme: str, addr: int, size: int) -> bytes | None:
        """The shadow bytes of the granules [addr, addr + size), or None when the dump does
        not hold them all (unmapped, or not in the dump)."""
        self._check(scheme)
        start = self.prof.kasan_mem_to_shadow(addr)
        end = self.prof.kasan_mem_to_shadow(addr + size - 1) + 1 if size > 0 else start
        return self.k.read(start, end - start)

    def shadow_reader(self, scheme: str) -> Callable[[int, int], bytes | None]:
        self._check(scheme)
        return lambda addr, size: self.shadow_bytes(scheme, addr, size)

    def shadow_link(self, scheme: str, pfn: int) -> str | None:
        """Where the pfn's shadow is: its shadow's virtual address and the physical page the
        kernel's page tables map there (kasan_init()'s), or None when unmapped."""
        self._check(scheme)
        shadow = self.prof.kasan_mem_to_shadow(self.page_address(pfn))
        phys = self.k.pt.translate(shadow)
        if phys is None:
            return None
        return f"shadow at {shadow:#x}: physical page {phys >> 12:#x} (offset {phys & 0xFFF:#x})"

    def has_own_shadow(self, scheme: str, pfn: int) -> bool:
        self._check(scheme)
        return False  # a flat shadow: mapped at boot

    def shadow_storage(self, scheme: str) -> str:
        self._check(scheme)
        return "flat"

    def next_poisoned(self, addr: int, direction: int = 1) -> int | None:
        """The next (``direction`` 1) or previous (-1) granule of the direct map's RAM whose
        real shadow byte is not 0 (poisoned, or only partly accessible), from the granule
        after (before) ``addr``'s; None when there is none up to the RAM's end (start).
        Shadow pages the dump does not hold are skipped."""
        lo = self.k.page_offset_base
        hi = lo + self.end_pfn * 4096
        g = (addr & ~7) + 8 * direction
        step = 8 * 4096  # the memory of one page of shadow
        while lo <= g < hi:
            if direction > 0:
                a, b = g, min(hi, (g // step + 1) * step)
            else:
                a, b = max(lo, g // step * step), g + 8
            sh = self.shadow_bytes(REAL_SCHEME, a, b - a)
            if sh is not None:
                nz = np.flatnonzero(np.frombuffer(sh, np.uint8))
                if len(nz):
                    return a + 8 * int(nz[0] if direction > 0 else nz[-1])
            g = b if direction > 0 else a - 8
        return None

    def footprint(self, scheme: str) -> Footprint:
        """The real kernel's bill for its shadow of the RAM the dump describes: the distinct
        physical pages its page tables map under the shadow of the direct map (kasan_init()
        maps them at boot: static), and the shadow's virtual range (1/8 of the kernel's
        address space: KASAN_SHADOW_END - KASAN_SHADOW_START of the x86_64 profile)."""
        self._check(scheme)
        fp = getattr(self, "_footprint", None)
        if fp is None:
            pages = set()
            base = self.prof.kasan_mem_to_shadow(self.k.page_offset_base)
            for off in range(0, (self.end_pfn * 4096) // 8, 4096):
                phys = self.k.pt.translate(base + off)
                if phys is not None:
                    pages.add(phys >> 12)
            fp = self._footprint = Footprint(
                static_bytes=4096 * len(pages),
                virtual_range_bytes=self.prof.kasan_shadow_end - self.prof.kasan_shadow_start,
            )
        return fp
