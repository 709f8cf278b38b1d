"""The 2017 comparison on a real kernel's state (issue 15): what each shadow scheme would hold
for the memory of a crash dump, built with the schemes' own rules.

1. The dump's allocated blocks, from its real struct pages and its real shadow
   (:func:`dump_blocks`): a slab (``PGTY_slab`` head, order ``folio_order()``), a kernel
   stack, a large kmalloc, any other page allocation (page cache, anon, page tables, ...).
   Free pages (a ``PGTY_buddy`` block, or a page of refcount 0 whose shadow is
   ``KASAN_PAGE_FREE``: on a per-cpu list) and reserved pages (``PG_reserved``) are not blocks.
2. A simulated :class:`~kinspect.engine.machine.Machine` of the x86_64 profile, its RAM
   ranges ending where the dump's RAM ends (its ``max_pfn``), booted with the four schemes in
   lockstep (``flat``, ``pshadow``, ``pageptr``, ``pageext``, as ``kinspect compare`` runs
   them). Its bill after boot is kept (``booted``): the simulated kernel's own boot slabs.
3. Each dump block through the lockstep's ``page_alloc(pfn, order, use)``, then the dump's
   real shadow bytes of every page whose shadow is not uniformly 00 through ``write()``: the
   byte-granular pages (slab, stack, large kmalloc) and any page allocation the kernel
   poisoned (a mempool element, say), which pageptr and pageext then give a block lazily, by
   their own rule. Then each scheme's ``footprint()``.

Where the schemes' own memory comes from: pshadow's real shadow pages (``kasan_map_shadow()``)
and the slabs of pageptr's/pageext's ``kasan_shadow_blocks`` cache are taken from the
simulated machine's buddy allocator, which holds the booted machine's free memory, not the
dump's free lists: their number is the scheme's rule, the pfns they land on are the simulated
machine's (``overlap`` counts those that the dump itself uses).

How a block's use is told (6.12 marks only slabs in struct page, include/linux/page-flags.h):
the kernel of the shared dumps has no ``CONFIG_VMAP_STACK``, so a stack is an order
``THREAD_SIZE_ORDER`` (2 + KASAN_STACK_ORDER, arch/x86/include/asm/page_64_types.h) block
of the direct map without ``__GFP_COMP`` (kernel/fork.c ``alloc_thread_stack_node()``), told
by its shadow's stack redzones (``KASAN_STACK_LEFT`` .. ``KASAN_STACK_PARTIAL``); a large
kmalloc is a compound block whose shadow holds ``KASAN_PAGE_REDZONE``
(mm/kasan/common.c ``poison_kmalloc_large_redzone()``). A stack with no frame poisoned at
the time of the dump is counted as a page allocation; its poisoned shadow, if any, is still
written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from kinspect.engine.kasan import (
    KASAN_PAGE_FREE,
    KASAN_PAGE_REDZONE,
    KASAN_STACK_LEFT,
    KASAN_STACK_PARTIAL,
)
from kinspect.engine.machine import Machine
from kinspect.engine.profile import MemoryRange, format_size, load_profile
from kinspect.engine.shadow import SCHEMES
from kinspect.engine.shadow.base import BYTE_GRANULAR_USES, Footprint, PageUse

from .reader import MAX_PAGE_ORDER, DumpReader, PGTY_buddy, PGTY_slab

__all__ = ["DumpBlocks", "SchemeBills", "dump_blocks", "scheme_bills", "bill_lines"]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
SHADOW_PER_PAGE = PAGE_SIZE >> 3  # shadow bytes of one page
THREAD_SIZE_ORDER = 3  # 2 + KASAN_STACK_ORDER (CONFIG_KASAN)
COMPARED = tuple(SCHEMES)  # flat, pshadow, pageptr, pageext


@dataclass
class DumpBlocks:
    """The dump's allocated blocks and what was read to find them."""

    blocks: list[tuple[int, int, PageUse]]  # (head pfn, order, use), by pfn
    shadow: np.ndarray  # the real shadow of [0, end_pfn) (per page)
    counts: dict[str, int] = field(default_factory=dict)  # pages by kind


def _real_shadow(r: DumpReader) -> tuple[np.ndarray, np.ndarray]:
    """The dump's shadow of each page of the direct map, (end_pfn, 512) bytes, and a mask of
    the pages whose shadow the dump holds (read a shadow page, 8 pages, at a time)."""
    n = r.end_pfn
    out = np.zeros((n, SHADOW_PER_PAGE), np.uint8)
    ok = np.zeros(n, bool)
    base = r.prof.kasan_mem_to_shadow(r.k.page_offset_base)
    per = PAGE_SIZE // SHADOW_PER_PAGE  # pages per shadow page
    for first in range(0, n, per):
        cnt = min(per, n - first)
        data = r.k.read(base + first * SHADOW_PER_PAGE, cnt * SHADOW_PER_PAGE)
        if data is not None:
            out[first : first + cnt] = np.frombuffer(data, np.uint8).reshape(cnt, -1)
            ok[first : first + cnt] = True
    return out, ok


