"""The kernel's ``dump_page()`` lines (mm/debug.c, 6.12) for a struct page in a dump:

    page: refcount:1 mapcount:0 mapping:0000000000000000 index:0x0 pfn:0x6578
    flags: 0x4000000000000000(zone=1)
    page_type: f5(slab)
    raw: 4000000000000000 ffff888003841a00 dead000000000122 0000000000000000
    raw: 0000000000000000 0000000080100010 00000001f5000000 0000000000000000

``__dump_folio()`` for a page that is not part of a large folio; the tables it prints with
(``pageflag_names[]``, ``page_type_names[]``, vsprintf's ``pff[]`` of ``%pGp``) are read from
the dump, their layouts from DWARF.  What is not decoded yet is said in ``notes``, never
guessed: a page of a large folio (its ``head:`` lines), a swap-cache or file page's mapping
(``dump_mapping()``), a kernel with CMA (the `` CMA`` suffix).
"""

from __future__ import annotations

from .kernel import Kernel
from .pagetable import PAGE_SIZE

__all__ = ["dump_page_lines"]

PG_TYPE_UNDERFLOW = 0xFF  # PGTY_mapcount_underflow, include/linux/page-flags.h
PGTY_SLAB = 0xF5
PAGE_MAPPING_ANON = 0x1  # include/linux/page-flags.h
PAGE_MAPPING_KSM = 0x3
PAGE_MAPPING_FLAGS = 0x3
SPECIAL = 64  # lib/vsprintf.c: number()'s "0x" prefix flag


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def page_type_has_type(page_type: int) -> bool:
    """``page_type_has_type()``: ``(int)page_type < (PGTY_mapcount_underflow << 24)``."""
    return _s32(page_type & 0xFFFFFFFF) < _s32(PG_TYPE_UNDERFLOW << 24)


def page_mapcount_is_type(mapcount: int) -> bool:
    return page_type_has_type((mapcount - 1) & 0xFFFFFFFF)


def _cstr(k: Kernel, addr: int, limit: int = 64) -> str | None:
    if addr == 0:
        return None
    b = k.read(addr, limit)
    if b is None:  # (near the end of a page: byte by byte)
        out = bytearray()
        for i in range(limit):
            c = k.read(addr + i, 1)
            if c is None or c == b"\0":
                break
            out += c
        return out.decode("latin-1")
    return b.split(b"\0")[0].decode("latin-1")


def _table(k: Kernel, name: str, entry: int) -> tuple[int, int] | None:
    """(address, entries) of the array symbol ``name`` whose size is a multiple of ``entry``."""
    for addr, size in k.symbol_candidates.get(name, ()):
        if size and size % entry == 0:
            return addr, size // entry
    return None


def _number(value: int, spec: tuple[int, int]) -> str:
    base, flags = spec
    if base == 16:
        return f"{value:#x}" if flags & SPECIAL else f"{value:x}"
    return str(value)


def format_page_flags(k: Kernel, flags: int, notes: list[str]) -> str | None:
    """``%pGp`` (lib/vsprintf.c ``format_page_flags()``): the value, then the names of the
    set flags of ``pageflag_names[]`` (``format_flags()``) and the fields of ``pff[]``."""
    L = k.layouts
    tpf = L["trace_print_flags"]
    names_tab = _table(k, "pageflag_names", tpf.size)
    pffl = L["page_flags_fields"]
    pff_tab = _table(k, "pff", pffl.size)
    if names_tab is None or pff_tab is None:
        notes.append("pageflag_names[] or pff[] not found in the vmlinux: flags not decoded")
        return None
    # BUILD_BUG_ON(ARRAY_SIZE(pageflag_names) != __NR_PAGEFLAGS + 1) in __dump_folio()
    nr_pageflags = names_tab[1] - 1
    main_flags = flags & ((1 << nr_pageflags) - 1)
    parts: list[str] = []
    if main_flags:
        rest = main_flags
        words = []
        for i in range(names_tab[1]):
            at = names_tab[0] + i * tpf.size
            mask, name_p = (
                k.field("trace_print_flags", at, "mask"),
                k.field("trace_print_flags", at, "name"),
            )
            if mask is None or name_p is None:
                notes.append("pageflag_names[] not in the dump: flags not decoded")
                return None
            if not rest or not name_p:
                break
            if rest & mask != mask:
                continue
            words.append(_cstr(k, name_p) or "(null)")
            rest &= ~mask
        if rest:
            words.append(f"{rest:#x}")
        parts.append("|".join(words))
    for i in range(pff_tab[1]):
        at = pff_tab[0] + i * pffl.size
        width, shift, mask, spec_p, name_p = (
            k.field("page_flags_fields", at, m) for m in ("width", "shift", "mask", "spec", "name")
        )
        if width is None or shift is None or mask is None or spec_p is None or name_p is None:
            notes.append("pff[] not in the dump: flags not decoded")
            return None
        if not width:
            continue
        base = k.field("printf_spec", spec_p, "base")
        spec_flags = k.field("printf_spec", spec_p, "flags")
        if base is None or spec_flags is None:
            notes.append("pff[]'s printf_spec not in the dump: flags not decoded")
            return None
        parts.append(f"{_cstr(k, name_p)}={_number((flags >> shift) & mask, (base, spec_flags))}")
    return f"{flags:#x}({'|'.join(parts)})"


