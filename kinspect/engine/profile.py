"""Architecture profiles: the numbers of one KASAN kernel build on one machine (Linux 6.12).

An ``ArchProfile`` holds what the simulator needs to know about an architecture and a machine:
``PAGE_SHIFT``, ``KASAN_SHADOW_OFFSET`` and the shadow region, ``PAGE_OFFSET`` and the direct
map, the physical memory ranges (as in /proc/iomem "System RAM", holes allowed), the zones,
``sizeof(struct page)`` and so on. Profiles are TOML files (the built-in ones:
``kinspect/data/profiles/*.toml``) whose keys are the field names below, grouped in tables;
every value is validated and every error names the file, line and column of the offending key.

Sources for the numbers: the 6.12 kernel sources (``arch/*/Kconfig``,
``arch/*/include/asm/kasan.h`` and ``memory.h``, ``include/linux/mm_types.h``,
``include/linux/page_ext.h``, ``Documentation/arch/*/``), and a real 6.12.117 KASAN kernel booted
under QEMU (its reports in ``tests/data/kernel-run/``, its kmem traces in ``samples/traces/``).
Each profile file cites its own.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

from ..data import PROFILES_DIR
from .errors import ProfileError
from .tables import format_blocks

MEM_OPTION = "--mem"
"""How errors caused by a memory-size override name their origin."""


# --- sizes -------------------------------------------------------------------------------

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)", re.IGNORECASE)
_HEX = re.compile(r"0x[0-9a-f]+", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``"4096"``, ``"0x1000"``, ``"512M"``, ``"1.5G"``, ``"1T"``.

    K, M, G and T are binary units (1K = 1024), case-insensitive, like the kernel's ``mem=``.
    """
    s = text.strip()
    if _HEX.fullmatch(s):
        return int(s, 16)
    m = _SIZE.fullmatch(s)
    if not m:
        raise ValueError(
            f"bad size {text!r}: expected a number with an optional K, M, G or T "
            f"suffix (binary units), e.g. 4096, 0x1000, 512M, 1G"
        )
    value = Fraction(m.group(1)) * _UNITS[m.group(2).upper()]
    if value.denominator != 1:
        raise ValueError(f"bad size {text!r}: not a whole number of bytes")
    return int(value)


def format_size(n: int) -> str:
    """A short human size: 1073741824 -> ``"1G"``, 1536 -> ``"1.5K"``, 100 -> ``"100"``."""
    for unit in "TGMK":
        if n >= _UNITS[unit]:
            return f"{n / _UNITS[unit]:.2f}".rstrip("0").rstrip(".") + unit
    return str(n)


# --- the profile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryRange:
    """Physical RAM [start, end): one "System RAM" line of /proc/iomem (one memblock region)."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Zone:
    """A memory zone (``enum zone_type``: "DMA", "DMA32", "Normal", "HighMem", ...) and its
    physical end, exclusive. The last zone's end is None: it runs to the end of memory."""

    name: str
    end: int | None


