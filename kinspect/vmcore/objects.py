"""The slab object holding an address, as KASAN's report describes it
(mm/kasan/report.c ``complete_report_info()`` and ``describe_object_addr()``, 6.12):

    The buggy address belongs to the object at ffff888006578e00
     which belongs to the cache kmalloc-128 of size 128
    The buggy address is located 0 bytes to the right of
     allocated 115-byte region [ffff888006578e00, ffff888006578e73)

``kasan_addr_to_slab()``: the folio of a direct-map address, when its page type is slab;
``nearest_obj()`` (mm/slab.h) with ``fixup_red_left()`` (mm/slub.c); the allocated size by
``kasan_get_alloc_size()`` (mm/kasan/report_generic.c) over the dump's shadow.  struct slab
and struct kmem_cache come from DWARF, ``_SLAB_RED_ZONE`` from the DWARF enum.
"""

from __future__ import annotations

from types import SimpleNamespace

from kinspect.engine.machine import Machine
from kinspect.engine.report import object_region
from kinspect.engine.slab import KmemCache

from .kernel import Kernel
from .page import PGTY_SLAB, _cstr, _s32, pfn_of

__all__ = ["SlabObject", "find_object", "object_tracks", "addr_to_slab"]


class SlabObject(SimpleNamespace):
    """object_addr, cache (its kmem_cache), cache_name, cache_object_size, cache_size,
    alloc_size, slab, notes."""

    def lines(self, addr: int, bug_type: str | None = None) -> list[str]:
        """``describe_object_addr()``'s lines for an access at ``addr`` (``bug_type`` gives
        the region's "allocated "/"freed " word, as the kernel's generic mode does)."""
        out = [
            f"The buggy address belongs to the object at {self.object_addr:016x}",
            f" which belongs to the cache {self.cache_name} of size {self.cache_object_size}",
        ]
        # the one copy of the rule: the engine's object_region() (BadAccess's)
        rel_bytes, rel_type, state = object_region(
            addr, self.object_addr, self.alloc_size, bug_type or ""
        )
        out += [
            f"The buggy address is located {rel_bytes} bytes {rel_type} of",
            f" {state}{self.alloc_size}-byte region [{self.object_addr:016x}, "
            f"{self.object_addr + self.alloc_size:016x})",
        ]
        return out

    def to_json(self) -> dict:
        return {
            "object": f"{self.object_addr:#x}",
            "cache": self.cache_name,
            "object_size": self.cache_object_size,
            "size": self.cache_size,
            "alloc_size": self.alloc_size,
            "slab": f"{self.slab:#x}",
            "notes": self.notes,
        }


def find_object(k: Kernel, addr: int, shadow_byte) -> SlabObject | None:
    """The slab object of ``addr`` (None: not a direct-map address of a slab page, or its
    structures are not in the dump).  ``shadow_byte(a)``: the dump's shadow byte of ``a``
    (raises a LookupError when the dump does not hold it)."""
    slab = addr_to_slab(k, addr)
    if slab is None:
        return None
    psize = k.layouts["page"].size
    folio = slab  # folio_slab(): the same memory
    cache = k.field("slab", slab, "slab_cache")
    objects = k.field("slab", slab, "objects")
    if not cache or not objects:
        return None
    size, object_size, flags, red_left_pad, name = (
        k.field("kmem_cache", cache, m)
        for m in ("size", "object_size", "flags", "red_left_pad", "name")
    )
    if (
        size is None
        or object_size is None
        or flags is None
        or red_left_pad is None
        or name is None
        or not size
    ):
        return None
    base = k.page_offset_base + (folio - k.vmemmap_base) // psize * 4096  # slab_address()
    # nearest_obj(): the slot, clamped to the last object (the engine's one copy of it, run
    # on a stand-in cache and slab: it reads size, objects and base only)
    cache_ns, slab_ns = SimpleNamespace(size=size, objects=objects), SimpleNamespace(base=base)
    obj = KmemCache.nearest_obj(cache_ns, slab_ns, addr)  # type: ignore[arg-type]  # stand-ins
    notes: list[str] = []
    if _red_zone_enabled(k, flags, notes):  # fixup_red_left()
        obj += red_left_pad
    try:
        alloc_size = kasan_get_alloc_size(shadow_byte, obj, object_size)
    except LookupError:  # (shadow_byte: not in the dump)
        alloc_size = 0
        notes.append("the object's shadow is not in the dump: its size is the cache's")
    return SlabObject(
        object_addr=obj,
        cache=cache,
        cache_name=_cstr(k, name) or "?",
        cache_object_size=object_size,
        cache_size=size,
        alloc_size=alloc_size or object_size,
        slab=slab,
        notes=notes,
    )


