"""Struct layouts read from the vmlinux's DWARF (never hard-coded), cached by build ID.

A struct is found without decoding every compile unit: the CU of a function known to be
compiled with the struct's definition (``prb_read_valid`` for the printk ring buffer,
``kmem_cache_free`` for struct page, slab and kmem_cache) comes from ``.debug_aranges``
(:meth:`ElfSymbolizer.cu_offset_at`); that CU's top-level DIEs are scanned by
:meth:`ElfSymbolizer.type_definitions` (each subtree skipped through its sibling pointer); only
the struct's own subtree, and the types of its members, are decoded by pyelftools.

The layouts are stored as one entry of the symbolizer's on-disk cache (keyed by the build ID
and a hash of the DWARF sections, checksummed, rebuilt when it does not check out).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from kinspect.reports.symbols import ElfSymbolizer

from .core import VmcoreError

__all__ = ["Layout", "Member", "load_layouts", "load_enums", "WANTED_STRUCTS", "WANTED_ENUMS"]

#: struct name -> a function compiled in a CU that defines it
WANTED_STRUCTS: dict[str, str] = {  # (structs and unions)
    "printk_ringbuffer": "prb_read_valid",  # kernel/printk/printk_ringbuffer.c
    "prb_desc": "prb_read_valid",
    "printk_info": "prb_read_valid",
    "prb_data_block": "prb_read_valid",
    "page": "kmem_cache_free",  # mm/slub.c
    "slab": "kmem_cache_free",
    "kmem_cache": "kmem_cache_free",
    "trace_print_flags": "dump_page",  # mm/debug.c: pageflag_names[]
    "page_flags_fields": "vsnprintf",  # lib/vsprintf.c: pff[], %pGp
    "printf_spec": "vsnprintf",
    "static_key_false": "kmem_cache_free",  # slub_debug_enabled
    "kasan_alloc_meta": "kasan_complete_mode_report_info",  # mm/kasan/report_generic.c
    "kasan_free_meta": "kasan_complete_mode_report_info",
    "stack_record": "stack_depot_print",  # lib/stackdepot.c
    "handle_parts": "stack_depot_print",  # (a union)
    "qlist_head": "kasan_quarantine_put",  # mm/kasan/quarantine.c
    "qlist_node": "kasan_quarantine_put",
}
#: enum name -> a function compiled in a CU that defines it (enumerators read by name)
WANTED_ENUMS: dict[str, str] = {
    "_slab_flag_bits": "kmem_cache_free",  # include/linux/slab.h: _SLAB_RED_ZONE
}
_CACHE_ENTRY = "vmcore-layouts-6"
#: the layouts of each open symbolizer (read once per vmlinux opened)
_LOADED: weakref.WeakKeyDictionary[ElfSymbolizer, tuple] = weakref.WeakKeyDictionary()
_MAX_DEPTH = 6  # nesting of flattened members (struct page: unions in structs)
_MAX_MEMBERS = 4096


@dataclass(frozen=True)
class Member:
    """A (flattened) member: byte offset and size; bit fields have ``bit_size``."""

    offset: int
    size: int
    bit_offset: int | None = None  # from the start of the struct, in bits
    bit_size: int | None = None

    def span(self) -> tuple[int, int]:
        """(first byte, byte count) that hold the member (a bit field's own bytes)."""
        if self.bit_size is None:
            return self.offset, self.size
        assert self.bit_offset is not None  # (a bit field has both)
        first = self.bit_offset // 8
        return first, (self.bit_offset + self.bit_size + 7) // 8 - first

    def get(self, data, at: int = 0) -> int:
        """The member's unsigned value in ``data``, the struct starting at ``at``
        (little-endian: bit fields numbered from the least significant bit)."""
        first, n = self.span()
        v = int.from_bytes(data[at + first : at + first + n], "little")
        if self.bit_size is None:
            return v
        assert self.bit_offset is not None  # (a bit field has both)
        return (v >> (self.bit_offset - 8 * first)) & ((1 << self.bit_size) - 1)


@dataclass
class Layout:
    """One struct: its size and its members by dotted path (``desc_ring.count_bits``); an
    anonymous struct or union adds no name to the path."""

    name: str
    size: int
    members: dict[str, Member]

    def __getitem__(self, path: str) -> Member:
        try:
            return self.members[path]
        except KeyError:
            raise VmcoreError(
                f"struct {self.name} has no member {path} in this vmlinux's DWARF", None
            ) from None

    def to_json(self) -> dict:
        return {
            "size": self.size,
            "members": {
                k: [m.offset, m.size, m.bit_offset, m.bit_size] for k, m in self.members.items()
            },
        }

    @classmethod
    def from_json(cls, name: str, doc) -> Layout:
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("size"), int)
            or not isinstance(doc.get("members"), dict)
        ):
            raise ValueError("bad layout")
        members = {}
        for k, v in doc["members"].items():
            if not (isinstance(v, list) and len(v) == 4 and all(isinstance(x, int) for x in v[:2])):
                raise ValueError("bad member")
            members[k] = Member(*v)
        return cls(name, doc["size"], members)


def load_layouts(sym: ElfSymbolizer) -> dict[str, Layout]:
    """Every struct of :data:`WANTED_STRUCTS` (a struct the DWARF lacks is left out)."""
    return _load(sym)[0]


