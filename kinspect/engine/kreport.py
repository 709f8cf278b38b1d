"""Parse real KASAN report text (Linux 6.12 format, with tolerance for older layouts).

Input is any text that holds ``BUG: KASAN:`` reports: a bare report file, a console or
``dmesg`` log with ``[    2.345678] `` timestamps (and syzbot's ``[ T1234]`` / ``[    C0]``
caller ids), syzbot's symbolized text, kinspect's own output.  The input is read line by line,
so a huge dmesg costs only the memory of the reports it holds.

One :class:`KasanReport` per report.  The layout that is parsed is the one printed by
``mm/kasan/report.c`` and ``mm/kasan/report_generic.c`` of 6.12 (see KASAN.md section 3):

```
BUG: KASAN: <bug_type> in <%pS>
<Read|Write> of size <N> at addr <addr> by task <comm>/<pid>     (or "Read at addr", "Free of addr")
...call trace...
Allocated by task <pid>: / Freed by task <pid>: / Last potentially related work creation:
The buggy address belongs to the object at <object>
 which belongs to the cache <name> of size <object_size>
The buggy address is located <n> bytes <to the left|to the right|inside> of
 <allocated |freed |><size>-byte region [<start>, <end>)
The buggy address belongs to the physical page: ...      (raw lines kept)
The buggy address belongs to stack of task <comm>/<pid> ... This frame has <k> objects: ...
The buggy address belongs to the variable: <%pS>
Memory state around the buggy address:  (5 rows, '>' on the guilty one, then the '^' line)
==================================================================
```

Older layouts (4.x ``... in f at addr A`` + ``Read of size N by task``; the 4.12-5.x
``double-free or invalid-free`` title with no access line; ``this frame has``) are accepted for
the header fields.  A report whose required lines are broken raises
:class:`~kinspect.engine.errors.ReportParseError` naming the line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from kinspect.engine.errors import ReportParseError

__all__ = [
    "KasanReport",
    "StackTrace",
    "FrameObject",
    "MemoryRow",
    "iter_reports",
    "parse_reports",
    "parse_report_text",
    "META_BYTES_PER_ROW",
    "META_ROWS",
]

#: ``META_BYTES_PER_ROW`` in mm/kasan/report.c: metadata bytes shown per dump row.
META_BYTES_PER_ROW = 16
#: ``2 * META_ROWS_AROUND_ADDR + 1``: rows in the "Memory state around the buggy address" dump.
META_ROWS = 5


# --------------------------------------------------------------------------- data


@dataclass
class StackTrace:
    """A stack saved in the stack depot and printed by ``print_track`` / ``print_stack``.

    ``kind`` is ``"alloc"`` (``Allocated by task``), ``"free"`` (``Freed by task``) or
    ``"aux"`` (``Last potentially related work creation`` and the second-to-last one).
    ``frames`` are the frame lines without their leading space.
    """

    kind: str
    header: str
    pid: int | None
    frames: list[str] = field(default_factory=list)
    line: int | None = None
    available: bool = True


@dataclass(frozen=True)
class FrameObject:
    """One ``[start, end) 'name'`` line of ``This frame has N objects``."""

    start: int
    end: int
    name: str


@dataclass(frozen=True)
class MemoryRow:
    """One row of the memory-state dump: the memory address of its first granule and the
    16 metadata bytes (shadow bytes in generic mode, memory tags in the tag modes)."""

    addr: int
    values: tuple[int, ...]
    guilty: bool
    line: int | None = None


@dataclass
class KasanReport:
    """One KASAN report as the kernel printed it (fields are None when the report lacks them)."""

    bug_type: str
    function: str
    line: int
    path: str | None = None
    source_location: str | None = None
    access: str | None = None          # "Read", "Write", "Free"
    size: int | None = None            # None for "Read at addr" (size 0) and for "Free of addr"
    addr: int | None = None
    task: str | None = None            # comm
    pid: int | None = None
    ptr_tag: int | None = None         # "Pointer tag: [xx], memory tag: [yy]" (tag modes)
    mem_tag: int | None = None
    alloc_stack: StackTrace | None = None
    free_stack: StackTrace | None = None
    aux_stacks: list[StackTrace] = field(default_factory=list)
    # "The buggy address belongs to the object at ..."
    object_addr: int | None = None
    cache_name: str | None = None
    cache_object_size: int | None = None
    # "The buggy address is located N bytes DIR of\n [STATE ]SIZE-byte region [START, END)"
    rel_bytes: int | None = None
    direction: str | None = None       # "to the left", "to the right", "inside"
    state: str | None = None           # "allocated", "freed", "" (no word printed)
    region_size: int | None = None
    region_start: int | None = None
    region_end: int | None = None
    page_lines: list[str] = field(default_factory=list)
    vmalloc_lines: list[str] = field(default_factory=list)
    # "The buggy address belongs to stack of task COMM/PID" and the frame description
    stack_task: str | None = None
    stack_pid: int | None = None
    frame_offset: int | None = None
    frame_function: str | None = None
    frame_objects: list[FrameObject] | None = None
    stack_lines: list[str] = field(default_factory=list)
    # "The buggy address belongs to the variable:\n <%pS>"
    variable: str | None = None
    # "Memory state around the buggy address:"
    memory_rows: list[MemoryRow] = field(default_factory=list)
    guilty_row: int | None = None      # index into memory_rows of the '>' row
    caret_index: int | None = None     # granule index k (0..15) of the '^' in the guilty row
    complete: bool = False             # the closing "=====" line was seen
    end_line: int | None = None

    # ---- derived values -------------------------------------------------------------

    @property
    def has_memory_state(self) -> bool:
        return bool(self.memory_rows)

    @property
    def memory_state(self) -> list[tuple[int, list[int]]]:
        """The dump as (row address, [16 metadata bytes]) pairs, in order."""
        return [(row.addr, list(row.values)) for row in self.memory_rows]

    @property
    def row_stride(self) -> int | None:
        """Bytes of memory covered by one dump row (128 generic, 256 tag modes)."""
        if len(self.memory_rows) < 2:
            return None
        return self.memory_rows[1].addr - self.memory_rows[0].addr

    @property
    def granule_size(self) -> int | None:
        """Bytes of memory per metadata byte (8 generic, 16 tag modes), from the row stride."""
        stride = self.row_stride
        return None if stride is None else stride // META_BYTES_PER_ROW

    @property
    def first_bad_addr(self) -> int | None:
        """The granule address the '^' points at (``kasan_find_first_bad_addr`` rounded down
        to its granule)."""
        if self.guilty_row is None or self.caret_index is None or self.granule_size is None:
            return None
        return self.memory_rows[self.guilty_row].addr + self.caret_index * self.granule_size

    @property
    def caret_value(self) -> int | None:
        """The metadata byte under the '^'."""
        if self.guilty_row is None or self.caret_index is None:
            return None
        return self.memory_rows[self.guilty_row].values[self.caret_index]

    def metadata_bytes(self) -> list[tuple[int, int]]:
        """All dumped (granule address, metadata byte) pairs, in address order."""
        gran = self.granule_size
        out: list[tuple[int, int]] = []
        if gran is None:
            return out
        for row in self.memory_rows:
            out.extend((row.addr + i * gran, v) for i, v in enumerate(row.values))
        return out

    def metadata_byte(self, addr: int) -> int | None:
        """The dumped metadata byte of the granule holding ``addr``, or None (not dumped)."""
        gran = self.granule_size
        if gran is None:
            return None
        for row in self.memory_rows:
            if row.addr <= addr < row.addr + gran * len(row.values):
                return row.values[(addr - row.addr) // gran]
        return None


# --------------------------------------------------------------------------- patterns

_END_RE = re.compile(r"^={20,}$")
_BUG_RE = re.compile(r"^BUG: KAS[Aa][Nn]: (?P<rest>.*)$")
_BUG_IN_RE = re.compile(r"^(?P<type>.+?) in (?P<func>.+)$")
_BUG_ON_ADDR_RE = re.compile(r"^(?P<type>.+?) on address\s+(?P<addr>\S.*)$")
_FUNC_RE = re.compile(r"^(?P<sym>\S+)(?P<mod> \[[\w.-]+\])?(?: (?P<loc>.+))?$")
_AT_ADDR_RE = re.compile(r"^(?P<func>.+?) at addr (?P<addr>[0-9a-fA-F]+)$")

_ACCESS_RE = re.compile(
    r"^(?P<acc>Read|Write) of size (?P<size>\d+) at addr (?P<addr>[0-9a-fA-F]+)"
    r" by task (?P<comm>.*)/(?P<pid>\d+)$")
_ACCESS_NOSIZE_RE = re.compile(
    r"^(?P<acc>Read|Write) at addr (?P<addr>[0-9a-fA-F]+) by task (?P<comm>.*)/(?P<pid>\d+)$")
_FREE_RE = re.compile(r"^Free of addr (?P<addr>[0-9a-fA-F]+) by task (?P<comm>.*)/(?P<pid>\d+)$")
_OLD_ACCESS_RE = re.compile(
    r"^(?P<acc>Read|Write) of size (?P<size>\d+) by task (?P<comm>.*)/(?P<pid>\d+)$")
_TAGS_RE = re.compile(r"^Pointer tag: \[(?P<ptr>[0-9a-f]{2})\], memory tag: \[(?P<mem>[0-9a-f]{2})\]$")

_ALLOC_RE = re.compile(r"^Allocated by task (?P<pid>\d+):$")
_FREED_RE = re.compile(r"^Freed by task (?P<pid>\d+):$")
_AUX_RE = re.compile(
    r"^(?:(?:Second to last|Last) potentially related work creation"
    r"|(?:Second to last|Last) call_rcu\(\)|(?:Second to last|Last) workqueue stack):$")

_OBJECT_RE = re.compile(r"^The buggy address belongs to the object at (?P<addr>[0-9a-fA-F]+)$")
_CACHE_RE = re.compile(r"^ ?which belongs to the cache (?P<name>\S+) of size (?P<size>\d+)$")
_OLD_OBJECT_RE = re.compile(
    r"^Object at (?P<addr>[0-9a-fA-F]+), in cache (?P<name>\S+) size: (?P<size>\d+)$")
_LOCATED_RE = re.compile(
    r"^The buggy address is located (?P<n>\d+) bytes (?P<dir>to the left|to the right|inside) of$")
_REGION_RE = re.compile(
    r"^ ?(?:(?P<state>allocated|freed) )?(?P<size>\d+)-byte region"
    r" \[(?P<start>[0-9a-fA-F]+), (?P<end>[0-9a-fA-F]+)\)$")
_PAGE_RE = re.compile(r"^The buggy address belongs to the (?:physical )?page:$")
_STACK_TASK_RE = re.compile(r"^The buggy address belongs to stack of task (?P<comm>.*)/(?P<pid>\d+)$")
_STACK_OFFSET_RE = re.compile(r"^ ?and is located at offset (?P<off>\d+) in frame:$")
_OLD_STACK_RE = re.compile(
    r"^addr [0-9a-fA-F]+ is located in stack of task (?P<comm>.*)/(?P<pid>\d+)"
    r" at offset (?P<off>\d+) in frame:$")
_FRAME_HAS_RE = re.compile(r"^[Tt]his frame has (?P<n>\d+) objects?:$")
_FRAME_OBJ_RE = re.compile(r"^ ?\[(?P<start>\d+), (?P<end>\d+)\) '(?P<name>.*)'$")
_VARIABLE_RE = re.compile(r"^The buggy address belongs to the variable:$")
_VMALLOC_RE = re.compile(
    r"^The buggy address belongs to (?:a \d+-page vmalloc region|a vmalloc virtual mapping"
    r"|the virtual mapping at)")
_MEMSTATE_RE = re.compile(r"^Memory state around the buggy address:$")
_ROW_START_RE = re.compile(r"^(?P<mark>[ >])(?P<addr>[0-9a-fA-F]{4,16}):(?P<rest>.*)$")
_HEX_BYTES_RE = re.compile(r"^(?:[0-9a-fA-F]{2})(?: [0-9a-fA-F]{2})*$")
_CARET_RE = re.compile(r"^ *\^$")

# Console/log prefixes that the kernel (printk), syzbot, Android and syslog put before each
# message.  Only what the prefix regex consumes is removed: the message keeps its own
# leading spaces, which matter for the '^' column.
_PREFIX_RE = re.compile(
    r"""^(?P<prefix>
        [ \t]*
        (?:\*\*\ \d+\ printk\ messages\ dropped\ \*\*\ )?
        (?:
            \[\s*\d+\.\d+\]                                    # [    2.345678]
            (?:\[\s*(?P<caller>[CT]\d+)\])?                    # [ T1234] or [    C0]
            (?:\ \[(?P<android>\d+:\s*[^\]]*?:\s*\d+)\])?      # [4:     netbpfload:  825]
          |
            \[[A-Z][a-z]{2}\ [A-Z][a-z]{2}\ [ \d]\d\ \d\d:\d\d:\d\d\ \d{4}\]   # dmesg -T
          |
            [A-Z][a-z]{2}\ [ \d]\d\ \d\d:\d\d:\d\d\ \S+\ kernel:                # syslog
        )
        \ ?
    )""",
    re.X,
)

# In a console log, other CPUs and tasks can print between the lines of a report.  Without
# caller ids they cannot be told apart, so in a log a few unrelated lines are skipped where a
# specific line is expected.  Bare report text must be exact.
_LOG_SLACK = 12


@dataclass
class _Line:
    no: int
    text: str          # the message, prefix removed, right-stripped
    prefixed: bool     # a console prefix was found (and removed)
    caller: str | None


def _split_prefix(no: int, raw: str) -> _Line:
    raw = raw.rstrip("\r\n")
    m = _PREFIX_RE.match(raw)
    if m:
        caller = m.group("caller") or m.group("android")
        if caller is not None:
            caller = re.sub(r"\s+", "", caller)
        return _Line(no, raw[m.end():].rstrip(), True, caller)
    return _Line(no, raw.rstrip(), False, None)


class _LineSource:
    """Numbered lines with one-line push-back, read lazily."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._it = iter(lines)
        self._no = 0
        self._back: list[_Line] = []

    def __iter__(self) -> "_LineSource":
        return self

    def __next__(self) -> _Line:
        if self._back:
            return self._back.pop()
        raw = next(self._it)
        self._no += 1
        return _split_prefix(self._no, raw)

    def push(self, line: _Line) -> None:
        self._back.append(line)


