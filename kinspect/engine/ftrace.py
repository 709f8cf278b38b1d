"""Reading a kernel's kmem ftrace: the ``trace`` file, ``trace_pipe`` or ``trace-cmd report``.

Every era of the kmem tracepoints (``TP_printk`` in ``include/trace/events/kmem.h``, 2.6.32 to
6.12): with or without the flags column, ``%lx`` or ``%pS`` call sites, decimal or hex pfns, 32- or
64-bit pointers, ``(null)``, the ``*_node`` events of older kernels, ``options/fields`` output
(``0x... (decimal)``), and lines without the task prefix. Fields are found by name, not position
(patched kernels add fields).

The file is streamed (plain, ``.gz`` or ``.xz``), in blocks of lines: never read whole.
Lines that are not kmem allocation events are counted by event name; lines that cannot be
read are counted with their line numbers, or raise ``TraceError`` in strict mode.

Speed: each block is scanned by one regex (``_BLOCK``) whose matches are the block's lines, in
order, the common layouts decoded in place; any other line goes through the per-line path
(``_line``), which reads every era. ``ParallelTraceReader`` does the same in a forked child
process, so that a replay (replay.py) has its CPU to itself.
"""

from __future__ import annotations

import gc
import gzip
import io
import lzma
import multiprocessing
import os
import pickle
import re
import signal
import stat
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import NamedTuple, Protocol

import numpy as np

from . import native
from .errors import TraceError

KMALLOC, KMEM_CACHE_ALLOC, KFREE, KMEM_CACHE_FREE, PAGE_ALLOC, PAGE_FREE = range(6)
# The tracepoint of each kind (include/trace/events/kmem.h): how replay statistics and a
# session's event lines name the kinds
KIND_NAMES = (
    "kmalloc",
    "kmem_cache_alloc",
    "kfree",
    "kmem_cache_free",
    "mm_page_alloc",
    "mm_page_free",
)

# Tracepoint name -> kind. Older kernels' *_node events carry a node= field, nothing else.
EVENT_KINDS = {
    b"kmalloc": KMALLOC,
    b"kmalloc_node": KMALLOC,
    b"kmem_cache_alloc": KMEM_CACHE_ALLOC,
    b"kmem_cache_alloc_node": KMEM_CACHE_ALLOC,
    b"kfree": KFREE,
    b"kmem_cache_free": KMEM_CACHE_FREE,
    b"mm_page_alloc": PAGE_ALLOC,
    b"mm_page_free": PAGE_FREE,
    b"mm_page_free_batched": PAGE_FREE,
    b"mm_page_free_direct": PAGE_FREE,
    b"mm_pagevec_free": PAGE_FREE,
}

# "<comm>-<pid> [<cpu>] <flags> <secs>.<usecs>: <event>: <fields>"; comm may hold spaces and
# dashes (the pid follows the last '-'); trace-cmd adds nothing we need; the task prefix and
# the flags column are optional.
_LINE = re.compile(
    rb"\s*(?:(.*?)-(\d+)\s+(?:\(\s*[-\d]+\)\s+)?)?\[(\d+)\]\s+(?:\S+\s+)?"
    rb"(\d+\.\d+):\s+(\w+):\s?(.*)"
)
_BARE = re.compile(rb"\s*(?:(\d+\.\d+):\s+)?(\w+):\s(.*)")  # pasted lines: no task, no CPU
_GRAPH = re.compile(rb".*/\*\s*(\w+):\s(.*?)\s*\*/")  # function_graph comments
_FIELD = re.compile(rb"(\w+)=\s*(\(null\)|\S+)")
# Fast paths for the field layouts of every TP_printk era (FORMATS.md); anything else (patched
# kernels' extra fields, options/fields output) takes the general key=value path.
_ALLOC = re.compile(
    rb"call_site=(\S+) ptr=\s*(\(null\)|[0-9a-f]+) bytes_req=(\d+) "
    rb"bytes_alloc=(\d+)"
)
_FREE = re.compile(rb"call_site=(\S+) ptr=\s*(\(null\)|[0-9a-f]+)(?: name=(\S+))?\s*$")
_PAGE = re.compile(rb"page=\s*\S+ pfn=(0x[0-9a-f]+|\d+) order=(\d+)")
_VALUE = re.compile(rb"(0x[0-9a-fA-F]+|-?\d+)")
_POINTER = re.compile(rb"(?:0x)?[0-9a-fA-F]{1,16}")