@dataclass(frozen=True)
class ArchProfile:
    """One kernel build (6.12, generic KASAN) on one machine. Field names are TOML keys."""

    name: str  # file stem, e.g. "x86_64"
    path: str  # the file it came from
    description: str
    arch: str  # ARCH= of the build: x86_64, arm64, arm, riscv64, powerpc
    bits: int  # BITS_PER_LONG
    endianness: str  # "little" or "big"
    page_shift: int  # PAGE_SHIFT
    kasan_shadow_scale_shift: int  # KASAN_SHADOW_SCALE_SHIFT (3 for generic KASAN)
    kasan_shadow_offset: int  # KASAN_SHADOW_OFFSET (CONFIG_KASAN_SHADOW_OFFSET)
    kasan_shadow_start: int  # KASAN_SHADOW_START
    kasan_shadow_end: int  # KASAN_SHADOW_END, exclusive
    page_offset: int  # PAGE_OFFSET: virtual base of the direct (linear) map
    phys_offset: int  # PHYS_OFFSET: physical address mapped at PAGE_OFFSET
    memory: tuple[MemoryRange, ...]  # present RAM: sorted, disjoint, page aligned
    lowmem_limit: int | None  # physical end of lowmem on 32-bit HIGHMEM machines, else None
    task_size: int  # TASK_SIZE
    vmalloc_start: int  # VMALLOC_START
    vmalloc_end: int  # VMALLOC_END, exclusive
    kernel_image_start: int  # virtual address of the kernel image's data (where globals live)
    kernel_image_phys: int  # physical address backing kernel_image_start
    sizeof_struct_page: int  # sizeof(struct page)
    page_ext_size: int  # sizeof(struct page_ext): the shared flags word, before KASAN
    kmalloc_minalign: int  # ARCH_KMALLOC_MINALIGN as seen at run time = KMALLOC_MIN_SIZE
    slab_minalign: int  # ARCH_SLAB_MINALIGN
    inline_instrumentation: bool  # False where ARCH_DISABLE_KASAN_INLINE is selected
    section_size_bits: int  # SECTION_SIZE_BITS
    max_physmem_bits: int  # MAX_PHYSMEM_BITS: RAM must end below 1 << this
    max_order: int  # MAX_PAGE_ORDER: buddy orders are 0..max_order
    thread_size_order: int  # THREAD_SIZE_ORDER, with KASAN's extra stack order
    nr_cpus: int  # nr_cpu_ids of the simulated machine
    zones: tuple[Zone, ...]
    kernel_release: str  # utsname()->release, e.g. "6.12.117"
    sizeof_kmem_cache: int  # object_size of the "kmem_cache" cache (struct kmem_cache)
    vmap_stack: bool = False  # CONFIG_VMAP_STACK: task stacks are vmalloc'd ([mm], optional)

    @property
    def page_size(self) -> int:
        """PAGE_SIZE."""
        return 1 << self.page_shift

    @property
    def word_size(self) -> int:
        """sizeof(unsigned long)."""
        return self.bits // 8

    @property
    def kasan_granule_size(self) -> int:
        """KASAN_GRANULE_SIZE: bytes described by one shadow byte."""
        return 1 << self.kasan_shadow_scale_shift

    @property
    def mem_total(self) -> int:
        """Bytes of present RAM (the sum of the memory ranges)."""
        return sum(r.size for r in self.memory)

    @property
    def min_pfn(self) -> int:
        """The first pfn of RAM (min_low_pfn)."""
        return self.memory[0].start >> self.page_shift

    @cached_property
    def max_pfn(self) -> int:
        """One past the last pfn of RAM (max_pfn)."""
        return self.memory[-1].end >> self.page_shift

    @cached_property
    def max_low_pfn(self) -> int:
        """One past the last lowmem pfn: the end of the direct map (max_low_pfn)."""
        if self.lowmem_limit is None:
            return self.max_pfn
        return min(self.max_pfn, self.lowmem_limit >> self.page_shift)

    @cached_property
    def high_memory(self) -> int:
        """Virtual end of the direct map (the kernel's ``high_memory``)."""
        return self.page_offset + (self.max_low_pfn << self.page_shift) - self.phys_offset

    @property
    def pages_per_section(self) -> int:
        """PAGES_PER_SECTION."""
        return 1 << (self.section_size_bits - self.page_shift)

    @property
    def _word_mask(self) -> int:
        return (1 << self.bits) - 1

    def kasan_mem_to_shadow(self, addr: int) -> int:
        """kasan_mem_to_shadow(): the shadow byte's address for ``addr`` (unsigned long math)."""
        shadow = (addr >> self.kasan_shadow_scale_shift) + self.kasan_shadow_offset
        return shadow & self._word_mask

    def kasan_shadow_to_mem(self, shadow: int) -> int:
        """kasan_shadow_to_mem(): the first address described by shadow byte ``shadow``."""
        addr = (shadow - self.kasan_shadow_offset) << self.kasan_shadow_scale_shift
        return addr & self._word_mask

    def addr_has_metadata(self, addr: int) -> bool:
        """addr_has_metadata() of generic KASAN (mm/kasan/kasan.h, 6.12)."""
        return addr >= self.kasan_shadow_to_mem(self.kasan_shadow_start)

    def phys_to_virt(self, phys: int) -> int:
        """__va() for lowmem: the direct-map address of ``phys``; ValueError outside lowmem."""
        if not self.phys_offset <= phys < self.max_low_pfn << self.page_shift:
            raise ValueError(f"physical address {phys:#x} is not in the direct map (lowmem)")
        return phys - self.phys_offset + self.page_offset

    def virt_to_phys(self, virt: int) -> int:
        """__pa() for the direct map; ValueError for any other virtual address."""
        if not self.page_offset <= virt < self.high_memory:
            raise ValueError(f"virtual address {virt:#x} is not in the direct map")
        return virt - self.page_offset + self.phys_offset

    def is_lowmem_pfn(self, pfn: int) -> bool:
        """Whether ``pfn`` is covered by the direct map (below max_low_pfn)."""
        return self.phys_offset >> self.page_shift <= pfn < self.max_low_pfn

    @cached_property
    def _range_pfns(self) -> tuple[list[int], list[int]]:
        return (
            [r.start >> self.page_shift for r in self.memory],
            [r.end >> self.page_shift for r in self.memory],
        )

    def pfn_valid(self, pfn: int) -> bool:
        """Whether ``pfn`` is present RAM (inside one of the memory ranges)."""
        starts, ends = self._range_pfns
        i = bisect_right(starts, pfn) - 1
        return i >= 0 and pfn < ends[i]

    @cached_property
    def _zone_ends(self) -> list[int]:
        """The physical ends of the zones, increasing: every zone's but the last's, which runs
        to the end of memory (the profile's checks make it so)."""
        return [zone.end for zone in self.zones if zone.end is not None]

    def zone_of_pfn(self, pfn: int) -> int:
        """page_zonenum(): the index into ``zones`` of the zone that holds ``pfn``: the first
        zone whose end lies above its address, else the last."""
        return bisect_right(self._zone_ends, pfn << self.page_shift)