def _hex(s: str) -> int:
    return int(s, 16)


# --------------------------------------------------------------------------- parser


class _ReportParser:
    """Consumes the lines of one report from a shared :class:`_LineSource`."""

    def __init__(self, src: _LineSource, first: _Line, path: str | None) -> None:
        self.src = src
        self.first = first
        self.path = path
        # A log: the BUG line carried a console prefix.  Then lines without a prefix are
        # wrapped continuations or foreign output, and lines of another caller id are foreign.
        self.log = first.prefixed
        self.caller = first.caller

    # -- line access ----------------------------------------------------------------

    def error(self, message: str, line: _Line | None, col: int | None = None) -> ReportParseError:
        no = line.no if line is not None else None
        return ReportParseError(message, self.path, no, col)

    def _raw_next(self) -> _Line | None:
        try:
            return next(self.src)
        except StopIteration:
            return None

    def next(self) -> _Line | None:
        """The next line of this report (foreign lines of other callers are dropped)."""
        while True:
            ln = self._raw_next()
            if ln is None:
                return None
            if self.log:
                if not ln.prefixed:
                    if _END_RE.match(ln.text):
                        return ln                 # a wrapped "====" line still ends the report
                    continue                      # wrapped tail or foreign output
                if self.caller is not None and ln.caller != self.caller:
                    continue                      # another task/CPU printing meanwhile
            return ln

    def next_with_continuation(self, ln: _Line) -> tuple[_Line, _Line | None]:
        """In a log, peek at the following raw line: if it has no console prefix it may be
        the wrapped tail of ``ln``.  Returns (ln, tail or None); a non-tail is pushed back."""
        if not self.log:
            return ln, None
        nxt = self._raw_next()
        if nxt is None:
            return ln, None
        if not nxt.prefixed:
            return ln, nxt
        self.src.push(nxt)
        return ln, None

    def push(self, ln: _Line) -> None:
        self.src.push(ln)

    # -- the report -------------------------------------------------------------------

    def parse(self) -> KasanReport:
        rep = self.parse_header()
        self.parse_access(rep)
        self.parse_body(rep)
        return rep

    def parse_header(self) -> KasanReport:
        ln = self.first
        rest = _BUG_RE.match(ln.text).group("rest")
        if rest.endswith(" in") or rest.endswith(" in "):
            _, tail = self.next_with_continuation(ln)
            if tail is not None:
                rest = rest.rstrip() + " " + tail.text.strip()
        m = _BUG_IN_RE.match(rest)
        addr: int | None = None
        if m:
            bug_type, func_text = m.group("type"), m.group("func").strip()
            am = _AT_ADDR_RE.match(func_text)
            if am:                                   # before 4.12: "... in f at addr A"
                func_text = am.group("func")
                addr = _hex(am.group("addr"))
        else:
            m = _BUG_ON_ADDR_RE.match(rest)          # 3.x: "null-ptr-deref on address (null)"
            if not m:
                raise self.error("malformed 'BUG: KASAN:' line (expected '<bug type> in <function>')",
                                 ln, 13)
            bug_type, func_text = m.group("type"), ""
            a = m.group("addr").strip()
            addr = 0 if a == "(null)" else (_hex(a) if re.fullmatch(r"[0-9a-fA-F]+", a) else None)
        bug_type = bug_type.strip()
        if not bug_type or " in " in bug_type:
            raise self.error("malformed bug type in 'BUG: KASAN:' line", ln, 13)
        # syzbot prints one BUG line per inlined frame ("... [inline]"), the real one last.
        while func_text.endswith("[inline]"):
            nxt = self.next()
            if nxt is None:
                break
            m2 = _BUG_RE.match(nxt.text)
            m3 = _BUG_IN_RE.match(m2.group("rest")) if m2 else None
            if not m3 or m3.group("type").strip() != bug_type:
                self.push(nxt)
                break
            func_text = m3.group("func").strip()
        function, location = func_text, None
        fm = _FUNC_RE.match(func_text)
        if fm:
            function = fm.group("sym") + (fm.group("mod") or "")
            location = fm.group("loc")
        return KasanReport(bug_type=bug_type, function=function, source_location=location,
                           line=ln.no, path=self.path, addr=addr)

    def parse_access(self, rep: KasanReport) -> None:
        slack = _LOG_SLACK if self.log else 0
        first_candidate: _Line | None = None
        skipped: list[_Line] = []
        while True:
            ln = self.next()
            if ln is None:
                raise self.error("report ends after its 'BUG: KASAN:' line "
                                 "(expected the 'Read/Write of size N at addr ... by task ...' line)",
                                 first_candidate or self.first)
            if first_candidate is None:
                first_candidate = ln
            text = ln.text
            if text.endswith(" by task") or text.endswith(" by"):
                _, tail = self.next_with_continuation(ln)
                if tail is not None:
                    text = text + " " + tail.text.strip()
            if self.match_access(rep, text):
                return
            if rep.bug_type == "double-free or invalid-free" or rep.function == "":
                # 4.12-5.x double/invalid free and 3.x reports print no access line here.
                if rep.bug_type == "double-free or invalid-free":
                    rep.access = "Free"
                self.push(ln)
                for s in reversed(skipped):
                    self.push(s)
                return
            if _BUG_RE.match(text) or _END_RE.match(text) or len(skipped) >= slack:
                raise self.error(
                    "expected 'Read|Write of size N at addr ADDR by task COMM/PID' "
                    "(or 'Free of addr ADDR by task COMM/PID') after the 'BUG: KASAN:' line",
                    first_candidate)
            skipped.append(ln)

    def match_access(self, rep: KasanReport, text: str) -> bool:
        m = _ACCESS_RE.match(text)
        if m:
            rep.access, rep.size = m.group("acc"), int(m.group("size"))
        else:
            m = _ACCESS_NOSIZE_RE.match(text)
            if m:
                rep.access, rep.size = m.group("acc"), None
            else:
                m = _FREE_RE.match(text)
                if m:
                    rep.access, rep.size = "Free", None
                else:
                    m = _OLD_ACCESS_RE.match(text)
                    if not m:
                        return False
                    rep.access, rep.size = m.group("acc"), int(m.group("size"))
                    rep.task, rep.pid = m.group("comm"), int(m.group("pid"))
                    return True
        rep.addr = _hex(m.group("addr"))
        rep.task, rep.pid = m.group("comm"), int(m.group("pid"))
        return True

    def parse_body(self, rep: KasanReport) -> None:
        while True:
            ln = self.next()
            if ln is None:
                return
            text = ln.text
            if _END_RE.match(text):
                rep.complete = True
                rep.end_line = ln.no
                return
            if _BUG_RE.match(text):
                self.push(ln)
                return
            m = _ALLOC_RE.match(text)
            if m:
                rep.alloc_stack = self.parse_stack("alloc", ln, int(m.group("pid")))
                continue
            m = _FREED_RE.match(text)
            if m:
                rep.free_stack = self.parse_stack("free", ln, int(m.group("pid")))
                continue
            if _AUX_RE.match(text):
                rep.aux_stacks.append(self.parse_stack("aux", ln, None))
                continue
            m = _OBJECT_RE.match(text)
            if m:
                rep.object_addr = _hex(m.group("addr"))
                nxt = self.expect_next(ln, "' which belongs to the cache NAME of size N'")
                m2 = _CACHE_RE.match(nxt.text)
                if not m2:
                    raise self.error("expected ' which belongs to the cache NAME of size N' after "
                                     "'The buggy address belongs to the object at'", nxt)
                rep.cache_name, rep.cache_object_size = m2.group("name"), int(m2.group("size"))
                continue
            m = _OLD_OBJECT_RE.match(text)              # 4.0-4.11 layout
            if m:
                rep.object_addr = _hex(m.group("addr"))
                rep.cache_name, rep.cache_object_size = m.group("name"), int(m.group("size"))
                continue
            m = _LOCATED_RE.match(text)
            if m:
                rep.rel_bytes, rep.direction = int(m.group("n")), m.group("dir")
                nxt = self.expect_next(ln, "' [allocated |freed ]N-byte region [START, END)'")
                m2 = _REGION_RE.match(nxt.text)
                if not m2:
                    raise self.error("expected ' [allocated |freed ]N-byte region [START, END)' "
                                     "after 'The buggy address is located ...'", nxt)
                rep.state = m2.group("state") or ""
                rep.region_size = int(m2.group("size"))
                rep.region_start, rep.region_end = _hex(m2.group("start")), _hex(m2.group("end"))
                if rep.region_end - rep.region_start != rep.region_size:
                    raise self.error(f"region [{m2.group('start')}, {m2.group('end')}) is not "
                                     f"{rep.region_size} bytes long", nxt)
                continue
            if _PAGE_RE.match(text):
                self.parse_page(rep)
                continue
            m = _STACK_TASK_RE.match(text)
            if m:
                rep.stack_task, rep.stack_pid = m.group("comm"), int(m.group("pid"))
                rep.stack_lines.append(text)
                self.parse_stack_frame(rep, ln)
                continue
            m = _OLD_STACK_RE.match(text)
            if m:
                rep.stack_task, rep.stack_pid = m.group("comm"), int(m.group("pid"))
                rep.frame_offset = int(m.group("off"))
                rep.stack_lines.append(text)
                self.parse_frame_tail(rep, ln)
                continue
            if _VARIABLE_RE.match(text):
                nxt = self.expect_next(ln, "the variable (' NAME+0xOFF/0xSIZE')")
                if not nxt.text.strip() or not nxt.text.startswith(" "):
                    raise self.error("expected ' <variable>' after "
                                     "'The buggy address belongs to the variable:'", nxt)
                rep.variable = nxt.text.strip()
                continue
            if _VMALLOC_RE.match(text):
                rep.vmalloc_lines.append(text)
                continue
            m = _TAGS_RE.match(text)
            if m:
                rep.ptr_tag, rep.mem_tag = _hex(m.group("ptr")), _hex(m.group("mem"))
                continue
            if _MEMSTATE_RE.match(text):
                self.parse_memory_state(rep, ln)
                continue
            # anything else (CPU line, call trace, page_owner text, ...) is not modelled

    def expect_next(self, after: _Line, what: str) -> _Line:
        nxt = self.next()
        if nxt is None:
            raise self.error(f"report ends where {what} was expected", after)
        return nxt

    def parse_stack(self, kind: str, header: _Line, pid: int | None) -> StackTrace:
        st = StackTrace(kind=kind, header=header.text, pid=pid, line=header.no)
        while True:
            ln = self.next()
            if ln is None:
                return st
            text = ln.text
            if text == "(stack is not available)":
                st.available = False
                continue
            if not text or not text[0].isspace():
                if text:
                    self.push(ln)                   # a new section without a blank line
                return st
            st.frames.append(text.strip())

    def parse_page(self, rep: KasanReport) -> None:
        while True:
            ln = self.next()
            if ln is None:
                return
            t = ln.text
            if not t or _END_RE.match(t) or _MEMSTATE_RE.match(t) or _BUG_RE.match(t):
                if t:
                    self.push(ln)
                return
            rep.page_lines.append(t)

    def parse_stack_frame(self, rep: KasanReport, header: _Line) -> None:
        ln = self.next()
        if ln is None:
            return
        m = _STACK_OFFSET_RE.match(ln.text)
        if not m:
            self.push(ln)                            # no frame found (e.g. an alloca)
            return
        rep.frame_offset = int(m.group("off"))
        rep.stack_lines.append(ln.text)
        self.parse_frame_tail(rep, ln)

    def parse_frame_tail(self, rep: KasanReport, after: _Line) -> None:
        fn = self.expect_next(after, "the frame's function")
        if not fn.text.startswith(" ") or not fn.text.strip():
            raise self.error("expected ' <function>+0x0/0xLEN' after 'in frame:'", fn)
        rep.frame_function = fn.text.strip()
        rep.stack_lines.append(fn.text)
        ln = self.next()
        while ln is not None and ln.text == "":
            ln = self.next()
        if ln is None:
            return
        m = _FRAME_HAS_RE.match(ln.text)
        if not m:
            self.push(ln)
            return
        rep.stack_lines.append(ln.text)
        n = int(m.group("n"))
        objs: list[FrameObject] = []
        for _ in range(n):
            o = self.expect_next(ln, f"one of the {n} frame objects")
            mo = _FRAME_OBJ_RE.match(o.text)
            if not mo:
                raise self.error(f"expected \" [START, END) 'NAME'\" (frame object {len(objs) + 1} "
                                 f"of {n})", o)
            objs.append(FrameObject(int(mo.group("start")), int(mo.group("end")), mo.group("name")))
            rep.stack_lines.append(o.text)
        rep.frame_objects = objs

    def parse_row(self, ln: _Line) -> MemoryRow | None:
        m = _ROW_START_RE.match(ln.text)
        if not m:
            return None
        body = m.group("rest").strip()
        if self.log and len(body.split()) < META_BYTES_PER_ROW:
            _, tail = self.next_with_continuation(ln)        # a mail client wrapped the row
            if tail is not None:
                if _HEX_BYTES_RE.match(tail.text.strip()):
                    body = body + " " + tail.text.strip()
                else:
                    self.push(tail)
        if not m.group("rest").startswith(" ") or not _HEX_BYTES_RE.match(body):
            raise self.error("malformed memory-state row (expected 'ADDR: xx xx ... xx')", ln,
                             len(m.group("mark")) + len(m.group("addr")) + 2)
        values = tuple(int(v, 16) for v in body.split())
        if len(values) != META_BYTES_PER_ROW:
            raise self.error(f"memory-state row has {len(values)} bytes, expected "
                             f"{META_BYTES_PER_ROW}", ln)
        return MemoryRow(_hex(m.group("addr")), values, m.group("mark") == ">", ln.no)

    def parse_memory_state(self, rep: KasanReport, header: _Line) -> None:
        rows: list[MemoryRow] = []
        addr_digits: int | None = None
        slack = _LOG_SLACK if self.log else 0
        skipped = 0
        caret_pending = False
        last = header
        while len(rows) < META_ROWS or caret_pending:
            ln = self.next()
            if ln is None or _END_RE.match(ln.text) or _BUG_RE.match(ln.text):
                if ln is not None:
                    self.push(ln)
                what = "the '^' line" if caret_pending else f"row {len(rows) + 1} of {META_ROWS}"
                raise self.error(f"memory state ends early: {what} is missing", ln or last)
            last = ln
            if caret_pending:
                cm = _CARET_RE.match(ln.text)
                if cm:
                    col = ln.text.index("^")
                    first_byte_col = 1 + addr_digits + 2      # '>' + address + ': '
                    k, r = divmod(col - first_byte_col, 3)
                    if r != 0 or not 0 <= k < META_BYTES_PER_ROW:
                        raise self.error("the '^' is not under a byte of the guilty row", ln, col + 1)
                    rep.caret_index = k
                    caret_pending = False
                    continue
                if skipped < slack and not _ROW_START_RE.match(ln.text):
                    skipped += 1
                    continue
                raise self.error("expected the '^' line under the guilty ('>') row", ln)
            row = self.parse_row(ln)
            if row is None:
                if skipped < slack:
                    skipped += 1
                    continue
                raise self.error(f"expected memory-state row {len(rows) + 1} of {META_ROWS} "
                                 "(' ADDR: xx xx ...' or '>ADDR: ...')", ln)
            digits = len(_ROW_START_RE.match(ln.text).group("addr"))
            if addr_digits is None:
                addr_digits = digits
            elif digits != addr_digits:
                raise self.error("memory-state row addresses have different widths", ln, 2)
            if rows and row.addr <= rows[-1].addr:
                raise self.error("memory-state rows are not in address order", ln, 2)
            if len(rows) >= 2 and row.addr - rows[-1].addr != rows[1].addr - rows[0].addr:
                raise self.error("memory-state rows are not evenly spaced", ln, 2)
            if row.guilty:
                if rep.guilty_row is not None:
                    raise self.error("two guilty ('>') rows in one memory state", ln, 1)
                rep.guilty_row = len(rows)
                caret_pending = True
            rows.append(row)
        if rep.guilty_row is None:
            raise self.error("memory state has no guilty ('>') row", header)
        stride = rows[1].addr - rows[0].addr
        if stride % META_BYTES_PER_ROW:
            raise self.error(f"memory-state row stride {stride:#x} is not a multiple of "
                             f"{META_BYTES_PER_ROW}", header)
        rep.memory_rows = rows


