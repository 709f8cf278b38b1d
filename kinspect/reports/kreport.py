"""Parse real KASAN report text (Linux 6.12 format, with tolerance for older layouts).

Input is any text that holds ``BUG: KASAN:`` reports: a bare report file, a console or
``dmesg`` log with ``[    2.345678] `` timestamps (and syzbot's ``[ T1234]`` / ``[    C0]``
caller ids), syzbot's symbolized text, kinspect's own output.  The input is read line by line,
so a huge dmesg costs only the memory of the reports it holds.

One :class:`KasanReport` per report.  The layout that is parsed is the one printed by
``mm/kasan/report.c`` and ``mm/kasan/report_generic.c`` of 6.12 (and
``Documentation/dev-tools/kasan.rst``):

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
:class:`~kinspect.engine.errors.ReportParseError` naming the line; in *partial* mode
(``iter_reports(..., partial=True)``) it is returned anyway with what could be read, the rest
None (unknown), and its ``problems``.  Any architecture: 32-bit addresses, arm/arm64/ppc/riscv
call traces, generic and tag-based (sw-tags, hw-tags) modes.

Each report also gets the title syzkaller's report parser would give it (``KASAN:
slab-out-of-bounds Read in foo``, see "crash titles" below), and a :class:`LogScan` passed to
``iter_reports`` names the log's first crash, KASAN or not (a GPF, a WARNING, KFENCE, ...).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from kinspect.engine.errors import KinspectError, ReportParseError

__all__ = [
    "KasanReport",
    "StackTrace",
    "FrameObject",
    "MemoryRow",
    "CrashTitle",
    "LogScan",
    "iter_reports",
    "first_crash",
    "find_oops",
    "sanitize_title",
    "parse_reports",
    "parse_report_text",
    "read_log_lines",
    "LogReadError",
    "META_BYTES_PER_ROW",
    "META_ROWS",
    "MAX_LINE_CHARS",
    "MAX_LOG_LINES",
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


@dataclass(frozen=True)
class CrashTitle:
    """The one-line title syzkaller's report parser gives a crash (``pkg/report``).

    ``title`` is already sanitized as syzkaller does it (addresses become ``ADDR``, numbers
    ``NUM``, ``func+0xOFF/0xLEN`` becomes ``func``).  ``corrupted`` is syzkaller's reason for
    calling the report corrupted (truncated, no frames, ...), or None.  ``kasan`` tells whether
    the crash is a KASAN report.
    """

    title: str
    line: int
    corrupted: str | None = None
    kasan: bool = False


@dataclass
class KasanReport:
    """One KASAN report as the kernel printed it (fields are None when the report lacks them).

    A report read in *partial* mode (``iter_reports(..., partial=True)``) may have broken or
    missing lines: then ``problems`` says what could not be read, and every field that could
    not be read is None (unknown), never a guess.
    """

    bug_type: str
    function: str | None
    line: int
    path: str | None = None
    source_location: str | None = None
    access: str | None = None  # "Read", "Write", "Free"
    size: int | None = None  # None for "Read at addr" (size 0) and for "Free of addr"
    addr: int | None = None
    task: str | None = None  # comm
    pid: int | None = None
    ptr_tag: int | None = None  # "Pointer tag: [xx], memory tag: [yy]" (tag modes)
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
    direction: str | None = None  # "to the left", "to the right", "inside"
    state: str | None = None  # "allocated", "freed", "" (no word printed)
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
    guilty_row: int | None = None  # index into memory_rows of the '>' row
    caret_index: int | None = None  # granule index k (0..15) of the '^' in the guilty row
    complete: bool = False  # the closing "=====" line was seen
    end_line: int | None = None
    # "Call Trace:" / "Call trace:" (the access stack, printed by dump_stack_lvl)
    access_stack: StackTrace | None = None
    # "CPU: 0 UID: 0 PID: 37 Comm: kunit_try_catch Not tainted 6.12.117 #1"
    kernel_release: str | None = None
    hardware: str | None = None
    addr_digits: int | None = None  # hex digits of the printed access address (8: 32-bit)
    row_addr_digits: int | None = None  # hex digits of the memory-state row addresses
    # syzkaller's title of this report, and its reason for calling it corrupted (or None)
    title: str | None = None
    title_corrupted: str | None = None
    problems: list[ReportParseError] = field(default_factory=list)

    # ---- derived values -------------------------------------------------------------

    @property
    def buggy_addr(self) -> int | None:
        """The address the report is about: the access line's, else the one its region line
        places (the 4.12-5.x ``double-free or invalid-free`` report prints no access line, but
        ``describe_object_addr`` says where the freed pointer lies: ``N bytes inside of``,
        ``to the left of``, ``to the right of`` the region), else None."""
        if self.addr is not None:
            return self.addr
        if self.rel_bytes is None or self.region_start is None or self.region_end is None:
            return None
        if self.direction == "inside":
            return self.region_start + self.rel_bytes
        if self.direction == "to the left":
            return self.region_start - self.rel_bytes
        return self.region_end + self.rel_bytes

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

    @property
    def bits(self) -> int | None:
        """BITS_PER_LONG of the kernel that printed it, from how wide it prints addresses
        (``%px``: 8 hex digits on 32-bit, 16 on 64-bit), or None."""
        digits = self.addr_digits if self.addr_digits is not None else self.row_addr_digits
        if digits is None:
            return None
        return 32 if digits <= 8 else 64

    @property
    def kernel_version(self) -> tuple[int, int] | None:
        """(major, minor) of ``kernel_release`` ("6.12.117" -> (6, 12)), or None."""
        if self.kernel_release is None:
            return None
        m = re.match(r"(\d{1,6})\.(\d{1,6})", self.kernel_release)
        return (int(m.group(1)), int(m.group(2))) if m else None

    @property
    def mode(self) -> str | None:
        """The KASAN mode: "generic", "sw-tags", "hw-tags", "tags" (tag-based, which one
        cannot be told), or None (cannot be told).

        Tag-based reports print ``Pointer tag: [..], memory tag: [..]`` and dump one tag per
        16 bytes (rows 0x100 apart); generic reports dump one shadow byte per 8 bytes (rows
        0x80 apart).  sw-tags and hw-tags are told apart by the access stack: the MTE fault
        path (``do_tag_check_fault``) is hw-tags, the compiler's checks (``__hwasan_*``,
        ``kasan_tag_mismatch``, ``kasan_check_range``) are sw-tags; kernels before 5.11 had
        no hw-tags mode.
        """
        stride = self.row_stride
        tagged = self.ptr_tag is not None or stride == 0x100
        if not tagged:
            if stride == 0x80 or self.ptr_tag is None and self.bug_type != "invalid-access":
                return "generic"
            return None
        frames = " ".join(self.access_stack.frames) if self.access_stack else ""
        if "do_tag_check_fault" in frames or "report_tag_fault" in frames or "mte_" in frames:
            return "hw-tags"
        if (
            "__hwasan" in frames
            or "kasan_tag_mismatch" in frames
            or "kasan_check_range" in frames
            or "check_memory_region" in frames
        ):
            return "sw-tags"
        version = self.kernel_version
        if version is not None and version < (5, 11):
            return "sw-tags"
        return "tags"

    @property
    def region_line(self) -> str | None:
        """The two region lines of the report joined as one, as kinspect's engine prints them
        ("64 bytes inside of freed 512-byte region [ffff8880358f0400, ffff8880358f0600)")."""
        if self.rel_bytes is None or self.region_size is None:
            return None
        width = self.addr_digits or (8 if (self.bits or 64) == 32 else 16)
        state = f"{self.state} " if self.state else ""
        return (
            f"{self.rel_bytes} bytes {self.direction} of {state}{self.region_size}-byte "
            f"region [{self.region_start:0{width}x}, {self.region_end:0{width}x})"
        )

    def to_json(self) -> dict:
        """A JSON-ready dict of every field (addresses as "0x..." strings, unknown as null)."""

        def hx(v: int | None) -> str | None:
            return None if v is None else f"{v:#x}"

        def stack(st: StackTrace | None) -> dict | None:
            if st is None:
                return None
            return {
                "kind": st.kind,
                "header": st.header,
                "pid": st.pid,
                "line": st.line,
                "available": st.available,
                "frames": list(st.frames),
            }

        return {
            "title": self.title,
            "title_corrupted": self.title_corrupted,
            "bug_type": self.bug_type,
            "function": self.function,
            "source_location": self.source_location,
            "path": self.path,
            "line": self.line,
            "end_line": self.end_line,
            "complete": self.complete,
            "access": self.access,
            "size": self.size,
            "addr": hx(self.addr),
            "task": self.task,
            "pid": self.pid,
            "kernel_release": self.kernel_release,
            "hardware": self.hardware,
            "bits": self.bits,
            "mode": self.mode,
            "ptr_tag": hx(self.ptr_tag),
            "mem_tag": hx(self.mem_tag),
            "access_stack": stack(self.access_stack),
            "alloc_stack": stack(self.alloc_stack),
            "free_stack": stack(self.free_stack),
            "aux_stacks": [stack(a) for a in self.aux_stacks],
            "object_addr": hx(self.object_addr),
            "cache_name": self.cache_name,
            "cache_object_size": self.cache_object_size,
            "rel_bytes": self.rel_bytes,
            "direction": self.direction,
            "state": self.state,
            "region_size": self.region_size,
            "region_start": hx(self.region_start),
            "region_end": hx(self.region_end),
            "page_lines": list(self.page_lines),
            "vmalloc_lines": list(self.vmalloc_lines),
            "stack_task": self.stack_task,
            "stack_pid": self.stack_pid,
            "frame_offset": self.frame_offset,
            "frame_function": self.frame_function,
            "frame_objects": None
            if self.frame_objects is None
            else [{"start": o.start, "end": o.end, "name": o.name} for o in self.frame_objects],
            "variable": self.variable,
            "memory_rows": [
                {
                    "addr": hx(r.addr),
                    "values": " ".join(f"{v:02x}" for v in r.values),
                    "guilty": r.guilty,
                }
                for r in self.memory_rows
            ],
            "guilty_row": self.guilty_row,
            "caret_index": self.caret_index,
            "granule_size": self.granule_size,
            "first_bad_addr": hx(self.first_bad_addr),
            "problems": [str(p) for p in self.problems],
        }


# --------------------------------------------------------------------------- patterns

_END_RE = re.compile(r"^={20,}$")
_BUG_RE = re.compile(r"^BUG: KAS[Aa][Nn]: (?P<rest>.*)$")
_BUG_IN_RE = re.compile(r"^(?P<type>.+?) in (?P<func>.+)$")
_BUG_ON_ADDR_RE = re.compile(r"^(?P<type>.+?) on address\s+(?P<addr>\S.*)$")
_FUNC_RE = re.compile(r"^(?P<sym>\S+)(?P<mod> \[[\w.-]+\])?(?: (?P<loc>.+))?$")
_AT_ADDR_RE = re.compile(r"^(?P<func>.+?) at addr (?P<addr>[0-9a-fA-F]{1,16})$")

_ACCESS_RE = re.compile(
    r"^(?P<acc>Read|Write) of size (?P<size>\d{1,20}) at addr (?P<addr>[0-9a-fA-F]{1,16})"
    r" by task (?P<comm>.*)/(?P<pid>\d{1,20})$"
)
_ACCESS_NOSIZE_RE = re.compile(
    r"^(?P<acc>Read|Write) at addr (?P<addr>[0-9a-fA-F]{1,16})"
    r" by task (?P<comm>.*)/(?P<pid>\d{1,20})$"
)
_FREE_RE = re.compile(
    r"^Free of addr (?P<addr>[0-9a-fA-F]{1,16}) by task (?P<comm>.*)/(?P<pid>\d{1,20})$"
)
_OLD_ACCESS_RE = re.compile(
    r"^(?P<acc>Read|Write) of size (?P<size>\d{1,20}) by task (?P<comm>.*)/(?P<pid>\d{1,20})$"
)
_TAGS_RE = re.compile(
    r"^Pointer tag: \[(?P<ptr>[0-9a-f]{2})\], memory tag: \[(?P<mem>[0-9a-f]{2})\]$"
)

_ALLOC_RE = re.compile(r"^Allocated by task (?P<pid>\d{1,20}):$")
_FREED_RE = re.compile(r"^Freed by task (?P<pid>\d{1,20}):$")
_AUX_RE = re.compile(
    r"^(?:(?:Second to last|Last) potentially related work creation"
    r"|(?:Second to last|Last) call_rcu\(\)|(?:Second to last|Last) workqueue stack):$"
)

_OBJECT_RE = re.compile(r"^The buggy address belongs to the object at (?P<addr>[0-9a-fA-F]{1,16})$")
_CACHE_RE = re.compile(r"^ ?which belongs to the cache (?P<name>\S+) of size (?P<size>\d{1,20})$")
_OLD_OBJECT_RE = re.compile(
    r"^Object at (?P<addr>[0-9a-fA-F]{1,16}), in cache (?P<name>\S+) size: (?P<size>\d{1,20})$"
)
_LOCATED_RE = re.compile(
    r"^The buggy address is located (?P<n>\d{1,20}) bytes"
    r" (?P<dir>to the left|to the right|inside) of$"
)
_REGION_RE = re.compile(
    r"^ ?(?:(?P<state>allocated|freed) )?(?P<size>\d{1,20})-byte region"
    r" \[(?P<start>[0-9a-fA-F]{1,16}), (?P<end>[0-9a-fA-F]{1,16})\)$"
)
_PAGE_RE = re.compile(r"^The buggy address belongs to the (?:physical )?page:$")
_STACK_TASK_RE = re.compile(
    r"^The buggy address belongs to stack of task (?P<comm>.*)/(?P<pid>\d{1,20})$"
)
_STACK_OFFSET_RE = re.compile(r"^ ?and is located at offset (?P<off>\d{1,20}) in frame:$")
_OLD_STACK_RE = re.compile(
    r"^addr [0-9a-fA-F]{1,16} is located in stack of task (?P<comm>.*)/(?P<pid>\d{1,20})"
    r" at offset (?P<off>\d{1,20}) in frame:$"
)
_FRAME_HAS_RE = re.compile(r"^[Tt]his frame has (?P<n>\d{1,20}) objects?:$")
_FRAME_OBJ_RE = re.compile(r"^ ?\[(?P<start>\d{1,20}), (?P<end>\d{1,20})\) '(?P<name>.*)'$")
_VARIABLE_RE = re.compile(r"^The buggy address belongs to the variable:$")
_VMALLOC_RE = re.compile(
    r"^The buggy address belongs to (?:a \d+-page vmalloc region|a vmalloc virtual mapping"
    r"|the virtual mapping at)"
)
_MEMSTATE_RE = re.compile(r"^Memory state around the buggy address:$")
_CALL_TRACE_RE = re.compile(r"^(?:Call [Tt]race|Backtrace):\s*$")
_ARM_FRAME_RE = re.compile(r"^(?:\[<[0-9a-f]+>\] \(|\s*[\w.]+ from [\w.]+\+0x[0-9a-f]+/0x)")
_CPU_RE = re.compile(
    r"^CPU: \d+ (?:UID: \d+ )?PID: \d+ Comm: .+? "
    r"(?:Not tainted|Tainted:[^\d]*?)\s*(?P<release>\d{1,6}\.\d{1,6}[\w.+~-]*)"
)
_INTERRUPTING_RE = re.compile(
    r"^(?:general protection fault|Unable to handle kernel|Internal error:|kernel BUG at"
    r"|stack segment: |divide error:|invalid opcode:|Unhandled fault:|Alignment trap:"
    r"|PANIC: double fault|BUG: (?:unable to handle|kernel NULL pointer|Unable to handle))"
)
_ROW_START_RE = re.compile(r"^(?P<mark>[ >])(?P<addr>[0-9a-fA-F]{4,16}):(?P<rest>.*)$")
_HEX_BYTES_RE = re.compile(r"^(?:[0-9a-fA-F]{2})(?: [0-9a-fA-F]{2})*$")
_CARET_RE = re.compile(r"^ *\^$")
# A stack frame however it is printed: ``func+0x1c/0x30 [mod]``, ``[<pc>] func+0x..``, ``?
# func+0x..``, decode_stacktrace.sh's ``func (file.c:12)`` and ``func+0x1c/0x30 mod`` (a
# module frame it could not decode), with or without the indentation the kernel prints.
_FRAME_SHAPE_RE = re.compile(
    r"^\s*(?:\? )?(?:\[<?(?:0x)?[0-9a-fA-F]{1,16}>?\] ?){0,2}(?:\? )?[A-Za-z_.$][\w.$]*"
    r"(?:\+0x[0-9a-fA-F]{1,16}(?:/0x[0-9a-fA-F]{1,16})?(?: \[[\w.-]+\]| [\w-]+)?(?: \(.*)?"
    r"|(?: \[[\w.-]+\])? \([\w./+-]+:\d.*)$"
)
# A frame whose name went to the next line (``[<ffffffe000188926>]`` alone), and a module name
# alone (the wrapped tail of ``func+0x80/0x11a [kunit]``).
_PC_ONLY_RE = re.compile(r"^\s*(?:\[<?(?:0x)?[0-9a-fA-F]{1,16}>?\] ?){1,2}$")
_MODULE_ONLY_RE = re.compile(r"^\s*\[[\w.-]+\]$")
# Lines of the page dump (__dump_page, mm/debug.c; page_owner's __dump_page_owner,
# mm/page_owner.c): in a log without caller ids, other lines there are other output.
_PAGE_DUMP_RE = re.compile(
    r"^(?:\s|page[:_ ]|page->|pages's |head[: ]|flags:|raw:|memcg:|\w+ flags:|aops:|anon |ksm |"
    r"file |compound_|PFN |page dumped because|page_owner|page last|page has been)"
)

# Console/log prefixes that the kernel (printk), syzbot, Android and syslog put before each
# message.  Only what the prefix regex consumes is removed: the message keeps its own
# leading spaces, which matter for the '^' column.
_PREFIX_RE = re.compile(
    r"""^(?P<prefix>
        [ \t]*
        (?:\*\*\ \d+\ printk\ messages\ dropped\ \*\*\ )?
        (?:
            [^\s\[\]]?                # a noise byte of the serial line: r[  210.701824]
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

#: The longest line read, in characters.  printk keeps at most PRINTKRB_RECORD_MAX (1024)
#: bytes of a message (kernel/printk/internal.h, 6.12), so a console line is about 1 KiB with
#: its prefix; a longer line is not console output (``/dev/zero``, a binary file).
MAX_LINE_CHARS = 65536
#: The most lines read from one log (a week of a busy dmesg is far less).  Beyond it, the
#: input is refused: it is not a log, or it does not end (``/dev/urandom``).
MAX_LOG_LINES = 4_000_000


class LogReadError(KinspectError):
    """The log itself cannot be read (an I/O error, a line longer than MAX_LINE_CHARS, more
    than MAX_LOG_LINES lines): reading stops there, with the file and line."""


def _check_line(raw: str, no: int, path: str | None) -> None:
    if no > MAX_LOG_LINES:
        raise LogReadError(
            f"more than {MAX_LOG_LINES} lines: not a console log (or it does "
            "not end); give the part that holds the report",
            path,
            no,
        )
    if len(raw) > MAX_LINE_CHARS and len(raw.rstrip("\r\n")) > MAX_LINE_CHARS:
        raise LogReadError(
            f"a line longer than {MAX_LINE_CHARS} characters: not a console "
            "log (printk lines are about 1 KiB)",
            path,
            no,
        )


# In a console log, other CPUs and tasks can print between the lines of a report.  Without
# caller ids they cannot be told apart, so in a log a few unrelated lines are skipped where a
# specific line is expected.  Bare report text must be exact.
_LOG_SLACK = 12
# At most this many raw lines of one report are kept to title it (a truncated report in a
# huge log must not keep the whole log).
_MAX_CAPTURE = 3000
# A report without its closing ===== line ends after this many lines that are no part of it.
_MAX_UNRELATED = 500
# In a log without caller ids, at most this many foreign lines before the first dump row.
_FIRST_ROW_SLACK = 300


@dataclass
class _Line:
    no: int
    text: str  # the message, prefix removed, right-stripped
    prefixed: bool  # a console prefix was found (and removed)
    caller: str | None


_CALLERS: dict[str, str] = {}


def _split_prefix(no: int, raw: str) -> _Line:
    raw = raw.rstrip("\r\n")
    m = _PREFIX_RE.match(raw)
    if m:
        caller = m.group("caller") or m.group("android")
        if caller is not None:
            c = _CALLERS.get(caller)
            if c is None:
                c = _CALLERS[caller] = re.sub(r"\s+", "", caller)
                if len(_CALLERS) > 4096:
                    _CALLERS.clear()
            caller = c
        return _Line(no, raw[m.end() :].rstrip(), True, caller)
    return _Line(no, raw.rstrip(), False, None)


class _LineSource:
    """Numbered lines with one-line push-back, read lazily; a line longer than
    ``MAX_LINE_CHARS`` or a log longer than ``MAX_LOG_LINES`` lines raises LogReadError."""

    def __init__(
        self, lines: Iterable[str], observer: LogScan | None = None, path: str | None = None
    ) -> None:
        self._it = iter(lines)
        self._no = 0
        self._back: list[_Line] = []
        self._observer = observer
        self._path = path

    def __iter__(self) -> _LineSource:
        return self

    def __next__(self) -> _Line:
        if self._back:
            return self._back.pop()
        raw = next(self._it)
        self._no += 1
        _check_line(raw, self._no, self._path)
        ln = _split_prefix(self._no, raw)
        if self._observer is not None:
            self._observer.feed(ln)
        return ln

    def push(self, line: _Line) -> None:
        self._back.append(line)


def _hex(s: str) -> int:
    return int(s, 16)


# --------------------------------------------------------------------------- crash titles
#
# Crash titles as syzkaller gives them (google/syzkaller, pkg/report/linux.go and report.go,
# Apache License 2.0): the rules are re-implemented here, and the frame-skip list and the title
# formats are syzkaller's data.  A title is made from one report's text:
#
#  * the report is the oops line and the following lines *of the same printk context* (the
#    ``[ T123]``/``[ C0]`` caller id, or "console" for plain timestamps, or none); frames
#    marked ``?`` (and PowerPC's ``(unreliable)``) are dropped;
#  * without caller ids, the report ends where the next oops (of any context) starts;
#  * the first format of the oops whose title regexp matches earliest wins; a format with a
#    stack description takes the first frame (after its anchors) that is not an uninteresting
#    helper (``kasan_report``, ``memcpy``, ``lock_acquire``, ...); none left: "corrupted";
#  * the title is then sanitized: addresses -> ADDR, numbers -> NUM, ``f+0xO/0xL`` -> ``f``.

_PARSE = object()  # stands for "parse a stack trace here" in a stack description


def _syz(pattern: str) -> re.Pattern[str]:
    return re.compile(
        pattern.replace("{{PC}}", r"\[\<?(?:0x)?[0-9a-f]+\>?\]")
        .replace("{{FUNC}}", r"([a-zA-Z0-9_]+)(?:\.|\+)")
        .replace("{{SRC}}", r"([a-zA-Z0-9\-_/.]+\.[a-z]+:[0-9]+)")
        .replace("{{ADDR}}", r"0x[0-9a-f]+")
    )


@dataclass(frozen=True)
class _StackFmt:
    parts: tuple
    parts2: tuple = ()
    skip: tuple[str, ...] = ()


@dataclass(frozen=True)
class _OopsFormat:
    title: re.Pattern[str]
    fmt: str  # str.format with {1}.. = captures, then frames
    report: re.Pattern[str] | None = None
    stack: _StackFmt | None = None
    no_stack_trace: bool = False
    corrupted: bool = False


@dataclass(frozen=True)
class _Oops:
    header: str
    formats: tuple[_OopsFormat, ...]
    suppressions: tuple[re.Pattern[str], ...] = ()


_RIP_FRAME = _syz(
    r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}"
    r"|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)"
    r"|[0-9]+: +\(null\))"
)
_CALL_TRACE = _syz(r"(?:Call (?:T|t)race:)|(?:Backtrace:)")
_STACK_KEYWORDS = tuple(
    re.compile(p)
    for p in (
        r"Call (?:T|t)race",
        r"Allocated:",
        r"Allocated by task [0-9]+:",
        r"Freed:",
        r"Freed by task [0-9]+:",
        r"[^k] backtrace(?: \(crc [0-9a-fA-F]*\))?:",
        r"Backtrace:",
        r"Uninit was stored to memory at",
        r"status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}",
    )
)
_STACK_START = re.compile("|".join(k.pattern for k in _STACK_KEYWORDS))
_FRAME_RES = (
    _syz(r"^ *(?:{{PC}} ){0,2}{{FUNC}}"),
    _syz(r"^ *{{PC}} \(([a-zA-Z0-9_.]+)\) from {{PC}} \({{FUNC}}"),
)
_CORRUPTED_LINE = _syz(r"^( \[\<?(?:0x)?[0-9a-f]+\>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x")
_STACK_FRAME_LINE = re.compile(
    r"^ *(?:\[\<?(?:[0-9a-f]+)\>?\] ?){0,2}[ \t]+(?:[0-9]+:)?"
    r"([a-zA-Z0-9_.]+)\+0x([0-9a-f]+)/0x([0-9a-f]+)"
)
_STRIP_FRAME_PREFIXES = (
    "SYSC_",
    "SyS_",
    "sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "ksys_",
)
# Frames that never name the guilty function (matched anywhere in the function name).
_SKIP_FRAMES = (
    "__sanitizer",
    "__asan",
    "kasan",
    "hwasan",
    "__msan",
    "kmsan",
    "kcsan_setup_watchpoint",
    "check_memory_region",
    "check_heap_object",
    "check_object",
    "read_word_at_a_time",
    "(read|write)_once_.*nocheck",
    "print_address_description",
    "panic",
    "invalid_op",
    "report_bug",
    "fixup_bug",
    "print_report",
    "print_usage_bug",
    "do_error",
    "_trap$|do_trap",
    "show_stack",
    "dump_stack",
    "walk_stack",
    "dump_backtrace",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "alloc_page",
    "k?v?(?:m|z|c)alloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "__alloc_frozen_pages_noprof",
    "folio_(?:alloc|unlock)",
    "filemap_alloc_folio",
    "__filemap_get_folio",
    "find_or_create_page",
    "do_read_cache_folio",
    "read_cache_page",
    "pagecache_get_page",
    "grab_cache_page_write_begin",
    "slab_",
    "debug_object",
    "timer_is_static_object",
    "work_is_static_object",
    "__might_fault",
    "print_unlock",
    "imbalance_bug",
    "lockdep",
    "bh_enable",
    "bh_disable",
    "perf_trace",
    "lock_acquire",
    "lock_release",
    "lock_class",
    "mark_lock",
    "(reacquire|mark)_held_locks",
    "raw_spin_rq",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "read_lock",
    "read_trylock",
    "write_lock",
    "write_trylock",
    "read_unlock",
    "write_unlock",
    "^down$",
    "down_read",
    "down_write",
    "down_read_trylock",
    "down_write_trylock",
    "down_trylock",
    "up_read",
    "up_write",
    "^mutex_",
    "^__mutex_",
    "^rt_mutex_",
    "owner_on_cpu",
    "osq_lock",
    "osq_unlock",
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(set|clear|change|test)_bit",
    "__wake_up",
    "^refcount_",
    "^kref_",
    "ref_tracker",
    "seqprop_assert",
    "memcpy",
    "memcmp",
    "memset",
    "memchr",
    "memmove",
    "memdup",
    "strcmp",
    "strncmp",
    "strcpy",
    "strlcpy",
    "strncpy",
    "strscpy",
    "strlen",
    "strstr",
    "strnstr",
    "strnlen",
    "strchr",
    "strdup",
    "strndup",
    "copy_to_user",
    "copy_from_user",
    "copy_to_iter",
    "copy_from_iter",
    "copy_page_to_iter",
    "copy_page_from_iter",
    "copy_folio_to_iter",
    "^copyin$",
    "^copyout$",
    "put_user",
    "get_user",
    "might_fault",
    "might_sleep",
    "list_add",
    "list_del",
    "list_replace",
    "list_move",
    "list_splice",
    "^rb_",
    "^__rb_",
    "_indirect_thunk_",
    "string",
    "pointer",
    "snprintf",
    "scnprintf",
    "kasprintf",
    "kvasprintf",
    "printk",
    "va_format",
    "dev_info",
    "dev_notice",
    "dev_warn",
    "dev_err",
    "dev_alert",
    "dev_crit",
    "dev_emerg",
    "program_check_exception",
    "program_check_common",
    "del_timer",
    "flush_work",
    "__cancel_work_timer",
    "cancel_work_sync",
    "try_to_grab_pending",
    "flush_workqueue",
    "drain_workqueue",
    "destroy_workqueue",
    "queue_work",
    "finish_wait",
    "kthread_stop",
    "kobject_",
    "add_uevent_var",
    "get_device_parent",
    "device_add",
    "device_del",
    "device_unregister",
    "device_destroy",
    "device_release",
    "devres_release_all",
    "hwrng_unregister",
    "i2c_del_adapter",
    "__unregister_client",
    "device_for_each_child",
    "rollback_registered",
    "unregister_netdev",
    "sysfs_remove",
    "device_remove_file",
    "tty_unregister_device",
    "dummy_urb_enqueue",
    "usb_kill_urb",
    "usb_kill_anchored_urbs",
    "usb_control_msg",
    "usb_hcd_submit_urb",
    "usb_submit_urb",
    "^complete$",
    "wait_for_completion",
    "^kv?free$",
    "kfree_skb",
    "readb$",
    "readw$",
    "readl$",
    "readq$",
    "writeb$",
    "writew$",
    "writel$",
    "writeq$",
    "logic_in",
    "logic_out",
    r"^crc\d+",
    "crc_itu_t",
    "__might_resched",
    "assertfail",
    "^iput$",
    "^iput_final$",
    "^ihold$",
    "hex_dump_to_buffer",
    "print_hex_dump",
    "^klist_",
    "(trace|lockdep)_(hard|soft)irq",
    "^(un)?lock_page",
    "stack_trace_consume_entry",
    "arch_stack_walk",
    "stack_trace_save",
    "insert_work",
    "__queue_delayed_work",
    "queue_delayed_work_on",
    "ida_free",
    "do_(kernel|translation)_fault",
    "do_mem_abort",
    "el1_abort",
    "el1h_64_sync(?:_handler)?",
    "print_tainted",
    "xas_(?:start|load|find)",
    "find_lock_entries",
    "truncate_inode_pages_range",
    "__phys_addr",
    "__fortify_report",
    "cleanup_srcu_struct",
    "rhashtable_lookup",
    "extract_(user|iter)_to_sg",
    "drop_nlink",
    "^get_taint$",
    "^put_device$",
    "lock_timer_base",
    "__timer_delete_sync",
    "sk_stop_timer_sync",
    "__mod_timer",
    "fast_dput",
    "dput",
)


def _warning_stack(*skip: str) -> _StackFmt:
    return _StackFmt(
        parts=(
            _syz(
                "(?:" + _RIP_FRAME.pattern + r"|--- interrupt: [0-9]+ at "
                r"([a-zA-Z0-9_]+)(?:\.|\+))"
            ),
            _PARSE,
        ),
        parts2=(_CALL_TRACE, _PARSE),
        skip=skip,
    )


def _rip_stack(*skip: str) -> _StackFmt:
    return _StackFmt(parts=(_RIP_FRAME, _CALL_TRACE, _PARSE), skip=skip)


def _trace_stack(*skip: str) -> _StackFmt:
    return _StackFmt(parts=(_CALL_TRACE, _PARSE), skip=skip)


_F = _OopsFormat
_OOPSES: tuple[_Oops, ...] = (
    _Oops(
        "BUG:",
        (
            _F(
                _syz("BUG: KASAN:"),
                "KASAN: {1} {3} in {4}",
                report=_syz(
                    r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}(?:.*\n)+?.*(Read|Write) "
                    r"(?:of size|at addr) (?:[0-9a-f]+)"
                ),
                stack=_StackFmt(
                    parts=(_syz(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"), _CALL_TRACE, _PARSE),
                    # frames of the KASAN_HW_TAGS fault path
                    skip=("kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"),
                ),
            ),
            _F(
                _syz("BUG: KASAN:"),
                "KASAN: invalid-free in {2}",
                report=_syz(
                    "BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) "
                    "in {{FUNC}}"
                ),
                stack=_StackFmt(
                    parts=(
                        _syz(
                            "BUG: KASAN: (?:double-free or invalid-free|double-free"
                            "|invalid-free) in {{FUNC}}"
                        ),
                        _CALL_TRACE,
                        _PARSE,
                    ),
                    skip=("slab_", "kfree", "vunmap", "vfree"),
                ),
            ),
            _F(
                _syz(r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)"),
                "KASAN: {1} {2}",
            ),
            _F(_syz("BUG: KASAN: (.*)"), "KASAN: {1}", corrupted=True),
            _F(
                _syz("BUG: KMSAN: kernel-usb-infoleak"),
                "KMSAN: kernel-usb-infoleak in {2}",
                report=_syz("BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}"),
                stack=_StackFmt(
                    parts=(
                        _PARSE,
                        _syz("(Local variable .* created at:|Uninit was created at:)"),
                        _PARSE,
                    ),
                    skip=(
                        "alloc_skb",
                        "usb_submit_urb",
                        "usb_start_wait_urb",
                        "usb_bulk_msg",
                        "usb_interrupt_msg",
                        "usb_control_msg",
                    ),
                ),
                no_stack_trace=True,
            ),
            _F(
                _syz("BUG: KMSAN:"),
                "KMSAN: {1} in {3}",
                report=_syz(r"BUG: KMSAN: ([a-z\-]+) in {{FUNC}}"),
                stack=_StackFmt(
                    parts=(
                        _PARSE,
                        _syz("(Local variable .* created at:|Uninit was created at:)"),
                        _PARSE,
                    ),
                    skip=(
                        "alloc_skb",
                        "netlink_ack",
                        "netlink_rcv_skb",
                        "_encrypt$",
                        "^(?:crypto|cipher|drbg|rng)_",
                    ),
                ),
                no_stack_trace=True,
            ),
            _F(
                _syz("BUG: KCSAN: data-race"),
                "KCSAN: {1}",
                report=_syz("BUG: KCSAN: (.*)"),
                no_stack_trace=True,
            ),
            _F(
                _syz("BUG: KCSAN:"),
                "KCSAN: {1}",
                report=_syz("BUG: KCSAN: (.*)"),
                no_stack_trace=True,
            ),
            _F(
                _syz(r"BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in {{FUNC}}"),
                "KFENCE: {1} {2} in {4}",
                stack=_StackFmt(parts=(_syz(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), _PARSE)),
            ),
            _F(
                _syz("BUG: KFENCE: invalid free in {{FUNC}}"),
                "KFENCE: invalid free in {2}",
                stack=_StackFmt(parts=(_syz(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), _PARSE)),
                no_stack_trace=True,
            ),
            _F(
                _syz("BUG: KFENCE: invalid (read|write) in {{FUNC}}"),
                "KFENCE: invalid {1} in {3}",
                stack=_StackFmt(parts=(_syz(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), _PARSE)),
            ),
            _F(
                _syz("BUG: KFENCE: memory corruption in {{FUNC}}"),
                "KFENCE: memory corruption in {2}",
                stack=_StackFmt(parts=(_syz(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), _PARSE)),
                no_stack_trace=True,
            ),
            _F(
                _syz(
                    "BUG: (?:unable to handle kernel paging request|unable to handle page fault "
                    "for address|Unable to handle kernel data access)"
                ),
                "BUG: unable to handle kernel paging request in {1}",
                stack=_rip_stack(),
            ),
            _F(
                _syz(
                    "BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer "
                    "dereference|Kernel NULL pointer dereference)"
                ),
                "BUG: unable to handle kernel NULL pointer dereference in {1}",
                stack=_rip_stack(),
            ),
            _F(
                _syz("BUG: (?:unable to handle kernel|Unable to handle kernel)"),
                "BUG: unable to handle kernel",
                corrupted=True,
            ),
            _F(
                _syz(
                    "BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu "
                    "recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)"
                ),
                "BUG: {1} {2} in {3}",
                stack=_trace_stack("spin_", "_lock", "_unlock"),
            ),
            _F(
                _syz("BUG: scheduling while atomic"),
                "BUG: scheduling while atomic in {1}",
                stack=_trace_stack("schedule"),
            ),
            _F(
                _syz("BUG: held lock freed!"),
                "BUG: held lock freed in {1}",
                report=_syz(r"BUG: held lock freed!(?:.*\n)+?.*{{PC}} +{{FUNC}}"),
            ),
            _F(
                _syz("BUG: Bad rss-counter state"),
                "BUG: Bad rss-counter state",
                no_stack_trace=True,
            ),
            _F(
                _syz("BUG: Bad page (state|cache)"),
                "BUG: Bad page {1} in {2}",
                stack=_StackFmt(
                    parts=(_syz("page last allocated"), _PARSE),
                    skip=(
                        "(free|put|get|update|release)_page",
                        "free_unref",
                        "^_*folio",
                        "truncate_inode_pages",
                        "page_frag_free",
                        "alloc",
                        "vmap",
                        "page_owner",
                    ),
                ),
            ),
            _F(_syz("BUG: Bad page map"), "BUG: Bad page map"),
            _F(_syz("BUG: workqueue lockup"), "BUG: workqueue lockup", no_stack_trace=True),
            _F(
                _syz("BUG: sleeping function called from invalid context at (.*)"),
                "BUG: sleeping function called from invalid context in {2}",
                stack=_trace_stack(),
            ),
            _F(
                _syz(r"BUG: using ([a-z_]+)\(\) in preemptible"),
                "BUG: using {1}() in preemptible code in {2}",
                stack=_trace_stack(
                    "dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"
                ),
            ),
            _F(
                _syz("BUG: memory leak"),
                "memory leak in {1}",
                stack=_StackFmt(
                    parts=(_syz(r"backtrace(?: \(crc [0-9a-fA-F]*\))?:"), _PARSE),
                    skip=(
                        "kmemleak",
                        "mmap",
                        "kmem",
                        "slab",
                        "alloc",
                        "create_object",
                        "idr_get",
                        "list_lru_init",
                        "kasprintf",
                        "kvasprintf",
                        "pcpu_create",
                        "strdup",
                        "strndup",
                        "memdup",
                    ),
                ),
            ),
            _F(_syz(r"BUG:\s*(?:\n|$)"), "BUG: corrupted", corrupted=True),
        ),
        tuple(
            _syz(p)
            for p in (
                "ODEBUG:",
                "Boot_DEBUG:",
                "xlog_status:",
                "DEBUG:",
                "BUG: no syscalls can create resource",
            )
        ),
    ),
    _Oops(
        "WARNING:",
        (
            _F(
                _syz(r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)"),
                "WARNING: ODEBUG bug in {1}",
                stack=_warning_stack(
                    "debug_",
                    "rcu",
                    "hrtimer_",
                    "timer_",
                    "work_",
                    "percpu_",
                    "vunmap",
                    "vfree",
                    "__free_",
                    "debug_check",
                    "kobject_",
                ),
            ),
            _F(
                _syz(r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)"),
                "WARNING: bad usercopy in {1}",
                stack=_warning_stack("usercopy", "__check"),
            ),
            _F(
                _syz(r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)"),
                "WARNING: kobject bug in {1}",
                stack=_warning_stack("kobject_"),
            ),
            _F(
                _syz(r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)"),
                "WARNING: refcount bug in {1}",
                stack=_warning_stack("refcount", "kobject_"),
            ),
            _F(
                _syz(r"WARNING: .*kernel/locking/lockdep\.c.*lock_"),
                "WARNING: locking bug in {1}",
                stack=_warning_stack("lock_sock", "release_sock"),
            ),
            _F(
                _syz(r"WARNING: .*mm/.*\.c.* k?.?malloc"),
                "WARNING: kmalloc bug in {1}",
                stack=_warning_stack("kmalloc", "krealloc", "slab", "kmem"),
            ),
            _F(
                _syz(r"WARNING: {{SRC}} at 0x\d+, CPU#\d+"),
                "WARNING in {2}",
                stack=_warning_stack(),
            ),
            _F(_syz("WARNING: .* at {{SRC}} {{FUNC}}"), "WARNING in {3}", stack=_warning_stack()),
            _F(_syz("WARNING: {{SRC}} at {{FUNC}}"), "WARNING in {3}", stack=_warning_stack()),
            _F(
                _syz(r"WARNING: \[.*\] {{SRC}} at {{FUNC}}.*"),
                "WARNING in {3}",
                stack=_warning_stack(),
            ),
            _F(
                _syz("WARNING: possible circular locking dependency detected"),
                "possible deadlock in {1}",
                report=_syz(
                    r"WARNING: possible circular locking dependency detected(?:.*\n)+?.*is "
                    r"trying to acquire lock"
                ),
                stack=_StackFmt(
                    parts=(
                        _syz("at: (?:{{PC}} +)?{{FUNC}}"),
                        _syz("at: (?:{{PC}} +)?{{FUNC}}"),
                        _PARSE,
                    ),
                    skip=(
                        "process_one_work",
                        "flush_workqueue",
                        "drain_workqueue",
                        "destroy_workqueue",
                    ),
                ),
            ),
            _F(
                _syz("WARNING: possible recursive locking detected"),
                "possible deadlock in {1}",
                report=_syz(
                    r"WARNING: possible recursive locking detected(?:.*\n)+?.*is trying to "
                    r"acquire lock(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}"
                ),
            ),
            _F(
                _syz("WARNING: suspicious RCU usage"),
                "WARNING: suspicious RCU usage in {2}",
                report=_syz(r"WARNING: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}"),
                stack=_trace_stack("rcu", "kmem", "slab"),
            ),
            _F(
                _syz("WARNING: held lock freed!"),
                "WARNING: held lock freed in {1}",
                report=_syz(r"WARNING: held lock freed!(?:.*\n)+?.*at:(?: {{PC}})? +{{FUNC}}"),
            ),
            _F(_syz(r"WARNING:\s*(?:\n|$)"), "WARNING: corrupted", corrupted=True),
        ),
        tuple(
            _syz(p)
            for p in (
                "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
                "WARNING: workqueue cpumask: online intersect > possible intersect",
                "WARNING: [Tt]he mand mount option",
                "WARNING: Unprivileged eBPF is enabled with eIBRS",
                "WARNING: See https.* for mitigation options.",
                "WARNING: kernel not compiled with CPU_SRSO",
                r"EXT4-[Ff][Ss](?: \(.*\))?:",
                r"XFS \(\w+\): WARNING",
            )
        ),
    ),
    _Oops(
        "INFO:",
        (
            _F(_syz("INFO: (Freed|Allocated) in (.*)"), "INFO: {1} in {2}", corrupted=True),
            _F(_syz(r"INFO:\s*(?:\n|$)"), "INFO: corrupted", corrupted=True),
        ),
        tuple(
            _syz(p)
            for p in (
                "INFO: lockdep is turned off",
                "INFO: Stall ended before state dump start",
                "INFO: NMI handler",
                "INFO: recovery required on readonly filesystem",
                "(handler|interrupt).*took too long",
                "INFO: sys_.* is not present in /proc/kallsyms",
                "INFO: no syscalls can create resource",
                "rmt_storage:INFO:",
                "_INFO:",
            )
        ),
    ),
    _Oops(
        "Unable to handle kernel",
        (
            _F(
                _syz(
                    "Unable to handle kernel (paging request|NULL pointer dereference|access to "
                    "user memory)"
                ),
                "BUG: unable to handle kernel {1} in {2}",
                stack=_rip_stack(),
            ),
        ),
    ),
    _Oops(
        "general protection fault",
        (
            _F(
                _syz("general protection fault.*:"),
                "general protection fault in {1}",
                stack=_rip_stack(),
            ),
        ),
        (_syz(r"general protection fault .* error:\d+ in "),),
    ),
    _Oops(
        "stack segment: ",
        (_F(_syz("stack segment: "), "stack segment fault in {1}", stack=_rip_stack()),),
    ),
    _Oops(
        "Kernel panic",
        (
            _F(
                _syz("Kernel panic - not syncing: Fatal exception"),
                "kernel panic: Fatal exception",
                corrupted=True,
            ),
            _F(
                _syz("Kernel panic - not syncing: panic_on_warn set"),
                "kernel panic: panic_on_warn set",
                corrupted=True,
            ),
            _F(_syz("Kernel panic - not syncing: (.*)"), "kernel panic: {1}"),
        ),
    ),
    _Oops(
        "PANIC: double fault",
        (
            _F(
                _syz("PANIC: double fault"),
                "PANIC: double fault in {1}",
                stack=_StackFmt(parts=(_RIP_FRAME,)),
            ),
        ),
    ),
    _Oops(
        "kernel BUG",
        (
            _F(
                _syz("kernel BUG at mm/usercopy.c"),
                "BUG: bad usercopy in {1}",
                stack=_trace_stack("usercopy", "__check"),
            ),
            _F(
                _syz("kernel BUG at lib/list_debug.c"),
                "BUG: corrupted list in {1}",
                stack=_trace_stack(),
            ),
            _F(_syz("kernel BUG at (.*)"), "kernel BUG in {2}", stack=_rip_stack("^skb_")),
        ),
    ),
    _Oops("Kernel BUG", (_F(_syz("Kernel BUG (.*)"), "kernel BUG {1}"),)),
    _Oops(
        "BUG kmalloc-",
        (_F(_syz("BUG kmalloc-.*: Object already free"), "BUG: Object already free"),),
    ),
    _Oops(
        "divide error:",
        (_F(_syz("divide error: "), "divide error in {1}", stack=_StackFmt(parts=(_RIP_FRAME,))),),
    ),
    _Oops(
        "invalid opcode:",
        (
            _F(
                _syz("invalid opcode: "),
                "invalid opcode in {1}",
                stack=_StackFmt(parts=(_RIP_FRAME,)),
            ),
        ),
    ),
    _Oops(
        "UBSAN:",
        (
            _F(
                _syz("UBSAN:"),
                "UBSAN: undefined-behaviour in {1}",
                report=_syz("UBSAN: Undefined behaviour in"),
                stack=_trace_stack("ubsan", "overflow"),
            ),
            _F(
                _syz("UBSAN: array-index-out-of-bounds in"),
                "UBSAN: array-index-out-of-bounds in {1}",
                stack=_trace_stack("ubsan", "overflow"),
            ),
            _F(
                _syz("UBSAN:"),
                "UBSAN: {1} in {2}",
                report=_syz("UBSAN: (.*?) in"),
                stack=_trace_stack("ubsan", "overflow"),
            ),
        ),
    ),
    _Oops(
        "unregister_netdevice: waiting for",
        (
            _F(
                _syz("unregister_netdevice: waiting for (?:.*) to become free"),
                "unregister_netdevice: waiting for DEV to become free",
                no_stack_trace=True,
            ),
        ),
    ),
    _Oops(
        "Internal error:",
        (_F(_syz("Internal error:"), "Internal error in {1}", stack=_rip_stack()),),
    ),
    _Oops(
        "Unhandled fault:",
        (_F(_syz("Unhandled fault:"), "Unhandled fault in {1}", stack=_rip_stack()),),
    ),
    _Oops(
        "Alignment trap:",
        (_F(_syz("Alignment trap:"), "Alignment trap in {1}", stack=_rip_stack()),),
    ),
)
del _F

_OOPS_HEADERS_RE = re.compile("|".join(re.escape(o.header) for o in _OOPSES))
# Oopses that do not start a new report (they come in the middle of another one).
_REPORT_START_IGNORES = tuple(
    _syz(p)
    for p in (
        "invalid opcode: 0000",
        "Kernel panic - not syncing",
        "unregister_netdevice: waiting for",
        "PANIC: double fault",
        "Internal error:",
    )
)
_INFO_WITH_STACK = (
    "vmalloc: allocation failure:",
    "FAULT_INJECTION: forcing a failure",
    "FAULT_FLAG_ALLOW_RETRY missing",
)
_CORRUPTED_TITLE_RE = re.compile(r"\[ *[0-9]+\.[0-9]+\]")
_TITLE_REPLACEMENTS = tuple(
    (re.compile(p, re.ASCII), r)
    for p, r in (
        (r"syz-executor\.?[0-9]+((/|:)[0-9]+)?", "syz-executor"),
        (r"syzkaller[0-9]+((/|:)[0-9]+)?", "syzkaller"),
        (r"([^a-zA-Z0])(?:0x)?[0-9a-f]{6,}", r"\g<1>ADDR"),
        (r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})", "IP"),
        (r"(\.\w+)(:[0-9]+)+", r"\g<1>:LINE"),
        # (here syzkaller's r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+" -> "$1": done by
        # _strip_frame_offsets, because a backtracking engine takes quadratic time on it)
        (r"CPU#[0-9]+", "CPU"),
        (r"(\W)(\d+)(\W|$)", r"\g<1>NUM\g<3>"),
    )
)
_FRAME_OFFSET_STEP = 5  # where syzkaller's funcRe comes in _TITLE_REPLACEMENTS
_NAME_RUN_RE = re.compile(r"[a-zA-Z0-9_.]+")
_FRAME_OFFSET_RE = re.compile(r"\+0x[0-9a-z]+/0x[0-9a-z]+")
_LETTER_RE = re.compile(r"[a-zA-Z]")
_MAX_TITLE_LEN = 120
# A title is made from one console line, and printk stores at most PRINTKRB_RECORD_MAX (1024)
# bytes of a message (kernel/printk/internal.h, 6.12): longer text is not a kernel line, and
# only its start is sanitized (syzkaller keeps 120 characters of the result anyway).
_MAX_TITLE_INPUT = 4096
_skip_cache: dict[tuple[str, ...], re.Pattern[str]] = {}
# syzkaller's HEAD(?:.*\n)+?TAIL patterns ("BUG: KASAN: x in f" and, on a later line, "Read of
# size"): where the first HEAD fails every later one fails too (TAIL looks only at the lines
# after HEAD's line, and a later HEAD has fewer of them), so only the first is tried.  Go's
# RE2 needs no such care; Python retrying every "BUG: KASAN:" of a long line was quadratic.
_LINES_LAZY = r"(?:.*\n)+?"
_HEADS = {
    pat: re.compile(pat.pattern.split(_LINES_LAZY, 1)[0])
    for oops in _OOPSES
    for f in oops.formats
    for pat in (f.title, f.report)
    if pat is not None and _LINES_LAZY in pat.pattern
}


def _search(pat: re.Pattern[str], text: str) -> re.Match[str] | None:
    """``pat.search(text)``, in linear time for syzkaller's HEAD(?:.*\n)+?TAIL patterns."""
    head = _HEADS.get(pat)
    if head is None:
        return pat.search(text)
    h = head.search(text)
    return None if h is None else pat.match(text, h.start())


def find_oops(text: str) -> str | None:
    """The oops header ("BUG:", "WARNING:", "general protection fault", ...) that makes this
    console line the start of a crash report (as syzkaller sees it), or None."""
    if _OOPS_HEADERS_RE.search(text) is None:
        return None
    for oops in _OOPSES:
        if oops.header in text and not any(s.search(text) for s in oops.suppressions):
            return oops.header
    return None


def _oops_of(header: str) -> _Oops:
    return next(o for o in _OOPSES if o.header == header)


def _skip_re(extra: tuple[str, ...]) -> re.Pattern[str]:
    pat = _skip_cache.get(extra)
    if pat is None:
        pat = _skip_cache[extra] = re.compile("|".join(_SKIP_FRAMES + extra))
    return pat


def _append_frame(frames: list[str], m: re.Match[str] | None, skip: re.Pattern[str]) -> None:
    if m is None:
        return
    for name in m.groups():
        if name is not None and not skip.search(name):
            for prefix in _STRIP_FRAME_PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix) :]
            frames.append(name)
            return