# --- finding and loading ---------------------------------------------------------------


def find_profile_path(name_or_path: str) -> str:
    """A path to a profile: ``name_or_path`` itself if it names a file (it has a directory
    part or a ``.toml`` suffix), else the built-in profile of that name."""
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        if not Path(name_or_path).is_file():
            raise ProfileError("no such profile file", path=name_or_path)
        return name_or_path
    path = PROFILES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(_builtin_names())
        raise ProfileError(f"unknown profile (built-in profiles: {known})", path=name_or_path)
    return str(path)


def list_profiles() -> list[ArchProfile]:
    """Every built-in profile, sorted by name."""
    return [load_profile(name) for name in _builtin_names()]


def _builtin_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


PROFILE_MAX_BYTES = 1 << 20  # the built-in profiles are 2-4 KiB


def load_profile(name_or_path: str, mem: int | None = None) -> ArchProfile:
    """Load and validate a profile; ``mem`` (``--mem``) resizes its RAM to exactly that many
    bytes (see ``resize_memory``)."""
    path = find_profile_path(name_or_path)
    try:
        with open(path, "rb") as f:
            data = f.read(PROFILE_MAX_BYTES + 1)  # /dev/zero is not read forever
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"cannot read profile: {e}", path=path) from None
    if len(data) > PROFILE_MAX_BYTES:
        raise ProfileError(f"not a profile: larger than {PROFILE_MAX_BYTES >> 10} KiB", path=path)
    source = _Source(path, text)
    profile = _read_profile(source, source.parse())
    _check_profile(profile, source.fail)
    _check_memory(profile, source.fail)
    if mem is not None:
        profile = replace(profile, memory=resize_memory(profile, mem))
        _check_memory(profile, _fail_mem)
    return profile


def resize_memory(profile: ArchProfile, mem: int) -> tuple[MemoryRange, ...]:
    """The profile's memory ranges resized to exactly ``mem`` bytes, as with ``mem=`` on the
    kernel command line: ranges are kept in order and the last one needed is truncated; if
    there is too little RAM, the last range grows upward (holes below it stay)."""
    if mem <= 0 or mem % profile.page_size:
        _fail_mem(
            None,
            f"memory size {mem} is not a positive multiple of the page size "
            f"({format_size(profile.page_size)})",
        )
    ranges: list[MemoryRange] = []
    left = mem
    for r in profile.memory:
        size = min(r.size, left)
        ranges.append(MemoryRange(r.start, r.start + size))
        left -= size
        if not left:
            break
    last = ranges[-1]
    ranges[-1] = MemoryRange(last.start, last.end + left)
    return tuple(ranges)


