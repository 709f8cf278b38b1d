"""Symbolization of kernel stack frames with a vmlinux (or a module ``.ko``) ELF file.

``func+0xOFF/0xLEN`` frames and raw addresses become ``file:line`` with their inlined frames,
as ``scripts/decode_stacktrace.sh`` (``addr2line -f -i``) prints them.  The file is read through
pyelftools behind one boundary: every failure of pyelftools (or of the file: truncated, bit-
flipped, not an ELF at all) becomes one :class:`~kinspect.engine.errors.SymbolizationError`
that names the file and what was being read.  A corrupt file never hangs and never makes us
allocate more than the sizes its own section headers claim (checked against the file size).

How a lookup stays cheap on a vmlinux of hundreds of MB of DWARF (never walking every DIE, as
pyelftools' ``dwarf_decode_address.py`` example does; its issues #479 and #576 are out-of-memory
reports on large DWARF):

* ``.symtab`` is indexed once, with numpy: a sorted array of function start addresses
  (``np.searchsorted`` finds the function of an address), plus a name table.
* ``.debug_aranges`` (parsed directly) maps an address to the one compile unit that holds it;
  without aranges, the CUs' top DIEs give their ranges (one DIE per CU, never all DIEs).
* Only that CU is decoded: its line program (a fast decoder of the opcodes; pyelftools reads
  the header), its top-level DIEs (skipping each subtree through ``DW_AT_sibling``) to find the
  function, and only the subtree of that function to find the inlined calls.
* Everything decoded is cached on disk under the file's build-id and a hash of the sections it
  is built from (``$KINSPECT_CACHE_DIR``, or ``$XDG_CACHE_HOME/kinspect``, or
  ``~/.cache/kinspect``), as numpy arrays and JSON (no pickle), so a second run reads the
  answers back instead of decoding DWARF again.  Each entry carries a checksum of its own bytes
  and is written by rename; one that does not check out is rebuilt, never trusted.

Frame addresses: ``func+0xOFF`` is looked up at ``start + OFF``, as
``scripts/decode_stacktrace.sh`` does; ``return_address=True`` looks up ``start + OFF - 1``
instead (a trace holds return addresses; syzkaller symbolizes that way).  ``symbolize`` of a
plain address looks up exactly that address, as ``addr2line`` does.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import mmap
import os
import re
import shutil
import stat
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, NamedTuple, cast

import numpy as np
from elftools.common.exceptions import DWARFError, ELFError
from elftools.construct import ConstructError
from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.constants import DW_LNE, DW_LNS
from elftools.dwarf.die import DIE
from elftools.dwarf.dwarfinfo import DebugSectionDescriptor, DwarfConfig, DWARFInfo
from elftools.dwarf.enums import ENUM_DW_AT, ENUM_DW_FORM, ENUM_DW_TAG
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import Section

from kinspect.engine.errors import SymbolizationError

__all__ = [
    "SourceFrame",
    "Symbol",
    "ElfSymbolizer",
    "ModuleSymbolizers",
    "parse_frame",
    "default_cache_dir",
    "CACHE_ENV",
]

#: Environment variable that overrides the cache directory (tests point it at a tmp dir).
CACHE_ENV = "KINSPECT_CACHE_DIR"
#: First bytes of a cache entry file (its format version included).
_ENTRY_MAGIC = b"kinspect symbol cache entry 2\n"
_ENTRY_SUFFIX = ".entry"
_ENTRY_DTYPES = frozenset(np.dtype(t).str for t in (np.uint64, np.int64, np.uint32, np.uint8))

# Every exception pyelftools (and reading a damaged file) is known to let out: elftools' ELFError
# and DWARFError (not a subclass of ELFError), construct errors, and the built-ins its issues
# report on corrupt input (e.g. #467, #612, PR #667).
_PYELFTOOLS_ERRORS = (
    ELFError,
    DWARFError,
    ConstructError,
    AssertionError,
    KeyError,
    IndexError,
    ValueError,
    OverflowError,
    OSError,
    UnicodeDecodeError,
    struct.error,
    zlib.error,
    EOFError,
    RecursionError,
    NotImplementedError,
    TypeError,
    AttributeError,
)

# A compressed debug section may not claim to inflate by more than zlib can (1032:1).
_MAX_INFLATE_RATIO = 1100


@dataclass(frozen=True)
class SourceFrame:
    """One frame of an address, innermost first (``addr2line -f -i`` order).

    ``function`` is the DWARF name (the inlined function for an inlined frame); ``inlined``
    says this frame was inlined into the next one.  ``file``/``line`` are None when unknown.
    """

    function: str | None
    file: str | None
    line: int | None
    inlined: bool = False

    def location(self, strip: str | None = None) -> str:
        """``file:line`` (``??:0`` when unknown, as addr2line prints), without ``strip``."""
        if self.file is None:
            if self.line is not None:
                return f"??:{self.line}"
            return "??:?" if self.function is not None else "??:0"
        f = self.file
        if strip and f.startswith(strip):
            f = f[len(strip) :].lstrip("/")
        return f"{f}:{self.line if self.line is not None else 0}"


class Symbol(NamedTuple):
    """An ELF function symbol: name, start address, size."""

    name: str
    addr: int
    size: int


_FRAME_RE = re.compile(
    r"^\s*(?:\[<?(?:0x)?[0-9a-f]+>?\]\s*)*(?:\?\s+)?\(?(?P<func>[A-Za-z_.$][\w.$]*)"
    r"\+(?P<off>0x[0-9a-fA-F]+|\d+)(?:/(?P<len>0x[0-9a-fA-F]+|\d+))?\)?"
    r"(?:\s+\[(?P<mod>[\w.-]+)(?:\s[^\]]*)?\])?"
)


def parse_frame(text: str) -> tuple[str, int, int | None, str | None] | None:
    """``"func+0xOFF/0xLEN [mod]"`` -> (func, off, len or None, module or None), or None
    (also when OFF or LEN does not fit in 64 bits: no kernel frame has such an offset)."""
    m = _FRAME_RE.match(text)
    if m is None:
        return None
    off = _frame_number(m.group("off"))
    length = m.group("len")
    length_value = _frame_number(length) if length is not None else None
    if off is None or (length is not None and length_value is None):
        return None
    return m.group("func"), off, length_value, m.group("mod")


def _frame_number(text: str) -> int | None:
    """``0xHEX`` or decimal (leading zeros allowed, as the kernel never prints them but a
    hand-typed frame may), or None beyond 64 bits: the length is checked before int() runs,
    so no digit string is ever longer than int()'s limit (4300 decimal digits)."""
    hexa = text[:2] in ("0x", "0X")
    digits = (text[2:] if hexa else text).lstrip("0") or "0"
    if len(digits) > (16 if hexa else 20):
        return None
    v = int(digits, 16 if hexa else 10)
    return v if v < 1 << 64 else None