# The whole-block scanner: one match per line, in order (the last alternative takes any line),
# so a line's number is its match's index. The first alternative is the common layout of every
# era (task prefix, one space after the event name, the fields in TP_printk order), decoded in
# place; any other line (no task prefix, function_graph comments, options/fields output, extra
# fields, markers, garbage...) is handed whole to the per-line path above, so both read every
# line alike. To pick the same comm/pid split as _LINE, the comm may not hold "-<digits><space>"
# (with it, _LINE could split earlier: such lines take the per-line path); whitespace is
# [^\S\n] so that no match spans two lines; numbers too long for their type (a pid of 8
# digits, a pointer of 17 hex digits, a size of 20 digits...) and values that the per-line
# path would refuse (non-ASCII call sites, a decimal pfn with a leading zero) take the
# per-line path too, which checks them.
_WS = rb"[ \t\r\f\v]"  # \s without \n
_KMEM_EVENTS = (
    rb"kmalloc|kmalloc_node|kmem_cache_alloc|kmem_cache_alloc_node|kfree|"
    rb"kmem_cache_free|mm_page_alloc|mm_page_free|mm_page_free_batched|"
    rb"mm_page_free_direct|mm_pagevec_free"
)
_BLOCK = re.compile(
    rb"(?!#)" + _WS + rb"*((?:(?!-\d+" + _WS + rb")[^\n])*?-\d{1,7})" + _WS + rb"+"
    rb"(?:\(" + _WS + rb"*[-\d]+\)" + _WS + rb"+)?\[\d+\]" + _WS + rb"+(?:\S+" + _WS + rb"+)?"
    rb"\d+\.\d+:" + _WS + rb"+(?:"
    rb"(kmem_cache_alloc|kmalloc|kmem_cache_alloc_node|kmalloc_node): call_site=([!-~]+) "
    rb"ptr=" + _WS + rb"*(\(null\)|[0-9a-f]{1,16}) bytes_req=(\d{1,19}) "
    rb"bytes_alloc=(\d{1,19})(?!\d)[^\n]*"
    rb"|(kmem_cache_free|kfree): call_site=([!-~]+) ptr=" + _WS + rb"*(\(null\)|[0-9a-f]{1,16})"
    rb"(?: name=([!-~]+))?" + _WS + rb"*"
    rb"|(mm_page_alloc|mm_page_free|mm_page_free_batched|mm_page_free_direct|mm_pagevec_free): "
    rb"page=" + _WS + rb"*\S+ pfn=(0x[0-9a-f]{1,16}|0|[1-9]\d{0,18}) order=(\d{1,9})(?!\d)[^\n]*"
    rb"|(?!(?:" + _KMEM_EVENTS + rb"|tracing_mark_write):)(\w+):[^\n]*"
    rb")\n|([^\n]*)\n"
)


class TraceEvent(NamedTuple):
    """One kmem allocation event of a trace."""

    line: int
    kind: int  # KMALLOC, KMEM_CACHE_ALLOC, KFREE, KMEM_CACHE_FREE, ...
    ptr: int  # object pointer (0 for NULL); page events: 0
    pfn: int  # page events; -1 otherwise
    order: int
    bytes_req: int
    bytes_alloc: int
    call_site: str
    name: str | None  # cache name (kmem_cache_free in 5.x+), else None
    comm: str
    pid: int


# An event as a plain tuple in TraceEvent's field order (a TraceEvent is one): what a
# ParallelTraceReader's child sends on the Python engine, TraceEvents being dearer to pickle
EventFields = tuple[int, int, int, int, int, int, int, str, str | None, str, int]