def format_profiles_table(profiles: Iterable[ArchProfile]) -> str:
    """The table ``kinspect profiles`` prints, in three blocks that fit 80 columns: the
    machine, its layout, and the KASAN shadow region ``[KASAN_SHADOW_START, KASAN_SHADOW_END)``
    with its size."""
    header = (
        "NAME",
        "ARCH",
        "BITS",
        "PAGE",
        "MEMORY",
        "STRUCT PAGE",
        "INLINE",
        "PAGE_OFFSET",
        "KASAN_SHADOW_OFFSET",
        "KASAN_SHADOW_START",
        "KASAN_SHADOW_END",
        "SIZE",
    )
    rows = [header]
    for p in profiles:
        digits = p.bits // 4
        memory = format_size(p.mem_total)
        if p.lowmem_limit is not None:
            memory += f" ({format_size((p.max_low_pfn - p.min_pfn) << p.page_shift)} low)"
        rows.append(
            (
                p.name,
                p.arch,
                str(p.bits),
                format_size(p.page_size),
                memory,
                str(p.sizeof_struct_page),
                "yes" if p.inline_instrumentation else "no",
                f"{p.page_offset:#0{digits + 2}x}",
                f"{p.kasan_shadow_offset:#0{digits + 2}x}",
                f"{p.kasan_shadow_start:#0{digits + 2}x}",
                f"{p.kasan_shadow_end:#0{digits + 2}x}",
                format_size(p.kasan_shadow_end - p.kasan_shadow_start),
            )
        )
    right = [False, False, True, True, False, True, False, False, False, False, False, True]
    return format_blocks(rows, [(0, 1, 2, 3, 4, 5, 6), (0, 7, 8), (0, 9, 10, 11)], right)


# --- reading the TOML ---------------------------------------------------------------------

KeyPath = tuple[str | int, ...]
Fail = Callable[[KeyPath | str | None, str], NoReturn]

# [layout]'s addresses that must fit in the machine's word (validate(); kernel_image_phys
# must be in RAM instead)
_LAYOUT_WORDS = (
    "page_offset",
    "phys_offset",
    "task_size",
    "vmalloc_start",
    "vmalloc_end",
    "kernel_image_start",
)
# Which table holds which ArchProfile field. The [memory] table also holds the RAM ranges
# ([[memory.range]]: start, and end or size); [[zone]] tables hold name and end.
_TABLES: dict[str, tuple[str, ...]] = {
    "": ("description", "kernel_release"),
    "cpu": ("arch", "bits", "endianness", "nr_cpus"),
    "mm": (
        "page_shift",
        "section_size_bits",
        "max_physmem_bits",
        "max_order",
        "thread_size_order",
        "sizeof_struct_page",
        "page_ext_size",
        "kmalloc_minalign",
        "slab_minalign",
        "sizeof_kmem_cache",
    ),
    "layout": (*_LAYOUT_WORDS, "kernel_image_phys"),
    "kasan": (
        "kasan_shadow_scale_shift",
        "kasan_shadow_offset",
        "kasan_shadow_start",
        "kasan_shadow_end",
        "inline_instrumentation",
    ),
}
_FIELD_KEY: dict[str, KeyPath] = {
    field: ((table,) if table else ()) + (field,)
    for table, fields in _TABLES.items()
    for field in fields
}
_FIELD_KEY["lowmem_limit"] = ("memory", "lowmem_limit")
_STR_FIELDS = {"description", "kernel_release", "arch", "endianness"}
_BOOL_FIELDS = {"inline_instrumentation"}
_OPTIONAL = {"mm": ("vmap_stack",)}  # optional booleans, by table

_HEADER = re.compile(r"\s*(\[\[?)\s*([\w.\- ]+?)\s*\]")
_KEY = re.compile(r"\s*([\w\-]+(?:\s*\.\s*[\w\-]+)*)\s*=")
_TOML_ERROR_AT = re.compile(r"(.*) \(at line (\d+), column (\d+)\)$")


def _key_positions(text: str) -> dict[KeyPath, tuple[int, int]]:
    """(line, column) of every table header and key in a TOML text, by key path; the n-th
    ``[[a.b]]`` table is ``("a", "b", n)``. tomllib keeps no positions, so scan the text."""
    positions: dict[KeyPath, tuple[int, int]] = {}
    table: KeyPath = ()
    counts: dict[KeyPath, int] = {}
    in_string = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if not in_string:
            if header := _HEADER.match(line):
                table = tuple(part.strip() for part in header.group(2).split("."))
                if header.group(1) == "[[":
                    counts[table] = counts.get(table, -1) + 1
                    table += (counts[table],)
                positions.setdefault(table, (lineno, header.start(1) + 1))
            elif key := _KEY.match(line):
                path = table + tuple(part.strip() for part in key.group(1).split("."))
                positions.setdefault(path, (lineno, key.start(1) + 1))
        if line.count('"""') % 2 or line.count("'''") % 2:
            in_string = not in_string
    return positions


