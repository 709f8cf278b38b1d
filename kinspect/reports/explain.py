"""What a real KASAN report means: the shadow bytes decoded, the access placed against the
object, and the bug re-enacted in kinspect's engine.

* :func:`report_era` tells which kernel era printed the report (the meaning of some poison
  bytes changed: ``fa`` was a global redzone before about 5.8 and is a freed object's first
  granule since, ``f8`` was use-after-scope in 4.10-4.20 and is a vmalloc hole since 5.8),
  from the kernel release in the ``CPU:`` line or, failing that, from the report's wording.
* :func:`decode_shadow_byte` / :func:`decode_tag` give each metadata byte of the memory-state
  dump its meaning (the poison table of :mod:`kinspect.engine.kasan` for 6.12).
* :func:`explain` builds an :class:`Explanation`; :func:`format_explanation` prints it.
* :func:`replay_workload` writes a ``.kw`` workload that re-enacts the report (allocate an
  object of the reported cache and size, free it if the report says freed, then the access),
  and :func:`run_replay` runs it in the engine and compares the bug type and region line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kinspect.engine.kasan import KASAN_GRANULE_SIZE, find_poison_value
from kinspect.reports.kreport import KasanReport

__all__ = [
    "Era",
    "ByteMeaning",
    "Explanation",
    "ReplayPlan",
    "ReplayResult",
    "ReplayUnsupported",
    "report_era",
    "decode_shadow_byte",
    "decode_tag",
    "explain",
    "format_explanation",
    "headline",
    "format_memory_state",
    "pick_profile",
    "report_arch",
    "replay_workload",
    "run_replay",
]


# --------------------------------------------------------------------------- eras


@dataclass(frozen=True)
class Era:
    """The poison-value era of a report: "6.12" (about 5.8 and later, the table of 6.12),
    "5.0-5.7", "4.x" (the 4.12 table), or "unknown" (decoded with 6.12's table, the
    era-dependent bytes flagged).  ``reason`` says how it was told."""

    key: str
    version: tuple[int, int] | None
    reason: str

    @property
    def label(self) -> str:
        return {
            "6.12": "Linux 5.8 and later (6.12 names)",
            "5.0-5.7": "Linux 5.0-5.7",
            "4.x": "Linux 4.x (4.12 names)",
            "unknown": "unknown era (6.12 names)",
        }[self.key]


def report_era(rep: KasanReport) -> Era:
    """The era of a report, from its kernel release, else from how it is worded."""
    v = rep.kernel_version
    if v is not None:
        key = "4.x" if v < (5, 0) else ("5.0-5.7" if v < (5, 8) else "6.12")
        return Era(key, v, f"kernel {rep.kernel_release} in the CPU: line")
    if rep.bug_type == "slab-use-after-free":
        return Era("6.12", None, "the 'slab-use-after-free' title (Linux 6.3 and later)")
    if rep.state in ("allocated", "freed"):
        return Era("6.12", None, f"the '{rep.state}' region wording (Linux 6.3 and later)")
    if rep.bug_type in ("double-free", "invalid-free"):
        return Era(
            "6.12",
            None,
            f"the '{rep.bug_type}' title (split from 'double-free or invalid-free' in Linux 6.x)",
        )
    if rep.bug_type == "use-after-scope":
        return Era("4.x", None, "'use-after-scope' title (Linux 4.10-4.20)")
    return Era("unknown", None, "the report names no kernel release")


# --------------------------------------------------------------------------- bytes


@dataclass(frozen=True)
class ByteMeaning:
    """What one metadata byte of the memory-state dump means.

    ``name`` is the kernel's constant (for the era), ``accessible`` the number of accessible
    bytes of the granule (generic mode) or None, ``era_note`` a warning when the byte meant
    something else in another era and the era is not known.
    """

    value: int
    name: str | None
    meaning: str
    accessible: int | None = None
    era_note: str | None = None

    def to_json(self) -> dict:
        return {
            "value": f"{self.value:02x}",
            "name": self.name,
            "meaning": self.meaning,
            "accessible": self.accessible,
            "era_note": self.era_note,
        }


# mm/kasan/kasan.h as of 4.12 (as linux-mm patches of 2016-2018 quote it): name and meaning where
# they differ from 6.12.
_OLD_NAMES = {
    0xFF: ("KASAN_FREE_PAGE", "freed page"),
    0xFE: ("KASAN_PAGE_REDZONE", "redzone of a kmalloc_large allocation"),
    0xFC: ("KASAN_KMALLOC_REDZONE", "slab object redzone"),
    0xFB: ("KASAN_KMALLOC_FREE", "freed slab object"),
    0xFA: ("KASAN_GLOBAL_REDZONE", "global variable redzone"),
}
_ERA_DEPENDENT = {
    0xFA: "before Linux 5.8 fa was KASAN_GLOBAL_REDZONE (a global's redzone)",
    0xF9: "before Linux 5.8 f9 was KASAN_VMALLOC_INVALID (5.5-5.7) or unused",
    0xF8: "before Linux 5.8 f8 was KASAN_USE_AFTER_SCOPE (4.10-4.20) or unused",
}


def decode_shadow_byte(value: int, era: Era | None = None) -> ByteMeaning:
    """The meaning of a generic-mode shadow byte in the given era (default: 6.12)."""
    key = era.key if era is not None else "6.12"
    if value == 0:
        return ByteMeaning(
            0, None, f"all {KASAN_GRANULE_SIZE} bytes of the granule accessible", KASAN_GRANULE_SIZE
        )
    if 0 < value < KASAN_GRANULE_SIZE:
        return ByteMeaning(
            value,
            None,
            f"first {value} byte{'s' if value > 1 else ''} of the granule "
            f"accessible, the other {KASAN_GRANULE_SIZE - value} not (an object "
            "ends inside the granule)",
            value,
        )
    if key in ("4.x", "5.0-5.7"):
        if value in _OLD_NAMES:
            name, meaning = _OLD_NAMES[value]
            if key == "5.0-5.7" and value == 0xFF:
                name = "KASAN_FREE_PAGE"
            return ByteMeaning(value, name, meaning, 0)
        if value == 0xF9 and key == "5.0-5.7":
            return ByteMeaning(
                value,
                "KASAN_VMALLOC_INVALID",
                "inaccessible space in a vmap area (5.5 and later)",
                0,
            )
        if value == 0xF8 and key == "4.x":
            return ByteMeaning(
                value,
                "KASAN_USE_AFTER_SCOPE",
                "stack variable out of its scope (use-after-scope, 4.10+)",
                0,
            )
        if (
            value in (0xCA, 0xCB)
            and era is not None
            and era.version is not None
            and era.version < (4, 16)
        ):
            return ByteMeaning(value, None, "not a poison value before Linux 4.16", 0)
    p = find_poison_value(value)
    if p is not None:
        note = _ERA_DEPENDENT.get(value) if key == "unknown" else None
        return ByteMeaning(value, p.name, p.meaning, 0, note)
    return ByteMeaning(value, None, "not a known poison value (unknown-crash)", 0)


def decode_tag(value: int, ptr_tag: int | None) -> ByteMeaning:
    """The meaning of a memory tag in a tag-based (sw-tags/hw-tags) memory-state dump."""
    if value == 0xFF:
        return ByteMeaning(
            value, "KASAN_TAG_KERNEL", "match-all tag: accesses to this granule are never checked"
        )
    if value == 0xFE:
        return ByteMeaning(value, "KASAN_TAG_INVALID", "freed memory, or a redzone")
    if ptr_tag is not None:
        if value == ptr_tag:
            return ByteMeaning(value, None, f"memory tag {value:02x}: matches the pointer tag")
        return ByteMeaning(
            value,
            None,
            f"memory tag {value:02x}: another allocation (the pointer carries tag {ptr_tag:02x})",
        )
    return ByteMeaning(value, None, f"memory tag {value:02x}")


def _decode(rep: KasanReport, value: int, era: Era) -> ByteMeaning:
    if rep.mode in ("sw-tags", "hw-tags", "tags"):
        return decode_tag(value, rep.ptr_tag)
    return decode_shadow_byte(value, era)


# --------------------------------------------------------------------------- explanation


@dataclass
class Explanation:
    """Everything :func:`format_explanation` prints, as data."""

    era: Era
    mode: str | None
    granule: int | None
    access: str
    where: list[str] = field(default_factory=list)
    legend: list[ByteMeaning] = field(default_factory=list)
    bad_granule: int | None = None
    bad_meaning: ByteMeaning | None = None
    unknown: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "era": {"key": self.era.key, "label": self.era.label, "reason": self.era.reason},
            "mode": self.mode,
            "granule_size": self.granule,
            "access": self.access,
            "where": self.where,
            "shadow_legend": [b.to_json() for b in self.legend],
            "bad_granule": None if self.bad_granule is None else f"{self.bad_granule:#x}",
            "bad_granule_meaning": None if self.bad_meaning is None else self.bad_meaning.to_json(),
            "unknown": self.unknown,
        }


def _hx(v: int | None) -> str:
    return "?" if v is None else f"{v:#x}"


def headline(rep: KasanReport) -> str:
    """The report's title as syzkaller gives it, and the function of its BUG line beside it
    where the title names another one: syzkaller skips helpers (``kmalloc*``, ``kasan*``,
    ``memcpy``...) and, for a KUnit test, every frame down to ``kunit_try_run_case``, while
    the BUG line names the test function (``kmalloc_oob_right``)."""
    title = rep.title or f"KASAN: {rep.bug_type}"
    m = re.match(r"[A-Za-z0-9_]+", rep.function or "")
    if m is None or re.search(rf" in {m.group(0)}(?![A-Za-z0-9_])", title):
        return title
    return f"{title} (the BUG line: {m.group(0)})"


def _access_text(rep: KasanReport) -> str:
    if rep.access is None:
        return "the access: unknown (the report's access line is missing)"
    what = rep.access
    if rep.access == "Free":
        where = _hx(rep.buggy_addr) + (
            " (placed by the region line)"
            if rep.addr is None and rep.buggy_addr is not None
            else ""
        )
        return f"free of {where}" + (
            f" by task {rep.task}/{rep.pid}" if rep.task is not None else ""
        )
    size = "" if rep.size is None else f" of {rep.size} byte{'s' if rep.size != 1 else ''}"
    task = "" if rep.task is None else f" by task {rep.task}/{rep.pid}"
    fn = "" if not rep.function else f", in {rep.function}"
    return f"{what}{size} at {_hx(rep.addr)}{task}{fn}"


def _untagged(rep: KasanReport, addr: int) -> int:
    """``addr`` without its pointer tag: the tag modes (arm64) keep it in the top byte, and the
    report prints the object's address with ``kasan_reset_tag`` (top byte 0xff)."""
    if rep.mode in ("sw-tags", "hw-tags", "tags") and rep.bits == 64:
        return addr | (0xFF << 56)
    return addr