class EventBlock(Protocol):
    """What ``TraceReader.batches()`` yields, a block's events: a list of TraceEvents (or of
    their plain tuples) on the Python engine, an EventBatch on the native one."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[EventFields]: ...


# A scanned block: its events, the last line's number, the TraceError that stopped it or None
ScannedBlock = tuple[EventBlock, int, TraceError | None]


# The columns of an EventBatch: (name, numpy dtype). Strings are indexes into the reader's
# tables: call_site and name into ``strings`` (name -1: None), task into ``tasks``.
EVENT_COLUMNS = (
    ("line", "i8"),
    ("kind", "i1"),
    ("ptr", "u8"),
    ("pfn", "u8"),
    ("order", "u8"),
    ("bytes_req", "u8"),
    ("bytes_alloc", "u8"),
    ("call_site", "i4"),
    ("name", "i4"),
    ("task", "i4"),
)


class EventBatch:
    """A block's events as packed columns (numpy arrays, EVENT_COLUMNS), the native engine's
    form: what the compiled scanner fills, what a ParallelTraceReader's child sends as
    buffers and what the compiled replayer (_replay.pyx) reads. The strings (call sites,
    cache names) and tasks (comm, pid) are indexes into tables that the reader shares between
    its batches, each string made once. As a sequence it holds TraceEvents (made on demand),
    the Python reader's form; ``pfn`` of a non-page event reads -1, as in a TraceEvent."""

    __slots__ = tuple(name for name, _ in EVENT_COLUMNS) + ("strings", "tasks")
    # the columns, as EVENT_COLUMNS names them (a test checks that the two agree)
    line: np.ndarray
    kind: np.ndarray
    ptr: np.ndarray
    pfn: np.ndarray
    order: np.ndarray
    bytes_req: np.ndarray
    bytes_alloc: np.ndarray
    call_site: np.ndarray
    name: np.ndarray
    task: np.ndarray

    def __init__(
        self, columns: Iterable[np.ndarray], strings: list[str], tasks: list[tuple[str, int]]
    ) -> None:
        for (name, _), column in zip(EVENT_COLUMNS, columns):
            setattr(self, name, column)
        self.strings = strings
        self.tasks = tasks

    def columns(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, name) for name, _ in EVENT_COLUMNS)

    def slice(self, start: int, stop: int) -> EventBatch:
        """Events ``start`` to ``stop`` (not included) as a batch of their own: views of these
        columns (nothing copied), the same string and task tables."""
        return EventBatch(
            [column[start:stop] for column in self.columns()], self.strings, self.tasks
        )

    def __len__(self) -> int:
        return len(self.line)

    def __getitem__(self, i: int) -> TraceEvent:
        if not -len(self.line) <= i < len(self.line):
            raise IndexError("event index out of range")
        strings, kind, name = self.strings, int(self.kind[i]), int(self.name[i])
        comm, pid = self.tasks[self.task[i]]
        return TraceEvent(
            int(self.line[i]),
            kind,
            int(self.ptr[i]),
            int(self.pfn[i]) if kind >= PAGE_ALLOC else -1,
            int(self.order[i]),
            int(self.bytes_req[i]),
            int(self.bytes_alloc[i]),
            strings[self.call_site[i]],
            strings[name] if name >= 0 else None,
            comm,
            pid,
        )

    def __iter__(self) -> Iterator[TraceEvent]:
        strings, tasks = self.strings, self.tasks
        kinds = self.kind.tolist()
        pfns = [pfn if kind >= PAGE_ALLOC else -1 for pfn, kind in zip(self.pfn.tolist(), kinds)]
        sites = [strings[i] for i in self.call_site.tolist()]
        names = [strings[i] if i >= 0 else None for i in self.name.tolist()]
        task = [tasks[i] for i in self.task.tolist()]
        comms = [comm for comm, _ in task]
        pids = [pid for _, pid in task]
        return map(
            tuple.__new__,
            repeat(TraceEvent),
            zip(
                self.line.tolist(),
                kinds,
                self.ptr.tolist(),
                pfns,
                self.order.tolist(),
                self.bytes_req.tolist(),
                self.bytes_alloc.tolist(),
                sites,
                names,
                comms,
                pids,
            ),
        )