class _Source:
    """One profile file: its text parsed, and errors located at the offending key."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.positions = _key_positions(text)
        # A memory range written with 'size' is blamed there when its end is at fault.
        for key, position in list(self.positions.items()):
            if key[-1] == "size":
                self.positions.setdefault(key[:-1] + ("end",), position)

    def parse(self) -> dict:
        try:
            return tomllib.loads(self.text)
        except RecursionError:
            raise ProfileError(
                "arrays or tables nested too deeply", self.path, *self._deepest()
            ) from None
        except ValueError as e:
            if not isinstance(e, tomllib.TOMLDecodeError):
                # int() refuses a number of over 4300 digits inside tomllib
                m = re.search(r"\d{4300,}", self.text)
                line, col = self._line_col(m.start() if m else 0)
                raise ProfileError(
                    "a number with thousands of digits", self.path, line, col
                ) from None
            message = str(e)
            if m := _TOML_ERROR_AT.match(message):
                line, col = int(m.group(2)), int(m.group(3))
                raise ProfileError(m.group(1), self.path, line, col) from None
            lines = self.text.splitlines() or [""]
            raise ProfileError(message, self.path, len(lines), len(lines[-1]) + 1) from None

    def _line_col(self, offset: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, offset) + 1
        return line, offset - (self.text.rfind("\n", 0, offset) + 1) + 1

    def _deepest(self) -> tuple[int, int]:
        """Where brackets (outside strings: a good enough guess) nest deepest."""
        depth = best = where = 0
        for m in re.finditer(r"[\[{]|[\]}]", self.text):
            depth += 1 if m.group() in "[{" else -1
            if depth > best:
                best, where = depth, m.start()
        return self._line_col(where)

    def fail(self, key: KeyPath | str | None, message: str) -> NoReturn:
        """Raise a ProfileError at ``key`` (a field name or key path), or at the nearest
        enclosing table that the file has (for a missing key)."""
        path = _FIELD_KEY[key] if isinstance(key, str) else key or ()
        while path and path not in self.positions:
            path = path[:-1]
        line, col = self.positions.get(path, (1, 1))
        raise ProfileError(message, self.path, line, col)


def _fail_mem(key: KeyPath | str | None, message: str) -> NoReturn:
    raise ProfileError(message, path=MEM_OPTION)


def _table_name(path: KeyPath) -> str:
    if not path:
        return "the top level"
    if isinstance(path[-1], int):
        return f"[[{'.'.join(map(str, path[:-1]))}]] #{path[-1] + 1}"
    return f"[{'.'.join(map(str, path))}]"


def _check_keys(
    source: _Source,
    path: KeyPath,
    data: object,
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> dict:
    """``data`` must be a table with all ``required`` keys and nothing else but ``optional``."""
    if not isinstance(data, dict):
        source.fail(path, f"{'.'.join(map(str, path))} must be a table")
    required = tuple(required)
    allowed = set(required) | set(optional)
    unknown = [k for k in data if k not in allowed]
    if unknown:
        first = min(unknown, key=lambda k: source.positions.get(path + (k,), (0, 0)))
        source.fail(
            path + (first,),
            f"unknown key {first!r} in {_table_name(path)} "
            f"(expected: {', '.join(sorted(allowed))})",
        )
    for key in required:
        if key not in data:
            source.fail(path, f"missing key {key!r} in {_table_name(path)}")
    return data


def _bool(source: _Source, path: KeyPath, value: object) -> bool:
    """``value`` checked to be true or false."""
    if not isinstance(value, bool):
        source.fail(path, f"{path[-1]} must be true or false, not {value!r}")
    return value


def _str(source: _Source, path: KeyPath, value: object) -> str:
    """``value`` checked to be a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        source.fail(path, f"{path[-1]} must be a non-empty string, not {value!r}")
    return value


def _int(source: _Source, path: KeyPath, value: object) -> int:
    """``value`` checked to be a non-negative integer, which may be written as a size string
    ("1G")."""
    key = str(path[-1])
    if isinstance(value, str):
        try:
            value = parse_size(value)
        except ValueError as e:
            source.fail(path, f"{key}: {e}")
    if isinstance(value, bool) or not isinstance(value, int):
        source.fail(path, f'{key} must be an integer or a size such as "1G", not {value!r}')
    if value < 0:
        source.fail(path, f"{key} must not be negative")
    return value


