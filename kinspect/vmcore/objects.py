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
from kinspect.engine.report import BadAccess
from kinspect.engine.slab import KmemCache

from .kernel import Kernel
from .page import PGTY_SLAB, _cstr, _s32, pfn_of

__all__ = ["SlabObject", "find_object"]


class SlabObject(SimpleNamespace):
    """object_addr, cache_name, cache_object_size, cache_size, alloc_size, slab, notes."""

    def lines(self, addr: int, bug_type: str | None = None) -> list[str]:
        """``describe_object_addr()``'s lines for an access at ``addr`` (``bug_type`` gives
        the region's "allocated "/"freed " word, as the kernel's generic mode does)."""
        out = [f"The buggy address belongs to the object at {self.object_addr:016x}",
               f" which belongs to the cache {self.cache_name} of size "
               f"{self.cache_object_size}"]
        # the one copy of the rule: the engine's BadAccess.region_description()
        rel_bytes, rel_type, state = BadAccess.region_description(SimpleNamespace(
            addr=addr, object_addr=self.object_addr, alloc_size=self.alloc_size,
            bug_type=bug_type))
        out += [f"The buggy address is located {rel_bytes} bytes {rel_type} of",
                f" {state}{self.alloc_size}-byte region [{self.object_addr:016x}, "
                f"{self.object_addr + self.alloc_size:016x})"]
        return out

    def to_json(self) -> dict:
        return {"object": f"{self.object_addr:#x}", "cache": self.cache_name,
                "object_size": self.cache_object_size, "size": self.cache_size,
                "alloc_size": self.alloc_size, "slab": f"{self.slab:#x}",
                "notes": self.notes}


def find_object(k: Kernel, addr: int, shadow_byte) -> SlabObject | None:
    """The slab object of ``addr`` (None: not a direct-map address of a slab page, or its
    structures are not in the dump).  ``shadow_byte(a)``: the dump's shadow byte of ``a``
    (raises when unreadable)."""
    pfn = pfn_of(k, addr)
    if pfn is None or not {"page", "slab", "kmem_cache"} <= k.layouts.keys():
        return None
    psize = k.layouts["page"].size
    page = k.vmemmap_base + pfn * psize
    head = k.field("page", page, "compound_head")
    if head is None:
        return None
    folio = head - 1 if head & 1 else page                  # page_folio()
    page_type = k.field("page", folio, "page_type")
    if page_type is None or page_type >> 24 != PGTY_SLAB:  # folio_test_slab()
        return None
    slab = folio                                            # folio_slab(): the same memory
    cache = k.field("slab", slab, "slab_cache")
    objects = k.field("slab", slab, "objects")
    if not cache or not objects:
        return None
    kc = {m: k.field("kmem_cache", cache, m) for m in
          ("size", "object_size", "flags", "red_left_pad", "name")}
    if None in kc.values() or not kc["size"]:
        return None
    base = k.page_offset_base + (folio - k.vmemmap_base) // psize * 4096   # slab_address()
    # nearest_obj(): the slot, clamped to the last object (the engine's one copy of it)
    obj = KmemCache.nearest_obj(SimpleNamespace(size=kc["size"], objects=objects),
                                SimpleNamespace(base=base), addr)
    notes: list[str] = []
    if _red_zone_enabled(k, kc["flags"], notes):          # fixup_red_left()
        obj += kc["red_left_pad"]
    try:
        alloc_size = kasan_get_alloc_size(shadow_byte, obj, kc["object_size"])
    except Exception:                                       # (the shadow_byte's own error)
        alloc_size = 0
        notes.append("the object's shadow is not in the dump: its size is the cache's")
    return SlabObject(object_addr=obj, cache_name=_cstr(k, kc["name"]) or "?",
                      cache_object_size=kc["object_size"], cache_size=kc["size"],
                      alloc_size=alloc_size or kc["object_size"], slab=slab, notes=notes)


def kasan_get_alloc_size(shadow_byte, obj: int, object_size: int) -> int:
    """``kasan_get_alloc_size()`` of generic KASAN (0 for a freed object): the engine's one
    copy of the rule, run over the dump's shadow."""
    return Machine._kasan_get_alloc_size(
        SimpleNamespace(shadow=SimpleNamespace(shadow_byte=shadow_byte)),
        SimpleNamespace(object_size=object_size), obj)


def _red_zone_enabled(k: Kernel, flags: int, notes: list[str]) -> bool:
    """``kmem_cache_debug_flags(s, SLAB_RED_ZONE)``: the ``slub_debug_enabled`` static key
    and the cache's flag (bit ``_SLAB_RED_ZONE`` of the DWARF enum)."""
    key = k.symbols.get("slub_debug_enabled")
    if key is None:                                         # CONFIG_SLUB_DEBUG=n
        return False
    bit = k.enums.get("_slab_flag_bits", {}).get("_SLAB_RED_ZONE")
    enabled = k.field("static_key_false", key, "key.enabled.counter") \
        if "static_key_false" in k.layouts else None
    if bit is None or enabled is None:
        notes.append("slub_debug's red zone unknown: the object taken at its slot's start")
        return False
    return _s32(enabled) > 0 and bool(flags >> bit & 1)    # static_key_count() > 0