def _stack_frames(lines: list[str], skip: re.Pattern[str], parts: tuple) -> tuple[list[str], bool]:
    """Walk ``parts`` over ``lines``: a regexp advances to the line it matches (capturing a
    frame if it has a group), ``_PARSE`` reads frames up to the next stack header.  Returns
    the key frame of every parsed stack (the first frame not skipped) and whether all went
    well."""
    frames: list[str] = []
    results: list[str] = []
    ok = True
    traces = 0
    i, n = 0, len(lines)
    idx = 0
    while True:
        if idx == len(parts) or (parts[idx] is _PARSE and traces > 0):
            if frames:
                results.append(frames[0])
            else:
                results.append("corrupted")
                ok = False
            frames = []
        if idx == len(parts):
            break
        part = parts[idx]
        if part is _PARSE:
            traces += 1
            nxt = parts[idx + 1] if idx + 1 < len(parts) else None
            while i < n:
                ln = lines[i]
                i += 1
                if _CORRUPTED_LINE.search(ln):
                    ok = False
                    break
                if _STACK_START.search(ln):
                    break
                if nxt is not None and nxt is not _PARSE:
                    m = nxt.search(ln)
                    if m is not None:
                        _append_frame(frames, m, skip)
                        idx += 1
                        break
                m = _FRAME_RES[0].search(ln) or _FRAME_RES[1].search(ln)
                _append_frame(frames, m, skip)
        else:
            while i < n:
                ln = lines[i]
                i += 1
                if _CORRUPTED_LINE.search(ln):
                    ok = False
                    break
                m = part.search(ln)
                if m is not None:
                    _append_frame(frames, m, skip)
                    break
        idx += 1
    return results, ok