def _where_object(rep: KasanReport, out: list[str]) -> None:
    obj = rep.object_addr if rep.object_addr is not None else rep.region_start
    if obj is None:
        return
    slot = rep.cache_object_size
    region = rep.region_size
    cache = rep.cache_name or "?"
    state = f"{rep.state} " if rep.state else ""
    head = f"the object: {cache} object at {_hx(obj)}"
    if slot is not None:
        head += f" ({slot}-byte slot)"
    if region is not None:
        head += f"; {state}{region}-byte region [{_hx(rep.region_start)}, {_hx(rep.region_end)})"
    out.append(head)
    if rep.buggy_addr is None:
        return
    off = _untagged(rep, rep.buggy_addr) - obj
    end = off + (rep.size or 1)
    if rep.access == "Free":
        if off == 0:
            kind = (
                "a second free of the object"
                if "double" in rep.bug_type
                or rep.state == "freed"
                or rep.bug_type.startswith("double")
                else "a free of the object's start"
            )
            out.append(f"the free: {kind}")
        else:
            out.append(
                f"the free: a pointer {off:+d} bytes from the object's start, not to an "
                "object (invalid-free)"
            )
        return
    if off < 0:
        out.append(
            f"the access: {-off} bytes before the object's start (left of it, in the "
            "previous slot's redzone or metadata)"
        )
    elif region is not None and off < region:
        where = f"the access: inside the {state}{region}-byte region, at offset {off}"
        if end > region:
            where += f", running {end - region} byte{'s' if end - region != 1 else ''} past its end"
        out.append(where)
        if rep.state == "freed" or "use-after-free" in rep.bug_type:
            out.append("the object was freed: all of it is poisoned, any access is a bug")
    elif region is not None and slot is not None and off < slot:
        out.append(
            f"the access: at offset {off}, past the {region} bytes that were asked for "
            f"but inside the {slot}-byte slot (kmalloc rounds sizes up; those extra "
            "bytes are poisoned)"
        )
    elif region is None and slot is not None and off < slot:
        # (4.x layout: "Object at A, in cache C size: S" gives the slot, no region line)
        where = f"the access: inside the {slot}-byte object, at offset {off}"
        if end > slot:
            where += f", running {end - slot} byte{'s' if end - slot != 1 else ''} past its end"
        out.append(where)
        if "use-after-free" in rep.bug_type:
            out.append("the object was freed: all of it is poisoned, any access is a bug")
    elif slot is not None:
        out.append(
            f"the access: at offset {off}, {off - slot} bytes past the end of the "
            f"{slot}-byte slot (in the redzone after the object)"
        )
    elif region is not None:
        out.append(f"the access: at offset {off}, {off - region} bytes past the end of the region")
    if rep.rel_bytes is not None:
        out.append(
            f"the report: {rep.rel_bytes} bytes {rep.direction} of the {state}{region}-byte region"
        )