def dump_blocks(r: DumpReader) -> DumpBlocks:
    """The allocated blocks of the dump (see the module's docstring)."""
    n = r.end_pfn
    raw, known = r._raw_pages(0, n)
    shadow, shadow_ok = _real_shadow(r)
    known &= shadow_ok
    flags, ptype = raw["flags"], raw["page_type"] >> 24
    head = raw["compound_head"]
    tail = (head & np.uint64(1)) == 1
    reserved = (
        np.zeros(n, bool)
        if r.pg_reserved is None
        else (flags >> np.uint64(r.pg_reserved)) & np.uint64(1) == 1
    )
    pg_head = (
        np.zeros(n, bool)
        if r.pg_head is None
        else (flags >> np.uint64(r.pg_head)) & np.uint64(1) == 1
    )
    # order of a compound head: folio_order(), the first tail's _flags_1 & 0xff
    order = np.zeros(n, np.int64)
    heads = np.flatnonzero(pg_head[:-1] & known[:-1] & ~tail[:-1])
    order[heads] = (raw["flags"][heads + 1] & np.uint64(0xFF)).astype(np.int64)
    stacky = ((shadow >= KASAN_STACK_LEFT) & (shadow <= KASAN_STACK_PARTIAL)).any(axis=1)
    stack_pages = 1 << THREAD_SIZE_ORDER  # a stack: its aligned block, whole
    stack_block = np.zeros(-(-n // stack_pages) * stack_pages, bool)
    stack_block[:n] = stacky
    stack_block = np.any(stack_block.reshape(-1, stack_pages), axis=1)
    free_shadow = (shadow == KASAN_PAGE_FREE).all(axis=1)
    zero_shadow = ~np.any(shadow, axis=1)
    counts = dict.fromkeys(("free", "reserved", "not in the dump"), 0)
    blocks: list[tuple[int, int, PageUse]] = []
    pfn = 0
    while pfn < n:
        if not known[pfn]:
            counts["not in the dump"] += 1
            pfn += 1
            continue
        if ptype[pfn] == PGTY_buddy:  # buddy_order(): page->private
            step = 1 << min(int(raw["private"][pfn]), MAX_PAGE_ORDER)
            counts["free"] += min(step, n - pfn)
            pfn += step
            continue
        if reserved[pfn]:
            counts["reserved"] += 1
            pfn += 1
            continue
        if pfn % stack_pages == 0 and stack_block[pfn // stack_pages]:
            blocks.append((pfn, THREAD_SIZE_ORDER, PageUse.STACK))
            pfn += stack_pages
            continue
        o = int(order[pfn]) if pg_head[pfn] else 0
        if tail[pfn]:  # a tail whose head is not here: itself
            o = 0
        if ptype[pfn] == PGTY_slab:
            use = PageUse.SLAB
        elif raw["refcount"][pfn] == 0 and free_shadow[pfn]:
            counts["free"] += 1  # on a per-cpu list (refcount 0, poisoned)
            pfn += 1
            continue
        elif o and (shadow[pfn : pfn + (1 << o)] == KASAN_PAGE_REDZONE).any():
            use = PageUse.LARGE_KMALLOC
        else:
            use = PageUse.PAGE_ALLOC
        o = min(o, (n - pfn).bit_length() - 1)
        blocks.append((pfn, o, use))
        pfn += 1 << o
    for use in (PageUse.SLAB, PageUse.LARGE_KMALLOC, PageUse.STACK, PageUse.PAGE_ALLOC):
        counts[use.name.lower()] = sum(1 << o for _, o, u in blocks if u == use)
    counts["page_alloc_poisoned"] = sum(
        1
        for p, o, u in blocks
        if u == PageUse.PAGE_ALLOC
        for q in range(p, p + (1 << o))
        if not zero_shadow[q]
    )
    return DumpBlocks(blocks, shadow, counts)


def _memory_up_to(end_pfn: int) -> int:
    """RAM bytes of the x86_64 profile's ranges (holes kept) that end at ``end_pfn``."""
    end = end_pfn << PAGE_SHIFT
    return sum(
        min(r.end, end) - r.start for r in load_profile("x86_64").memory if r.start < end
    ) + max(0, end - load_profile("x86_64").memory[-1].end)


@dataclass
class SchemeBills:
    """Each scheme's bill for the dump's state, beside the real kernel's."""

    real: Footprint
    booted: dict[str, Footprint]  # the simulated machine just booted
    bills: dict[str, Footprint]  # ... with the dump's blocks and shadow
    blocks: DumpBlocks
    memory: tuple[MemoryRange, ...]
    written_pages: int  # pages whose real shadow was written
    overlap: int  # the schemes' own pages on pfns the dump uses
    machine: Machine
    cpu_seconds: float  # in all (process time)
    blocks_seconds: float  # ... of which dump_blocks()

    def to_json(self) -> dict:
        return {
            "real": self.real.as_dict(),
            "schemes": {
                n: {"booted": self.booted[n].as_dict(), "dump": self.bills[n].as_dict()}
                for n in self.bills
            },
            "pages": self.blocks.counts,
            "blocks": len(self.blocks.blocks),
            "written_pages": self.written_pages,
            "overlap": self.overlap,
            "memory": [[r.start, r.end] for r in self.memory],
        }


def scheme_bills(
    r: DumpReader, real: Footprint | None = None, engine: str | None = None
) -> SchemeBills:
    """The four schemes' bills for the dump's memory (see the module's docstring), on
    ``engine`` (as ``native.engine()``)."""
    t0 = time.process_time()
    b = dump_blocks(r)
    t_blocks = time.process_time() - t0
    profile = load_profile("x86_64", _memory_up_to(r.end_pfn))
    m = Machine(profile, schemes=COMPARED, engine=engine)
    booted = {s.name: s.footprint() for s in m.schemes}
    shadow = m.shadow
    for pfn, order, use in b.blocks:
        if not shadow.page_alloc(pfn, order, use):
            raise MemoryError(
                f"the simulated machine has no memory for the shadow of pfn "
                f"{pfn:#x} (order {order}, {use.name})"
            )
    written = 0
    for pfn, order, use in b.blocks:
        for p in range(pfn, pfn + (1 << order)):
            row = b.shadow[p]
            if use in BYTE_GRANULAR_USES or row.any():
                shadow.write(m.page_address(p), row.tobytes())
                written += 1
    used: set[int] = set()
    for pfn, order, _ in b.blocks:
        used.update(range(pfn, pfn + (1 << order)))
    overlap = sum(
        1
        for p, (o, u) in m.pages.items()
        if u == PageUse.SHADOW
        for q in range(p, p + (1 << o))
        if q in used
    )
    bills = {s.name: s.footprint() for s in m.schemes}
    return SchemeBills(
        real if real is not None else r.footprint("generic"),
        booted,
        bills,
        b,
        profile.memory,
        written,
        overlap,
        m,
        time.process_time() - t0,
        t_blocks,
    )


def bill_lines(sb: SchemeBills) -> list[str]:
    """The table of the bills: the real kernel's, then each scheme's for the dump's state."""
    c = sb.blocks.counts
    byte_granular = c["slab"] + c["large_kmalloc"] + c["stack"]
    out = [
        f"the 2017 comparison on this dump: {byte_granular} byte-granular pages "
        f"({c['slab']} slab, {c['large_kmalloc']} large kmalloc, {c['stack']} stack), "
        f"{c['page_alloc']} other allocated, {c['free']} free, {c['reserved']} reserved",
        f"{'scheme':<18}{'static':>10}{'dynamic':>10}{'metadata':>10}{'total':>10}"
        f"  virtual range  what",
    ]

    def row(name: str, f: Footprint, what: str) -> str:
        return (
            f"{name:<18}{format_size(f.static_bytes):>10}{format_size(f.dynamic_bytes):>10}"
            f"{format_size(f.metadata_bytes):>10}{format_size(f.total_bytes()):>10}"
            f"  {format_size(f.virtual_range_bytes):>13}  {what}"
        )

    out.append(row("generic (dump)", sb.real, "the shadow pages the dump's page tables map"))
    for name, f in sb.bills.items():
        booted = sb.booted[name]
        if name == "pshadow":
            what = f"{f.shadow_pages_mapped} shadow pages, {f.page_table_pages} PTE pages"
        elif name in ("pageptr", "pageext"):
            what = (
                f"{f.blocks_in_use} blocks ({booted.blocks_in_use} at boot) in "
                f"{f.shadow_slab_pages} slab pages"
            )
        else:
            what = "1/8 of the RAM, mapped at boot"
        out.append(row(name, f, what))
    out.append(
        f"(simulated: x86_64 profile, RAM to pfn {sb.memory[-1].end >> PAGE_SHIFT:#x}; "
        f"{len(sb.blocks.blocks)} blocks allocated, {sb.written_pages} pages' real "
        f"shadow written; {sb.cpu_seconds:.2f} s CPU)"
    )
    return out
