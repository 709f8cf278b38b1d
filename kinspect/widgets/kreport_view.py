"""The parts of the report screen (``kinspect tui --report``): a real KASAN report's memory
state as a coloured grid, its decoded legend, its summary and its stacks.

The grid is the kernel's "Memory state around the buggy address" laid out as the kernel prints
it (``>`` before the guilty row, ``^`` under the first bad granule, the hex bytes in the same
columns), each byte coloured by what it means in the report's era and mode (the shadow bytes
view's colours, ``palette.report_byte_kind``), the first bad granule in red, and the object's
region ``[start, end)`` of the "located N bytes ... of ... region" line drawn: ``[`` before its
first granule, ``)`` after its last, its granules underlined.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..reports.explain import ByteMeaning, Explanation, headline
from ..reports.kreport import KasanReport, StackTrace
from .base_style import PaletteStyleMixin, unstyled
from .palette import (
    BAD_GRANULE_PAINT,
    REGION_PAINT,
    SELECTED_GRANULE_PAINT,
    SHADOW_PAINTS,
    component_css,
    report_byte_kind,
)

# The texts' roles (ReportScreen's component classes ``kreport--ROLE``, kinspect.tcss): "dim"
# (secondary facts, unreliable frames), "warn" (an incomplete report), "bug" (the bug type),
# "location" (a frame's file:line)
Styles = Callable[[str], Style]
_ITALIC = Style(italic=True)
TAG_MODES = ("sw-tags", "hw-tags", "tags")


class MemoryStateGrid(PaletteStyleMixin, ScrollView, can_focus=True):
    """The memory-state rows of one real report; a granule cursor (arrows, or a click) says
    what each byte means (:meth:`describe`)."""

    STYLE_PREFIX = "memorystategrid--"
    COMPONENT_CLASSES = {f"memorystategrid--{p.name}" for p in SHADOW_PAINTS.values()} | {
        "memorystategrid--bad",
        "memorystategrid--selected",
        "memorystategrid--region",
        # kinspect.tcss: a row's address, the guilty row's marker, the
        # granule's offset in the object and the no-dump note
        "memorystategrid--address",
        "memorystategrid--guilty",
        "memorystategrid--dim",
    }
    DEFAULT_CSS = "MemoryStateGrid { height: auto; }\n" + component_css(
        "MemoryStateGrid",
        [*SHADOW_PAINTS.values(), BAD_GRANULE_PAINT, SELECTED_GRANULE_PAINT, REGION_PAINT],
    )

    BINDINGS = [
        Binding("left", "move(-1)", "Granule left", show=False, id="grid.left"),
        Binding("right", "move(1)", "Granule right", show=False, id="grid.right"),
        Binding("up", "move(-16)", "Row up", show=False, id="grid.up"),
        Binding("down", "move(16)", "Row down", show=False, id="grid.down"),
    ]

    class GranuleSelected(Message):
        """The granule cursor moved to ``addr``."""

        def __init__(self, addr: int) -> None:
            super().__init__()
            self.addr = addr

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.report: KasanReport | None = None
        self.granule: int | None = None  # bytes per metadata byte; None: not known
        self.digits = 16
        self.bad: int | None = None  # the first bad granule (the '^')
        self.object_region: tuple[int, int] | None = None
        self.object_addr: int | None = None
        self.selected: int | None = None
        self.meanings: dict[int, ByteMeaning] = {}
        self.kinds: dict[int, str] = {}
        self._lines: list[Strip] = []
        self._line_rows: list[int] = []  # row index of each line, -1 for the caret line

    # ------------------------------------------------------------------ input

    def show(self, rep: KasanReport, exp: Explanation) -> None:
        """Show the dump of ``rep`` (no cursor until an arrow key puts it on the first bad
        granule)."""
        self.report = rep
        self.granule = rep.granule_size
        self.digits = rep.row_addr_digits or 16
        self.bad = exp.bad_granule
        lo, hi = rep.region_start, rep.region_end
        self.object_region = (lo, hi) if lo is not None and hi is not None and hi > lo else None
        self.object_addr = rep.object_addr if rep.object_addr is not None else lo
        tagged = rep.mode in TAG_MODES
        self.meanings = {b.value: b for b in exp.legend}
        self.kinds = {b.value: report_byte_kind(b, tagged, rep.ptr_tag) for b in exp.legend}
        self.selected = None
        self._rebuild()
        if self.is_mounted:
            self.scroll_to(0, 0, animate=False, immediate=True)

    @property
    def rows(self):
        return self.report.memory_rows if self.report is not None else []

    def value_at(self, addr: int) -> int | None:
        """The dumped byte of the granule holding ``addr``, or None (not in the dump)."""
        if self.report is None or self.granule is None:
            return None
        return self.report.metadata_byte(addr)

    def describe(self, addr: int | None) -> Text:
        """What the granule at ``addr`` is: its address, where it lies against the object,
        its byte and the byte's meaning."""
        t = Text()
        if addr is None:
            return t
        value = self.value_at(addr)
        if value is None:
            return t
        t.append(f"{addr:0{self.digits}x}", "bold")
        if self.object_addr is not None:
            off = addr - self.object_addr
            t.append(
                f" (object{'+' if off >= 0 else '-'}{abs(off):#x})", self.component_style("dim")
            )
        t.append(": ")
        t.append(f"{value:02x}", self.palette_style(SHADOW_PAINTS[self.kinds.get(value, "other")]))
        meaning = self.meanings.get(value)
        if meaning is not None:
            t.append(f" {meaning.name + ': ' if meaning.name else ''}{meaning.meaning}")
        if addr == self.bad:
            t.append("  ")
            t.append("^ the first bad granule", self.palette_style(BAD_GRANULE_PAINT))
        if self.object_region is not None and self.granule is not None:
            lo, hi = self.object_region
            if lo <= addr < hi:
                t.append("  ")
                t.append("[in the object's region)", self.palette_style(REGION_PAINT))
        return t

    # ------------------------------------------------------------------ cursor

    @property
    def current(self) -> int | None:
        """The granule described: the cursor's, else the first bad one."""
        return self.selected if self.selected is not None else self.bad

    def action_move(self, granules: int) -> None:
        if not self.rows or self.granule is None:
            return
        if self.selected is None:
            bad = self.bad
            start = bad if bad is not None and self.value_at(bad) is not None else self.rows[0].addr
            self._select(start)
            return
        new = self.selected + granules * self.granule
        if self.value_at(new) is not None:
            self._select(new)

    def _select(self, addr: int) -> None:
        self.selected = addr
        self._rebuild()
        self.post_message(self.GranuleSelected(addr))

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self.granule is None:
            return
        y = offset.y + int(self.scroll_offset.y)
        if not 0 <= y < len(self._line_rows) or self._line_rows[y] < 0:
            return
        k, r = divmod(offset.x + int(self.scroll_offset.x) - (self.digits + 3), 3)
        row = self.rows[self._line_rows[y]]
        if 0 <= k < len(row.values) and r < 2:
            self._select(row.addr + k * self.granule)

    # ------------------------------------------------------------------ drawing

    def on_mount(self) -> None:
        self.load_styles()
        self._rebuild()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.load_styles()
        self._rebuild()

    def _rebuild(self) -> None:
        lines: list[Strip] = []
        line_rows: list[int] = []
        rep = self.report
        if rep is None or not rep.memory_rows:
            lines.append(
                Strip(
                    [
                        Segment(
                            "no memory-state dump in this report",
                            self.component_style("dim") + _ITALIC,
                        )
                    ]
                )
            )
            line_rows.append(-1)
        else:
            for i, row in enumerate(rep.memory_rows):
                lines.append(self._row(row))
                line_rows.append(i)
                if (
                    self.bad is not None
                    and self.granule is not None
                    and row.addr <= self.bad < row.addr + self.granule * len(row.values)
                ):
                    lines.append(self._caret((self.bad - row.addr) // self.granule))
                    line_rows.append(-1)
        self._lines, self._line_rows = lines, line_rows
        width = max(s.cell_length for s in lines)
        self.virtual_size = Size(width, len(lines))
        self.refresh()

    def _sep(self, g: int, first: bool = False) -> str:
        """The separator column before granule ``g``: ``[`` where the region starts, ``)``
        where it ended in the granule before (not before a row's ``first`` granule: that
        ``)`` closes the row above)."""
        if self.object_region is None or self.granule is None:
            return " "
        lo, hi = self.object_region
        if g <= lo < g + self.granule:
            return "["
        if not first and g - self.granule < hi <= g:
            return ")"
        return " "

    def _row(self, row) -> Strip:
        base = self.base_style
        segs = [
            Segment(
                ">" if row.guilty else " ", self.component_style("guilty") if row.guilty else base
            ),
            Segment(f"{row.addr:0{self.digits}x}:", self.component_style("address")),
        ]
        region_style = self.palette_style(REGION_PAINT)
        underline = Style(underline=True)
        g = row.addr
        for k, v in enumerate(row.values):
            g = row.addr + k * (self.granule or 0)
            sep = self._sep(g, first=k == 0)
            segs.append(Segment(sep, region_style if sep != " " else base))
            if self.granule is not None and g == self.selected:
                style = self.palette_style(SELECTED_GRANULE_PAINT)
            elif self.granule is not None and g == self.bad:
                style = self.palette_style(BAD_GRANULE_PAINT)
            else:
                style = self.palette_style(SHADOW_PAINTS[self.kinds.get(v, "other")])
            if (
                self.object_region is not None
                and self.granule is not None
                and g < self.object_region[1]
                and g + self.granule > self.object_region[0]
            ):
                style = style + underline
            segs.append(Segment(f"{v:02x}", style))
        if self._sep(g + (self.granule or 0)) == ")":
            segs.append(Segment(")", region_style))
        return Strip(segs)

    def _caret(self, k: int) -> Strip:
        return Strip(
            [
                Segment(" " * (self.digits + 3 + 3 * k), self.base_style),
                Segment("^", self.palette_style(BAD_GRANULE_PAINT)),
            ]
        )

    def render_line(self, y: int) -> Strip:
        line = y + int(self.scroll_offset.y)
        width = self.size.width or self.virtual_size.width
        strip = self._lines[line] if 0 <= line < len(self._lines) else Strip([])
        x = int(self.scroll_offset.x)
        return strip.apply_style(self.base_style).crop_extend(x, x + width, self.base_style)

    def text(self) -> str:
        """Every line as plain text (tests)."""
        return "\n".join(s.text.rstrip() for s in self._lines)


# ----------------------------------------------------------------------------- texts


def summary_text(
    rep: KasanReport, exp: Explanation, index: int, total: int, style: Styles = unstyled
) -> Text:
    """The header of the report screen: which report, its title, the access, the machine,
    where the access fell."""
    t = Text()
    where = f"{rep.path or '<input>'}:{rep.line}"
    t.append(f"report {index + 1} of {total} · {where}", style("dim"))
    if not rep.complete:
        t.append(" · incomplete (no closing ===== line)", style("warn"))
    t.append("\n")
    t.append(headline(rep), "bold")
    t.append("\n")
    t.append(rep.bug_type, style("bug"))
    t.append(f" · {exp.access}\n")
    mode = {
        "generic": "generic KASAN",
        "sw-tags": "software tag-based KASAN",
        "hw-tags": "hardware tag-based KASAN (MTE)",
        "tags": "tag-based KASAN",
    }.get(exp.mode or "", "unknown KASAN mode")
    facts = [mode]
    if exp.granule:
        facts.append(
            f"one {'tag' if exp.mode in TAG_MODES else 'shadow byte'} per {exp.granule} bytes"
        )
    if rep.bits:
        facts.append(f"{rep.bits}-bit")
    facts.append(f"kernel {rep.kernel_release}" if rep.kernel_release else "kernel unknown")
    if rep.ptr_tag is not None:
        facts.append(f"pointer tag {rep.ptr_tag:02x}, memory tag {rep.mem_tag:02x}")
    t.append(", ".join(facts), style("dim"))
    for line in exp.where:
        t.append(f"\n{line}")
    if exp.unknown:
        t.append("\nunknown: " + "; ".join(exp.unknown), style("dim") + _ITALIC)
    return t


def legend_text(rep: KasanReport, exp: Explanation, style: Styles = unstyled) -> Text:
    """Every distinct byte of the dump with its colour and its meaning (explain's decoding),
    then the marks: the first bad granule and the object's region."""
    t = Text()
    if not exp.legend:
        t.append("no memory-state dump: nothing to decode", style("dim") + _ITALIC)
        return t
    tagged = rep.mode in TAG_MODES
    if tagged:
        t.append(
            "memory tags"
            + (f" (the pointer's tag: {rep.ptr_tag:02x})" if rep.ptr_tag is not None else ""),
            style("dim"),
        )
    else:
        t.append(f"decoded for {exp.era.label}; {exp.era.reason}", style("dim"))
    for b in exp.legend:
        t.append("\n")
        t.append(f" {b.value:02x} ", SHADOW_PAINTS[report_byte_kind(b, tagged, rep.ptr_tag)].rich())
        t.append(f" {b.name + ': ' if b.name else ''}{b.meaning}")
        if b.era_note:
            t.append(f"\n     ({b.era_note})", style("dim"))
    if exp.bad_granule is not None and exp.bad_meaning is not None:
        t.append("\n")
        t.append(f" {exp.bad_meaning.value:02x} ", BAD_GRANULE_PAINT.rich())
        t.append(f" ^ the first bad granule, {exp.bad_granule:#x}")
    if rep.region_start is not None and rep.region_end is not None:
        state = f"{rep.state} " if rep.state else ""
        t.append("\n")
        t.append(" [ ) ", REGION_PAINT.rich())
        t.append(
            f"the object's {state}{rep.region_size}-byte region [{rep.region_start:#x}, "
            f"{rep.region_end:#x}), underlined"
        )
    return t


_LOCATION_RE = re.compile(r" (\S+:(?:\d+|\?))$")


def _frame(t: Text, line: str, style: Styles) -> None:
    """One frame line: '?' frames (not reliable) dim, a file:line (symbolized or as syzbot
    prints it) coloured, '[inline]' dim."""
    inline = line.endswith(" [inline]")
    if inline:
        line = line[: -len(" [inline]")]
    m = _LOCATION_RE.search(line)
    head = line[: m.start()] if m else line
    t.append(" " + head, style("dim") if head.startswith("?") or inline else "")
    if m:
        t.append(" " + m.group(1), style("location"))
    if inline:
        t.append(" [inline]", style("dim"))
    t.append("\n")


def stacks_text(
    rep: KasanReport, stacks: dict[str, list[str]] | None, style: Styles = unstyled
) -> Text:
    """The access stack, the alloc, free and aux stacks (symbolized lines when ``stacks``
    holds them), then what the buggy address belongs to (stack frame, variable, vmalloc
    area, physical page) as the report says it."""
    t = Text()
    sections: list[tuple[str, StackTrace]] = []
    if rep.access_stack is not None:
        sections.append(("access stack", rep.access_stack))
    if rep.alloc_stack is not None:
        sections.append(("allocated", rep.alloc_stack))
    if rep.free_stack is not None:
        sections.append(("freed", rep.free_stack))
    sections += [(f"aux{i}", st) for i, st in enumerate(rep.aux_stacks)]
    for key, st in sections:
        head = st.header.rstrip(":") or "Call trace"
        if key == "access stack":
            head = f"The access: {head}"
        t.append(head + "\n", "bold underline")
        if not st.available:
            t.append(" (stack is not available)\n", style("dim") + _ITALIC)
        for line in (stacks or {}).get(key) or st.frames:
            _frame(t, line, style)
        t.append("\n")
    described = [
        ("The stack frame", rep.stack_lines),
        ("The variable", [rep.variable] if rep.variable else []),
        ("The vmalloc area", rep.vmalloc_lines),
        ("The physical page", rep.page_lines),
    ]
    for head, lines in described:
        if not lines:
            continue
        t.append(head + "\n", "bold underline")
        for line in lines:
            t.append(f" {line}\n")
        t.append("\n")
    if not t:
        t.append("this report has no stacks and no page", style("dim") + _ITALIC)
    return t