def _where(rep: KasanReport) -> tuple[list[str], list[str]]:
    out: list[str] = []
    unknown: list[str] = []
    if rep.object_addr is not None or rep.region_start is not None:
        _where_object(rep, out)
    if rep.variable is not None:
        out.append(f"a global variable: {rep.variable} (symbol+offset/size)")
    if rep.stack_task is not None:
        where = f"the stack of task {rep.stack_task}/{rep.stack_pid}"
        if rep.frame_function is not None:
            where += f", frame of {rep.frame_function} at offset {rep.frame_offset}"
        out.append(where)
        if rep.frame_objects and rep.frame_offset is not None:
            off = rep.frame_offset
            hit = [o for o in rep.frame_objects if o.start <= off < o.end]
            if hit:
                out.append(f"the access falls in '{hit[0].name}' [{hit[0].start}, {hit[0].end})")
            else:
                before = [o for o in rep.frame_objects if o.end <= off]
                after = [o for o in rep.frame_objects if o.start > off]
                near = []
                if before:
                    near.append(f"{off - before[-1].end} bytes after '{before[-1].name}'")
                if after:
                    near.append(f"{after[0].start - off} bytes before '{after[0].name}'")
                out.append(
                    "the access falls in a redzone between the frame's variables ("
                    + ", ".join(near)
                    + ")"
                    if near
                    else "the access falls outside every variable of the frame"
                )
    for line in rep.vmalloc_lines:
        out.append("vmalloc: " + line.replace("The buggy address belongs to ", ""))
    if rep.page_lines and not out:
        out.append("a page (no slab object): " + rep.page_lines[0])
    if not out:
        if rep.bug_type in ("null-ptr-deref", "user-memory-access", "wild-memory-access"):
            out.append(
                "an address without shadow memory: a wild pointer (null-ptr-deref below "
                "PAGE_SIZE, user-memory-access below TASK_SIZE, wild-memory-access "
                "elsewhere)"
            )
        else:
            unknown.append(
                "where the address lies (the report describes no object, variable, stack or page)"
            )
    return out, unknown