def _extract_description(text: str, oops: _Oops) -> tuple[str, str | None, _OopsFormat | None]:
    start = len(text)
    desc = ""
    fmt: _OopsFormat | None = None
    corrupted: str | None = None
    matched_title = False
    for f in oops.formats:
        m = _search(f.title, text)
        if m is None or m.start() > start:
            continue
        if m.start() == start and desc:
            continue
        if m.start() < start:
            desc, fmt, start = "", None, m.start()
        matched_title = True
        if f.report is not None:
            m = _search(f.report, text)
            if m is None:
                continue
        args = [g or "" for g in m.groups()]
        corrupted = None
        if f.stack is not None:
            lines = text[m.start() :].split("\n")
            skip = _skip_re(f.stack.skip)
            frames, ok = _stack_frames(lines, skip, f.stack.parts)
            if not ok and f.stack.parts2:
                frames, ok = _stack_frames(lines, skip, f.stack.parts2)
            if not ok:
                corrupted = "extracted no frames"
            args += frames
        try:
            desc = f.fmt.format("", *args)
        except IndexError:
            desc = f.fmt
        fmt = f
    if not desc:
        if matched_title:
            corrupted = "matched title but not report regexp"
        pos = text.find(oops.header)
        end = text.find("\n", pos)
        desc = text[pos : end if end != -1 else len(text)]
    if corrupted is None and fmt is not None and fmt.corrupted:
        corrupted = "report format is marked as corrupted"
    return desc, corrupted, fmt


