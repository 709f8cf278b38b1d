"""Reading a kernel's kmem ftrace: the ``trace`` file, ``trace_pipe`` or ``trace-cmd report``.

Every era of ../shared/data/ftrace/FORMATS.md: with or without the flags column, ``%lx`` or
``%pS`` call sites, decimal or hex pfns, 32- or 64-bit pointers, ``(null)``, the ``*_node``
events of older kernels, ``options/fields`` output (``0x... (decimal)``), and lines without the
task prefix. Fields are found by name, not position (patched kernels add fields).

The file is streamed (plain, ``.gz`` or ``.xz``), in blocks of lines: never read whole.
Lines that are not kmem allocation events are counted by event name; lines that cannot be
read are counted with their line numbers, or raise ``TraceError`` in strict mode.
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import TraceError

KMALLOC, KMEM_CACHE_ALLOC, KFREE, KMEM_CACHE_FREE, PAGE_ALLOC, PAGE_FREE = range(6)
KIND_NAMES = ("kmalloc", "kmem_cache_alloc", "kfree", "kmem_cache_free", "mm_page_alloc",
              "mm_page_free")

# Tracepoint name -> kind. Older kernels' *_node events carry a node= field, nothing else.
EVENT_KINDS = {
    b"kmalloc": KMALLOC, b"kmalloc_node": KMALLOC,
    b"kmem_cache_alloc": KMEM_CACHE_ALLOC, b"kmem_cache_alloc_node": KMEM_CACHE_ALLOC,
    b"kfree": KFREE, b"kmem_cache_free": KMEM_CACHE_FREE,
    b"mm_page_alloc": PAGE_ALLOC,
    b"mm_page_free": PAGE_FREE, b"mm_page_free_batched": PAGE_FREE,
    b"mm_page_free_direct": PAGE_FREE, b"mm_pagevec_free": PAGE_FREE,
}

# "<comm>-<pid> [<cpu>] <flags> <secs>.<usecs>: <event>: <fields>"; comm may hold spaces and
# dashes (the pid follows the last '-'); trace-cmd adds nothing we need; the task prefix and
# the flags column are optional.
_LINE = re.compile(rb"\s*(?:(.*?)-(\d+)\s+(?:\(\s*[-\d]+\)\s+)?)?\[(\d+)\]\s+(?:\S+\s+)?"
                   rb"(\d+\.\d+):\s+(\w+):\s?(.*)")
_BARE = re.compile(rb"\s*(?:(\d+\.\d+):\s+)?(\w+):\s(.*)")      # pasted lines: no task, no CPU
_GRAPH = re.compile(rb".*/\*\s*(\w+):\s(.*?)\s*\*/")           # function_graph comments
_FIELD = re.compile(rb"(\w+)=\s*(\(null\)|\S+)")
# Fast paths for the field layouts of every TP_printk era (FORMATS.md); anything else (patched
# kernels' extra fields, options/fields output) takes the general key=value path.
_ALLOC = re.compile(rb"call_site=(\S+) ptr=\s*(\(null\)|[0-9a-f]+) bytes_req=(\d+) "
                    rb"bytes_alloc=(\d+)")
_FREE = re.compile(rb"call_site=(\S+) ptr=\s*(\(null\)|[0-9a-f]+)(?: name=(\S+))?\s*$")
_PAGE = re.compile(rb"page=\s*\S+ pfn=(0x[0-9a-f]+|\d+) order=(\d+)")
_VALUE = re.compile(rb"(0x[0-9a-fA-F]+|-?\d+)")


class TraceEvent(NamedTuple):
    """One kmem allocation event of a trace."""

    line: int
    kind: int                   # KMALLOC, KMEM_CACHE_ALLOC, KFREE, KMEM_CACHE_FREE, ...
    ptr: int                    # object pointer (0 for NULL); page events: 0
    pfn: int                    # page events; -1 otherwise
    order: int
    bytes_req: int
    bytes_alloc: int
    call_site: str
    name: str | None            # cache name (kmem_cache_free in 5.x+), else None
    comm: str
    pid: int


@dataclass
class TraceStats:
    """What a trace held besides the events kinspect replays."""

    lines: int = 0
    events: Counter = field(default_factory=Counter)       # replayed events by tracepoint
    other_events: Counter = field(default_factory=Counter)  # counted, not replayed
    bad_lines: int = 0
    first_bad: list[tuple[int, str]] = field(default_factory=list)   # (line, what is wrong)
    markers: list[tuple[int, str]] = field(default_factory=list)     # trace_marker writes

    def bad(self, line: int, what: str) -> None:
        self.bad_lines += 1
        if len(self.first_bad) < 20:
            self.first_bad.append((line, what))


def _open(path: str):
    """(the text stream, the raw file under it): the raw file's position says how far we are."""
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise TraceError(f"cannot read trace: {e.strerror}", path) from None
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(raw, "rb"), raw
    if magic.startswith(b"\xfd7zXZ"):
        return lzma.open(raw, "rb"), raw
    return raw, raw