def explain(rep: KasanReport) -> Explanation:
    """The explanation of one report (what is unknown is said so, not guessed)."""
    era = report_era(rep)
    where, unknown = _where(rep)
    exp = Explanation(
        era=era,
        mode=rep.mode,
        granule=rep.granule_size,
        access=_access_text(rep),
        where=where,
        unknown=unknown,
    )
    seen: list[int] = []
    for row in rep.memory_rows:
        for v in row.values:
            if v not in seen:
                seen.append(v)
    exp.legend = [_decode(rep, v, era) for v in sorted(seen)]
    if rep.first_bad_addr is not None and rep.caret_value is not None:
        exp.bad_granule = rep.first_bad_addr
        exp.bad_meaning = _decode(rep, rep.caret_value, era)
    if not rep.memory_rows:
        exp.unknown.append("the shadow around the address (no memory-state dump)")
    for p in rep.problems:
        exp.unknown.append(f"line {p.line}: {p.message}")
    if rep.access is None:
        exp.unknown.append("the access (read/write/free, size)")
    return exp


def format_memory_state(rep: KasanReport) -> list[str]:
    """The dump rows, each followed (where it matters) by a marker line: ``==`` the object's
    region, ``..`` the rest of its slot, ``^^`` the first bad granule."""
    gran = rep.granule_size
    if not rep.memory_rows or gran is None:
        return []
    digits = rep.row_addr_digits or 16
    region: tuple[int, int, int] | None = None  # the object's start, end, slot's end
    obj = rep.object_addr if rep.object_addr is not None else rep.region_start
    if obj is not None and rep.region_size is not None:
        region = (obj, obj + rep.region_size, obj + (rep.cache_object_size or rep.region_size))
    bad = rep.first_bad_addr
    out = []
    for row in rep.memory_rows:
        mark = ">" if row.guilty else " "
        out.append(f"  {mark}{row.addr:0{digits}x}: " + " ".join(f"{v:02x}" for v in row.values))
        marks = []
        for k in range(len(row.values)):
            g = row.addr + k * gran
            if bad is not None and g <= bad < g + gran:
                marks.append("^^")
            elif region is not None and g < region[1] and g + gran > region[0]:
                marks.append("==")
            elif region is not None and g < region[2] and g + gran > region[0]:
                marks.append("..")
            else:
                marks.append("  ")
        line = "".join(f"{m} " for m in marks).rstrip()
        if line.strip():
            out.append("   " + " " * (digits + 2) + line)
    return out


def format_explanation(
    rep: KasanReport, exp: Explanation | None = None, stacks: dict[str, list[str]] | None = None
) -> str:
    """The text ``kinspect report`` prints for one report (after its title line)."""
    exp = exp or explain(rep)
    lines = []
    where = f"{rep.path or '<input>'}:{rep.line}"
    state = "complete" if rep.complete else "incomplete (no closing ===== line)"
    lines.append(f"  report: {where}, {state}")
    lines.append(f"  bug: {rep.bug_type}")
    lines.append(f"  access: {exp.access}")
    mode = {
        "generic": "generic KASAN (one shadow byte per 8 bytes)",
        "sw-tags": "software tag-based KASAN (one tag per 16 bytes)",
        "hw-tags": "hardware tag-based KASAN, MTE (one tag per 16 bytes)",
        "tags": "tag-based KASAN (one tag per 16 bytes; sw or hw cannot be told)",
    }.get(exp.mode or "", "unknown KASAN mode")
    facts = [mode]
    if rep.bits:
        facts.append(f"{rep.bits}-bit")
    facts.append(f"kernel {rep.kernel_release}" if rep.kernel_release else "kernel unknown")
    lines.append("  machine: " + ", ".join(facts))
    if rep.ptr_tag is not None:
        lines.append(f"  tags: pointer {rep.ptr_tag:02x}, memory {rep.mem_tag:02x}")
    for w in exp.where:
        lines.append(f"  {w}")
    if exp.legend:
        lines.append(f"  shadow bytes around it (decoded for {exp.era.label}; {exp.era.reason}):")
        for b in exp.legend:
            name = f"{b.name}: " if b.name else ""
            lines.append(f"    {b.value:02x}  {name}{b.meaning}")
            if b.era_note:
                lines.append(f"        ({b.era_note})")
    if exp.bad_granule is not None and exp.bad_meaning is not None:
        lines.append(
            f"  first bad granule: {exp.bad_granule:#x} (the '^'), "
            f"{exp.bad_meaning.value:02x}: {exp.bad_meaning.meaning}"
        )
    dump = format_memory_state(rep)
    if dump:
        lines.append(
            "  memory state (== the object's region, .. the rest of its slot, "
            "^^ the first bad granule):"
        )
        lines += dump
    for kind, st in (
        ("access stack", rep.access_stack),
        ("allocated", rep.alloc_stack),
        ("freed", rep.free_stack),
    ):
        if st is None:
            continue
        frames = (stacks or {}).get(kind) or st.frames
        head = f"  {kind}" + (f" by task {st.pid}" if st.pid is not None else "") + ":"
        if not st.available:
            lines.append(head + " (stack is not available)")
            continue
        lines.append(head)
        lines += [f"    {f}" for f in frames]
    for i, st in enumerate(rep.aux_stacks):
        frames = (stacks or {}).get(f"aux{i}") or st.frames
        lines.append(f"  {st.header.rstrip(':').lower()}:")
        lines += [f"    {f}" for f in frames]
    if rep.page_lines:
        lines.append("  page:")
        lines += [f"    {p}" for p in rep.page_lines]
    if exp.unknown:
        lines.append("  unknown: " + "; ".join(exp.unknown))
    return "\n".join(lines)