def _read_profile(source: _Source, doc: dict) -> ArchProfile:
    """Build the profile from the parsed TOML, checking keys and types (not yet values)."""
    _check_keys(source, (), doc, [*_TABLES[""], *(t for t in _TABLES if t), "memory", "zone"])
    # ArchProfile's plain fields by name, each checked by _str, _bool or _int to be its type
    fields: dict[str, Any] = {}
    for table, names in _TABLES.items():
        path: KeyPath = (table,) if table else ()
        data = (
            _check_keys(source, path, doc[table], names, _OPTIONAL.get(table, ())) if table else doc
        )
        for name in names:
            read = _str if name in _STR_FIELDS else _bool if name in _BOOL_FIELDS else _int
            fields[name] = read(source, path + (name,), data[name])
        for name in _OPTIONAL.get(table, ()):
            if name in data:
                fields[name] = _bool(source, path + (name,), data[name])

    memory = _check_keys(source, ("memory",), doc["memory"], ["range"], ["lowmem_limit"])
    lowmem_limit = memory.get("lowmem_limit")
    if lowmem_limit is not None:
        lowmem_limit = _int(source, ("memory", "lowmem_limit"), lowmem_limit)
    ranges = []
    for i, r in enumerate(_array_of_tables(source, ("memory", "range"), memory["range"])):
        path = ("memory", "range", i)
        _check_keys(source, path, r, ["start"], ["end", "size"])
        start = _int(source, path + ("start",), r["start"])
        if ("end" in r) == ("size" in r):
            source.fail(path, "a memory range needs exactly one of 'end' and 'size'")
        if "end" in r:
            end = _int(source, path + ("end",), r["end"])
        else:
            end = start + _int(source, path + ("size",), r["size"])
        ranges.append(MemoryRange(start, end))
    zones = []
    for i, z in enumerate(_array_of_tables(source, ("zone",), doc["zone"])):
        _check_keys(source, ("zone", i), z, ["name"], ["end"])
        zone_end = z.get("end")
        zones.append(
            Zone(
                _str(source, ("zone", i, "name"), z["name"]),
                None if zone_end is None else _int(source, ("zone", i, "end"), zone_end),
            )
        )

    stem = Path(source.path).stem
    return ArchProfile(
        name=stem,
        path=source.path,
        memory=tuple(ranges),
        lowmem_limit=lowmem_limit,
        zones=tuple(zones),
        **fields,
    )


def _array_of_tables(source: _Source, path: KeyPath, value: object) -> list[dict]:
    if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
        source.fail(
            path, f"write one [[{'.'.join(map(str, path))}]] table per entry (at least one)"
        )
    return value


# --- checking values ----------------------------------------------------------------------