def _is_corrupted(title: str, report: str, fmt: _OopsFormat | None) -> str | None:
    if _CORRUPTED_TITLE_RE.search(title):
        return "title matches corrupted regexp"
    if fmt is None:
        return None
    if not fmt.no_stack_trace and re.search(r"Call (?:T|t)race|backtrace", report) is None:
        return "no stack trace in report"
    if fmt.no_stack_trace:
        return None
    for key in _STACK_KEYWORDS:
        m = key.search(report)
        if m is None:
            continue
        frames = report[m.start() :].split("\n")
        if len(frames) < 4:
            return "call trace is missed"
        found = False
        for ln in frames[1:16]:
            if _STACK_START.search(ln):
                break
            if "(stack is not available)" in ln or _STACK_FRAME_LINE.search(ln):
                found = True
                break
        if not found:
            return "no frames in a stack trace"
    return None


def _strip_frame_offsets(title: str) -> str:
    """``title`` with syzkaller's ``funcRe`` (``([a-zA-Z][a-zA-Z0-9_.]+)\\+0x[0-9a-z]+/0x[0-9a-z]+``
    replaced by ``$1``: ``f+0x10/0x20`` becomes ``f``), in linear time.

    Go's RE2 runs that pattern in linear time; a backtracking engine retries it from every
    character of a long run of name characters (a 64 KiB line: half a minute).  The match it
    would find is the same: the name part must end where the run of name characters ends (no
    name character is a ``+``), so each run followed by ``+0x../0x..`` matches from its
    first letter that has one more name character after it, and not before the end of the
    previous match."""
    out: list[str] = []
    done = 0  # end of the previous match (and of the text copied to out)
    for run in _NAME_RUN_RE.finditer(title):
        lo, hi = max(run.start(), done), run.end()
        if hi - lo < 2:
            continue
        suffix = _FRAME_OFFSET_RE.match(title, hi)
        if suffix is None or _LETTER_RE.search(title, lo, hi - 1) is None:
            continue
        out.append(title[done:hi])
        done = suffix.end()
    if not out:
        return title
    out.append(title[done:])
    return "".join(out)