# --------------------------------------------------------------------------- replay


class ReplayUnsupported(Exception):
    """The report cannot be re-enacted by the engine (the reason is the message)."""


@dataclass
class ReplayPlan:
    """A workload that re-enacts a report, the profile to run it on, what to expect."""

    lines: list[str]
    profile: str
    expect_type: str
    expect_region: tuple[int, str, str, int] | None  # (bytes, direction, state, size)
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass
class ReplayResult:
    plan: ReplayPlan
    reports: list  # the engine's BadAccess records
    report_text: str  # the last one, formatted as the kernel would
    engine_type: str | None
    engine_region: tuple[int, str, str, int] | None
    type_matches: bool
    region_matches: bool | None  # None: the report has no region line

    @property
    def matches(self) -> bool:
        return self.type_matches and self.region_matches is not False

    def to_json(self) -> dict:
        return {
            "profile": self.plan.profile,
            "workload": self.plan.lines,
            "notes": self.plan.notes,
            "expect_type": self.plan.expect_type,
            "engine_type": self.engine_type,
            "expect_region": self.plan.expect_region,
            "engine_region": self.engine_region,
            "type_matches": self.type_matches,
            "region_matches": self.region_matches,
            "engine_report": self.report_text,
        }


# 4.x-5.x titles and their 6.12 names (get_bug_type: mm/kasan/report.c in 4.12,
# mm/kasan/report_generic.c in 6.12)
def _modern_type(rep: KasanReport) -> str:
    t = rep.bug_type
    if t == "use-after-free" and rep.cache_name is not None:
        return "slab-use-after-free"
    if t == "double-free or invalid-free":
        if rep.object_addr is not None and rep.buggy_addr == rep.object_addr:
            return "double-free"
        return "invalid-free"
    return t


_KMALLOC_RE = re.compile(
    r"^(?:dma-)?kmalloc-(?:(?:cg|rcl|rnd-\d{1,3})-)?(?P<size>\d{1,20})(?P<k>k?)$"
)
_NAME_RE = re.compile(r"[^A-Za-z0-9_.]")


def _word(text: str, fallback: str) -> str:
    w = re.sub(r"\s+", "_", text.strip())
    return w or fallback


def _ident(name: str, used: set[str]) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name) or "v"
    if not (ident[0].isalpha() or ident[0] == "_"):
        ident = "v_" + ident
    base, n = ident, 1
    while ident in used:
        n += 1
        ident = f"{base}_{n}"
    used.add(ident)
    return ident


def _off(var: str, off: int) -> str:
    return var if off == 0 else (f"{var}+{off:#x}" if off > 0 else f"{var}-{-off:#x}")


# What tells a report's architecture (the ARCH= of ArchProfile.arch), strongest first: the
# functions of its stacks that only one architecture has (entry code, fault handlers, the
# unwinder), then its Hardware name: line.
_ARCH_FRAMES = (
    (
        "arm64",
        re.compile(
            r"\b(?:el[01]h?_64_(?:sync|irq)\w*|el0t_64_\w+|el[01]_(?:svc|da|abort)\w*"
            r"|do_el0_svc|__arm64_sys_\w+|do_mem_abort|arch/arm64/)"
        ),
    ),
    (
        "x86_64",
        re.compile(
            r"\b(?:entry_SYSCALL_64\w*|entry_SYSENTER_compat\w*|__x64_sys_\w+"
            r"|do_syscall_64|asm_exc_\w+|asm_sysvec_\w+|arch/x86/)"
            r"|^</?TASK>$",
            re.M,
        ),
    ),
    ("riscv64", re.compile(r"\b(?:walk_stackframe|handle_exception|do_trap_\w+|arch/riscv/)")),
    (
        "arm",
        re.compile(
            r"\b(?:ret_fast_syscall|__irq_svc|__dabt_svc|vector_swi|arch/arm/)|"
            r"\) from \[<"
        ),
    ),
    (
        "powerpc",
        re.compile(
            r"\(unreliable\)|\b(?:ret_from_syscall|system_call_exception"
            r"|transfer_to_syscall|arch/powerpc/)"
        ),
    ),
    ("s390", re.compile(r"\b(?:__s390x_sys_\w+|__do_syscall|pgm_check_handler|arch/s390/)")),
)
_ARCH_HARDWARE = (
    ("riscv64", re.compile(r"riscv", re.I)),
    ("powerpc", re.compile(r"PowerMac|PowerPC|CHRP|PReP|\bMPC\d|\bP\d{4}\b|pSeries")),
    ("s390", re.compile(r"^IBM \d{4}\b")),
    ("arm64", re.compile(r"dummy-virt|Raspberry Pi [345]|QEMU KVM Virtual Machine")),
    ("x86_64", re.compile(r"QEMU Standard PC|Google Compute Engine|VMware|VirtualBox")),
    ("arm", re.compile(r"Generic DT based system|\(Device Tree\)$")),
)
#: The profile used for an architecture when the addresses do not choose among its profiles.
_ARCH_DEFAULT = {
    "x86_64": "x86_64",
    "arm64": "arm64-4k-48",
    "riscv64": "riscv64-sv39",
    "arm": "arm32",
    "powerpc": "ppc32",
}