def load_enums(sym: ElfSymbolizer) -> dict[str, dict[str, int]]:
    """The enumerators of every enum of :data:`WANTED_ENUMS` (one the DWARF lacks: left out)."""
    return _load(sym)[1]


def _load(sym: ElfSymbolizer) -> tuple[dict[str, Layout], dict[str, dict[str, int]]]:
    done = _LOADED.get(sym)
    if done is not None:
        return done
    meta = sym.load_cached(_CACHE_ENTRY)
    if meta is not None:
        try:
            enums = meta["enums"]
            if not all(isinstance(v, int) for e in enums.values() for v in e.values()):
                raise ValueError("bad enum")
            done = ({n: Layout.from_json(n, d) for n, d in meta["layouts"].items()}, enums)
        except (ValueError, TypeError, KeyError, AttributeError):
            done = None  # (checksummed, but not ours: rebuilt)
    if done is None:
        with sym.reading("the DWARF types"):
            done = _read_types(sym)
        sym.store_cached(
            _CACHE_ENTRY,
            {"layouts": {n: lay.to_json() for n, lay in done[0].items()}, "enums": done[1]},
        )
    _LOADED[sym] = done
    return done


def _read_types(sym: ElfSymbolizer) -> tuple[dict[str, Layout], dict[str, dict[str, int]]]:
    if not sym.has_dwarf:
        raise VmcoreError(
            "the vmlinux has no DWARF (.debug_info): kinspect needs an "
            "unstripped vmlinux built with CONFIG_DEBUG_INFO",
            sym.path,
        )
    by_cu: dict[int, set[tuple[str, str]]] = {}
    for kind, wanted in (("struct", WANTED_STRUCTS), ("enum", WANTED_ENUMS)):
        for name, func in wanted.items():
            hits = sym.find_symbols(func)
            cu = sym.cu_offset_at(hits[0].addr) if hits else None
            if cu is not None:
                by_cu.setdefault(cu, set()).add((kind, name))
    layouts: dict[str, Layout] = {}
    enums: dict[str, dict[str, int]] = {}
    for cu_off, types in by_cu.items():
        for kind, name, die in sym.type_definitions(cu_off, types):
            if kind == "struct":
                layouts[name] = _layout(name, die)
            else:
                enums[name] = {
                    c.attributes["DW_AT_name"].value.decode(): int(
                        c.attributes["DW_AT_const_value"].value
                    )
                    for c in die.iter_children()
                    if c.tag == "DW_TAG_enumerator"
                }
    return layouts, enums


def _strip(die):
    """Through typedefs, const, volatile, atomic: the type that has the size."""
    for _ in range(16):
        if (
            die.tag
            in (
                "DW_TAG_typedef",
                "DW_TAG_const_type",
                "DW_TAG_volatile_type",
                "DW_TAG_atomic_type",
                "DW_TAG_restrict_type",
            )
            and "DW_AT_type" in die.attributes
        ):
            die = die.get_DIE_from_attribute("DW_AT_type")
        else:
            return die
    return die


def _byte_size(die) -> int:
    die = _strip(die)
    a = die.attributes
    if "DW_AT_byte_size" in a:
        return int(a["DW_AT_byte_size"].value)
    if die.tag == "DW_TAG_pointer_type":
        return die.cu["address_size"]
    if die.tag == "DW_TAG_array_type" and "DW_AT_type" in a:
        n = 1
        for sub in die.iter_children():
            sa = sub.attributes
            if "DW_AT_count" in sa:
                n *= int(sa["DW_AT_count"].value)
            elif "DW_AT_upper_bound" in sa:
                n *= int(sa["DW_AT_upper_bound"].value) + 1
            else:
                n = 0  # a flexible array member
        return n * _byte_size(die.get_DIE_from_attribute("DW_AT_type"))
    return 0


def _layout(name: str, die) -> Layout:
    members: dict[str, Member] = {}
    _flatten(die, "", 0, members, 0)
    return Layout(name, int(die.attributes["DW_AT_byte_size"].value), members)


def _flatten(die, prefix: str, base: int, out: dict[str, Member], depth: int) -> None:
    for m in die.iter_children():
        if m.tag != "DW_TAG_member" or len(out) >= _MAX_MEMBERS:
            continue
        a = m.attributes
        nm = a["DW_AT_name"].value.decode() if "DW_AT_name" in a else None
        loc = a.get("DW_AT_data_member_location")
        off = base + (int(loc.value) if loc is not None and isinstance(loc.value, int) else 0)
        t = m.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in a else None
        size = _byte_size(t) if t is not None else 0
        path = f"{prefix}{nm}" if nm else prefix.rstrip(".")
        if "DW_AT_bit_size" in a:
            bit = a["DW_AT_data_bit_offset"].value if "DW_AT_data_bit_offset" in a else 0
            out[path] = Member(off, size, base * 8 + int(bit), int(a["DW_AT_bit_size"].value))
            continue
        if nm:
            out[path] = Member(off, size)
        st = _strip(t) if t is not None else None
        if (
            st is not None
            and st.tag in ("DW_TAG_structure_type", "DW_TAG_union_type")
            and depth < _MAX_DEPTH
        ):
            _flatten(st, f"{path}." if path else "", off, out, depth + 1)