def _line_blocks(f, size: int = 1 << 22) -> Iterator[list[bytes]]:
    """The file's lines in blocks of about ``size`` bytes (big reads, then split)."""
    tail = b""
    while True:
        chunk = f.read(size)
        if not chunk:
            if tail:
                yield [tail]
            return
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        yield lines


def _number(raw: bytes) -> int:
    """A %lu / 0x%lx / options/fields ``0x.. (dec)`` value."""
    m = _VALUE.match(raw)
    if m is None:
        raise ValueError(raw)
    return int(m.group(1), 0)


def _pointer(raw: bytes) -> int:
    """A %p value: hex without 0x (or with, in options/fields output), ``(null)`` is 0."""
    if raw == b"(null)":
        return 0
    return int(raw, 16)


class TraceReader:
    """Iterate the kmem events of a trace file; ``stats`` fills in as it goes."""

    HASH_SAMPLE = 256

    def __init__(self, path: str, strict: bool = False) -> None:
        self.path = path
        self.strict = strict
        self.stats = TraceStats()
        self.pointer_bits = 64
        self._seen_event = False
        self._ptr_sample: list[bytes] = []
        self._comms: dict[bytes | None, str] = {}
        self._raw = None
        self._size = 0

    def fraction(self) -> float:
        """How much of the file has been read (0..1), for progress bars."""
        if self._raw is None or self._raw.closed or not self._size:
            return 0.0
        return min(self._raw.tell() / self._size, 1.0)

    def __iter__(self) -> Iterator[TraceEvent]:
        f, self._raw = _open(self.path)
        self._size = os.fstat(self._raw.fileno()).st_size
        try:
            yield from self._events(f)
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
            raise TraceError(f"cannot read trace: {e}", self.path) from None
        finally:
            f.close()
            self._raw.close()
        if not self._seen_event:
            raise TraceError("not an ftrace text file: no kmem or other trace events found "
                             "(expected lines like 'comm-pid [cpu] ... secs: kmalloc: ...')",
                             self.path)

    def _fail(self, lineno: int, what: str) -> None:
        if self.strict:
            raise TraceError(what, self.path, lineno)
        self.stats.bad(lineno, what)

    def _events(self, f) -> Iterator[TraceEvent]:
        stats = self.stats
        lineno = 0
        line_re, kinds = _LINE, EVENT_KINDS
        for block in _line_blocks(f):
            for raw in block:
                lineno += 1
                if raw[:1] == b"#" or not raw.strip():
                    continue
                m = line_re.match(raw)
                if m is not None:
                    comm, pid, _cpu, _ts, event, rest = m.groups()
                else:
                    comm = pid = None
                    g = _GRAPH.match(raw) if b"/*" in raw else None
                    b = _BARE.match(raw) if g is None else None
                    if g is not None:
                        event, rest = g.group(1), g.group(2)
                    elif b is not None and b.group(2) in kinds:
                        event, rest = b.group(2), b.group(3)
                    else:
                        if b"\x00" in raw or not raw.isascii() and not self._seen_event:
                            raise TraceError("not an ftrace text file (binary data)",
                                             self.path, lineno)
                        self._fail(lineno, "not a trace line")
                        continue
                self._seen_event = True
                kind = kinds.get(event)
                if kind is None:
                    if event == b"tracing_mark_write":
                        stats.markers.append((lineno, rest.strip().decode(errors="replace")))
                    stats.other_events[event.decode(errors="replace")] += 1
                    continue
                try:
                    ev = self._event(lineno, kind, rest, comm, pid)
                except (ValueError, KeyError, IndexError) as e:
                    self._fail(lineno, f"malformed {event.decode()} event ({e})")
                    continue
                stats.events[event.decode()] += 1
                yield ev
        stats.lines = lineno

    def _event(self, lineno: int, kind: int, rest: bytes, comm, pid) -> TraceEvent:
        commstr = self._comms.get(comm)
        if commstr is None:
            commstr = self._comms[comm] = comm.strip().decode(errors="replace") if comm else ""
        pidnum = int(pid) if pid else 0
        if kind >= PAGE_ALLOC:
            m = _PAGE.match(rest)
            if m is not None:
                pfn, order = m.groups()
                return TraceEvent(lineno, kind, 0, int(pfn, 0), int(order), 0, 0, "", None,
                                  commstr, pidnum)
        elif kind <= KMEM_CACHE_ALLOC:
            m = _ALLOC.match(rest)
            if m is not None:
                call_site, ptr, req, alloc = m.groups()
                if len(self._ptr_sample) < self.HASH_SAMPLE:
                    self._check_hashing(ptr)
                return TraceEvent(lineno, kind, _pointer(ptr), -1, 0, int(req), int(alloc),
                                  call_site.decode(), None, commstr, pidnum)
        else:
            m = _FREE.match(rest)
            if m is not None:
                call_site, ptr, name = m.groups()
                return TraceEvent(lineno, kind, _pointer(ptr), -1, 0, 0, 0, call_site.decode(),
                                  name.decode() if name else None, commstr, pidnum)
        return self._event_fields(lineno, kind, rest, commstr, pidnum)

    def _event_fields(self, lineno: int, kind: int, rest: bytes, commstr: str,
                      pidnum: int) -> TraceEvent:
        """The general path: fields by name, values in any of the printed forms."""
        fields = dict(_FIELD.findall(rest))
        call_site = fields.get(b"call_site", b"").decode(errors="replace")
        if kind >= PAGE_ALLOC:
            return TraceEvent(lineno, kind, 0, _number(fields[b"pfn"]),
                              _number(fields[b"order"]), 0, 0, call_site, None, commstr, pidnum)
        raw_ptr = fields[b"ptr"]
        if len(self._ptr_sample) < self.HASH_SAMPLE and raw_ptr != b"(null)":
            self._check_hashing(raw_ptr)
        ptr = _pointer(raw_ptr) if not raw_ptr.startswith(b"0x") else int(raw_ptr, 16)
        name = fields.get(b"name")
        name = name.decode(errors="replace") if name is not None else None
        if kind in (KFREE, KMEM_CACHE_FREE):
            return TraceEvent(lineno, kind, ptr, -1, 0, 0, 0, call_site, name, commstr, pidnum)
        return TraceEvent(lineno, kind, ptr, -1, 0, _number(fields[b"bytes_req"]),
                          _number(fields[b"bytes_alloc"]), call_site, name, commstr, pidnum)

    def _check_hashing(self, raw_ptr: bytes) -> None:
        """%p is hashed since 4.15 unless booted with no_hash_pointers: detect it, explain it."""
        if raw_ptr == b"(null)":
            return
        self._ptr_sample.append(raw_ptr)
        if len(raw_ptr) <= 8:
            self.pointer_bits = 32
        if len(self._ptr_sample) < self.HASH_SAMPLE:
            return
        hashed = sum(1 for p in self._ptr_sample if len(p) == 16 and p.startswith(b"00000000"))
        if hashed * 10 >= 9 * len(self._ptr_sample):
            raise TraceError(
                "pointers in this trace are hashed (%p prints hashed values since Linux "
                "4.15): they are not addresses, and frees cannot be matched to allocations "
                "by value across slabs and pages. Capture again with the kernel booted with "
                "no_hash_pointers (5.12+), or use options/fields output", self.path)