def report_arch(rep: KasanReport) -> tuple[str | None, str]:
    """The architecture that printed the report (``ArchProfile.arch`` spelling: "x86_64",
    "arm64", "riscv64", "arm", "powerpc", "s390") and how it was told, or (None, why not).

    arm64 prints its trace as ``Call trace:`` (``dump_backtrace``, arch/arm64/kernel/
    stacktrace.c); the other signs are functions of the architecture's own entry and fault
    code in the stacks, and the ``Hardware name:`` line.
    """
    stacks = [rep.access_stack, rep.alloc_stack, rep.free_stack, *rep.aux_stacks]
    frames = "\n".join(f for st in stacks if st is not None for f in st.frames)
    for arch, pat in _ARCH_FRAMES:
        m = pat.search(frames)
        if m:
            return arch, f"'{m.group(0)}' in its stacks"
    if rep.access_stack is not None and rep.access_stack.header == "Call trace:":
        return "arm64", "its 'Call trace:' header"
    if rep.hardware:
        for arch, pat in _ARCH_HARDWARE:
            if pat.search(rep.hardware):
                return arch, f"Hardware name: {rep.hardware}"
    return None, "the report does not say which architecture printed it"


def _has_profile(arch: str) -> bool:
    from kinspect.engine.profile import list_profiles

    return any(p.arch == arch for p in list_profiles())


def pick_profile(rep: KasanReport) -> str:
    """The built-in profile that fits the report: its architecture (:func:`report_arch`) and
    word size, and among those the one whose direct map or vmalloc area holds the report's
    address.  Without an architecture: x86_64 (64-bit) or arm32 (32-bit), unless the address
    lies below its direct map, then the profile whose direct map starts nearest below it."""
    from kinspect.engine.profile import list_profiles

    bits = rep.bits or 64
    arch, _ = report_arch(rep)
    addr = rep.object_addr if rep.object_addr is not None else rep.buggy_addr
    profiles = [p for p in list_profiles() if p.bits == bits]
    fitting = [p for p in profiles if p.arch == arch]
    if arch is not None and fitting:
        default = _ARCH_DEFAULT.get(arch, fitting[0].name)
        if addr is not None:
            inside = [
                p
                for p in fitting
                if p.page_offset <= addr < p.kasan_shadow_start
                or p.vmalloc_start <= addr < p.vmalloc_end
            ]
            if len(inside) == 1:
                return inside[0].name
        return default if any(p.name == default for p in fitting) else fitting[0].name
    fallback = "x86_64" if bits == 64 else "arm32"
    below = [p for p in profiles if addr is not None and p.page_offset <= addr]
    if not below or any(p.name == fallback for p in below):
        return fallback
    top = max(p.page_offset for p in below)
    return next(p.name for p in below if p.page_offset == top)


def _region_of(rep: KasanReport) -> tuple[int, str, str, int] | None:
    if rep.rel_bytes is None or rep.region_size is None:
        return None
    return (rep.rel_bytes, rep.direction or "", rep.state or "", rep.region_size)