def sanitize_title(title: str) -> str:
    """syzkaller's title normalisation (pkg/report/report.go, ``replaceTable`` of
    ``dynamicTitleReplacement``, then ``sanitizeTitle``): addresses, numbers, offsets out;
    at most 120 chars.  Only the first ``_MAX_TITLE_INPUT`` characters are looked at."""
    title = title[:_MAX_TITLE_INPUT]
    for i, (pat, repl) in enumerate(_TITLE_REPLACEMENTS):
        if i == _FRAME_OFFSET_STEP:
            title = _fixpoint(_strip_frame_offsets, title)
        title = _fixpoint(functools.partial(pat.sub, repl), title)
    out: list[str] = []
    prev = " "
    for ch in title[:_MAX_TITLE_LEN]:
        if ch == "\t":
            ch = " "
        elif ord(ch) < 0x20 or ord(ch) >= 0x7F:
            continue
        if ch == " " and prev == " ":
            continue
        out.append(ch)
        prev = ch
    return "".join(out).strip()


def _fixpoint(step, text: str) -> str:
    """``step`` applied until the text no longer changes (syzkaller's ``replaceTable``)."""
    while True:
        new = step(text)
        if new == text:
            return text
        text = new


def _syz_context(ln: _Line) -> str:
    return "" if not ln.prefixed else (ln.caller or "console")