def default_cache_dir() -> Path:
    """``$KINSPECT_CACHE_DIR``, else ``$XDG_CACHE_HOME/kinspect``, else ``~/.cache/kinspect``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "kinspect"


# --------------------------------------------------------------------------- helpers

#: A section's bytes: a zero-copy view of the file, or a copy (relocated, inflated).
_Bytes = bytes | memoryview
_ByteOrder = Literal["little", "big"]


class _Window(io.RawIOBase):
    """A read-only seekable stream over a memoryview (an mmap'd section): no copy.

    ``view`` may also be a callable returning the memoryview, called on the first access (a
    compressed section, inflated only when something reads it)."""

    def __init__(self, view: memoryview | Callable[[], memoryview]) -> None:
        super().__init__()
        self._src = view
        self._pos = 0

    @property
    def _view(self) -> memoryview:
        if callable(self._src):
            self._src = self._src()
        return self._src

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self._pos = offset
        elif whence == 1:
            self._pos += offset
        else:
            self._pos = len(self._view) + offset
        if self._pos < 0:
            raise ValueError("negative seek position")
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = (
            len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        )
        data = bytes(self._view[self._pos : end]) if self._pos < end else b""
        self._pos = max(self._pos, end)
        return data


def _uleb(d: _Bytes, i: int) -> tuple[int, int]:
    """The ULEB128 number at ``d[i]`` and the offset past it (at most 10 bytes: 64 bits)."""
    b = d[i]
    i += 1
    v = b & 0x7F
    shift = 7
    while b & 0x80:
        if shift > 63:
            raise ValueError(f"LEB128 number at offset {i - 10} is longer than 10 bytes")
        b = d[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
    return v, i


def _sleb(d: _Bytes, i: int) -> tuple[int, int]:
    """The SLEB128 number at ``d[i]`` and the offset past it (at most 10 bytes: 64 bits)."""
    v, end = _uleb(d, i)
    if d[end - 1] & 0x40:  # the sign bit of the last byte
        v -= 1 << 7 * (end - i)
    return v, end


def _cstr(d: _Bytes, i: int) -> str:
    """The NUL-terminated string at ``d[i]``."""
    window = 256
    while True:
        chunk = bytes(d[i : i + window])
        end = chunk.find(b"\0")
        if end >= 0:
            return chunk[:end].decode("utf-8", "replace")
        if i + window >= len(d):
            raise ValueError("unterminated string")
        window *= 16


# DWARF numbers (pyelftools' enums name them)
_AT = ENUM_DW_AT
_TAG = ENUM_DW_TAG
_FORM = ENUM_DW_FORM
_AT_sibling = _AT["DW_AT_sibling"]
_AT_name = _AT["DW_AT_name"]
_TAG_structure = _TAG["DW_TAG_structure_type"]
_TAG_union = _TAG["DW_TAG_union_type"]
_TAG_enumeration = _TAG["DW_TAG_enumeration_type"]
_AT_low_pc = _AT["DW_AT_low_pc"]
_AT_high_pc = _AT["DW_AT_high_pc"]
_AT_ranges = _AT["DW_AT_ranges"]
_AT_abstract_origin = _AT["DW_AT_abstract_origin"]
_AT_specification = _AT["DW_AT_specification"]
_AT_call_file = _AT["DW_AT_call_file"]
_AT_call_line = _AT["DW_AT_call_line"]
_AT_str_offsets_base = _AT["DW_AT_str_offsets_base"]
_AT_addr_base = _AT["DW_AT_addr_base"]
_AT_rnglists_base = _AT["DW_AT_rnglists_base"]
_AT_comp_dir = _AT["DW_AT_comp_dir"]
_AT_stmt_list = _AT["DW_AT_stmt_list"]
_WANTED = {
    _AT_sibling,
    _AT_name,
    _AT_low_pc,
    _AT_high_pc,
    _AT_ranges,
    _AT_abstract_origin,
    _AT_specification,
    _AT_call_file,
    _AT_call_line,
    _AT_str_offsets_base,
    _AT_addr_base,
    _AT_rnglists_base,
    _AT_comp_dir,
    _AT_stmt_list,
}
_TAG_subprogram = _TAG["DW_TAG_subprogram"]
_TAG_inlined = _TAG["DW_TAG_inlined_subroutine"]
_F = {name: _FORM[name] for name in _FORM if isinstance(name, str)}
_FIXED = {
    _F["DW_FORM_data1"]: 1,
    _F["DW_FORM_ref1"]: 1,
    _F["DW_FORM_flag"]: 1,
    _F["DW_FORM_strx1"]: 1,
    _F["DW_FORM_addrx1"]: 1,
    _F["DW_FORM_data2"]: 2,
    _F["DW_FORM_ref2"]: 2,
    _F["DW_FORM_strx2"]: 2,
    _F["DW_FORM_addrx2"]: 2,
    _F["DW_FORM_strx3"]: 3,
    _F["DW_FORM_addrx3"]: 3,
    _F["DW_FORM_data4"]: 4,
    _F["DW_FORM_ref4"]: 4,
    _F["DW_FORM_strx4"]: 4,
    _F["DW_FORM_addrx4"]: 4,
    _F["DW_FORM_data8"]: 8,
    _F["DW_FORM_ref8"]: 8,
    _F["DW_FORM_ref_sig8"]: 8,
    _F["DW_FORM_data16"]: 16,
}
_REF_FORMS = {
    _F["DW_FORM_ref1"],
    _F["DW_FORM_ref2"],
    _F["DW_FORM_ref4"],
    _F["DW_FORM_ref8"],
    _F["DW_FORM_ref_udata"],
}
_STRX_FORMS = {
    _F["DW_FORM_strx"],
    _F["DW_FORM_strx1"],
    _F["DW_FORM_strx2"],
    _F["DW_FORM_strx3"],
    _F["DW_FORM_strx4"],
}
_ADDRX_FORMS = {
    _F["DW_FORM_addrx"],
    _F["DW_FORM_addrx1"],
    _F["DW_FORM_addrx2"],
    _F["DW_FORM_addrx3"],
    _F["DW_FORM_addrx4"],
}
_OFFSET_FORMS = {
    _F["DW_FORM_strp"],
    _F["DW_FORM_line_strp"],
    _F["DW_FORM_sec_offset"],
    _F["DW_FORM_GNU_ref_alt"],
    _F["DW_FORM_GNU_strp_alt"],
    _F["DW_FORM_strp_sup"],
    _F["DW_FORM_ref_sup4"],
}
_ULEB_FORMS = {
    _F["DW_FORM_udata"],
    _F["DW_FORM_ref_udata"],
    _F["DW_FORM_strx"],
    _F["DW_FORM_addrx"],
    _F["DW_FORM_rnglistx"],
    _F["DW_FORM_loclistx"],
    _F["DW_FORM_GNU_addr_index"],
    _F["DW_FORM_GNU_str_index"],
}
_FORM_addr = _F["DW_FORM_addr"]
_FORM_string = _F["DW_FORM_string"]
_FORM_strp = _F["DW_FORM_strp"]
_FORM_line_strp = _F["DW_FORM_line_strp"]
_FORM_sdata = _F["DW_FORM_sdata"]
_FORM_ref_addr = _F["DW_FORM_ref_addr"]
_FORM_flag_present = _F["DW_FORM_flag_present"]
_FORM_implicit_const = _F["DW_FORM_implicit_const"]
_FORM_exprloc = _F["DW_FORM_exprloc"]
_FORM_block = _F["DW_FORM_block"]
_FORM_block1 = _F["DW_FORM_block1"]
_FORM_block2 = _F["DW_FORM_block2"]
_FORM_block4 = _F["DW_FORM_block4"]
_FORM_indirect = _F["DW_FORM_indirect"]
_FORM_rnglistx = _F["DW_FORM_rnglistx"]
_FORM_sec_offset = _F["DW_FORM_sec_offset"]
#: the forms whose number indexes (or is an offset into) another section: the value's kind
_INDEX_KINDS = {
    **dict.fromkeys(_STRX_FORMS, "strx"),
    **dict.fromkeys(_ADDRX_FORMS, "addrx"),
    _FORM_rnglistx: "rnglistx",
    _FORM_strp: "strp",
    _FORM_line_strp: "line_strp",
}

# The line program's opcodes as plain ints, compared with each opcode the decoder reads
DW_LNS_copy = DW_LNS.copy.value
DW_LNS_advance_pc = DW_LNS.advance_pc.value
DW_LNS_advance_line = DW_LNS.advance_line.value
DW_LNS_set_file = DW_LNS.set_file.value
DW_LNS_set_column = DW_LNS.set_column.value
DW_LNS_negate_stmt = DW_LNS.negate_stmt.value
DW_LNS_set_basic_block = DW_LNS.set_basic_block.value
DW_LNS_const_add_pc = DW_LNS.const_add_pc.value
DW_LNS_fixed_advance_pc = DW_LNS.fixed_advance_pc.value
DW_LNS_set_prologue_end = DW_LNS.set_prologue_end.value
DW_LNS_set_epilogue_begin = DW_LNS.set_epilogue_begin.value
DW_LNS_set_isa = DW_LNS.set_isa.value
DW_LNE_end_sequence = DW_LNE.end_sequence.value
DW_LNE_set_address = DW_LNE.set_address.value

#: A decoded attribute value: a number (a reference made absolute), a string (DW_FORM_string),
#: True (DW_FORM_flag_present), (kind, number) for a value read through another section
#: ("strp", "line_strp", "strx", "addrx", "rnglistx"; "abs": an absolute DW_AT_high_pc), or
#: None (a DW_FORM_data16 constant, not read).
_AttrValue = int | str | tuple[str, int] | None
#: A DIE as :meth:`ElfSymbolizer._read_die_at` reads it: (offset, tag, has_children,
#: {attribute: value} of the attributes in _WANTED, offset of the next DIE).  Tag 0 is the
#: null entry that ends a list of children.
_Die = tuple[int, int, bool, dict[int, _AttrValue], int]


class _Section(NamedTuple):
    data: _Bytes
    addr: int


# --------------------------------------------------------------------------- cache entries


def _entry_limit(elf_size: int) -> int:
    """The largest cache entry read back for an ELF of ``elf_size`` bytes (a bigger file in
    its place is not one we wrote for it: discarded unread)."""
    return 16 * elf_size + (64 << 20)


def _entry_bytes(name: str, key: str, meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of a cache entry (format in :class:`ElfSymbolizer`'s cache section)."""
    specs = []
    blobs = []
    pos = 0
    for n, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        specs.append([n, a.dtype.str, int(a.size), pos])
        raw = a.tobytes()
        blobs.append(raw + b"\0" * (-len(raw) % 8))
        pos += len(blobs[-1])
    header = json.dumps(
        {"entry": name, "key": key, "meta": meta, "arrays": specs}, separators=(",", ":")
    ).encode()
    header += b" " * (-(8 + len(header)) % 8)
    body = b"".join([len(header).to_bytes(8, "little"), header, *blobs])
    return _ENTRY_MAGIC + hashlib.sha256(body).digest() + body


def _check_entry(data: bytes, name: str, key: str, arrays: tuple[str, ...]) -> dict | None:
    """The entry in ``data`` ({"meta": ..., array name: read-only array}) when its checksum,
    name, key and arrays check out, else None."""
    head = len(_ENTRY_MAGIC) + 32
    if len(data) < head + 8 or not data.startswith(_ENTRY_MAGIC):
        return None
    body = memoryview(data)[head:]
    if hashlib.sha256(body).digest() != data[len(_ENTRY_MAGIC) : head]:
        return None
    hlen = int.from_bytes(body[:8], "little")
    if hlen > len(body) - 8:
        return None
    try:
        doc = json.loads(bytes(body[8 : 8 + hlen]))
        if (
            not isinstance(doc, dict)
            or doc.get("entry") != name
            or doc.get("key") != key
            or not isinstance(doc.get("meta"), dict)
        ):
            return None
        blob = body[8 + hlen :]
        out: dict = {"meta": doc["meta"]}
        for n, dt, count, off in doc["arrays"]:
            if (
                n not in arrays
                or dt not in _ENTRY_DTYPES
                or not isinstance(count, int)
                or not isinstance(off, int)
                or count < 0
                or off < 0
            ):
                return None
            dtype = np.dtype(dt)
            if off + count * dtype.itemsize > len(blob):
                return None
            out[n] = np.frombuffer(blob, dtype, count, off)
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return out if all(n in out for n in arrays) else None


def _discard(path: Path) -> None:
    """Remove what stands where a cache entry belongs (a damaged entry, a directory...)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError:
        pass


# --------------------------------------------------------------------------- per-CU decoding


def _number_value(form: int, v: int, cu_off: int) -> _AttrValue:
    """The value of an attribute whose ``form`` holds the number ``v``: a CU-relative reference
    made absolute (``cu_off``: its unit's offset), (kind, v) for an index or offset into
    another section (:data:`_INDEX_KINDS`), else the number."""
    if form in _REF_FORMS:
        return v + cu_off
    kind = _INDEX_KINDS.get(form)
    return v if kind is None else (kind, v)


@dataclass(slots=True)
class _Unit:
    """One compile unit as the DIE reader decodes it: pyelftools' CompileUnit (its header and
    abbreviations, read once) and the numbers the reader needs, compiled from them."""

    cu: CompileUnit
    cu_offset: int
    cu_die_offset: int
    #: .debug_info offset just past the unit
    end: int
    #: abbreviation code -> (tag, has_children, ((attribute, form, implicit const), ...))
    abbrevs: dict[int, tuple[int, bool, tuple[tuple[int, int, int | None], ...]]]
    version: int
    addr_size: int
    off_size: int
    # the DWARF 5 bases and the unit's low_pc, from its top DIE
    str_offsets_base: int | None = None
    addr_base: int | None = None
    rnglists_base: int | None = None
    low_pc: int = 0


class _CU:
    """What is known of one compile unit: its line table and its functions."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.files: list[str] = []
        self.file_base = 1  # file index of files[0] (1 before DWARF 5)
        # line table rows sorted by address: address, file index, line, flags (2: end_seq)
        # (empty until decoded or read from the cache)
        self.line_addr = np.zeros(0, np.uint64)
        self.line_file = np.zeros(0, np.uint32)
        self.line_line = np.zeros(0, np.uint32)
        self.line_flags = np.zeros(0, np.uint8)
        # top-level functions: [lo, hi) -> DIE offset, sorted by lo; names by DIE offset
        self.sub_lo = np.zeros(0, np.uint64)
        self.sub_hi = np.zeros(0, np.uint64)
        self.sub_die = np.zeros(0, np.int64)
        self.names: dict[int, str] = {}
        # inlined calls per function DIE: [lo, hi, depth, name, call_file, call_line]
        self.scopes: dict[int, list[list]] = {}
        self.dirty = False  # something to write to the cache

    def file_name(self, index: int | None) -> str | None:
        if index is None:
            return None
        i = index - self.file_base
        if 0 <= i < len(self.files):
            return self.files[i]
        return None


class ElfSymbolizer:
    """Symbolizes addresses and ``func+0xOFF/0xLEN`` frames with one ELF file.

    ``cache_dir``: where the index is cached (default :func:`default_cache_dir`); ``False``
    turns the on-disk cache off.  Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        cache_dir: str | os.PathLike[str] | bool | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self._fh: IO[bytes] | None = None
        self._mm: mmap.mmap | None = None
        self._cus: dict[int, _CU] = {}
        self._dwarf: DWARFInfo | None = None
        self._cu_objs: dict[int, _Unit] = {}
        self._inflated_secs: dict[str, memoryview] = {}
        self._info_bytes: _Bytes | None = None  # .debug_info, on first use
        self._sec_cache: dict[str, _Bytes | None] = {}  # other sections, on first use
        with self._boundary("the ELF header"):
            self._open()
        if cache_dir is False:
            self._cache: Path | None = None
        else:
            if cache_dir is None or isinstance(cache_dir, bool):
                base = default_cache_dir()
            else:
                base = Path(cache_dir)
            with self._boundary("the sections (for the cache key)"):
                self._cache_key_text = self._cache_key()
            self._cache = base / "symbols" / self._cache_key_text
        with self._boundary(".symtab"):
            self._load_symtab()
        with self._boundary(".debug_aranges"):
            self._load_aranges()

    # -- the boundary ---------------------------------------------------------------

    @contextmanager
    def _boundary(self, what: str) -> Iterator[None]:
        try:
            yield
        except SymbolizationError:
            raise
        except _PYELFTOOLS_ERRORS as e:
            if isinstance(e, OSError) and e.strerror and not isinstance(e, EOFError):
                raise SymbolizationError(f"cannot read the file: {e.strerror}", self.path) from None
            detail = str(e).strip() or "an internal consistency check failed"
            raise SymbolizationError(
                f"cannot read {what}: {detail} ({type(e).__name__}): the "
                "file is damaged, truncated or not what it seems",
                self.path,
            ) from None

    def close(self) -> None:
        self._save_cache()
        self._dwarf = None
        self._cu_objs.clear()
        self._inflated_secs.clear()
        if self._mm is not None:
            with contextlib.suppress(BufferError):  # a memoryview is still alive: GC does it
                self._mm.close()
            self._mm = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ElfSymbolizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the ELF file ---------------------------------------------------------------

    def _open(self) -> None:
        self._fh = open(self.path, "rb")  # noqa: SIM115 (open until close(): pyelftools reads it)
        size = os.fstat(self._fh.fileno()).st_size
        if size < 16 or self._fh.read(4) != b"\x7fELF":
            raise SymbolizationError("not an ELF file (no \\x7fELF magic)", self.path)
        self._fh.seek(0)
        self.file_size = size
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._view = memoryview(self._mm)
        self.elf = ELFFile(self._fh)
        hdr = self.elf.header
        # e_shnum 0 means the count is in section 0's sh_size (pyelftools reads it there):
        # bounded by the file before any section is read (pyelftools checks e_shentsize)
        self._shtab_size = self.elf.num_sections() * hdr["e_shentsize"]
        if hdr["e_shoff"] + self._shtab_size > size:
            raise SymbolizationError(
                "the section header table lies past the end of the file (truncated?)", self.path
            )
        self.little_endian = self.elf.little_endian
        self.bits = self.elf.elfclass
        self.machine = hdr["e_machine"]
        self.relocatable = hdr["e_type"] == "ET_REL"
        self._byteorder: _ByteOrder = "little" if self.little_endian else "big"
        self.sections: dict[str, Section] = {}
        for sec in self.elf.iter_sections():
            h = sec.header
            if h["sh_type"] != "SHT_NOBITS" and h["sh_offset"] + h["sh_size"] > size:
                raise SymbolizationError(
                    f"section {sec.name or '?'} lies past the end of the file (truncated?)",
                    self.path,
                )
            self.sections[sec.name] = sec
        self.build_id = self._read_build_id()

    def _read_build_id(self) -> str | None:
        """The NT_GNU_BUILD_ID note's bytes, in hex (read here, not by pyelftools, so that
        a damaged size field is checked against its section before anything is read)."""
        sec = self.sections.get(".note.gnu.build-id")
        if sec is None or sec.header["sh_type"] == "SHT_NOBITS":
            return None
        h = sec.header
        d = self._view[h["sh_offset"] : h["sh_offset"] + h["sh_size"]]
        bo = self._byteorder
        i = 0
        while i + 12 <= len(d):  # Elf32_Nhdr and Elf64_Nhdr: three 4-byte words
            namesz = int.from_bytes(d[i : i + 4], bo)
            descsz = int.from_bytes(d[i + 4 : i + 8], bo)
            ntype = int.from_bytes(d[i + 8 : i + 12], bo)
            name_at = i + 12
            desc_at = name_at + namesz + (-namesz % 4)
            end = desc_at + descsz + (-descsz % 4)
            if desc_at + descsz > len(d):
                raise SymbolizationError(
                    f"cannot read .note.gnu.build-id: a note at offset {i} claims "
                    f"{namesz} + {descsz} bytes, past the end of its {len(d)}-byte section "
                    "(the file is damaged)",
                    self.path,
                )
            if ntype == 3 and bytes(d[name_at : name_at + namesz]).rstrip(b"\0") == b"GNU":
                return bytes(d[desc_at : desc_at + descsz]).hex()  # NT_GNU_BUILD_ID
            i = end
        return None

    def _section_bytes(self, name: str) -> _Section | None:
        """A section's bytes: a zero-copy view, or (relocatable or compressed) a copy."""
        sec = self.sections.get(name)
        if sec is None or sec.header["sh_type"] == "SHT_NOBITS":
            return None
        h = sec.header
        if self.relocatable and name.startswith(".debug"):
            di = self._dwarfinfo()
            desc = {
                ".debug_info": di.debug_info_sec,
                ".debug_line": di.debug_line_sec,
                ".debug_str": di.debug_str_sec,
                ".debug_line_str": di.debug_line_str_sec,
                ".debug_aranges": di.debug_aranges_sec,
                ".debug_ranges": di.debug_ranges_sec,
                ".debug_rnglists": di.debug_rnglists_sec,
                ".debug_addr": di.debug_addr_sec,
                ".debug_str_offsets": di.debug_str_offsets_sec,
            }.get(name)
            if desc is None:
                return None
            # pyelftools relocates a relocatable file's debug sections into a BytesIO
            assert isinstance(desc.stream, io.BytesIO)
            return _Section(desc.stream.getvalue(), h["sh_addr"])
        if h["sh_flags"] & 0x800:  # SHF_COMPRESSED
            if self._zlib_compressed(sec):
                return _Section(self._inflated(sec), h["sh_addr"])
            self._check_compressed(sec)
            return _Section(sec.data(), h["sh_addr"])
        off, size = h["sh_offset"], h["sh_size"]
        return _Section(self._view[off : off + size], h["sh_addr"])

    def _chdr(self, sec: Section) -> tuple[int, int, int]:
        """(ch_type, ch_size, header size) of an SHF_COMPRESSED section's Elf_Chdr."""
        h = sec.header
        hdr_fmt = ("<" if self.little_endian else ">") + ("IIQQ" if self.bits == 64 else "III")
        n = struct.calcsize(hdr_fmt)
        if h["sh_size"] < n:
            raise SymbolizationError(
                f"compressed section {sec.name} is shorter than its header", self.path
            )
        fields = struct.unpack(hdr_fmt, self._view[h["sh_offset"] : h["sh_offset"] + n])
        return fields[0], (fields[2] if self.bits == 64 else fields[1]), n

    def _check_compressed(self, sec: Section) -> None:
        ch_size = self._chdr(sec)[1]
        if ch_size > _MAX_INFLATE_RATIO * max(sec.header["sh_size"], 1):
            raise SymbolizationError(
                f"compressed section {sec.name} claims to inflate to {ch_size} bytes", self.path
            )

    def _zlib_compressed(self, sec: Section) -> bool:
        """An SHF_COMPRESSED section with ELFCOMPRESS_ZLIB (inflated by :meth:`_inflated`)."""
        return self._chdr(sec)[0] == 1

    def _inflated(self, sec: Section) -> memoryview:
        """A zlib-compressed section's bytes, inflated once (on first use) and shared by
        every reader (pyelftools' streams and the symbolizer's own), streamed from the
        mmap'd file into one preallocated buffer of ``ch_size`` bytes: no copy of the
        compressed bytes, no second copy of the inflated ones, and the sections nobody reads
        (.debug_loclists, .debug_frame for a caller that only wants types) never inflated."""
        done = self._inflated_secs.get(sec.name)
        if done is not None:
            return done
        self._check_compressed(sec)
        h = sec.header
        _, ch_size, n = self._chdr(sec)
        src = self._view[h["sh_offset"] + n : h["sh_offset"] + h["sh_size"]]
        out = bytearray(ch_size)
        d = zlib.decompressobj()
        at = 0
        step = 1 << 20
        with self._boundary(f"compressed section {sec.name}"):
            for i in range(0, len(src), step):
                chunk = d.decompress(src[i : i + step], ch_size - at + 1)
                if at + len(chunk) > ch_size:
                    raise zlib.error(f"inflates to more than its {ch_size} bytes")
                out[at : at + len(chunk)] = chunk
                at += len(chunk)
                if d.eof:
                    break
            if not d.eof or at != ch_size:
                raise zlib.error(f"inflates to {at} bytes, not its {ch_size} (truncated?)")
        view = memoryview(out).toreadonly()
        self._inflated_secs[sec.name] = view
        return view

    def _dwarfinfo(self) -> DWARFInfo:
        """pyelftools' view of the DWARF (CU headers, abbrevs, line-program headers)."""
        if self._dwarf is not None:
            return self._dwarf
        other = any(
            s.header["sh_flags"] & 0x800 and not self._zlib_compressed(s)
            for n, s in self.sections.items()
            if n.startswith(".debug")
        )
        if self.relocatable or other or ".zdebug_info" in self.sections:
            for n, s in self.sections.items():
                if n.startswith(".debug") and s.header["sh_flags"] & 0x800:
                    self._check_compressed(s)
            self._dwarf = self.elf.get_dwarf_info(follow_links=False)
            return self._dwarf
        names = [
            "debug_info",
            "debug_aranges",
            "debug_abbrev",
            "debug_str",
            "debug_line",
            "debug_frame",
            "debug_loc",
            "debug_ranges",
            "debug_pubtypes",
            "debug_pubnames",
            "debug_addr",
            "debug_str_offsets",
            "debug_line_str",
            "debug_loclists",
            "debug_rnglists",
            "debug_sup",
            "debug_types",
        ]
        descs: dict[str, DebugSectionDescriptor | None] = {}
        for n in names:
            sec = self.sections.get("." + n)
            if sec is None or sec.header["sh_type"] == "SHT_NOBITS":
                descs[n] = None
                continue
            h = sec.header
            view: memoryview | Callable[[], memoryview]
            if h["sh_flags"] & 0x800:  # SHF_COMPRESSED (zlib): on first read
                size = self._chdr(sec)[1]
                view = functools.partial(self._inflated, sec)
            else:
                size = h["sh_size"]
                view = self._view[h["sh_offset"] : h["sh_offset"] + size]
            descs[n] = DebugSectionDescriptor(
                # pyelftools names the stream IO[bytes]; it only reads, seeks and tells
                stream=cast(IO[bytes], _Window(view)),
                name="." + n,
                global_offset=h["sh_offset"],
                size=size,
                address=h["sh_addr"],
            )
        self._dwarf = DWARFInfo(
            config=DwarfConfig(
                little_endian=self.little_endian,
                default_address_size=self.bits // 8,
                machine_arch=self.elf.get_machine_arch(),
            ),
            debug_info_sec=descs["debug_info"],
            debug_aranges_sec=descs["debug_aranges"],
            debug_abbrev_sec=descs["debug_abbrev"],
            debug_frame_sec=descs["debug_frame"],
            eh_frame_sec=None,
            debug_str_sec=descs["debug_str"],
            debug_loc_sec=descs["debug_loc"],
            debug_ranges_sec=descs["debug_ranges"],
            debug_line_sec=descs["debug_line"],
            debug_pubtypes_sec=descs["debug_pubtypes"],
            debug_pubnames_sec=descs["debug_pubnames"],
            debug_addr_sec=descs["debug_addr"],
            debug_str_offsets_sec=descs["debug_str_offsets"],
            debug_line_str_sec=descs["debug_line_str"],
            debug_loclists_sec=descs["debug_loclists"],
            debug_rnglists_sec=descs["debug_rnglists"],
            debug_sup_sec=descs["debug_sup"],
            gnu_debugaltlink_sec=None,
            debug_types_sec=descs["debug_types"],
        )
        return self._dwarf

    @property
    def has_dwarf(self) -> bool:
        return ".debug_info" in self.sections or ".zdebug_info" in self.sections

    # -- the public API of readers built on the symbolizer (kinspect/vmcore) ----------

    def reading(self, what: str):
        """A context in which pyelftools' (and a damaged file's) exceptions become one
        :class:`SymbolizationError` naming the file and ``what`` was being read."""
        return self._boundary(what)

    def section_data(self, name: str) -> memoryview | bytes | None:
        """A section's bytes (a zero-copy view of the file; a compressed section inflated
        once and shared), or None when there is no such section with contents."""
        with self._boundary(f"section {name}"):
            s = self._section_bytes(name)
        return None if s is None else s.data

    def load_cached(self, name: str) -> dict | None:
        """The JSON data stored with :meth:`store_cached` under ``name`` for this very file
        (keyed by its build ID and a hash of its symbol and DWARF sections, checksummed), or
        None (none yet, or one that did not check out: discarded)."""
        entry = self._load_entry(name, ())
        return None if entry is None else entry["meta"]

    def store_cached(self, name: str, data: dict) -> None:
        """Stores JSON ``data`` as the cache entry ``name`` (nothing when caching is off)."""
        self._store_entry(name, data, {})

    def next_symbol_address(self, addr: int) -> int | None:
        """The lowest symbol address above ``addr`` (kallsyms' notion of a symbol's end:
        kernel/kallsyms.c ``get_symbol_pos()``), or None past the last symbol."""
        i = int(np.searchsorted(self._sym_addr, np.uint64(addr), side="right"))
        return int(self._sym_addr[i]) if i < len(self._sym_addr) else None

    def type_definitions(
        self, cu_offset: int, wanted: Iterable[tuple[str, str]]
    ) -> Iterator[tuple[str, str, DIE]]:
        """The top-level type definitions of the compile unit at ``.debug_info`` offset
        ``cu_offset`` named in ``wanted`` (a set of ("struct" | "enum", name); "struct"
        matches a union too): (kind, name, pyelftools DIE), each once, the scan stopping when
        all are found.  Only the CU's top-level DIEs are read (each subtree skipped through
        its sibling pointer); only a match is decoded by pyelftools."""
        left = set(wanted)
        with self._boundary(f".debug_info (compile unit at offset {cu_offset:#x})"):
            di = self._dwarfinfo()
            cuo = self._cu_obj(cu_offset)
            top = self._read_die_at(cuo, cuo.cu_die_offset)
            for die in self._iter_children(cuo, top):
                if not left:
                    return
                if die[1] not in (_TAG_structure, _TAG_union, _TAG_enumeration) or not die[2]:
                    continue  # (a declaration has no children)
                kind = "enum" if die[1] == _TAG_enumeration else "struct"
                name = self._str(cuo, die[3].get(_AT_name))
                if name is not None and (kind, name) in left:
                    left.discard((kind, name))
                    yield kind, name, di.get_DIE_from_refaddr(die[0], cuo.cu)

    # -- the on-disk cache ----------------------------------------------------------
    #
    # One file per entry (``symtab``, ``aranges``, ``cu-OFFSET``), written to a temporary
    # file and renamed into place, so a reader sees a whole entry or none:
    #
    #     _ENTRY_MAGIC | sha256(body) | body
    #     body = u64 length of the header | header (JSON) | padding to 8 | array bytes
    #
    # The header names the entry and the cache key it was built for, its JSON data and its
    # arrays (name, dtype, count, offset).  An entry is used only when it is a regular file of
    # ours whose checksum, name, key and arrays all check out; anything else is discarded and
    # rebuilt from the ELF, never trusted and never blamed on the ELF.

    def _cache_key(self) -> str:
        """The cache directory: the build-id (when there is one) and a hash of the sections
        an index is built from, so a damaged copy with the same build-id gets its own."""
        return f"{(self.build_id or 'nobuildid')[:64]}-{self._sections_digest()[:32]}"

    def _sections_digest(self) -> str:
        """sha256 of the ELF header, the section header table and every section the index
        reads: the symbol tables and their strings, the section names, the DWARF sections
        and the relocations applied to them (a relocatable ``.ko``)."""
        h = hashlib.sha256()
        hdr = self.elf.header
        h.update(self._view[: min(64, self.file_size)])
        h.update(self._view[hdr["e_shoff"] : hdr["e_shoff"] + self._shtab_size])
        wanted = {".symtab", ".dynsym", ".strtab", ".dynstr", ".shstrtab"}
        for name, sec in self.sections.items():
            if name in wanted or name.startswith(
                (".debug", ".zdebug", ".rela.debug", ".rel.debug")
            ):
                sh = sec.header
                if sh["sh_type"] != "SHT_NOBITS":
                    h.update(name.encode("utf-8", "replace") + b"\0")
                    h.update(self._view[sh["sh_offset"] : sh["sh_offset"] + sh["sh_size"]])
        return h.hexdigest()

    def _cache_file(self, name: str) -> Path | None:
        return None if self._cache is None else self._cache / (name + _ENTRY_SUFFIX)

    def _load_entry(self, name: str, arrays: tuple[str, ...]) -> dict | None:
        """The cached entry ``name`` ({"meta": JSON data, array name: array}), or None when
        there is none.  Anything else in its place is discarded: a file that is not a regular
        file of ours (our uid, readable and writable by its owner, as mkstemp made it), one
        bigger than :func:`_entry_limit`, or one that fails :func:`_check_entry`.  It is opened
        non-blocking, so a fifo in its place cannot hang the run."""
        p = self._cache_file(name)
        if p is None:
            return None
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError:  # unreadable: not an entry we can use
            _discard(p)
            return None
        try:
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fh.fileno())
                ok = (
                    stat.S_ISREG(st.st_mode)
                    and st.st_uid == os.geteuid()
                    and st.st_mode & 0o600 == 0o600
                    and st.st_size <= _entry_limit(self.file_size)
                )
                data = fh.read(st.st_size + 1) if ok else b""
        except OSError:
            data = b""
        entry = _check_entry(data, name, self._cache_key_text, arrays) if data else None
        if entry is None:
            _discard(p)
        return entry

    def _store_entry(self, name: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Write the entry ``name`` atomically (see :func:`_entry_bytes`); an unwritable
        cache only costs speed."""
        p = self._cache_file(name)
        if p is None:
            return
        data = _entry_bytes(name, self._cache_key_text, meta, arrays)
        tmp = None
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=_ENTRY_SUFFIX)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, p)
            tmp = None
        except OSError:
            pass
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    # -- .symtab ----------------------------------------------------------------------

    def _load_symtab(self) -> None:
        self._name_index: dict[str, list[int]] | None = None
        cached = self._load_entry("symtab", ("addr", "size", "names", "name_off"))
        if cached is not None:
            self._sym_addr = cached["addr"]
            self._sym_size = cached["size"]
            self._sym_name_blob = bytes(cached["names"])
            self._sym_name_off = cached["name_off"]
            return
        sec = self.sections.get(".symtab") or self.sections.get(".dynsym")
        if sec is None or sec.header["sh_type"] == "SHT_NOBITS":
            self._sym_addr = np.zeros(0, np.uint64)
            self._sym_size = np.zeros(0, np.uint64)
            self._sym_name_blob = b""
            self._sym_name_off = np.zeros(0, np.int64)
            self._name_index = None
            return
        h = sec.header
        bo = "<" if self.little_endian else ">"
        if self.bits == 64:
            dt = np.dtype(
                [
                    ("name", bo + "u4"),
                    ("info", "u1"),
                    ("other", "u1"),
                    ("shndx", bo + "u2"),
                    ("value", bo + "u8"),
                    ("size", bo + "u8"),
                ]
            )
        else:
            dt = np.dtype(
                [
                    ("name", bo + "u4"),
                    ("value", bo + "u4"),
                    ("size", bo + "u4"),
                    ("info", "u1"),
                    ("other", "u1"),
                    ("shndx", bo + "u2"),
                ]
            )
        n = h["sh_size"] // dt.itemsize
        syms = np.frombuffer(self._view[h["sh_offset"] : h["sh_offset"] + n * dt.itemsize], dt)
        link = h["sh_link"]
        strsec = self.elf.get_section(link)
        sh = strsec.header
        strtab = bytes(self._view[sh["sh_offset"] : sh["sh_offset"] + sh["sh_size"]])
        typ = syms["info"] & 0xF
        shndx = syms["shndx"].astype(np.int64)
        exec_sections = np.zeros(max(self.elf.num_sections(), 1) + 1, bool)
        for i, s in enumerate(self.elf.iter_sections()):
            exec_sections[i] = bool(s.header["sh_flags"] & 0x4)  # SHF_EXECINSTR
        in_exec = (shndx > 0) & (shndx < len(exec_sections))
        in_exec[in_exec] = exec_sections[shndx[in_exec]]
        keep = (typ == 2) | ((typ == 0) & in_exec)  # FUNC, or NOTYPE in code
        keep &= (syms["name"] > 0) & (syms["name"] < len(strtab))
        first = np.frombuffer(strtab, np.uint8)[np.minimum(syms["name"], len(strtab) - 1)]
        keep &= (first != ord("$")) & (first != ord("."))  # ARM mapping symbols, .L labels
        sel = syms[keep]
        addr = sel["value"].astype(np.uint64)
        if self.machine == "EM_ARM":
            addr &= ~np.uint64(1)  # the Thumb bit
        order = np.argsort(addr, kind="stable")
        self._sym_addr = addr[order]
        size = sel["size"].astype(np.uint64)[order]
        # a size-0 symbol reaches the next symbol, or the end of its section (as in addr2line)
        sec_end = np.zeros(len(exec_sections), np.uint64)
        for i, sct in enumerate(self.elf.iter_sections()):
            sec_end[i] = sct.header["sh_addr"] + sct.header["sh_size"]
        sidx = sel["shndx"].astype(np.int64)[order]
        nxt = np.append(self._sym_addr[1:], np.uint64(np.iinfo(np.uint64).max))
        ok_sec = (sidx > 0) & (sidx < len(sec_end))
        limit = np.where(ok_sec, sec_end[np.where(ok_sec, sidx, 0)], nxt)
        zero = size == 0
        size[zero] = np.where(
            np.minimum(nxt, limit)[zero] > self._sym_addr[zero],
            np.minimum(nxt, limit)[zero] - self._sym_addr[zero],
            0,
        )
        self._sym_size = size
        name_off = sel["name"].astype(np.int64)[order]
        # one blob of the kept names, NUL-separated, and each symbol's offset in it
        names = []
        offs = np.empty(len(name_off), np.int64)
        pos = 0
        for i, o in enumerate(name_off.tolist()):
            end = strtab.find(b"\0", o)
            nm = strtab[o : end if end >= 0 else len(strtab)]
            names.append(nm)
            offs[i] = pos
            pos += len(nm) + 1
        self._sym_name_blob = b"\0".join(names) + b"\0" if names else b""
        self._sym_name_off = offs
        self._name_index = None
        self._store_entry(
            "symtab",
            {},
            {
                "addr": self._sym_addr,
                "size": self._sym_size,
                "names": np.frombuffer(self._sym_name_blob, np.uint8),
                "name_off": self._sym_name_off,
            },
        )

    def _sym_name(self, i: int) -> str:
        o = int(self._sym_name_off[i])
        end = self._sym_name_blob.find(b"\0", o)
        return self._sym_name_blob[o:end].decode("utf-8", "replace")

    def find_symbols(self, name: str) -> list[Symbol]:
        """Every function symbol called ``name`` (static functions can repeat)."""
        cache = self.__dict__.setdefault("_found", {})
        hit = cache.get(name)
        if hit is not None:
            return hit
        if self._name_index is None:
            index: dict[str, list[int]] = {}
            for i, nm in enumerate(self._sym_name_blob.split(b"\0")[: len(self._sym_name_off)]):
                index.setdefault(nm.decode("utf-8", "replace"), []).append(i)
            self._name_index = index
        hit = cache[name] = [
            Symbol(name, int(self._sym_addr[i]), int(self._sym_size[i]))
            for i in self._name_index.get(name, ())
        ]
        return hit

    def symbol_at(self, addr: int) -> Symbol | None:
        """The function symbol whose ``[start, start + size)`` holds ``addr``, or None (a
        symbol of size 0 was given the size up to the next symbol or its section's end)."""
        if not 0 <= addr < 1 << 64:
            return None
        i = int(np.searchsorted(self._sym_addr, np.uint64(addr), side="right")) - 1
        if i < 0:
            return None
        start = int(self._sym_addr[i])
        # aliases share a start address: any of them whose size covers addr will do
        j = i
        while j >= 0 and int(self._sym_addr[j]) == start:
            size = int(self._sym_size[j])
            if addr < start + size:
                return Symbol(self._sym_name(j), start, size)
            j -= 1
        return None

    # -- .debug_aranges ----------------------------------------------------------------

    def _load_aranges(self) -> None:
        self._ar_lo = self._ar_hi = self._ar_cu = np.zeros(0, np.uint64)
        if not self.has_dwarf:
            return
        cached = self._load_entry("aranges", ("lo", "hi", "cu"))
        if cached is not None:
            self._ar_lo, self._ar_hi, self._ar_cu = cached["lo"], cached["hi"], cached["cu"]
            return
        lo: list[int] = []
        hi: list[int] = []
        cu: list[int] = []
        sec = self._section_bytes(".debug_aranges")
        if sec is not None:
            self._parse_aranges(sec.data, lo, hi, cu)
        else:
            self._aranges_from_cus(lo, hi, cu)
        order = np.argsort(np.array(lo, np.uint64), kind="stable")
        self._ar_lo = np.array(lo, np.uint64)[order]
        self._ar_hi = np.array(hi, np.uint64)[order]
        self._ar_cu = np.array(cu, np.uint64)[order]
        self._store_entry("aranges", {}, {"lo": self._ar_lo, "hi": self._ar_hi, "cu": self._ar_cu})

    def _parse_aranges(self, d: _Bytes, lo: list[int], hi: list[int], cu: list[int]) -> None:
        bo = self._byteorder
        n = len(d)
        i = 0
        while i + 4 <= n:
            unit_start = i
            length = int.from_bytes(d[i : i + 4], bo)
            off_size = 4
            i += 4
            if length == 0xFFFFFFFF:
                length = int.from_bytes(d[i : i + 8], bo)
                off_size = 8
                i += 8
            end = i + length
            if length == 0:
                continue
            if end > n:
                raise ValueError(f".debug_aranges set at {unit_start} runs past the section end")
            i += 2  # version
            cu_off = int.from_bytes(d[i : i + off_size], bo)
            i += off_size
            asize, ssize = d[i], d[i + 1]
            i += 2
            if asize not in (2, 4, 8) or ssize:
                raise ValueError(f"unsupported .debug_aranges address size {asize}")
            tup = 2 * asize
            i += (-(i - unit_start)) % tup  # tuples are aligned
            while i + tup <= end:
                a = int.from_bytes(d[i : i + asize], bo)
                ln = int.from_bytes(d[i + asize : i + tup], bo)
                i += tup
                if a == 0 and ln == 0:
                    break
                if ln:
                    lo.append(a)
                    hi.append(a + ln)
                    cu.append(cu_off)
            i = end

    def _aranges_from_cus(self, lo: list[int], hi: list[int], cu: list[int]) -> None:
        """No .debug_aranges (clang's default): the ranges of each CU's top DIE."""
        di = self._dwarfinfo()
        for unit in di.iter_CUs():
            cuo = self._cu_obj(unit.cu_offset)
            top = self._read_die_at(cuo, cuo.cu_die_offset)
            for a, b in self._die_ranges(cuo, top, None):
                lo.append(a)
                hi.append(b)
                cu.append(cuo.cu_offset)

    def cu_offset_at(self, addr: int) -> int | None:
        """The .debug_info offset of the compile unit whose ranges hold ``addr``, or None."""
        if not 0 <= addr < 1 << 64:
            return None
        i = int(np.searchsorted(self._ar_lo, np.uint64(addr), side="right")) - 1
        for j in range(i, max(i - 8, -1), -1):  # (a few overlapping ranges at most)
            if addr < int(self._ar_hi[j]):
                return int(self._ar_cu[j])
        return None

    # -- DIEs -------------------------------------------------------------------------

    def _cu_obj(self, offset: int) -> _Unit:
        cuo = self._cu_objs.get(offset)
        if cuo is None:
            return self._new_cu_obj(offset)
        return cuo

    def _new_cu_obj(self, offset: int) -> _Unit:
        with self._boundary(f".debug_info/.debug_abbrev (compile unit at offset {offset:#x})"):
            unit = self._dwarfinfo().get_CU_at(offset)
            if unit.cu_offset != offset:
                raise ValueError(f"no compile unit at .debug_info offset {offset}")
            cuo = self._cu_info(unit)
            # the CU's bases (DWARF 5 str/addr/rnglists offsets, low_pc) from its top DIE
            attrs = self._read_die_at(cuo, cuo.cu_die_offset)[3]
            base = attrs.get(_AT_str_offsets_base)
            if isinstance(base, int):
                cuo.str_offsets_base = base
            base = attrs.get(_AT_addr_base)
            if isinstance(base, int):
                cuo.addr_base = base
            base = attrs.get(_AT_rnglists_base)
            if isinstance(base, int):
                cuo.rnglists_base = base
            cuo.low_pc = self._addr(cuo, attrs.get(_AT_low_pc)) or 0
            self._cu_objs[offset] = cuo
            return cuo

    def _cu_info(self, unit: CompileUnit) -> _Unit:
        """Decoding context of a CU: abbrevs compiled to numbers, sizes (bases: unset)."""
        table = unit.get_abbrev_table()
        abbrevs: dict[int, tuple[int, bool, tuple[tuple[int, int, int | None], ...]]] = {}
        for code, decl in table._abbrev_map.items():
            specs = tuple(
                (
                    _AT.get(a.name, a.name) if isinstance(a.name, str) else a.name,
                    _FORM.get(a.form, a.form) if isinstance(a.form, str) else a.form,
                    a.get("value"),
                )
                for a in decl["attr_spec"]
            )
            tag = decl["tag"]
            tag = _TAG.get(tag, tag) if isinstance(tag, str) else tag
            abbrevs[code] = (tag, decl.has_children(), specs)
        return _Unit(
            cu=unit,
            cu_offset=unit.cu_offset,
            cu_die_offset=unit.cu_die_offset,
            end=unit.cu_offset + unit.size,
            abbrevs=abbrevs,
            version=unit.header["version"],
            addr_size=unit.header["address_size"],
            off_size=8 if unit.dwarf_format() == 64 else 4,
        )

    def _debug_info(self) -> _Bytes:
        if self._info_bytes is None:
            s = self._section_bytes(".debug_info")
            if s is None:
                raise ValueError("no .debug_info section")
            self._info_bytes = s.data
        return self._info_bytes

    def _read_die_at(self, cuo: _Unit, off: int) -> _Die:
        """(offset, tag, has_children, attrs {AT: value}, next offset) of the DIE at ``off``."""
        d = self._debug_info()
        unit_end = cuo.end
        if not (cuo.cu_die_offset <= off < unit_end):
            raise ValueError(f"DIE offset {off} outside its compile unit")
        code, i = _uleb(d, off)
        if code == 0:
            return off, 0, False, {}, i
        ab = cuo.abbrevs.get(code)
        if ab is None:
            raise ValueError(f"unknown abbreviation code {code} at DIE {off}")
        tag, children, specs = ab
        attrs: dict[int, _AttrValue] = {}
        bo = self._byteorder
        asz = cuo.addr_size
        osz = cuo.off_size
        cu_off = cuo.cu_offset
        for at, form, implicit in specs:
            if form == _FORM_indirect:
                form, i = _uleb(d, i)
            if form == _FORM_implicit_const:
                if at in _WANTED:
                    attrs[at] = implicit
                continue
            n = _FIXED.get(form)
            if n is not None:
                if at in _WANTED:
                    if n > 8:  # DW_FORM_data16: not a number we read
                        attrs[at] = None
                    else:
                        attrs[at] = _number_value(form, int.from_bytes(d[i : i + n], bo), cu_off)
                i += n
            elif form in _OFFSET_FORMS:
                if at in _WANTED:
                    attrs[at] = _number_value(form, int.from_bytes(d[i : i + osz], bo), cu_off)
                i += osz
            elif form in _ULEB_FORMS:
                v, i = _uleb(d, i)
                if at in _WANTED:
                    attrs[at] = _number_value(form, v, cu_off)
            elif form == _FORM_addr:
                if at in _WANTED:
                    v = int.from_bytes(d[i : i + asz], bo)
                    attrs[at] = ("abs", v) if at == _AT_high_pc else v
                i += asz
            elif form == _FORM_flag_present:
                if at in _WANTED:
                    attrs[at] = True
            elif form == _FORM_string:
                end = i
                while d[end]:
                    end += 1
                if at in _WANTED:
                    attrs[at] = bytes(d[i:end]).decode("utf-8", "replace")
                i = end + 1
            elif form == _FORM_sdata:
                v, i = _sleb(d, i)
                if at in _WANTED:
                    attrs[at] = v
            elif form in (_FORM_exprloc, _FORM_block):
                n, i = _uleb(d, i)
                i += n
            elif form == _FORM_block1:
                i += 1 + d[i]
            elif form == _FORM_block2:
                i += 2 + int.from_bytes(d[i : i + 2], bo)
            elif form == _FORM_block4:
                i += 4 + int.from_bytes(d[i : i + 4], bo)
            elif form == _FORM_ref_addr:
                n = osz if cuo.version >= 3 else asz
                if at in _WANTED:
                    attrs[at] = int.from_bytes(d[i : i + n], bo)
                i += n
            else:
                raise ValueError(f"unsupported DWARF form {form:#x} at DIE {off}")
            if i > unit_end:
                raise ValueError(f"DIE at {off} runs past the end of its compile unit")
        return off, tag, children, attrs, i

    def _str(self, cuo: _Unit, v: _AttrValue) -> str | None:
        if v is None:
            return None
        if isinstance(v, str):
            return v
        if isinstance(v, int):  # a string attribute in a number's form
            raise TypeError(f"a string attribute holds the number {v}")
        kind, x = v
        if kind == "strp":
            s = self._section_bytes_cached(".debug_str")
            return _cstr(s, x) if s is not None and x < len(s) else None
        if kind == "line_strp":
            s = self._section_bytes_cached(".debug_line_str")
            return _cstr(s, x) if s is not None and x < len(s) else None
        if kind == "strx":
            base = cuo.str_offsets_base
            osz = cuo.off_size
            so = self._section_bytes_cached(".debug_str_offsets")
            if so is None:
                return None
            if base is None:
                base = 8 if osz == 4 else 16
            p = base + x * osz
            off = int.from_bytes(so[p : p + osz], self._byteorder)
            s = self._section_bytes_cached(".debug_str")
            return _cstr(s, off) if s is not None and off < len(s) else None
        return None

    def _section_bytes_cached(self, name: str) -> _Bytes | None:
        cache = self._sec_cache
        if name not in cache:
            s = self._section_bytes(name)
            cache[name] = None if s is None else s.data
        return cache[name]

    def _addr(self, cuo: _Unit, v: _AttrValue) -> int | None:
        if v is None or isinstance(v, bool):
            return None
        if isinstance(v, str):  # an address attribute in a string's form
            raise TypeError(f"an address attribute holds the string {v!r}")
        if isinstance(v, tuple):
            base = cuo.addr_base if cuo.addr_base is not None else 8
            a = self._section_bytes_cached(".debug_addr")
            if a is None:
                return None
            asz = cuo.addr_size
            p = base + v[1] * asz
            return int.from_bytes(a[p : p + asz], self._byteorder)
        return v

    def _die_ranges(self, cuo: _Unit, die: _Die, base: int | None) -> list[tuple[int, int]]:
        """The [lo, hi) ranges of a DIE (low_pc/high_pc, or DW_AT_ranges)."""
        attrs = die[3]
        lo = self._addr(cuo, attrs.get(_AT_low_pc))
        high = attrs.get(_AT_high_pc)
        if lo is not None and high is not None and not isinstance(high, bool):
            hi: int | None
            if isinstance(high, tuple):
                hi = high[1] if high[0] == "abs" else self._addr(cuo, high)
            elif isinstance(high, str):  # a string's form: as adding it to a number did
                raise TypeError(f"DW_AT_high_pc holds the string {high!r}")
            else:
                hi = lo + high  # a length (DWARF 4+)
            return [(lo, hi)] if hi is not None and hi > lo else []
        rng = attrs.get(_AT_ranges)
        if rng is None:
            return []
        return self._range_list(cuo, rng, cuo.low_pc if base is None else base)

    def _range_list(self, cuo: _Unit, rng: _AttrValue, base: int) -> list[tuple[int, int]]:
        bo = self._byteorder
        asz = cuo.addr_size
        out: list[tuple[int, int]] = []
        if cuo.version < 5:
            d = self._section_bytes_cached(".debug_ranges")
            if d is None or not isinstance(rng, int):
                return out
            i = rng
            top = (1 << (8 * asz)) - 1
            for _ in range(1 << 16):
                if i + 2 * asz > len(d):
                    raise ValueError(".debug_ranges list runs past the section end")
                a = int.from_bytes(d[i : i + asz], bo)
                b = int.from_bytes(d[i + asz : i + 2 * asz], bo)
                i += 2 * asz
                if a == 0 and b == 0:
                    break
                if a == top:
                    base = b
                    continue
                if b > a:
                    out.append((base + a, base + b))
            return out
        d = self._section_bytes_cached(".debug_rnglists")
        if d is None:
            return out
        if isinstance(rng, tuple):  # rnglistx
            rbase = cuo.rnglists_base if cuo.rnglists_base is not None else 12
            osz = cuo.off_size
            p = rbase + rng[1] * osz
            i = rbase + int.from_bytes(d[p : p + osz], bo)
        elif not isinstance(rng, int):  # a string's form: as indexing with it did
            raise TypeError(f"DW_AT_ranges holds {rng!r}")
        else:
            i = rng
        for _ in range(1 << 16):
            kind = d[i]
            i += 1
            if kind == 0:  # DW_RLE_end_of_list
                break
            if kind == 1:  # base_addressx
                x, i = _uleb(d, i)
                base = self._addr(cuo, ("addrx", x)) or 0
            elif kind == 2:  # startx_endx
                x, i = _uleb(d, i)
                y, i = _uleb(d, i)
                start, stop = self._addr(cuo, ("addrx", x)), self._addr(cuo, ("addrx", y))
                if start is not None and stop is not None and stop > start:
                    out.append((start, stop))
            elif kind == 3:  # startx_length
                x, i = _uleb(d, i)
                ln, i = _uleb(d, i)
                start = self._addr(cuo, ("addrx", x))
                if start is not None and ln:
                    out.append((start, start + ln))
            elif kind == 4:  # offset_pair
                a, i = _uleb(d, i)
                b, i = _uleb(d, i)
                if b > a:
                    out.append((base + a, base + b))
            elif kind == 5:  # base_address
                base = int.from_bytes(d[i : i + asz], bo)
                i += asz
            elif kind == 6:  # start_end
                a = int.from_bytes(d[i : i + asz], bo)
                b = int.from_bytes(d[i + asz : i + 2 * asz], bo)
                i += 2 * asz
                if b > a:
                    out.append((a, b))
            elif kind == 7:  # start_length
                a = int.from_bytes(d[i : i + asz], bo)
                i += asz
                ln, i = _uleb(d, i)
                if ln:
                    out.append((a, a + ln))
            else:
                raise ValueError(f"bad range list entry kind {kind}")
        return out

    def _die_name(self, cuo: _Unit, die: _Die, depth: int = 0) -> str | None:
        attrs = die[3]
        name = self._str(cuo, attrs.get(_AT_name))
        if name is not None or depth > 8:
            return name
        for at in (_AT_abstract_origin, _AT_specification):
            ref = attrs.get(at)
            if isinstance(ref, int):
                cuo2 = cuo if cuo.cu_die_offset <= ref < cuo.end else self._cu_obj_containing(ref)
                return self._die_name(cuo2, self._read_die_at(cuo2, ref), depth + 1)
        return None

    def _cu_obj_containing(self, ref: int) -> _Unit:
        di = self._dwarfinfo()
        cu = di.get_CU_containing(ref)
        return self._cu_obj(cu.cu_offset)

    # -- one CU: functions and lines ---------------------------------------------------

    def _cu(self, offset: int) -> _CU:
        cu = self._cus.get(offset)
        if cu is not None:
            return cu
        cu = _CU(offset)
        if not self._load_cu_cache(cu):
            cuo = self._cu_obj(offset)
            with self._boundary(f".debug_info (compile unit at offset {offset:#x})"):
                top = self._read_die_at(cuo, cuo.cu_die_offset)
            with self._boundary(f".debug_line (compile unit at offset {offset:#x})"):
                self._decode_lines(cuo, cu, top)
            with self._boundary(f".debug_info (compile unit at offset {offset:#x})"):
                self._index_functions(cuo, cu, top)
            cu.dirty = True
        self._cus[offset] = cu
        return cu

    def _decode_lines(self, cuo: _Unit, cu: _CU, top: _Die) -> None:
        di = self._dwarfinfo()
        stmt_list = top[3].get(_AT_stmt_list)
        if isinstance(stmt_list, int):
            data = self._section_bytes_cached(".debug_line")
            if data is not None:
                _check_line_header(data, stmt_list, self._byteorder)
        lp = di.line_program_for_CU(cuo.cu)
        empty = np.zeros(0, np.uint64)
        if lp is None:
            cu.line_addr, cu.line_file, cu.line_line, cu.line_flags = (
                empty,
                empty.astype(np.uint32),
                empty.astype(np.uint32),
                empty.astype(np.uint8),
            )
            return
        h = lp.header
        version = h["version"]
        comp_dir = self._str(cuo, top[3].get(_AT_comp_dir)) or ""
        dirs = [
            x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
            for x in h["include_directory"]
        ]
        files = []
        for fe in h["file_entry"]:
            name = fe.name.decode("utf-8", "replace") if isinstance(fe.name, bytes) else fe.name
            di_ = fe.dir_index
            if version >= 5:
                d = dirs[di_] if di_ < len(dirs) else ""
            else:
                d = comp_dir if di_ == 0 else (dirs[di_ - 1] if di_ - 1 < len(dirs) else "")
            path = name
            if not os.path.isabs(name):
                path = os.path.join(d, name) if d else name
                if not os.path.isabs(path) and comp_dir:
                    path = os.path.join(comp_dir, path)
            files.append(path)
        cu.files = files
        cu.file_base = 0 if version >= 5 else 1
        data = self._section_bytes_cached(".debug_line")
        if data is None:  # (pyelftools read the program's header from somewhere else)
            raise ValueError("a line program but no .debug_line section with contents")
        rows = _decode_line_program(
            data,
            lp.program_start_offset,
            lp.program_end_offset,
            h["opcode_base"],
            h["line_base"],
            h["line_range"],
            h["minimum_instruction_length"],
            1 if h["default_is_stmt"] else 0,
            list(h["standard_opcode_lengths"]),
            self._byteorder,
        )
        addr, file_, line, flags = rows
        order = np.argsort(addr, kind="stable")
        cu.line_addr = addr[order]
        cu.line_file = file_[order]
        cu.line_line = line[order]
        cu.line_flags = flags[order]

    def _index_functions(self, cuo: _Unit, cu: _CU, top: _Die) -> None:
        """The CU's top-level functions (subtrees skipped through DW_AT_sibling)."""
        lo: list[int] = []
        hi: list[int] = []
        dies: list[int] = []
        for die in self._iter_children(cuo, top):
            if die[1] != _TAG_subprogram:
                continue
            rngs = self._die_ranges(cuo, die, None)
            if not rngs:
                continue
            name = self._die_name(cuo, die)
            if name is not None:
                cu.names[die[0]] = name
            for a, b in rngs:
                lo.append(a)
                hi.append(b)
                dies.append(die[0])
        order = np.argsort(np.array(lo, np.uint64), kind="stable")
        cu.sub_lo = np.array(lo, np.uint64)[order]
        cu.sub_hi = np.array(hi, np.uint64)[order]
        cu.sub_die = np.array(dies, np.int64)[order]

    def _iter_children(
        self, cuo: _Unit, parent: _Die, *, sibling_jumps: bool = True
    ) -> Iterator[_Die]:
        """The children of a DIE; a child's subtree is skipped through its sibling pointer,
        or walked when it has none (or when ``sibling_jumps`` is off: a caller that wants
        the subtrees too).  DIE offsets must grow: a corrupt sibling pointer that points
        back is not followed (the subtree is walked), so it cannot make a loop."""
        if not parent[2]:
            return
        off = parent[4]
        end = cuo.end
        while off < end:
            die = self._read_die_at(cuo, off)
            if die[1] == 0:
                return
            yield die
            if not die[2]:
                off = die[4]
                continue
            sib = die[3].get(_AT_sibling) if sibling_jumps else None
            if isinstance(sib, int) and sib > off:
                off = sib
            else:
                off = self._skip_subtree(cuo, die)

    def _skip_subtree(self, cuo: _Unit, die: _Die) -> int:
        """Offset just past a DIE's subtree (walking it: it has no sibling pointer)."""
        depth = 1
        off = die[4]
        end = cuo.end
        while depth and off < end:
            d = self._read_die_at(cuo, off)
            if d[1] == 0:
                depth -= 1
            elif d[2]:
                depth += 1
            off = d[4]
        return off

    def _scopes(self, cu: _CU, sub_die: int) -> list[list]:
        """The inlined calls inside one function: [lo, hi, depth, name, call_file, line]."""
        scopes = cu.scopes.get(sub_die)
        if scopes is not None:
            return scopes
        cuo = self._cu_obj(cu.offset)
        scopes = []
        root = self._read_die_at(cuo, sub_die)
        # walk the subtree: (die, inline depth)
        stack = [(root, 0)]
        budget = cuo.end - root[0]
        while stack:
            die, depth = stack.pop()
            for child in self._iter_children(cuo, die, sibling_jumps=False):
                budget -= 1
                if budget < 0:
                    raise ValueError("DIE tree loops")
                d2 = depth
                if child[1] == _TAG_inlined:
                    d2 = depth + 1
                    name = self._die_name(cuo, child)
                    cf = child[3].get(_AT_call_file)
                    cl = child[3].get(_AT_call_line)
                    for a, b in self._die_ranges(cuo, child, None):
                        scopes.append(
                            [
                                a,
                                b,
                                d2,
                                name,
                                cf if isinstance(cf, int) else None,
                                cl if isinstance(cl, int) else None,
                            ]
                        )
                if child[2]:
                    stack.append((child, d2))
        cu.scopes[sub_die] = scopes
        cu.dirty = True
        return scopes

    # -- the CU cache ---------------------------------------------------------------

    _CU_ARRAYS = (
        "line_addr",
        "line_file",
        "line_line",
        "line_flags",
        "sub_lo",
        "sub_hi",
        "sub_die",
    )

    def _load_cu_cache(self, cu: _CU) -> bool:
        z = self._load_entry(f"cu-{cu.offset}", self._CU_ARRAYS)
        if z is None:
            return False
        meta = z.pop("meta")
        try:
            files = list(meta["files"])
            file_base = int(meta["file_base"])
            names = {int(k): v for k, v in meta["names"].items()}
            scopes = {int(k): v for k, v in meta["scopes"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            return False
        for n in self._CU_ARRAYS:
            setattr(cu, n, z[n])
        cu.files, cu.file_base, cu.names, cu.scopes = files, file_base, names, scopes
        return True

    def _save_cache(self) -> None:
        if self._cache is None:
            return
        for cu in self._cus.values():
            if not cu.dirty:
                continue
            meta = {
                "files": cu.files,
                "file_base": cu.file_base,
                "names": {str(k): v for k, v in cu.names.items()},
                "scopes": {str(k): v for k, v in cu.scopes.items()},
            }
            self._store_entry(f"cu-{cu.offset}", meta, {n: getattr(cu, n) for n in self._CU_ARRAYS})
            cu.dirty = False

    # -- lookups ------------------------------------------------------------------------

    def symbolize(self, addr: int) -> list[SourceFrame]:
        """The frames of ``addr``, innermost (most inlined) first, as ``addr2line -f -i``."""
        return self.symbolize_many([addr])[0]

    def symbolize_many(self, addrs) -> list[list[SourceFrame]]:
        """:meth:`symbolize` for many addresses at once (one numpy search per table).  An
        address outside 0..2**64-1 is in no function: one unknown frame, as addr2line's."""
        addrs = [int(a) for a in addrs]
        inside = [k for k, a in enumerate(addrs) if 0 <= a < 1 << 64]
        with self._boundary(".debug_info"):
            found = self._symbolize_many([addrs[k] for k in inside])
        out: list[list[SourceFrame]] = [[SourceFrame(None, None, None)] for _ in addrs]
        for k, frames in zip(inside, found):
            out[k] = frames
        return out

    def _symbolize_many(self, addrs: list[int]) -> list[list[SourceFrame]]:
        n = len(addrs)
        out: list[list[SourceFrame] | None] = [None] * n
        if not n:
            return []
        a = np.array(addrs, np.uint64)
        by_cu: dict[int, list[int]] = {}
        if len(self._ar_lo):
            ci = np.searchsorted(self._ar_lo, a, side="right") - 1
            for k in range(n):
                j = int(ci[k])
                off = None
                if j >= 0 and addrs[k] < int(self._ar_hi[j]):
                    off = int(self._ar_cu[j])
                elif j >= 0:
                    off = self.cu_offset_at(addrs[k])
                if off is not None:
                    by_cu.setdefault(off, []).append(k)
        for off, ks in by_cu.items():
            cu = self._cu(off)
            sub = a[ks]
            m = len(ks)
            lines: list = [(None, None)] * m
            if len(cu.line_addr):
                rows = np.searchsorted(cu.line_addr, sub, side="right") - 1
                ok = rows >= 0
                safe = np.where(ok, rows, 0)
                ok &= (cu.line_flags[safe] & 2) == 0
                files = cu.line_file[safe].tolist()
                nums = cu.line_line[safe].tolist()
                lines = [
                    (cu.file_name(f), n) if o else (None, None)
                    for f, n, o in zip(files, nums, ok.tolist())
                ]
            subs: list = [None] * m
            if len(cu.sub_lo):
                si = np.searchsorted(cu.sub_lo, sub, side="right") - 1
                safe = np.where(si >= 0, si, 0)
                inside = (si >= 0) & (sub < cu.sub_hi[safe])
                dies = cu.sub_die[safe].tolist()
                subs = [
                    d if o else (None if i < 0 else -1 - i)
                    for d, o, i in zip(dies, inside.tolist(), si.tolist())
                ]
            for t, k in enumerate(ks):
                out[k] = self._frames_in_cu(cu, addrs[k], lines[t], subs[t])
        for k in range(n):
            if out[k] is None:
                sym = self.symbol_at(addrs[k])
                out[k] = [SourceFrame(sym.name if sym else None, None, None)]
        return out  # type: ignore[return-value]

    def _frames_in_cu(
        self, cu: _CU, addr: int, line_info: tuple, sub: int | None
    ) -> list[SourceFrame]:
        """``sub``: the function's DIE, or -1-i: not inside function range i (overlapping
        ranges are then tried a few back), or None: no functions known."""
        file_, line = line_info
        if sub is not None and sub < 0:
            sub_i = -1 - sub
            sub = None
            for j in range(sub_i - 1, max(sub_i - 8, -1), -1):
                if addr < int(cu.sub_hi[j]):
                    sub = int(cu.sub_die[j])
                    break
        if sub is None:
            sym = self.symbol_at(addr)
            return [SourceFrame(sym.name if sym else None, file_, line)]
        outer_name = cu.names.get(sub)
        if outer_name is None:
            sym = self.symbol_at(addr)
            outer_name = sym.name if sym else None
        chain: list[list] = []
        for s in sorted(
            (s for s in self._scopes(cu, sub) if s[0] <= addr < s[1]), key=lambda s: s[2]
        ):
            if not chain or chain[-1][2] != s[2]:  # one scope per inline depth
                chain.append(s)
        frames: list[SourceFrame] = []
        loc_file, loc_line = file_, line
        for s in reversed(chain):
            frames.append(SourceFrame(s[3], loc_file, loc_line, inlined=True))
            loc_file, loc_line = cu.file_name(s[4]), s[5]
        frames.append(SourceFrame(outer_name, loc_file, loc_line))
        return frames

    def resolve(self, func: str, off: int, length: int | None = None) -> int | None:
        """The address of ``func+off`` (the symbol whose size is ``length`` if several)."""
        syms = self.find_symbols(func)
        if not syms:
            return None
        best = syms[0]
        if length is not None:
            for s in syms:
                if s.size == length:
                    best = s
                    break
        return best.addr + off

    def frame_address(self, text: str, *, return_address: bool = False) -> int | None:
        """The address a ``func+0xOFF/0xLEN`` frame stands for (None: not a frame, or an
        unknown function); ``return_address``: ``start + off - 1`` (when off > 0)."""
        parsed = parse_frame(text)
        if parsed is None:
            return None
        func, off, length, _mod = parsed
        with self._boundary(".symtab"):
            addr = self.resolve(func, off, length)
        if addr is None:
            return None
        return addr - 1 if return_address and off > 0 else addr

    def symbolize_frame(
        self, text: str, *, return_address: bool = False
    ) -> list[SourceFrame] | None:
        """Symbolize one ``func+0xOFF/0xLEN`` frame (None: not a frame, or unknown)."""
        return self.symbolize_frames([text], return_address=return_address)[0]

    def symbolize_frames(
        self, texts, *, return_address: bool = False
    ) -> list[list[SourceFrame] | None]:
        """:meth:`symbolize_frame` for many frames at once."""
        addrs = [self.frame_address(t, return_address=return_address) for t in texts]
        known = [a for a in addrs if a is not None]
        resolved = iter(self.symbolize_many(known))
        return [None if a is None else next(resolved) for a in addrs]


def _check_line_header(d: _Bytes, off: int, byteorder: _ByteOrder) -> None:
    """Bound the entry counts of a DWARF 5 line program header before pyelftools reads it.

    pyelftools reads ``directories_count`` (a ULEB128) entries of the directory entry format;
    a damaged header with an empty format and a count of 2**35 made it loop for ever.  Each
    entry takes at least one byte of the header (DWARF 5, 6.2.4.1: the forms of a line
    header entry are strings, offsets, indexes, constants and blocks), so a count is at most
    ``header_length`` and the entries must end inside the header.
    """
    i = off
    osz = 4
    length = int.from_bytes(d[i : i + 4], byteorder)
    i += 4
    if length == 0xFFFFFFFF:
        osz = 8
        i += 8
    version = int.from_bytes(d[i : i + 2], byteorder)
    if version < 5:  # NUL-terminated lists: bounded by the section
        return
    i += 4  # version, address_size, segment_selector_size
    header_length = int.from_bytes(d[i : i + osz], byteorder)
    i += osz
    header_end = i + header_length
    opcode_base = d[i + 5]
    i += 6 + max(opcode_base - 1, 0)
    for what in ("directories", "file names"):
        nformats = d[i]
        i += 1
        forms = []
        for _ in range(nformats):
            _, i = _uleb(d, i)
            form, i = _uleb(d, i)
            forms.append(form)
        count, i = _uleb(d, i)
        if count > header_length or (count and not forms):
            raise ValueError(
                f"the line program header at {off} claims {count} {what} "
                f"({len(forms)} forms each) in {header_length} bytes"
            )
        if what == "file names":
            return
        for _ in range(count):
            for form in forms:
                i = _skip_line_header_form(d, i, form, osz)
            if i > header_end:
                raise ValueError(f"the {what} of the line program header at {off} run past its end")


def _skip_line_header_form(d: _Bytes, i: int, form: int, osz: int) -> int:
    """The offset past one value of ``form`` in a line program header entry."""
    n = _FIXED.get(form)
    if n is not None:
        return i + n
    if form in _OFFSET_FORMS:
        return i + osz
    if form in _ULEB_FORMS:
        return _uleb(d, i)[1]
    if form == _FORM_string:
        while d[i]:
            i += 1
        return i + 1
    if form == _FORM_block:
        n, i = _uleb(d, i)
        return i + n
    raise ValueError(f"DWARF form {form:#x} in a line program header entry")


def _decode_line_program(
    d: _Bytes,
    start: int,
    end: int,
    opcode_base: int,
    line_base: int,
    line_range: int,
    min_inst: int,
    default_is_stmt: int,
    std_lengths: list[int],
    byteorder: _ByteOrder,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows of a DWARF line program (versions 2-5): address, file, line, flags.

    flags: 1 = is_stmt, 2 = end_sequence.  A plain loop over the opcodes, written for speed
    (pyelftools builds an object per opcode, ten times slower on a big CU).
    """
    from array import array

    if line_range <= 0 or opcode_base < 1 or end > len(d):
        raise ValueError("corrupt line program header")
    adv_a = [0] * 256
    adv_l = [0] * 256
    for op in range(opcode_base, 256):
        adj = op - opcode_base
        adv_a[op] = (adj // line_range) * min_inst
        adv_l[op] = line_base + adj % line_range
    const_add = ((255 - opcode_base) // line_range) * min_inst
    A = array("Q")
    F = array("I")
    L = array("I")
    FL = array("B")
    aa, fa, la, fla = A.append, F.append, L.append, FL.append
    addr, file_, line, is_stmt = 0, 1, 1, default_is_stmt
    i = start
    mask = (1 << 64) - 1
    while i < end:
        op = d[i]
        i += 1
        if op >= opcode_base:
            addr += adv_a[op]
            line += adv_l[op]
            aa(addr & mask)
            fa(file_ & 0xFFFFFFFF)
            la(line & 0xFFFFFFFF)
            fla(is_stmt)
            continue
        # The operands are LEB128 numbers, nearly always of one byte: that case is taken
        # here, any other by _uleb()/_sleb().
        if op == DW_LNS_set_column:
            i = i + 1 if d[i] < 0x80 else _uleb(d, i)[1]
            continue
        # (DW_LNS_copy appends the row a special opcode does, written again here: one more
        # test for every standard opcode costs 2-3% of the decoding, measured)
        if op == DW_LNS_copy:
            aa(addr & mask)
            fa(file_ & 0xFFFFFFFF)
            la(line & 0xFFFFFFFF)
            fla(is_stmt)
            continue
        if op == DW_LNS_advance_pc:
            v = d[i]
            if v < 0x80:
                i += 1
            else:
                v, i = _uleb(d, i)
            addr += v * min_inst
            continue
        if op == DW_LNS_advance_line:
            v = d[i]
            if v < 0x80:
                i += 1
                line += v - 0x80 if v & 0x40 else v
            else:
                v, i = _sleb(d, i)
                line += v
            continue
        # (== chains, not `in (...)`: a tuple of globals is built at each test, 5% slower)
        if op == DW_LNS_set_file or op == DW_LNS_set_isa:  # noqa: SIM109
            v = d[i]
            if v < 0x80:
                i += 1
            else:
                v, i = _uleb(d, i)
            if op == DW_LNS_set_file:
                file_ = v
            continue
        if op == DW_LNS_negate_stmt:
            is_stmt ^= 1
            continue
        if op == DW_LNS_const_add_pc:
            addr += const_add
            continue
        if op == DW_LNS_fixed_advance_pc:
            addr += int.from_bytes(d[i : i + 2], byteorder)
            i += 2
            continue
        if (
            op == DW_LNS_set_basic_block  # noqa: SIM109
            or op == DW_LNS_set_prologue_end
            or op == DW_LNS_set_epilogue_begin
        ):
            continue
        if op == 0:  # extended opcode: its length, then it
            ln, i = _uleb(d, i)
            if ln == 0 or i + ln > end:
                raise ValueError("corrupt extended opcode in the line program")
            sub = d[i]
            if sub == DW_LNE_end_sequence:
                aa(addr & mask)
                fa(file_ & 0xFFFFFFFF)
                la(line & 0xFFFFFFFF)
                fla(is_stmt | 2)
                addr, file_, line, is_stmt = 0, 1, 1, default_is_stmt
            elif sub == DW_LNE_set_address:
                if ln > 9:
                    raise ValueError(f"DW_LNE_set_address of {ln - 1} bytes")
                addr = int.from_bytes(d[i + 1 : i + ln], byteorder)
            i += ln
            continue
        for _ in range(std_lengths[op - 1] if op - 1 < len(std_lengths) else 0):
            i = _uleb(d, i)[1]  # an opcode this decoder does not know
    return (
        np.frombuffer(A, np.uint64).copy() if len(A) else np.zeros(0, np.uint64),
        np.frombuffer(F, np.uint32).copy() if len(F) else np.zeros(0, np.uint32),
        np.frombuffer(L, np.uint32).copy() if len(L) else np.zeros(0, np.uint32),
        np.frombuffer(FL, np.uint8).copy() if len(FL) else np.zeros(0, np.uint8),
    )


class ModuleSymbolizers:
    """The ``.ko`` files under a directory, opened on first use by module name."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        cache_dir: str | os.PathLike[str] | bool | None = None,
    ) -> None:
        self.directory = os.fspath(directory)
        if not os.path.isdir(self.directory):
            raise SymbolizationError("not a directory", self.directory)
        self._cache_dir = cache_dir
        self._paths: dict[str, str] | None = None
        self._open: dict[str, ElfSymbolizer] = {}

    def path_of(self, module: str) -> str | None:
        if self._paths is None:
            paths: dict[str, str] = {}
            for root, _dirs, files in os.walk(self.directory):
                for f in sorted(files):
                    for suffix in (".ko", ".ko.debug"):
                        if f.endswith(suffix):
                            name = f[: -len(suffix)]
                            paths.setdefault(name, os.path.join(root, f))
                            paths.setdefault(name.replace("-", "_"), os.path.join(root, f))
            self._paths = paths
        return self._paths.get(module) or self._paths.get(module.replace("-", "_"))

    def get(self, module: str) -> ElfSymbolizer | None:
        if module in self._open:
            return self._open[module]
        p = self.path_of(module)
        sym = ElfSymbolizer(p, cache_dir=self._cache_dir) if p else None
        if sym is not None:
            self._open[module] = sym
        return sym

    def close(self) -> None:
        for s in self._open.values():
            s.close()
        self._open.clear()