def replay_workload(rep: KasanReport, profile: str | None = None) -> ReplayPlan:
    """A ``.kw`` workload (docs/workloads.md) that re-enacts the report in the engine.

    Raises :class:`ReplayUnsupported` when the report does not say enough (or describes a
    tag-based mode, which the engine does not simulate).
    """
    if rep.mode in ("sw-tags", "hw-tags", "tags"):
        raise ReplayUnsupported(
            f"a {rep.mode} report: kinspect's engine simulates generic KASAN only"
        )
    addr = rep.buggy_addr
    if addr is None:
        raise ReplayUnsupported("the report gives no address")
    prof = profile or pick_profile(rep)
    expect = _modern_type(rep)
    notes: list[str] = []
    arch, how = report_arch(rep)
    if profile is None and arch is not None and not _has_profile(arch):
        notes.append(
            f"the report is from {arch} ({how}), which kinspect has no profile for: {prof} is used"
        )
    if expect != rep.bug_type:
        notes.append(
            f"'{rep.bug_type}' is called '{expect}' by Linux 6.12, which the engine simulates"
        )
    task = _word(rep.task or rep.stack_task or "kinspect", "kinspect")
    pid = rep.pid if rep.pid is not None else (rep.stack_pid if rep.stack_pid is not None else 1)
    func = "replayed_function"
    flen = 0x400
    if rep.function:
        m = re.match(
            r"^(?P<name>[A-Za-z_][\w.]*)(?:\+0x[0-9a-f]+/(?P<len>0x[0-9a-f]{1,16}))?", rep.function
        )
        if m:
            func = m.group("name")
            if m.group("len"):
                flen = max(int(m.group("len"), 16), 0x100)
    lines = [
        f"# kinspect report --replay: {rep.path or '<input>'}:{rep.line}",
        f"# {rep.title or 'KASAN: ' + rep.bug_type}",
        f"task {task} {pid}",
        f"func {func} {flen:#x}",
    ]
    size = rep.size if rep.size else 1
    acc = {"Read": "read", "Write": "write"}.get(rep.access or "", "read")
    region = _region_of(rep)
    obj = rep.object_addr if rep.object_addr is not None else rep.region_start
    if obj is not None and (rep.cache_name is not None or rep.region_size is not None):
        cache = rep.cache_name or ""
        km = _KMALLOC_RE.match(cache)
        freed = rep.state == "freed" or "use-after-free" in expect or expect == "double-free"
        if km or not cache:
            if rep.region_size is not None and not (freed and rep.state != "freed"):
                asize = rep.region_size
            elif km:
                asize = int(km.group("size")) * (1024 if km.group("k") else 1)
            else:
                asize = rep.cache_object_size or rep.region_size or 8
            if km and rep.state == "freed" and rep.cache_object_size:
                asize = rep.cache_object_size
            lines.append(f"p = kmalloc {asize}")
            free = "kfree p"
        else:
            osize = rep.cache_object_size or rep.region_size or 8
            name = _NAME_RE.sub("_", cache)
            lines.append(f"c = kmem_cache_create {name} {osize}")
            lines.append("p = kmem_cache_alloc c")
            free = "kmem_cache_free c p"
        lines.append("expect none")
        off = addr - obj
        if rep.access == "Free":
            if expect == "double-free":
                lines += [free, "expect none", free]
            else:
                lines.append(
                    f"kfree {_off('p', off)}"
                    if free == "kfree p"
                    else f"kmem_cache_free c {_off('p', off)}"
                )
        else:
            if freed:
                lines += [free, "expect none"]
            lines.append(f"{acc} {_off('p', off)} {size}")
        lines.append(f"expect {expect}")
    elif rep.variable is not None:
        m = re.match(
            r"^(?P<name>[A-Za-z_][\w.]*)\+(?P<off>0x[0-9a-f]+)/(?P<len>0x[0-9a-f]+)", rep.variable
        )
        if not m:
            raise ReplayUnsupported(f"cannot read the variable line {rep.variable!r}")
        off = int(m.group("off"), 16)
        vsize = _accessible_from(rep, addr - off) or off
        name = _ident(m.group("name"), set())
        lines += [
            f"g = global {name} {vsize}",
            f"{acc} {_off('g', off)} {size}",
            f"expect {expect}",
        ]
        if _accessible_from(rep, addr - off) is None:
            notes.append(f"the variable's size is not in the report: {vsize} bytes assumed")
    elif rep.frame_objects:
        used: set[str] = set()
        decl = []
        var_of = []
        for o in rep.frame_objects:
            v = _ident(o.name, used)
            decl.append(f"{v}@{o.start}:{max(o.end - o.start, 1)}")
            var_of.append((o, v))
        lines.append("frame " + " ".join(decl))
        off = rep.frame_offset if rep.frame_offset is not None else 0
        o, v = min(var_of, key=lambda ov: abs(ov[0].start - off))
        lines += [f"{acc} {_off(v, off - o.start)} {size}", f"expect {expect}"]
    elif rep.vmalloc_lines:
        m = re.search(r"starting at 0x(?P<start>[0-9a-f]+)", " ".join(rep.vmalloc_lines))
        if not m:
            raise ReplayUnsupported("the vmalloc region's start is not in the report")
        start = int(m.group("start"), 16)
        off = addr - start
        vsize = _accessible_from(rep, start) or off
        lines += [
            f"v = vmalloc {max(vsize, 1)}",
            f"{acc} {_off('v', off)} {size}",
            f"expect {expect}",
        ]
    elif expect in ("null-ptr-deref", "user-memory-access", "wild-memory-access"):
        lines += [f"{acc} {addr:#x} {size}", f"expect {expect}"]
    elif rep.access == "Free" and (rep.page_lines or expect in ("double-free", "invalid-free")):
        lines += _page_free_replay(rep, addr, expect, _page_size(prof), notes)
    elif expect == "alloca-out-of-bounds":
        layout = _alloca_layout(rep, addr)
        if layout is None:
            raise ReplayUnsupported("no alloca redzone (ca) next to the address in the dump")
        buf, asize = layout
        lines += [
            f"a = alloca {max(asize, 1)}",
            f"{acc} {_off('a', addr - buf)} {size}",
            f"expect {expect}",
        ]
    elif rep.page_lines and expect == "slab-out-of-bounds":
        # a large kmalloc (straight from the page allocator): its tail is poisoned fe.  The
        # object starts on a page; two whole pages before the bad one are assumed (so that it
        # is above KMALLOC_MAX_CACHE_SIZE), then what the dump shows accessible in this page.
        page = _page_size(prof)
        in_page = addr & (page - 1)
        acc_here = _accessible_from(rep, addr - in_page)
        if acc_here is None:
            acc_here = in_page
            notes.append(
                "the page start is not in the dump: the object is assumed to end at the access"
            )
        lines += [
            f"p = kmalloc {2 * page + acc_here}",
            "expect none",
            f"{acc} {_off('p', 2 * page + in_page)} {size}",
            f"expect {expect}",
        ]
        notes.append(
            "a large kmalloc without a slab object: its size before this page "
            "is not in the report (two pages assumed)"
        )
    elif rep.page_lines and expect == "use-after-free":
        page = _page_size(prof)
        off = addr & (page - 1)
        lines += [
            "p = alloc_pages 0",
            "__free_pages p 0",
            "expect none",
            f"{acc} {_off('p', off)} {size}",
            f"expect {expect}",
        ]
        notes.append("a freed page without a slab object: one order-0 page assumed")
    else:
        raise ReplayUnsupported(
            "the report describes no object, variable, stack frame, "
            "vmalloc area or page to allocate"
        )
    return ReplayPlan(lines, prof, expect, region, notes)