def dump_page_lines(k: Kernel, pfn: int) -> tuple[list[str], list[str]]:
    """The lines ``dump_page()`` prints for ``pfn`` (without "page dumped because"), and
    notes on what is not decoded.  ([], [why]) when the struct page is not in the dump."""
    notes: list[str] = []
    pl = k.layouts["page"]
    page = k.vmemmap_base + pfn * pl.size
    raw = k.read(page, pl.size)
    if raw is None:
        return [], [f"the struct page of pfn {pfn:#x} ({page:#x}) is not in the dump"]

    def f(member: str) -> int:  # (read from the struct page's bytes, all in the dump)
        return pl[member].get(raw)

    words = [int.from_bytes(raw[i : i + 8], "little") for i in range(0, pl.size, 8)]
    raw_lines = [
        "raw: " + " ".join(f"{w:016x}" for w in words[i : i + 4]) for i in range(0, len(words), 4)
    ]
    flags = f("flags")
    head = f("compound_head")
    pg_head = _pageflag_bit(k, "head")
    if head & 1 or (pg_head is not None and flags >> pg_head & 1):
        notes.append(
            "a page of a large folio: its page:/head:/flags: lines are not decoded "
            "yet (the raw lines are)"
        )
        return raw_lines, notes
    if pg_head is None:
        notes.append("PG_head not found in pageflag_names[]: the page is taken as order 0")
    page_type = f("page_type")
    mapcount = _s32(page_type & 0xFFFFFFFF)
    mapcount = 0 if page_mapcount_is_type(page_type) else mapcount + 1
    mapping = f("mapping")
    is_slab = page_type >> 24 == PGTY_SLAB  # folio_test_slab()
    swapcache = _pageflag_bit(k, "swapcache")
    swapbacked = _pageflag_bit(k, "swapbacked")
    out = []
    if is_slab or mapping & PAGE_MAPPING_FLAGS:  # folio_mapping(): NULL
        mapping_shown = 0
    elif (
        swapcache is not None
        and swapbacked is not None
        and flags >> swapcache & 1
        and flags >> swapbacked & 1
    ):
        notes.append("a swap-cache page: its mapping (swap_address_space()) is not decoded")
        return raw_lines, notes
    else:
        mapping_shown = mapping
    hashed = mapping_shown and not _no_hash_pointers(k)
    ptr = "(hashed: the kernel prints it hashed)" if hashed else f"{mapping_shown:016x}"
    out.append(
        f"page: refcount:{_s32(f('_refcount') & 0xFFFFFFFF)} mapcount:{mapcount} "
        f"mapping:{ptr} index:{f('index'):#x} pfn:{pfn:#x}"
    )
    if "memcg_data" in pl.members and f("memcg_data"):
        out.append(f"memcg:{f('memcg_data'):x}")
    kind = ""
    if not is_slab and mapping & PAGE_MAPPING_FLAGS == PAGE_MAPPING_KSM:
        kind = "ksm "
    elif not is_slab and mapping & PAGE_MAPPING_ANON:
        kind = "anon "
    elif mapping_shown:
        notes.append("a file page: dump_mapping()'s lines are not decoded")
    flags_text = format_page_flags(k, flags, notes)
    if flags_text is None:
        return raw_lines, notes
    if "cma_areas" in k.symbols:
        notes.append("a kernel with CMA: whether the flags line ends in ' CMA' is not decided")
    out.append(f"{kind}flags: {flags_text}")
    if page_mapcount_is_type(page_type):  # page_has_type()
        out.append(f"page_type: {page_type >> 24:x}({_page_type_name(k, page_type)})")
    return out + raw_lines, notes


def _pageflag_bit(k: Kernel, name: str) -> int | None:
    """The bit of PG_``name``: its mask's bit in ``pageflag_names[]`` (read from the dump)."""
    cache = k.__dict__.setdefault("_pageflag_bits", {})
    if not cache:
        tpf = k.layouts["trace_print_flags"]
        tab_addr, tab_len = _table(k, "pageflag_names", tpf.size) or (0, 0)
        for i in range(tab_len):
            at = tab_addr + i * tpf.size
            mask = k.field("trace_print_flags", at, "mask")
            nm = k.field("trace_print_flags", at, "name")
            if not nm or not mask:
                break
            if mask & (mask - 1) == 0:
                cache[_cstr(k, nm)] = mask.bit_length() - 1
        cache.setdefault("", None)
    return cache.get(name)


def _page_type_name(k: Kernel, page_type: int) -> str:
    """``page_type_name()``: ``page_type_names[(page_type >> 24) - 0xf0]`` or "unknown"."""
    tab = _table(k, "page_type_names", 8)
    i = (page_type >> 24) - 0xF0
    if tab is None or not 0 <= i < tab[1]:
        return "unknown"
    p = k.u64(tab[0] + 8 * i)
    return "(null)" if not p else (_cstr(k, p) or "(null)")


def _no_hash_pointers(k: Kernel) -> bool:
    at = k.symbols.get("no_hash_pointers")
    b = None if at is None else k.read(at, 1)
    return bool(b and b[0])


def pfn_of(k: Kernel, addr: int) -> int | None:
    """The pfn of a direct-map address of memory the dump holds (None elsewhere)."""
    off = addr - k.page_offset_base
    if not 0 <= off < k.core.ram_end or k.core.read_phys(off, 1) is None:
        return None
    return off // PAGE_SIZE