@dataclass
class TraceStats:
    """What a trace held besides the events kinspect replays."""

    lines: int = 0
    events: Counter = field(default_factory=Counter)  # replayed events by tracepoint
    other_events: Counter = field(default_factory=Counter)  # counted, not replayed
    bad_lines: int = 0
    first_bad: list[tuple[int, str]] = field(default_factory=list)  # (line, what is wrong)
    markers: list[tuple[int, str]] = field(default_factory=list)  # trace_marker writes

    def bad(self, line: int, what: str) -> None:
        self.bad_lines += 1
        if len(self.first_bad) < 20:
            self.first_bad.append((line, what))


def _open(path: str, stream=None):
    """(the text stream, the raw file under it): the raw file's position says how far we are.
    ``stream``: a file already open (a pipe, standard input), read as it is: never seeked."""
    try:
        raw = open(path, "rb") if stream is None else stream  # noqa: SIM115 (returned open)
        if not hasattr(raw, "peek"):
            raw = io.BufferedReader(raw)
        magic = raw.peek(6)[:6]  # not read(): a pipe cannot seek back
    except OSError as e:
        raise TraceError(f"cannot read trace: {e.strerror}", path) from None
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(raw, "rb"), raw
    if magic.startswith(b"\xfd7zXZ"):
        return lzma.open(raw, "rb"), raw
    return raw, raw


LONGEST_LINE = 16 << 20  # a "line" longer than this (a binary file) is cut: streaming holds


def _blocks(f, size: int = 1 << 20) -> Iterator[bytes]:
    """The file in blocks of whole lines (about ``size`` bytes each, every one ending with a
    newline; a last line without one gets one): big reads, never the whole file."""
    pending: list[bytes] = []  # the start of a line that began in an earlier read
    held = 0
    while True:
        chunk = f.read(size)
        if not chunk:
            rest = b"".join(pending)
            if rest:
                yield rest + b"\n"
            return
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            pending.append(chunk)
            held += len(chunk)
            if held >= LONGEST_LINE:
                yield b"".join(pending) + b"\n"
                pending, held = [], 0
            continue
        pending.append(chunk[:cut])
        yield b"".join(pending)
        pending = [chunk[cut:]]
        held = len(chunk) - cut


def _number(raw: bytes, what: str, limit: int = 1 << 64) -> int:
    """A %lu / 0x%lx / options/fields ``0x.. (dec)`` value, in [0, limit) (an unsigned long
    unless said otherwise); ValueError saying which field is wrong."""
    m = _VALUE.match(raw)
    if m is None:
        raise ValueError(f"{what} is not a number")
    text = m.group(1)
    value = int(text, 16 if text[:2] == b"0x" else 10) if len(text) <= 22 else -1
    if not 0 <= value < limit:
        raise ValueError(f"{what} out of range")
    return value


def _pointer(raw: bytes) -> int:
    """A %p value: hex without 0x (or with, in options/fields output), ``(null)`` is 0."""
    if raw == b"(null)":
        return 0
    if not _POINTER.fullmatch(raw):
        raise ValueError("ptr wider than 64 bits" if len(raw) > 18 else "ptr is not hex")
    return int(raw, 16)


def _pid(raw) -> int:
    """The pid of a task prefix (digits): at most 7 digits, as the block scanner takes them
    (PID_MAX_LIMIT, 4194304, has 7), so that it fits struct kasan_track's u32 pid."""
    if not raw:
        return 0
    if len(raw) > 7:
        raise ValueError("pid out of range")
    return int(raw)