def crash_title(lines: list[_Line]) -> CrashTitle | None:
    """syzkaller's title of the crash whose oops line is ``lines[0]`` (``lines`` are the
    console lines from there on, with their prefixes split off)."""
    if not lines:
        return None
    header = find_oops(lines[0].text)
    if header is None:
        return None
    oops = _oops_of(header)
    ctx = _syz_context(lines[0])
    cut_at_next_oops = ctx in ("", "console")
    out: list[str] = []
    end = 0
    second = False
    text_lines = 0
    skip_text = False
    cpu_traceback = False
    bug_lines = True  # still in the first run of "BUG: KASAN:" lines
    for i, ln in enumerate(lines):
        t = ln.text
        oops_line = i == 0
        bug_lines = bug_lines and t.startswith("BUG: KASAN:")
        if not oops_line and not second and cut_at_next_oops:
            if any(p in t for p in _INFO_WITH_STACK):
                second = True
            elif (
                not bug_lines
                and find_oops(t) is not None
                and not any(r.search(t) for r in _REPORT_START_IGNORES)
            ):
                # (syzbot's symbolized text repeats the BUG line once per inlined frame:
                # that run is one report, a deviation from syzkaller kept on purpose)
                second = True
        ctx1 = _syz_context(ln)
        if not ln.prefixed and ctx and out and out[-1].endswith((" in", " by task", " by")):
            # a mail client wrapped the line (not in syzkaller, which sees raw consoles)
            out[-1] = out[-1] + " " + t.strip()
            continue
        if not oops_line:
            if ctx1 != ctx and not (cpu_traceback and ctx1.startswith("C")):
                continue
            if ctx1 and (" ? " in t or t.endswith(" (unreliable)")) and "<EOI>" not in t:
                continue
        text_lines += 1
        skip_line = skip_text
        if "Disabling lock debugging due to kernel taint" in t:
            skip_line = True
        elif "Sending NMI from CPU" in t:
            cpu_traceback = True
        elif text_lines > 22 and (
            "Kernel panic - not syncing" in t
            or "WARNING: possible circular locking dependency detected" in t
        ):
            skip_text = skip_line = True
        if not oops_line and skip_line:
            continue
        out.append(t)
        if not second or not cut_at_next_oops:
            end = len(out)
    report = "\n".join(out) + "\n"
    desc, corrupted, fmt = _extract_description("\n".join(out[:end]) + "\n", oops)
    if corrupted is None:
        corrupted = _is_corrupted(desc, report, fmt)
    return CrashTitle(
        sanitize_title(desc), lines[0].no, corrupted, kasan=lines[0].text.startswith("BUG: KASAN:")
    )


# The header lines of syzkaller's report test files (never kernel output).
_SYZ_HEADER_RE = re.compile(r"^(?:TITLE|ALT|TYPE|CORRUPTED|FRAME|PANICKED|START|EXECUTOR): ")


class LogScan:
    """Watches every line of a log while the reports are parsed, and finds the log's first
    crash (KASAN or not), as syzkaller would title it.  Pass one to ``iter_reports(scan=...)``;
    after the iteration ``first_crash`` is set (or None: the log has no crash)."""

    #: Lines kept after the first crash's oops line to title it (its report and then some).
    MAX_LINES = 2000

    def __init__(self) -> None:
        self._lines: list[_Line] | None = None
        self._done = False
        self.first_crash: CrashTitle | None = None
        self.lines_seen = 0

    def feed(self, ln: _Line) -> None:
        self.lines_seen += 1
        if self._done:
            return
        if self._lines is None:
            if find_oops(ln.text) is not None and not _SYZ_HEADER_RE.match(ln.text):
                self._lines = [ln]
            return
        self._lines.append(ln)
        if len(self._lines) >= self.MAX_LINES:
            self.finish()

    def finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self._lines:
            self.first_crash = crash_title(self._lines)
        self._lines = None


# --------------------------------------------------------------------------- parser


_SECTION_RES = (
    _END_RE,
    _BUG_RE,
    _ALLOC_RE,
    _FREED_RE,
    _AUX_RE,
    _OBJECT_RE,
    _OLD_OBJECT_RE,
    _LOCATED_RE,
    _PAGE_RE,
    _STACK_TASK_RE,
    _OLD_STACK_RE,
    _VARIABLE_RE,
    _VMALLOC_RE,
    _MEMSTATE_RE,
    _CALL_TRACE_RE,
    _TAGS_RE,
    _INTERRUPTING_RE,
    re.compile(r"^(?:CPU: |Hardware name: |Allocated:$|Freed:$|Memory state )"),
)


