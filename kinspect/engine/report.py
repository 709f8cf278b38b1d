"""A bad access as a structured record, and the kernel's report text made from it.

The text follows mm/kasan/report.c and report_generic.c of Linux 6.12 line by line
(``print_report``, ``print_error_description``, ``describe_object``, ``print_memory_metadata``).
Where the kernel prints a saved stack trace (stack depot), kinspect prints the workload line that
did it, symbolized like a syzbot trace: `` func+0xOFF/0xLEN FILE:LINE``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

META_BYTES_PER_ROW = 16
META_ROWS_AROUND_ADDR = 2
REPORT_SEPARATOR = "=" * 66

# TAINT_FLAGS: 'G' in column 0, then one column per flag; B (TAINT_BAD_PAGE) is column 5.
_TAINT_COLUMNS = 19
_TAINT_BAD_PAGE_COLUMN = 5


class Frame(NamedTuple):
    """One stack frame: a function of the workload, and the workload line it stands for."""

    func: str
    offset: int
    length: int
    path: str | None = None
    line: int | None = None

    def symbol(self) -> str:
        """The ``%pS`` text: ``func+0xOFF/0xLEN``."""
        return f"{self.func}+{self.offset:#x}/{self.length:#x}"

    def trace_line(self) -> str:
        where = f" {self.path}:{self.line}" if self.path else ""
        return f" {self.symbol()}{where}"


class StackDepot:
    """``stack_depot_save()``/``stack_depot_fetch()`` (lib/stackdepot.c): stacks by handle.

    kinspect's stacks are one frame each. Handle 0 means "no stack". A workload run replaces
    this depot with one that rebuilds frames from line numbers, so it stores nothing.
    """

    def __init__(self) -> None:
        self._frames: list[Frame | None] = [None]
        self._handles: dict[Frame, int] = {}

    def save(self, frame: Frame) -> int:
        handle = self._handles.get(frame)
        if handle is None:
            handle = self._handles[frame] = len(self._frames)
            self._frames.append(frame)
        return handle

    def fetch(self, handle: int) -> Frame | None:
        return self._frames[handle] if 0 < handle < len(self._frames) else None


class Track(NamedTuple):
    """``struct kasan_track``: the task and the stack of an allocation, free or aux event.

    The machine stores plain ``(pid, frame)`` tuples, which this type reads as they are.
    """

    pid: int
    frame: Frame | None  # None: stack depot handle 0, no stack saved


@dataclass
class BadAccess:
    """Everything a KASAN report says about one bad access (``struct kasan_report_info``)."""

    bug_type: str
    kind: str  # "Read", "Write" or "Free" (double/invalid free)
    addr: int  # access_addr
    size: int | None  # access_size (None for frees)
    first_bad_addr: int
    ip: Frame
    comm: str
    pid: int
    bits: int  # BITS_PER_LONG of the machine
    kernel_release: str
    hardware: str
    arch: str  # ArchProfile.arch: how show_stack() frames the stack
    tainted: bool = False  # TAINT_BAD_PAGE already set by an earlier report
    has_metadata: bool = True
    # describe_object()
    cache_name: str | None = None
    cache_object_size: int | None = None
    object_addr: int | None = None
    alloc_size: int | None = None
    alloc_track: Track | None = None
    free_track: Track | None = None
    aux_stacks: list[Track | None] = field(default_factory=list)  # None: track 0
    # globals, stacks, vmalloc
    variable: str | None = None
    stack_comm: str | None = None
    stack_frame_offset: int | None = None
    stack_frame_pc: Frame | None = None
    stack_frame_objects: list[tuple[int, int, str]] = field(default_factory=list)
    vmalloc_description: str | None = None
    # dump_page()
    pfn: int | None = None
    page_lines: list[str] = field(default_factory=list)
    # print_memory_metadata(): shadow rows from meta_row_start, 16 granules each
    meta_row_start: int = 0
    meta_rows: list[bytes] = field(default_factory=list)
    event_index: int | None = None  # the workload event that made it

    def to_json(self) -> dict:
        d = asdict(self)
        d["meta_rows"] = [row.hex(" ") for row in self.meta_rows]
        for key in ("addr", "first_bad_addr", "object_addr", "meta_row_start"):
            if d[key] is not None:
                d[key] = f"{d[key]:#x}"
        return d

    def region_description(self) -> tuple[int, str, str] | None:
        """(bytes, "to the left"/"to the right"/"inside", "allocated "/"freed "/"")."""
        if self.object_addr is None or self.alloc_size is None:
            return None
        return object_region(self.addr, self.object_addr, self.alloc_size, self.bug_type)


def object_region(
    addr: int, object_addr: int, alloc_size: int, bug_type: str
) -> tuple[int, str, str]:
    """describe_object_addr() (mm/kasan/report.c): rel_bytes, rel_type and region_state of
    an access at ``addr`` to the ``alloc_size``-byte object at ``object_addr``."""
    if addr < object_addr:
        rel = (object_addr - addr, "to the left")
    elif addr >= object_addr + alloc_size:
        rel = (addr - (object_addr + alloc_size), "to the right")
    else:
        rel = (addr - object_addr, "inside")
    state = {"slab-out-of-bounds": "allocated ", "slab-use-after-free": "freed "}.get(bug_type, "")
    return rel[0], rel[1], state


def _px(value: int, bits: int) -> str:
    return f"{value & ((1 << bits) - 1):0{bits // 4}x}"


def _taint_text(tainted: bool) -> str:
    if not tainted:
        return "Not tainted"
    cols = ["G"] + [" "] * (_TAINT_COLUMNS - 1)
    cols[_TAINT_BAD_PAGE_COLUMN] = "B"
    return "Tainted: " + "".join(cols)


# show_stack()'s lines around the frames, by ArchProfile.arch (Linux 6.12). kinspect's stacks
# are one frame each, printed as decode_stacktrace.sh prints a frame (symbol+off/len file:line).
CALL_TRACE_LINES: dict[str, tuple[list[str], list[str]]] = {
    # arch/x86/kernel/dumpstack.c show_trace_log_lvl(): "Call Trace:", then " <TASK>" ... " </TASK>"
    "x86_64": (["Call Trace:", " <TASK>"], [" </TASK>"]),
    # arch/arm64/kernel/stacktrace.c dump_backtrace(): "Call trace:"
    "arm64": (["Call trace:"], []),
    # arch/riscv/kernel/stacktrace.c show_stack(): "Call Trace:"
    "riscv64": (["Call Trace:"], []),
    # arch/powerpc/kernel/process.c show_stack(), arch/loongarch/kernel/traps.c
    # show_backtrace(), arch/s390/kernel/dumpstack.c show_stack(), arch/xtensa/kernel/traps.c
    # show_trace(), arch/um/kernel/sysrq.c show_stack(): "Call Trace:"
    "powerpc": (["Call Trace:"], []),
    "loongarch": (["Call Trace:"], []),
    "s390": (["Call Trace:"], []),
    "xtensa": (["Call Trace:"], []),
    "um": (["Call Trace:"], []),
    # arch/arm/kernel/traps.c dump_backtrace(): with CONFIG_ARM_UNWIND (the arm32 profile's
    # kernel has it) unwind_backtrace() prints the frames with no heading line
    "arm": ([], []),
}


def format_report(r: BadAccess) -> str:
    """The report exactly as the kernel prints it (between the two ``=====`` lines included)."""
    px = lambda v: _px(v, r.bits)  # noqa: E731
    out = [REPORT_SEPARATOR, f"BUG: KASAN: {r.bug_type} in {r.ip.symbol()}"]
    if r.kind == "Free":
        out.append(f"Free of addr {px(r.addr)} by task {r.comm}/{r.pid}")
    elif r.size:
        out.append(f"{r.kind} of size {r.size} at addr {px(r.addr)} by task {r.comm}/{r.pid}")
    else:
        out.append(f"{r.kind} at addr {px(r.addr)} by task {r.comm}/{r.pid}")
    out.append("")
    out.append(
        f"CPU: 0 UID: 0 PID: {r.pid} Comm: {r.comm} {_taint_text(r.tainted)} {r.kernel_release} #1"
    )
    if r.tainted:
        out.append("Tainted: [B]=BAD_PAGE")
    out.append(f"Hardware name: {r.hardware}")
    opening, closing = CALL_TRACE_LINES[r.arch]
    out += [*opening, r.ip.trace_line(), *closing]
    if not r.has_metadata:
        out.append(REPORT_SEPARATOR)
        return "\n".join(out)
    out.append("")
    # describe_object(): cache_name, object_addr and alloc_size are set together
    object_addr, alloc_size = r.object_addr, r.alloc_size
    if r.cache_name is not None and object_addr is not None and alloc_size is not None:
        for title, track in (("Allocated", r.alloc_track), ("Freed", r.free_track)):
            # describe_object_stacks(): a track is printed when its stack was saved
            if track is not None and track.frame is not None:
                out += [f"{title} by task {track.pid}:", track.frame.trace_line(), ""]
        for title, aux in zip(
            (
                "Last potentially related work creation:",
                "Second to last potentially related work creation:",
            ),
            r.aux_stacks,
        ):
            if aux is not None and aux.frame is not None:  # kasan_print_aux_stacks()
                out += [title, aux.frame.trace_line(), ""]
        rel_bytes, rel_type, state = object_region(r.addr, object_addr, alloc_size, r.bug_type)
        out += [
            f"The buggy address belongs to the object at {px(object_addr)}",
            f" which belongs to the cache {r.cache_name} of size {r.cache_object_size}",
            f"The buggy address is located {rel_bytes} bytes {rel_type} of",
            f" {state}{alloc_size}-byte region [{px(object_addr)}, {px(object_addr + alloc_size)})",
            "",
        ]
    if r.variable is not None:
        out += ["The buggy address belongs to the variable:", f" {r.variable}", ""]
    if r.stack_comm is not None:
        out.append(f"The buggy address belongs to stack of task {r.stack_comm}")
        if r.stack_frame_pc is not None:
            out += [
                f" and is located at offset {r.stack_frame_offset} in frame:",
                f" {r.stack_frame_pc.symbol()}",
                "",
            ]
            n = len(r.stack_frame_objects)
            out.append(f"This frame has {n} object{'s' if n != 1 else ''}:")
            out += [f" [{a}, {b}) '{name}'" for a, b, name in r.stack_frame_objects]
        out.append("")
    if r.vmalloc_description is not None:
        out += [f"The buggy address belongs to a {r.vmalloc_description}", ""]
    if r.page_lines:
        out.append("The buggy address belongs to the physical page:")
        out += r.page_lines
        out += ["page dumped because: kasan: bad access detected", ""]
    out.append("Memory state around the buggy address:")
    out += format_memory_state(r.meta_row_start, r.meta_rows, r.first_bad_addr, r.bits)
    out.append(REPORT_SEPARATOR)
    return "\n".join(out)


def format_memory_state(
    row_start: int, rows: list[bytes], first_bad_addr: int, bits: int
) -> list[str]:
    """``print_memory_metadata()``: rows labelled with memory addresses, ``^`` under the granule."""
    lines = []
    row_bytes = META_BYTES_PER_ROW * 8
    for i, data in enumerate(rows):
        row = row_start + i * row_bytes
        guilty = row <= first_bad_addr < row + row_bytes
        marker = ">" if guilty else " "
        lines.append(f"{marker}{_px(row, bits)}: " + " ".join(f"{b:02x}" for b in data))
        if guilty:
            off = 3 + 2 * (bits // 8) + 3 * ((first_bad_addr - row) // 8) + 1
            lines.append(" " * (off - 1) + "^")
    return lines