class TraceReader:
    """Iterate the kmem events of a trace file; ``stats`` fills in as it goes. The native
    engine (native.py) reads the blocks with the compiled scanner (_ftrace_scan.pyx), which
    gives what ``_block`` gives, as an EventBatch; its strings and tasks are kept once, in
    ``strings_table`` and ``tasks_table``."""

    HASH_SAMPLE = 256
    _event_type: type = TraceEvent  # ParallelTraceReader's child makes plain tuples

    def __init__(
        self, path: str, strict: bool = False, stream=None, engine: str | None = None
    ) -> None:
        self.path = path
        self.strict = strict
        self._stream = stream  # an open binary file (a pipe...), or None: path
        self.stats = TraceStats()
        self.pointer_bits = 64
        self._seen_event = False
        self._ptr_sample: list[bytes] = []
        self._comms: dict[bytes | None, str] = {}
        self._tasks: dict[bytes, tuple[str, int]] = {}  # b"comm-pid" -> (comm, pid)
        self._strings: dict[bytes, str] = {}  # call sites, cache names
        self.strings_table: list[str] = []  # an EventBatch's strings and tasks (native)
        self.tasks_table: list[tuple[str, int]] = []
        self._raw = None
        self._size = 0
        self.engine = native.engine(engine)
        # the block scanner: _block, or its compiled twin on the native engine
        self._scan: Callable[[bytes, int], ScannedBlock] = (
            native.compiled_for_native("_ftrace_scan").BlockScanner(self)
            if self.engine == "native"
            else self._block
        )

    def fraction(self) -> float:
        """How much of the file has been read (0..1), for progress bars."""
        raw = self._raw
        if raw is None or raw.closed or not self._size:
            return 0.0
        try:
            return min(raw.tell() / self._size, 1.0)
        except (OSError, ValueError):  # closed by the reading thread since the check
            return 0.0

    def __iter__(self) -> Iterator[EventFields]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Generator[EventBlock, None, None]:
        """The events a block of the file (about 1 MB of text) at a time: the fast way to
        read a trace. Lists of TraceEvents on the Python engine, EventBatches (the same
        events as packed columns) on the native one. ``stats`` is up to date with the lines
        of the blocks handed out."""
        f, raw = _open(self.path, self._stream)
        self._raw = raw  # the position is read from here while the blocks go by
        try:
            st = os.fstat(raw.fileno())
            self._size = st.st_size if stat.S_ISREG(st.st_mode) else 0  # pipes: unknown
        except (OSError, ValueError, io.UnsupportedOperation):
            self._size = 0
        try:
            lineno = 0
            for block in _blocks(f):
                events, lineno, error = self._scan(block, lineno)
                self.stats.lines = lineno
                if events:
                    yield events
                if error is not None:
                    raise error
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
            raise TraceError(f"cannot read trace: {e}", self.path) from None
        finally:
            f.close()
            raw.close()
        if not self._seen_event:
            raise TraceError(
                "not an ftrace text file: no kmem or other trace events found "
                "(expected lines like 'comm-pid [cpu] ... secs: kmalloc: ...')",
                self.path,
            )

    def _block(self, block: bytes, lineno: int) -> ScannedBlock:
        """The events of a block of lines: (events, the last line's number, the TraceError
        that stopped the block or None). One regex scan reads the common lines in place;
        the others go through ``_line``."""
        events: list[TraceEvent] = []
        append = events.append
        counts: dict[bytes, int] = {}  # replayed events by tracepoint, this block
        others: dict[bytes, int] = {}  # other events by tracepoint, this block
        tasks, strings = self._tasks, self._strings
        kinds = EVENT_KINDS
        new, event = tuple.__new__, self._event_type
        sampling = len(self._ptr_sample) < self.HASH_SAMPLE
        seen = self._seen_event
        error = None
        for (
            task,
            ea,
            csa,
            pa,
            req,
            size,
            ef,
            csf,
            pf,
            name,
            ep,
            pfn,
            order,
            eo,
            raw,
        ) in _BLOCK.findall(block):
            lineno += 1
            if ea:  # kmalloc, kmem_cache_alloc
                seen = True
                t = tasks.get(task) or self._task(task)
                cs = strings.get(csa) or self._string(csa)
                if sampling:
                    try:
                        self._check_hashing(pa)
                    except TraceError as e:
                        error = e
                        break
                    sampling = len(self._ptr_sample) < self.HASH_SAMPLE
                append(
                    new(
                        event,
                        (
                            lineno,
                            kinds[ea],
                            0 if pa == b"(null)" else int(pa, 16),
                            -1,
                            0,
                            int(req),
                            int(size),
                            cs,
                            None,
                            t[0],
                            t[1],
                        ),
                    )
                )
                counts[ea] = counts.get(ea, 0) + 1
            elif ef:  # kfree, kmem_cache_free
                seen = True
                t = tasks.get(task) or self._task(task)
                cs = strings.get(csf) or self._string(csf)
                if name:
                    name = strings.get(name) or self._string(name)
                else:
                    name = None
                append(
                    new(
                        event,
                        (
                            lineno,
                            kinds[ef],
                            0 if pf == b"(null)" else int(pf, 16),
                            -1,
                            0,
                            0,
                            0,
                            cs,
                            name,
                            t[0],
                            t[1],
                        ),
                    )
                )
                counts[ef] = counts.get(ef, 0) + 1
            elif ep:  # mm_page_alloc, mm_page_free...
                seen = True
                t = tasks.get(task) or self._task(task)
                append(
                    new(
                        event,
                        (lineno, kinds[ep], 0, int(pfn, 0), int(order), 0, 0, "", None, t[0], t[1]),
                    )
                )
                counts[ep] = counts.get(ep, 0) + 1
            elif eo:  # another event: counted
                seen = True
                others[eo] = others.get(eo, 0) + 1
            elif raw[:1] != b"#" and raw.strip():  # anything else, line by line
                self._seen_event = seen
                self._count(counts, others)
                counts, others = {}, {}
                try:
                    ev = self._line(raw, lineno)
                except TraceError as e:
                    error = e
                    break
                seen = self._seen_event
                if ev is not None:
                    append(ev)
                sampling = len(self._ptr_sample) < self.HASH_SAMPLE
        self._seen_event = seen
        self._count(counts, others)
        return events, lineno, error

    def _fail(self, lineno: int, what: str) -> None:
        if self.strict:
            raise TraceError(what, self.path, lineno)
        self.stats.bad(lineno, what)

    def _count(self, counts: dict[bytes, int], others: dict[bytes, int]) -> None:
        for name, n in counts.items():
            self.stats.events[name.decode()] += n
        for name, n in others.items():
            self.stats.other_events[name.decode(errors="replace")] += n

    def _task(self, key: bytes) -> tuple[str, int]:
        """(comm, pid) of a ``comm-pid`` task prefix, as ``_line`` reads them."""
        comm, _, pid = key.rpartition(b"-")
        commstr = self._comms.get(comm)
        if commstr is None:
            commstr = self._comms[comm] = comm.strip().decode(errors="replace") if comm else ""
        t = self._tasks[key] = (commstr, int(pid))
        return t

    def _string(self, raw: bytes) -> str:
        """A call site or cache name (ASCII), one str object per distinct value."""
        s = self._strings[raw] = raw.decode()
        return s

    def _line(self, raw: bytes, lineno: int) -> TraceEvent | None:
        """One line the block scanner left alone: its event, or None (counted, skipped)."""
        stats = self.stats
        kinds = EVENT_KINDS
        m = _LINE.match(raw)
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
                    raise TraceError("not an ftrace text file (binary data)", self.path, lineno)
                self._fail(lineno, "not a trace line")
                return None
        self._seen_event = True
        kind = kinds.get(event)
        if kind is None:
            if event == b"tracing_mark_write":
                stats.markers.append((lineno, rest.strip().decode(errors="replace")))
            stats.other_events[event.decode(errors="replace")] += 1
            return None
        try:
            ev = self._event(lineno, kind, rest, comm, pid)
        except (ValueError, KeyError, IndexError) as e:
            self._fail(lineno, f"malformed {event.decode()} event ({e})")
            return None
        stats.events[event.decode()] += 1
        return ev

    def _event(self, lineno: int, kind: int, rest: bytes, comm, pid) -> TraceEvent:
        commstr = self._comms.get(comm)
        if commstr is None:
            commstr = self._comms[comm] = comm.strip().decode(errors="replace") if comm else ""
        pidnum = _pid(pid)
        if kind >= PAGE_ALLOC:
            m = _PAGE.match(rest)
            if m is not None:
                pfn, order = m.groups()
                return TraceEvent(
                    lineno,
                    kind,
                    0,
                    _number(pfn, "pfn"),
                    _number(order, "order", 1 << 32),
                    0,
                    0,
                    "",
                    None,
                    commstr,
                    pidnum,
                )
        elif kind <= KMEM_CACHE_ALLOC:
            m = _ALLOC.match(rest)
            if m is not None:
                call_site, ptr, req, alloc = m.groups()
                if len(self._ptr_sample) < self.HASH_SAMPLE:
                    self._check_hashing(ptr)
                return TraceEvent(
                    lineno,
                    kind,
                    _pointer(ptr),
                    -1,
                    0,
                    _number(req, "bytes_req"),
                    _number(alloc, "bytes_alloc"),
                    call_site.decode(),
                    None,
                    commstr,
                    pidnum,
                )
        else:
            m = _FREE.match(rest)
            if m is not None:
                call_site, ptr, name = m.groups()
                return TraceEvent(
                    lineno,
                    kind,
                    _pointer(ptr),
                    -1,
                    0,
                    0,
                    0,
                    call_site.decode(),
                    name.decode() if name else None,
                    commstr,
                    pidnum,
                )
        return self._event_fields(lineno, kind, rest, commstr, pidnum)

    def _event_fields(
        self, lineno: int, kind: int, rest: bytes, commstr: str, pidnum: int
    ) -> TraceEvent:
        """The general path: fields by name, values in any of the printed forms."""
        fields = dict(_FIELD.findall(rest))
        call_site = fields.get(b"call_site", b"").decode(errors="replace")
        if kind >= PAGE_ALLOC:
            return TraceEvent(
                lineno,
                kind,
                0,
                _number(fields[b"pfn"], "pfn"),
                _number(fields[b"order"], "order", 1 << 32),
                0,
                0,
                call_site,
                None,
                commstr,
                pidnum,
            )
        raw_ptr = fields[b"ptr"]
        if len(self._ptr_sample) < self.HASH_SAMPLE and raw_ptr != b"(null)":
            self._check_hashing(raw_ptr)
        ptr = _pointer(raw_ptr)
        name = fields.get(b"name")
        name = name.decode(errors="replace") if name is not None else None
        if kind in (KFREE, KMEM_CACHE_FREE):
            return TraceEvent(lineno, kind, ptr, -1, 0, 0, 0, call_site, name, commstr, pidnum)
        return TraceEvent(
            lineno,
            kind,
            ptr,
            -1,
            0,
            _number(fields[b"bytes_req"], "bytes_req"),
            _number(fields[b"bytes_alloc"], "bytes_alloc"),
            call_site,
            name,
            commstr,
            pidnum,
        )

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
                "no_hash_pointers (5.12+), or use options/fields output",
                self.path,
            )