def _is_section(text: str) -> bool:
    """A line that starts a part of the report (it ends the stack or the page before it)."""
    return any(r.match(text) for r in _SECTION_RES)


def _is_frame(text: str) -> bool:
    return bool(_FRAME_SHAPE_RE.match(text) or _PC_ONLY_RE.match(text))


# The other lines of a trace: <IRQ>/<TASK> marks, s390's "([<pc>] caller)", powerpc's
# "--- interrupt: 700 at ...", arm's saved registers under a frame (" r10:00000000 r9:...").
_TRACE_MARK_RE = re.compile(r"^\s*(?:</?[A-Z]+>|\(\[<|--- interrupt: |r\d{1,2}:[0-9a-f]{8}\b)")


def _is_trace_line(text: str, foreign_lines: bool) -> bool:
    """A line of a stack trace.  Where other output can interleave (a log without caller
    ids) only a frame-shaped line is one; elsewhere every indented line of the trace is."""
    if _is_frame(text) or _ARM_FRAME_RE.match(text) or _TRACE_MARK_RE.match(text):
        return True
    return not foreign_lines and text[:1] in (" ", "\t")


class _ReportParser:
    """Consumes the lines of one report from a shared :class:`_LineSource`."""

    def __init__(
        self, src: _LineSource, first: _Line, path: str | None, partial: bool = False
    ) -> None:
        self.src = src
        self.first = first
        self.path = path
        # A log: the BUG line carried a console prefix.  Then lines without a prefix are
        # wrapped continuations or foreign output, and lines of another caller id are foreign.
        self.log = first.prefixed
        self.caller = first.caller
        # partial: a broken section is recorded in rep.problems and the rest is still read.
        self.partial = partial
        # Every raw line read for this report (all contexts), to give it syzkaller's title.
        self.captured: list[_Line] = [first]
        self.rep: KasanReport | None = None

    # -- line access ----------------------------------------------------------------

    def error(self, message: str, line: _Line | None, col: int | None = None) -> ReportParseError:
        no = line.no if line is not None else None
        return ReportParseError(message, self.path, no, col)

    def _raw_next(self) -> _Line | None:
        try:
            ln = next(self.src)
        except StopIteration:
            return None
        if ln.no > self.captured[-1].no and len(self.captured) < _MAX_CAPTURE:
            self.captured.append(ln)
        return ln

    def problem(self, err: ReportParseError) -> None:
        """A broken part of the report: raise (strict) or record it (partial)."""
        if not self.partial or self.rep is None:
            raise err
        self.rep.problems.append(err)

    def next(self) -> _Line | None:
        """The next line of this report (foreign lines of other callers are dropped)."""
        while True:
            ln = self._raw_next()
            if ln is None:
                return None
            if self.log:
                if not ln.prefixed:
                    if _END_RE.match(ln.text):
                        return ln  # a wrapped "====" line still ends the report
                    continue  # wrapped tail or foreign output
                if self.caller is not None and ln.caller != self.caller:
                    continue  # another task/CPU printing meanwhile
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

    @property
    def foreign_lines(self) -> bool:
        """A log without caller ids: other CPUs' and drivers' lines ("Bluetooth: hci0: ...")
        can come between the report's lines, and nothing tells them apart but their shape."""
        return self.log and self.caller is None

    def join_wrapped(self, text: str, is_open) -> str:
        """In a log, ``text`` with the unprefixed lines that continue it while ``is_open(text)``
        (a mail client or a narrow console wrapped it), then a lone ``[module]`` tail."""
        if not self.log:
            return text
        while True:
            nxt = self._raw_next()
            if nxt is None:
                return text
            tail = nxt.text.strip()
            if (
                nxt.prefixed
                or not tail
                or _END_RE.match(tail)
                or not (is_open(text) or _MODULE_ONLY_RE.match(tail))
            ):
                self.push(nxt)
                return text
            text = f"{text} {tail}"

    def join_wrapped_frame(self, text: str) -> str:
        """A frame with its wrapped tail: a decoded location ``(file.c:12`` left open, a name
        after a lone ``[<pc>]``, a ``[module]``."""
        return self.join_wrapped(
            text, lambda t: t.count("(") > t.count(")") or bool(_PC_ONLY_RE.match(t))
        )

    # -- the report -------------------------------------------------------------------

    def parse(self) -> KasanReport:
        rep = self.rep = self.parse_header()
        try:
            self.parse_access(rep)
        except ReportParseError as err:
            self.problem(err)
        self.parse_body(rep)
        title = crash_title(self.captured)
        if title is not None:
            rep.title, rep.title_corrupted = title.title, title.corrupted
        return rep

    def parse_header(self) -> KasanReport:
        ln = self.first
        bug = _BUG_RE.match(ln.text)
        assert bug is not None  # (a parser starts on a 'BUG: KASAN:' line)
        rest = bug.group("rest")
        if rest.endswith(" in") or rest.endswith(" in "):
            _, tail = self.next_with_continuation(ln)
            if tail is not None:
                rest = rest.rstrip() + " " + tail.text.strip()
        m = _BUG_IN_RE.match(rest)
        addr: int | None = None
        am: re.Match[str] | None = None
        if m:
            bug_type, func_text = m.group("type"), m.group("func").strip()
            am = _AT_ADDR_RE.match(func_text)
            if am:  # before 4.12: "... in f at addr A"
                func_text = am.group("func")
                addr = _hex(am.group("addr"))
        else:
            m = _BUG_ON_ADDR_RE.match(rest)  # 3.x: "null-ptr-deref on address (null)"
            if not m:
                err = self.error(
                    "malformed 'BUG: KASAN:' line (expected '<bug type> in <function>')", ln, 13
                )
                if not self.partial or not rest.strip():
                    raise err
                # the bug type is all there is (the line was cut short)
                rep = KasanReport(
                    bug_type=rest.strip().split()[0], function=None, line=ln.no, path=self.path
                )
                rep.problems.append(err)
                return rep
            bug_type, func_text = m.group("type"), ""
            a = m.group("addr").strip()
            addr = (
                0 if a == "(null)" else (_hex(a) if re.fullmatch(r"[0-9a-fA-F]{1,16}", a) else None)
            )
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
        rep = KasanReport(
            bug_type=bug_type,
            function=function,
            source_location=location,
            line=ln.no,
            path=self.path,
            addr=addr,
        )
        if addr is not None and am is not None:
            rep.addr_digits = len(am.group("addr"))
        return rep

    def parse_access(self, rep: KasanReport) -> None:
        slack = _LOG_SLACK if self.log else 0
        first_candidate: _Line | None = None
        skipped: list[_Line] = []
        while True:
            ln = self.next()
            if ln is None:
                self.push_back_for_body(None, skipped)
                raise self.error(
                    "report ends after its 'BUG: KASAN:' line (expected the "
                    "'Read/Write of size N at addr ... by task ...' line)",
                    first_candidate or self.first,
                )
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
                self.push_back_for_body(ln, skipped)
                raise self.error(
                    "expected 'Read|Write of size N at addr ADDR by task COMM/PID' "
                    "(or 'Free of addr ADDR by task COMM/PID') after the 'BUG: KASAN:' line",
                    first_candidate,
                )
            skipped.append(ln)

    def push_back_for_body(self, ln: _Line | None, skipped: list[_Line]) -> None:
        """Partial mode: the lines looked at for the access line go back to the body."""
        if not self.partial:
            return
        if ln is not None:
            self.push(ln)
        for s in reversed(skipped):
            self.push(s)

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
        rep.addr_digits = len(m.group("addr"))
        rep.task, rep.pid = m.group("comm"), int(m.group("pid"))
        return True

    def parse_body(self, rep: KasanReport) -> None:
        while True:
            try:
                self._parse_body(rep)
                return
            except ReportParseError as err:
                self.problem(err)  # strict: raises; partial: go on after it

    def _parse_body(self, rep: KasanReport) -> None:
        # Where the report's own task goes on to another oops (a fault while printing), the
        # report ends there.  Without caller ids other CPUs' oopses interleave: go on.
        interruptible = not self.log or self.caller is not None
        unrelated = 0  # consecutive lines that are no part of a report
        fell_through = False
        while True:
            unrelated = unrelated + 1 if fell_through else 0
            fell_through = False
            if unrelated > _MAX_UNRELATED:
                return  # no closing line, and then only other output: the report ended
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
            if interruptible and _INTERRUPTING_RE.match(text):
                self.push(ln)
                return
            if rep.access_stack is None:
                if _CALL_TRACE_RE.match(text):
                    rep.access_stack = self.parse_call_trace(ln, None)
                    continue
                if _ARM_FRAME_RE.match(text):
                    rep.access_stack = self.parse_call_trace(None, ln)
                    continue
            if text.startswith("CPU: ") and rep.kernel_release is None:
                m = _CPU_RE.match(text)
                if m is None:  # the release wrapped to the next line
                    m = _CPU_RE.match(self.join_wrapped(text, lambda t: not _CPU_RE.match(t)))
                if m is not None:
                    rep.kernel_release = m.group("release")
                    continue
            if text.startswith("Hardware name: ") and rep.hardware is None:
                rep.hardware = text[len("Hardware name: ") :].strip()
                continue
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
                    raise self.error(
                        "expected ' which belongs to the cache NAME of size N' after "
                        "'The buggy address belongs to the object at'",
                        nxt,
                    )
                rep.cache_name, rep.cache_object_size = m2.group("name"), int(m2.group("size"))
                continue
            m = _OLD_OBJECT_RE.match(text)  # 4.0-4.11 layout
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
                    raise self.error(
                        "expected ' [allocated |freed ]N-byte region [START, END)' "
                        "after 'The buggy address is located ...'",
                        nxt,
                    )
                rep.state = m2.group("state") or ""
                rep.region_size = int(m2.group("size"))
                rep.region_start, rep.region_end = _hex(m2.group("start")), _hex(m2.group("end"))
                if rep.region_end - rep.region_start != rep.region_size:
                    raise self.error(
                        f"region [{m2.group('start')}, {m2.group('end')}) is not "
                        f"{rep.region_size} bytes long",
                        nxt,
                    )
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
                    raise self.error(
                        "expected ' <variable>' after 'The buggy address belongs to the variable:'",
                        nxt,
                    )
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
            # anything else (page_owner text, registers, other output...) is not modelled
            fell_through = True
        # (every branch above that read a section of the report continues the loop)

    def expect_next(self, after: _Line, what: str) -> _Line:
        nxt = self.next()
        if nxt is None:
            raise self.error(f"report ends where {what} was expected", after)
        return nxt

    def parse_stack(self, kind: str, header: _Line, pid: int | None) -> StackTrace:
        st = StackTrace(kind=kind, header=header.text, pid=pid, line=header.no)
        foreign = 0
        while True:
            ln = self.next()
            if ln is None:
                return st
            text = ln.text
            if text == "(stack is not available)":
                st.available = False
                continue
            if text and _is_trace_line(text, self.foreign_lines):
                st.frames.append(self.join_wrapped_frame(text).strip())
                foreign = 0
                continue
            if text and self.foreign_lines and foreign < _LOG_SLACK and not _is_section(text):
                foreign += 1  # another driver's line in the middle
                continue
            if text:
                self.push(ln)  # a new section without a blank line
            return st

    def parse_call_trace(self, header: _Line | None, first: _Line | None) -> StackTrace:
        """The access stack: ``Call Trace:`` (x86, ppc, riscv), ``Call trace:`` (arm64) or
        arm32's ``[<pc>] (func) from [<pc>] (caller+0x../0x..)`` lines.  Frame lines are kept
        as printed (stripped); a mail client's wrapped ``(caller+..)`` tail is joined."""
        start = header or first
        assert start is not None  # (called on a header or a first frame)
        st = StackTrace(
            kind="access", header=header.text if header else "", pid=None, line=start.no
        )
        if first is not None:
            st.frames.append(self.join_wrapped_frame(first.text).strip())
        foreign = 0
        while True:
            ln = self.next()
            if ln is None:
                return st
            t = ln.text
            if not t.strip():
                return st
            if _is_trace_line(t, self.foreign_lines) or not self.foreign_lines and t[0] in "[(<":
                if t.startswith("(") and st.frames and st.frames[-1].endswith("]"):
                    st.frames[-1] += " " + t.strip()
                else:
                    st.frames.append(self.join_wrapped_frame(t).strip())
                foreign = 0
                continue
            if self.foreign_lines and foreign < _LOG_SLACK and not _is_section(t):
                foreign += 1  # another driver's line in the middle
                continue
            self.push(ln)
            return st

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
            if self.foreign_lines and not _PAGE_DUMP_RE.match(t):
                continue  # another driver's line in the middle
            # (a wrapped dump line: "page:... mapcount:0" + "mapping:... pfn:0x113a88")
            rep.page_lines.append(self.join_wrapped(t, lambda _t: True))

    def parse_stack_frame(self, rep: KasanReport, header: _Line) -> None:
        ln = self.next()
        if ln is None:
            return
        m = _STACK_OFFSET_RE.match(ln.text)
        if not m:
            self.push(ln)  # no frame found (e.g. an alloca)
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
                raise self.error(
                    f"expected \" [START, END) 'NAME'\" (frame object {len(objs) + 1} of {n})", o
                )
            objs.append(FrameObject(int(mo.group("start")), int(mo.group("end")), mo.group("name")))
            rep.stack_lines.append(o.text)
        rep.frame_objects = objs

    def parse_row(self, ln: _Line) -> MemoryRow | None:
        m = _ROW_START_RE.match(ln.text)
        if not m:
            return None
        body = m.group("rest").strip()
        if self.log and len(body.split()) < META_BYTES_PER_ROW:
            _, tail = self.next_with_continuation(ln)  # a mail client wrapped the row
            if tail is not None:
                if _HEX_BYTES_RE.match(tail.text.strip()):
                    body = body + " " + tail.text.strip()
                else:
                    self.push(tail)
        if not m.group("rest").startswith(" ") or not _HEX_BYTES_RE.match(body):
            raise self.error(
                "malformed memory-state row (expected 'ADDR: xx xx ... xx')",
                ln,
                len(m.group("mark")) + len(m.group("addr")) + 2,
            )
        values = tuple(int(v, 16) for v in body.split())
        if len(values) != META_BYTES_PER_ROW:
            raise self.error(
                f"memory-state row has {len(values)} bytes, expected {META_BYTES_PER_ROW}", ln
            )
        return MemoryRow(_hex(m.group("addr")), values, m.group("mark") == ">", ln.no)

    def parse_memory_state(self, rep: KasanReport, header: _Line) -> None:
        rows: list[MemoryRow] = []
        rep.memory_rows = rows  # (a partial read keeps the rows read so far)
        # (a second memory state, as in a garbled log, starts over: no '>' or '^' of the first)
        rep.guilty_row = rep.caret_index = rep.row_addr_digits = None
        addr_digits: int | None = None
        slack = _LOG_SLACK if self.log else 0
        skipped = 0
        caret_pending = False
        last = header
        # Without caller ids another task's whole warning can come between the header and
        # the first row (syzkaller's file 199): in such a log the first row may come late.
        first_row_slack = _FIRST_ROW_SLACK if self.log and self.caller is None else slack
        while len(rows) < META_ROWS or caret_pending:
            ln = self.next()
            if ln is None or _END_RE.match(ln.text) or _BUG_RE.match(ln.text):
                if ln is not None:
                    self.push(ln)
                what = "the '^' line" if caret_pending else f"row {len(rows) + 1} of {META_ROWS}"
                raise self.error(f"memory state ends early: {what} is missing", ln or last)
            if _INTERRUPTING_RE.match(ln.text):
                self.push(ln)
                raise self.error(f"memory state cut short by another oops: {ln.text[:60]!r}", ln)
            last = ln
            if caret_pending:
                cm = _CARET_RE.match(ln.text)
                if cm:
                    col = ln.text.index("^")
                    assert addr_digits is not None  # (a caret follows a row)
                    first_byte_col = 1 + addr_digits + 2  # '>' + address + ': '
                    k, r = divmod(col - first_byte_col, 3)
                    if r != 0 or not 0 <= k < META_BYTES_PER_ROW:
                        raise self.error(
                            "the '^' is not under a byte of the guilty row", ln, col + 1
                        )
                    rep.caret_index = k
                    caret_pending = False
                    continue
                if skipped < slack and not _ROW_START_RE.match(ln.text):
                    skipped += 1
                    continue
                raise self.error("expected the '^' line under the guilty ('>') row", ln)
            row = self.parse_row(ln)
            if row is None:
                if skipped < (first_row_slack if not rows else slack):
                    skipped += 1
                    continue
                raise self.error(
                    f"expected memory-state row {len(rows) + 1} of {META_ROWS} "
                    "(' ADDR: xx xx ...' or '>ADDR: ...')",
                    ln,
                )
            row_start = _ROW_START_RE.match(ln.text)
            assert row_start is not None  # (parse_row() read it)
            digits = len(row_start.group("addr"))
            if addr_digits is None:
                addr_digits = rep.row_addr_digits = digits
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
            raise self.error(
                f"memory-state row stride {stride:#x} is not a multiple of {META_BYTES_PER_ROW}",
                header,
            )