def addr_to_slab(k: Kernel, addr: int) -> int | None:
    """``kasan_addr_to_slab()`` / ``virt_to_slab()``: the struct slab of a direct-map
    address (its folio, when the folio's page type is slab), or None."""
    pfn = pfn_of(k, addr)
    if pfn is None or not {"page", "slab", "kmem_cache"} <= k.layouts.keys():
        return None
    page = k.vmemmap_base + pfn * k.layouts["page"].size
    head = k.field("page", page, "compound_head")
    if head is None:
        return None
    folio = head - 1 if head & 1 else page  # page_folio()
    page_type = k.field("page", folio, "page_type")
    if page_type is None or page_type >> 24 != PGTY_SLAB:  # folio_test_slab()
        return None
    return folio


def kasan_get_alloc_size(shadow_byte, obj: int, object_size: int) -> int:
    """``kasan_get_alloc_size()`` of generic KASAN (0 for a freed object): the engine's one
    copy of the rule, run over the dump's shadow."""
    # (run on a stand-in machine and cache: it reads shadow.shadow_byte and object_size only)
    machine = SimpleNamespace(shadow=SimpleNamespace(shadow_byte=shadow_byte))
    cache = SimpleNamespace(object_size=object_size)
    return Machine._kasan_get_alloc_size(machine, cache, obj)  # type: ignore[arg-type]  # stand-ins


def _red_zone_enabled(k: Kernel, flags: int, notes: list[str]) -> bool:
    """``kmem_cache_debug_flags(s, SLAB_RED_ZONE)``: the ``slub_debug_enabled`` static key
    and the cache's flag (bit ``_SLAB_RED_ZONE`` of the DWARF enum)."""
    key = k.symbols.get("slub_debug_enabled")
    if key is None:  # CONFIG_SLUB_DEBUG=n
        return False
    bit = k.enums.get("_slab_flag_bits", {}).get("_SLAB_RED_ZONE")
    enabled = (
        k.field("static_key_false", key, "key.enabled.counter")
        if "static_key_false" in k.layouts
        else None
    )
    if bit is None or enabled is None:
        notes.append("slub_debug's red zone unknown: the object taken at its slot's start")
        return False
    return _s32(enabled) > 0 and bool(flags >> bit & 1)  # static_key_count() > 0


# --------------------------------------------------------------------------- the tracks

DEPOT_STACK_ALIGN = 4  # include/linux/stackdepot.h
KASAN_NO_FREE_META = 0x7FFFFFFF  # mm/kasan/kasan.h: INT_MAX
KASAN_SLAB_FREE_META = 0xFA  # mm/kasan/kasan.h