# --------------------------------------------------------------------------- API


def _open_lines(source: "str | os.PathLike[str] | Iterable[str]") -> tuple[Iterable[str], str | None, object]:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        fh = open(path, encoding="utf-8", errors="replace", newline=None)
        return fh, path, fh
    return source, None, None


def iter_reports(source: "str | os.PathLike[str] | Iterable[str]", *, path: str | None = None,
                 strict: bool = True,
                 errors: list[ReportParseError] | None = None) -> Iterator[KasanReport]:
    """Yield the KASAN reports found in ``source`` (a file path, or an iterable of lines).

    Lines are read lazily.  ``path`` names the input in errors when ``source`` is not a path.
    With ``strict`` (the default) a broken report raises :class:`ReportParseError`; otherwise
    it is skipped and its error appended to ``errors`` (when given).
    """
    lines, fpath, fh = _open_lines(source)
    name = path if path is not None else fpath
    try:
        src = _LineSource(lines)
        for ln in src:
            if not _BUG_RE.match(ln.text):
                continue
            try:
                rep = _ReportParser(src, ln, name).parse()
            except ReportParseError as exc:
                if strict:
                    raise
                if errors is not None:
                    errors.append(exc)
                continue
            yield rep
    finally:
        if fh is not None:
            fh.close()


def parse_reports(source: "str | os.PathLike[str] | Iterable[str]", *, path: str | None = None,
                  strict: bool = True,
                  errors: list[ReportParseError] | None = None) -> list[KasanReport]:
    """All KASAN reports of ``source`` (a path or an iterable of lines), in input order."""
    return list(iter_reports(source, path=path, strict=strict, errors=errors))


def parse_report_text(text: str, *, path: str | None = None,
                      strict: bool = True) -> list[KasanReport]:
    """All KASAN reports in a string (for example captured ``kinspect run`` output)."""
    return parse_reports(text.splitlines(), path=path, strict=strict)