# --------------------------------------------------------------------------- API


def _open_lines(
    source: str | os.PathLike[str] | Iterable[str],
) -> tuple[Iterable[str], str | None, IO[str] | None]:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            # the caller closes it (parse_reports' finally), after the lazy read
            fh = open(path, encoding="utf-8", errors="replace", newline=None)  # noqa: SIM115
        except OSError as e:
            raise ReportParseError(f"cannot read the file: {e.strerror or e}", path) from None
        return read_log_lines(fh, path), path, fh
    return source, None, None


def read_log_lines(fh, path: str | None) -> Iterator[str]:
    """The lines of an open text file, read one at a time and never more than
    ``MAX_LINE_CHARS + 1`` characters at once (``/dev/zero`` has no end of line); a read
    error or an over-long line raises LogReadError naming the line."""
    no = 0
    while True:
        try:
            line = fh.readline(MAX_LINE_CHARS + 1)
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise LogReadError(f"cannot read the file: {why}", path, no + 1) from None
        if not line:
            return
        no += 1
        _check_line(line, no, path)
        yield line


def iter_reports(
    source: str | os.PathLike[str] | Iterable[str],
    *,
    path: str | None = None,
    strict: bool = True,
    errors: list[ReportParseError] | None = None,
    partial: bool = False,
    scan: LogScan | None = None,
) -> Iterator[KasanReport]:
    """Yield the KASAN reports found in ``source`` (a file path, or an iterable of lines).

    Lines are read lazily (a huge log costs the memory of one report at a time).  ``path``
    names the input in errors when ``source`` is not a path.  With ``strict`` (the default) a
    broken report raises :class:`ReportParseError`; otherwise it is skipped and its error
    appended to ``errors`` (when given).  With ``partial`` a broken report is yielded anyway:
    the fields that could be read are set, the others are None, and ``report.problems`` says
    what was wrong.  ``scan`` (a :class:`LogScan`) watches every line to find the log's first
    crash, KASAN or not.  A file that cannot be read raises :class:`ReportParseError`.
    """
    lines, fpath, fh = _open_lines(source)
    name = path if path is not None else fpath
    try:
        src = _LineSource(lines, scan, name)
        for ln in src:
            if not _BUG_RE.match(ln.text):
                continue
            try:
                rep = _ReportParser(src, ln, name, partial=partial).parse()
            except ReportParseError as exc:
                if strict and not partial:
                    raise
                if errors is not None:
                    errors.append(exc)
                continue
            yield rep
        if scan is not None:
            scan.finish()
    finally:
        if fh is not None:
            fh.close()


def parse_reports(
    source: str | os.PathLike[str] | Iterable[str],
    *,
    path: str | None = None,
    strict: bool = True,
    errors: list[ReportParseError] | None = None,
    partial: bool = False,
) -> list[KasanReport]:
    """All KASAN reports of ``source`` (a path or an iterable of lines), in input order."""
    return list(iter_reports(source, path=path, strict=strict, errors=errors, partial=partial))


def parse_report_text(
    text: str, *, path: str | None = None, strict: bool = True, partial: bool = False
) -> list[KasanReport]:
    """All KASAN reports in a string (for example captured ``kinspect run`` output)."""
    return parse_reports(text.splitlines(), path=path, strict=strict, partial=partial)


def first_crash(
    source: str | os.PathLike[str] | Iterable[str], *, path: str | None = None
) -> CrashTitle | None:
    """The first crash of a console log (KASAN or not) with syzkaller's title, or None."""
    scan = LogScan()
    for _ in iter_reports(source, path=path, partial=True, scan=scan):
        pass
    return scan.first_crash