def object_tracks(k: Kernel, obj: SlabObject, shadow_byte) -> list[tuple[str, list[str]]]:
    """``describe_object_stacks()``: (title, frames) of the object's alloc track, its free
    track (when its first shadow byte is KASAN_SLAB_FREE_META), and its aux stacks, from
    KASAN's metadata in the dump (``kasan_complete_mode_report_info()``,
    ``kasan_print_aux_stacks()``), each stack from the stack depot
    (``stack_depot_print()``), its frames symbolized as ``%pS``.  A stack the dump does not
    hold is one frame, "(stack is not available)"."""
    if (
        not {"kasan_alloc_meta", "kasan_free_meta", "stack_record", "handle_parts"}
        <= k.layouts.keys()
    ):
        obj.notes.append("KASAN's metadata types are not in the vmlinux's DWARF")
        return []
    cache = obj.cache
    alloc_off = k.field("kmem_cache", cache, "kasan_info.alloc_meta_offset")
    free_off = k.field("kmem_cache", cache, "kasan_info.free_meta_offset")
    out: list[tuple[str, list[str]]] = []
    am = obj.object_addr + alloc_off if alloc_off else None  # kasan_get_alloc_meta()
    if am is not None:
        pid = k.field("kasan_alloc_meta", am, "alloc_track.pid")
        stack = k.field("kasan_alloc_meta", am, "alloc_track.stack")
        if stack:
            out.append((f"Allocated by task {pid}:", _depot_frames(k, stack)))
    try:
        freed = shadow_byte(obj.object_addr) == KASAN_SLAB_FREE_META
    except LookupError:  # (shadow_byte: not in the dump)
        freed = False
    if freed and free_off is not None and free_off != KASAN_NO_FREE_META:
        fm = obj.object_addr + free_off  # kasan_get_free_meta()
        pid = k.field("kasan_free_meta", fm, "free_track.pid")
        stack = k.field("kasan_free_meta", fm, "free_track.stack")
        if stack:
            out.append((f"Freed by task {pid}:", _depot_frames(k, stack)))
    if am is not None:
        aux = k.layouts["kasan_alloc_meta"]["aux_stack"]
        raw = k.read(am + aux.offset, aux.size)
        titles = (
            "Last potentially related work creation:",
            "Second to last potentially related work creation:",
        )
        for i, title in enumerate(titles):
            handle = None if raw is None else int.from_bytes(raw[4 * i : 4 * i + 4], "little")
            if handle:
                out.append((title, _depot_frames(k, handle)))
    return out


def _depot_frames(k: Kernel, handle: int) -> list[str]:
    """``depot_fetch_stack()`` + ``stack_trace_print()``: the frames of a stack depot handle
    (``name+0xoff/0xsize``), or ["(stack is not available)"]."""
    hp = k.layouts["handle_parts"]
    b = handle.to_bytes(4, "little")
    pool_index = hp["pool_index_plus_1"].get(b) - 1
    offset = hp["offset"].get(b) << DEPOT_STACK_ALIGN
    pools_num = k.symbols.get("pools_num")
    pools = k.symbols.get("stack_pools")
    n = None if pools_num is None else k.read(pools_num, 4)
    if pools is None or n is None or not 0 <= pool_index < int.from_bytes(n, "little"):
        return ["(stack is not available)"]
    pool = k.u64(pools + 8 * pool_index)
    if not pool:
        return ["(stack is not available)"]
    rec = pool + offset
    sr = k.layouts["stack_record"]
    size = k.field("stack_record", rec, "size")
    entries = sr["entries"]
    if size is None or not 0 < size <= entries.size // 8:
        return ["(stack is not available)"]
    raw = k.read(rec + entries.offset, 8 * size)
    if raw is None:
        return ["(stack is not available)"]
    return [_print_symbol(k, int.from_bytes(raw[8 * i : 8 * i + 8], "little")) for i in range(size)]


def _print_symbol(k: Kernel, ip: int) -> str:
    """``%pS`` as kallsyms gives it: ``name+0xoff/0xsize``, the size being the distance to
    the next symbol at a higher address (kernel/kallsyms.c ``get_symbol_pos()``: kallsyms
    keeps no sizes), here from the symbolizer's sorted symbol addresses."""
    link = ip - k.kaslr_offset  # (the vmlinux's addresses are link addresses)
    sym = k.sym.symbol_at(link)
    if sym is None:
        return f"0x{ip:x}"
    nxt = k.sym.next_symbol_address(sym.addr)
    size = nxt - sym.addr if nxt is not None else sym.size
    return f"{sym.name}+{link - sym.addr:#x}/{size:#x}"