# Architectures with generic KASAN in 6.12 (HAVE_ARCH_KASAN in arch/*/Kconfig) and their
# BITS_PER_LONG.
_ARCH_BITS = {
    "x86_64": (64,),
    "arm64": (64,),
    "arm": (32,),
    "riscv64": (64,),
    "powerpc": (32, 64),
    "loongarch": (64,),
    "s390": (64,),
    "xtensa": (32,),
    "um": (64,),
}
# enum zone_type names as /proc/zoneinfo prints them.
_ZONE_NAMES = ("DMA", "DMA32", "Normal", "HighMem", "Movable", "Device")


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _check_profile(p: ArchProfile, fail: Fail) -> None:
    """Check every field's value and the fields against each other (not the RAM size)."""
    if p.arch not in _ARCH_BITS:
        fail(
            "arch", f"arch {p.arch!r} has no generic KASAN in 6.12 (known: {', '.join(_ARCH_BITS)})"
        )
    if p.bits not in (32, 64):
        fail("bits", f"bits must be 32 or 64, not {p.bits}")
    if p.bits not in _ARCH_BITS[p.arch]:
        fail(
            "bits",
            f"arch {p.arch!r} is {' or '.join(map(str, _ARCH_BITS[p.arch]))}-bit, not {p.bits}-bit",
        )
    if p.endianness not in ("little", "big"):
        fail("endianness", f'endianness must be "little" or "big", not {p.endianness!r}')
    if p.nr_cpus < 1:
        fail("nr_cpus", "nr_cpus must be at least 1")

    if p.page_shift not in (12, 14, 16):
        fail(
            "page_shift",
            f"page_shift must be 12, 14 or 16 (4K, 16K or 64K pages), not {p.page_shift}",
        )
    if not p.page_shift < p.max_physmem_bits <= 64:
        fail("max_physmem_bits", f"max_physmem_bits must lie in ({p.page_shift}, 64]")
    if not p.section_size_bits <= p.max_physmem_bits:
        fail("section_size_bits", "SECTION_SIZE_BITS exceeds MAX_PHYSMEM_BITS")
    if p.max_order + p.page_shift > p.section_size_bits:
        fail(
            "max_order",
            f"MAX_PAGE_ORDER {p.max_order} + PAGE_SHIFT {p.page_shift} exceeds "
            f"SECTION_SIZE_BITS {p.section_size_bits}",
        )
    if p.thread_size_order > p.max_order:
        fail("thread_size_order", "THREAD_SIZE_ORDER exceeds MAX_PAGE_ORDER")
    for name in ("sizeof_struct_page", "page_ext_size"):
        size = getattr(p, name)
        if size == 0 or size % p.word_size:
            fail(name, f"{name} must be a positive multiple of the word size ({p.word_size})")
    # struct page is 8 words at least (flags, the lru/slab union, mapping, index, private,
    # _mapcount/page_type, _refcount) and 64 bytes on most 64-bit configs
    if not 8 * p.word_size <= p.sizeof_struct_page <= 256:
        fail(
            "sizeof_struct_page",
            f"sizeof_struct_page must be from {8 * p.word_size} (8 words) to 256 bytes",
        )
    if p.page_ext_size > p.page_size:
        fail("page_ext_size", "page_ext_size must be at most PAGE_SIZE")
    if not (_is_power_of_two(p.kmalloc_minalign) and 8 <= p.kmalloc_minalign <= p.page_size):
        fail("kmalloc_minalign", "kmalloc_minalign must be a power of two from 8 to PAGE_SIZE")
    if not (_is_power_of_two(p.slab_minalign) and p.slab_minalign <= p.page_size):
        fail("slab_minalign", "slab_minalign must be a power of two no larger than PAGE_SIZE")
    if p.sizeof_kmem_cache == 0:
        fail("sizeof_kmem_cache", "sizeof_kmem_cache must be positive")
    if p.sizeof_kmem_cache > 2 * p.page_size:
        # its boot cache is a slab cache of kmalloc sizes (KMALLOC_MAX_CACHE_SIZE, 2 pages)
        fail("sizeof_kmem_cache", "sizeof_kmem_cache must be at most 2 * PAGE_SIZE")

    for name in (*_LAYOUT_WORDS, "kasan_shadow_offset", "kasan_shadow_start", "kasan_shadow_end"):
        if getattr(p, name) >= 1 << p.bits:
            fail(name, f"{name} {getattr(p, name):#x} does not fit in {p.bits} bits")
    for name in ("page_offset", "phys_offset", "kasan_shadow_start", "kasan_shadow_end"):
        if getattr(p, name) % p.page_size:
            fail(name, f"{name} {getattr(p, name):#x} is not page aligned")
    if p.task_size > min(p.page_offset, p.kasan_shadow_start):
        fail("task_size", "TASK_SIZE reaches into the kernel's PAGE_OFFSET or KASAN shadow")
    if p.vmalloc_start >= p.vmalloc_end:
        fail("vmalloc_start", "vmalloc_start must be below vmalloc_end")

    if p.kasan_shadow_scale_shift != 3:
        fail("kasan_shadow_scale_shift", "generic KASAN has KASAN_SHADOW_SCALE_SHIFT 3")
    if p.kasan_shadow_start >= p.kasan_shadow_end:
        fail("kasan_shadow_start", "kasan_shadow_start must be below kasan_shadow_end")
    if p.vmalloc_start < p.kasan_shadow_end and p.kasan_shadow_start < p.vmalloc_end:
        fail("vmalloc_start", "the vmalloc area overlaps the KASAN shadow region")
    for name in ("page_offset", "vmalloc_start", "kernel_image_start"):
        _check_shadowed(p, name, getattr(p, name), "kasan_shadow_offset", fail)
    _check_shadowed(p, "vmalloc_end - 1", p.vmalloc_end - 1, "kasan_shadow_offset", fail)

    _check_ranges(p, fail)
    _check_zones(p, fail)