def _page_order(rep: KasanReport) -> int:
    for line in rep.page_lines:
        m = re.search(r"\border:(\d{1,20})\b", line)
        if m:
            return int(m.group(1))
    return 0


def _page_free_replay(
    rep: KasanReport, addr: int, expect: str, page: int, notes: list[str]
) -> list[str]:
    """A free of pages (a large kmalloc, or a mempool of them) freed twice or at a bad
    pointer.  Which allocator: the access stack says (mempool_free, poison_pages)."""
    frames = " ".join(rep.access_stack.frames) if rep.access_stack else ""
    off = addr & (page - 1)
    if "mempool_free" in frames:
        order = _page_order(rep)
        if "poison_pages" in frames:
            out = [f"pool = mempool_create_page_pool 4 {order}"]
            notes.append(
                f"a mempool of order-{order} pages (the access stack frees pages "
                "through mempool_free)"
            )
        else:
            out = [f"pool = mempool_create_kmalloc_pool 4 {2 * page + 1}"]
            notes.append(
                "a mempool of large kmalloc elements (the access stack goes through "
                "mempool_free); their size is not in the report"
            )
        # (one element taken first, so that the freed one goes back to a non-full reserve)
        out += ["x = mempool_alloc pool", "e = mempool_alloc pool", "expect none"]
        if expect == "double-free":
            out += ["mempool_free e pool", "expect none", "mempool_free e pool"]
        else:
            out += [f"mempool_free {_off('e', off or page)} pool"]
        return out + [f"expect {expect}"]
    notes.append("a large kmalloc (no slab object): its size is not in the report")
    out = [f"p = kmalloc {2 * page + 10}", "expect none"]
    if expect == "double-free":
        out += ["kfree p", "expect none", "kfree p"]
    else:
        out += [f"kfree {_off('p', off or page)}"]
    return out + [f"expect {expect}"]


def _alloca_layout(rep: KasanReport, addr: int) -> tuple[int, int] | None:
    """(buffer start, accessible size) of the alloca next to the address: the end of the
    nearest run of ``ca`` (KASAN_ALLOCA_LEFT) granules in the dump."""
    cells = rep.metadata_bytes()
    if rep.granule_size != KASAN_GRANULE_SIZE:
        return None
    ends = [
        cells[i + 1][0]
        for i in range(len(cells) - 1)
        if cells[i][1] == 0xCA and cells[i + 1][1] != 0xCA
    ]
    if not ends:
        return None
    buf = min(ends, key=lambda a: abs(a - addr))
    size = _accessible_from(rep, buf)
    return None if size is None else (buf, size)


def _page_size(profile: str) -> int:
    from kinspect.engine.profile import load_profile

    try:
        return load_profile(profile).page_size
    except Exception:  # noqa: BLE001 - a guess is fine here
        return 4096


def _accessible_from(rep: KasanReport, start: int) -> int | None:
    """Accessible bytes from ``start`` per the dump (generic shadow), or None."""
    if rep.granule_size != KASAN_GRANULE_SIZE or rep.metadata_byte(start) is None:
        return None
    n = 0
    g = start
    while True:
        v = rep.metadata_byte(g)
        if v is None:
            return None
        if v == 0:
            n += KASAN_GRANULE_SIZE
        else:
            if 0 < v < KASAN_GRANULE_SIZE:
                n += v
            return n
        g += KASAN_GRANULE_SIZE


def run_replay(plan: ReplayPlan, path: str = "<replay>") -> ReplayResult:
    """Run a replay workload in the engine; compare its last report with the expectation."""
    from kinspect.engine.machine import Machine
    from kinspect.engine.profile import load_profile
    from kinspect.engine.report import format_report
    from kinspect.engine.workload import WorkloadRunner, parse_workload

    machine = Machine(load_profile(plan.profile))
    runner = WorkloadRunner(machine, parse_workload(path, plan.lines))
    runner.run()
    reports = list(machine.reports)
    last = reports[-1] if reports else None
    engine_region = None
    if last is not None:
        rd = last.region_description()
        if rd is not None and last.alloc_size is not None:
            engine_region = (rd[0], rd[1], rd[2].strip(), last.alloc_size)
    type_ok = last is not None and last.bug_type == plan.expect_type
    region_ok: bool | None = None
    if plan.expect_region is not None:
        exp = plan.expect_region
        if engine_region is None:
            region_ok = False
        else:
            region_ok = (
                engine_region[:2] == exp[:2]
                and engine_region[3] == exp[3]
                and (not exp[2] or engine_region[2] == exp[2])
            )
    return ReplayResult(
        plan,
        reports,
        format_report(last) if last is not None else "",
        last.bug_type if last is not None else None,
        engine_region,
        type_ok,
        region_ok,
    )