# ----------------------------------------------------------------- reading in a child process

PARALLEL_MIN_BYTES = 1 << 20  # smaller files: forking costs more than it saves


def parallel_possible() -> bool:
    """Whether a ParallelTraceReader can help here: Linux (fork() is safe there with numpy),
    no other thread in this process (forking a threaded process is not), and a CPU to spare:
    two or more that this process may use, with a CPU and a half of them idle (the 1-minute
    load average). Measured on 2 CPUs with one busy elsewhere, reader and replay shared the
    other and the replay took 15 % longer than in one process."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    cpus = len(os.sched_getaffinity(0))
    return cpus > 1 and os.getloadavg()[0] + 1.5 <= cpus


class ParallelTraceReader(TraceReader):
    """A TraceReader whose reading (decompressing, scanning, decoding) runs in a forked child
    process, one block ahead of the caller: the caller's CPU is left to the replay.

    The child reads exactly as TraceReader does and sends each block's events with the
    statistics so far; errors come after the events before them, as with TraceReader. On the
    native engine the events go as the bytes of an EventBatch's columns, with the strings and
    tasks that are new since the last block (each sent once), and ``batches()`` yields
    EventBatches; on the Python engine as pickled plain tuples in TraceEvent field order, and
    ``batches()`` yields those tuples. Iterating the reader yields TraceEvents. The child
    ignores Ctrl-C; the caller stopping (an exception, closing the generator) ends it.
    """

    def __init__(self, path: str, strict: bool = False, engine: str | None = None) -> None:
        super().__init__(path, strict, engine=engine)
        self._fraction = 0.0

    def fraction(self) -> float:
        return self._fraction

    def __iter__(self) -> Iterator[TraceEvent]:
        new = tuple.__new__
        for batch in self.batches():
            for ev in batch:
                yield new(TraceEvent, ev)

    def batches(self) -> Generator[EventBlock, None, None]:
        ctx = multiprocessing.get_context("fork")
        for stream in (sys.stdout, sys.stderr):  # the child flushes them as it exits:
            if stream is not None:  # nothing of ours may be in them then
                stream.flush()
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(
            target=_read_in_child,
            args=(self.path, self.strict, self.engine, send),
            daemon=True,
            name="kinspect-trace-reader",
        )
        child.start()
        send.close()
        loads = pickle.loads
        try:
            while True:
                try:
                    message = loads(receive.recv_bytes())
                except EOFError:
                    raise TraceError(
                        "cannot read trace: the reading process ended "
                        f"(exit code {child.exitcode})",
                        self.path,
                    ) from None
                (
                    what,
                    events,
                    strings,
                    tasks,
                    self.stats,
                    self.pointer_bits,
                    self._fraction,
                    error,
                ) = message
                self.strings_table += strings
                self.tasks_table += tasks
                if isinstance(events, tuple):  # an EventBatch's columns
                    events = EventBatch(
                        [
                            np.frombuffer(raw, dtype)
                            for raw, (_, dtype) in zip(events, EVENT_COLUMNS)
                        ],
                        self.strings_table,
                        self.tasks_table,
                    )
                if events:
                    yield events
                if error is not None:
                    raise TraceError(*error)
                if what == "end":
                    return
        finally:
            receive.close()
            if child.is_alive():
                child.terminate()
            child.join()


def _read_in_child(path: str, strict: bool, engine: str, conn) -> None:
    """The child of a ParallelTraceReader: read the trace, send it block by block."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    gc.disable()
    reader = TraceReader(path, strict, engine=engine)
    reader._event_type = tuple
    dumps = pickle.dumps
    sent = [0, 0]  # the strings and tasks the parent has

    def new_entries() -> tuple[list, list]:
        strings, tasks = reader.strings_table[sent[0] :], reader.tasks_table[sent[1] :]
        sent[:] = len(reader.strings_table), len(reader.tasks_table)
        return strings, tasks

    try:
        try:
            for events in reader.batches():
                block = (  # an EventBatch as its columns' bytes
                    tuple(column.tobytes() for column in events.columns())
                    if isinstance(events, EventBatch)
                    else events
                )
                conn.send_bytes(
                    dumps(
                        (
                            "events",
                            block,
                            *new_entries(),
                            reader.stats,
                            reader.pointer_bits,
                            reader.fraction(),
                            None,
                        ),
                        pickle.HIGHEST_PROTOCOL,
                    )
                )
            message: tuple[object, ...] = (
                "end",
                [],
                [],
                [],
                reader.stats,
                reader.pointer_bits,
                1.0,
                None,
            )
        except TraceError as e:
            message = (
                "end",
                [],
                [],
                [],
                reader.stats,
                reader.pointer_bits,
                1.0,
                (e.message, e.path, e.line, e.col),
            )
        except Exception as e:  # a bug: say what it was
            message = (
                "end",
                [],
                [],
                [],
                reader.stats,
                reader.pointer_bits,
                1.0,
                (f"cannot read trace: {type(e).__name__}: {e}", path),
            )
        conn.send_bytes(dumps(message, pickle.HIGHEST_PROTOCOL))
    except (BrokenPipeError, OSError):
        pass  # the parent stopped reading
    finally:
        conn.close()