def _check_shadowed(p: ArchProfile, name: str, addr: int, key: KeyPath | str, fail: Fail) -> None:
    """KASAN must shadow ``addr``: its shadow byte lies in [KASAN_SHADOW_START, _END)."""
    shadow = p.kasan_mem_to_shadow(addr)
    if not p.kasan_shadow_start <= shadow < p.kasan_shadow_end:
        fail(
            key,
            f"kasan_mem_to_shadow({name} {addr:#x}) = {shadow:#x} lies outside the shadow "
            f"region [{p.kasan_shadow_start:#x}, {p.kasan_shadow_end:#x})",
        )


def _check_ranges(p: ArchProfile, fail: Fail) -> None:
    previous_end = p.phys_offset
    for i, r in enumerate(p.memory):
        path = ("memory", "range", i)
        for name, value in (("start", r.start), ("end", r.end)):
            if value % p.page_size:
                fail(path + (name,), f"memory range {name} {value:#x} is not page aligned")
        if r.start >= r.end:
            fail(path + ("end",), "a memory range must not be empty")
        if r.start < previous_end:
            fail(
                path + ("start",),
                f"memory range start {r.start:#x} lies below "
                + ("PHYS_OFFSET" if i == 0 else "the previous range's end")
                + f" {previous_end:#x}: ranges must be sorted and disjoint",
            )
        previous_end = r.end
    if p.lowmem_limit is not None:
        if p.bits != 32:
            fail("lowmem_limit", "lowmem_limit is for 32-bit HIGHMEM machines only")
        if p.lowmem_limit % p.page_size or p.lowmem_limit <= p.phys_offset:
            fail("lowmem_limit", "lowmem_limit must be page aligned and above PHYS_OFFSET")


def _check_zones(p: ArchProfile, fail: Fail) -> None:
    previous_end = 0
    for i, z in enumerate(p.zones):
        path = ("zone", i)
        if z.name not in _ZONE_NAMES:
            fail(path + ("name",), f"unknown zone {z.name!r} (known: {', '.join(_ZONE_NAMES)})")
        if any(other.name == z.name for other in p.zones[:i]):
            fail(path + ("name",), f"zone {z.name!r} appears twice")
        last = i == len(p.zones) - 1
        if last and z.end is not None:
            fail(path + ("end",), "the last zone runs to the end of memory: leave out 'end'")
        if not last and z.end is None:
            fail(path, "every zone but the last needs an 'end'")
        if z.end is not None:
            if z.end <= previous_end or z.end % p.page_size:
                fail(path + ("end",), "zone ends must be page aligned and increasing")
            previous_end = z.end
    names = [z.name for z in p.zones]
    if p.lowmem_limit is None and "HighMem" in names:
        fail(("zone", names.index("HighMem"), "name"), "a HighMem zone needs lowmem_limit")
    if p.lowmem_limit is not None and (
        names[-1] != "HighMem" or len(names) < 2 or p.zones[-2].end != p.lowmem_limit
    ):
        fail(
            "lowmem_limit",
            "with lowmem_limit, the last zone must be HighMem and the zone "
            "before it must end at lowmem_limit",
        )


def _check_memory(p: ArchProfile, fail: Fail) -> None:
    """Checks that depend on the amount of RAM (run again after a --mem override)."""
    last_end = ("memory", "range", len(p.memory) - 1, "end")
    phys_end = p.memory[-1].end
    if phys_end > 1 << p.max_physmem_bits:
        fail(
            last_end,
            f"memory ends at {phys_end:#x}, beyond the {p.max_physmem_bits}-bit "
            f"physical address space (MAX_PHYSMEM_BITS)",
        )
    direct_map = (
        f"the direct map [{p.page_offset:#x}, {p.high_memory:#x}) of "
        f"{format_size(p.high_memory - p.page_offset)} of lowmem"
    )
    if p.high_memory > 1 << p.bits:
        fail(last_end, f"{direct_map} does not fit in {p.bits} bits")
    for name, start, end in (
        ("the vmalloc area", p.vmalloc_start, p.vmalloc_end),
        ("the KASAN shadow region", p.kasan_shadow_start, p.kasan_shadow_end),
    ):
        if p.page_offset < end and start < p.high_memory:
            fail(last_end, f"{direct_map} runs into {name}")
    _check_shadowed(p, "high_memory - 1", p.high_memory - 1, last_end, fail)
    if not p.pfn_valid(p.kernel_image_phys >> p.page_shift):
        fail("kernel_image_phys", f"kernel_image_phys {p.kernel_image_phys:#x} is not in RAM")
