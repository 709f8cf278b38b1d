"""Colours and glyphs of kinspect's views: every state has a colour AND a glyph (or its hex
value), so the views read the same in monochrome (NO_COLOR) and for colour-blind users.

Each widget declares its entries as ``COMPONENT_CLASSES`` (``pagemap--slab``,
``shadowbytes--redzone`` ...) whose default CSS is generated from these tables, so a theme or
``kinspect.tcss`` can restyle them; render_line() falls back to these tables when no app is
running (unit tests). These tables are data (a colour per page state and per shadow byte
value, which the views look up per cell); the views' other colours are component classes
styled in ``kinspect.tcss`` only.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style

from ..engine.kasan import (
    KASAN_ALLOCA_LEFT,
    KASAN_ALLOCA_RIGHT,
    KASAN_GLOBAL_REDZONE,
    KASAN_PAGE_FREE,
    KASAN_PAGE_REDZONE,
    KASAN_SLAB_FREE,
    KASAN_SLAB_FREE_META,
    KASAN_SLAB_REDZONE,
    KASAN_STACK_LEFT,
    KASAN_STACK_MID,
    KASAN_STACK_PARTIAL,
    KASAN_STACK_RIGHT,
    KASAN_VMALLOC_INVALID,
    POISON_VALUES,
)
from ..engine.memory import PageState


@dataclass(frozen=True)
class Paint:
    """One entry: a colour, an optional background, bold, and what it means."""

    name: str  # component-class suffix
    fg: str
    bg: str | None = None
    bold: bool = False
    glyph: str = ""
    meaning: str = ""
    short: str = ""  # for one-line legends

    @property
    def label(self) -> str:
        return self.short or self.meaning

    def rich(self) -> Style:
        return Style(color=self.fg, bgcolor=self.bg, bold=self.bold)

    def css(self, widget: str) -> str:
        rules = [f"color: {self.fg};"]
        if self.bg:
            rules.append(f"background: {self.bg};")
        rules.append("text-style: bold;" if self.bold else "text-style: none;")
        return f"{widget} > .{widget.lower()}--{self.name} {{ {' '.join(rules)} }}"


# ---------------------------------------------------------------------------- page map

# Display codes: PageState values, then two of the view's own.
HOLE = 9  # no RAM at this pfn (a hole between memory ranges)
OTHER_SHADOW = 10  # a shadow page of another scheme running in lockstep
NCODES = 11

# Aggregation when one cell holds several pages: the most telling state wins.
RANK = [0] * NCODES
for _rank, _code in enumerate(
    (
        HOLE,
        PageState.FREE,
        PageState.RESERVED,
        PageState.PAGE_ALLOC,
        PageState.VMALLOC,
        PageState.STACK,
        PageState.LARGE_KMALLOC,
        PageState.SLAB,
        PageState.PAGE_EXT,
        OTHER_SHADOW,
        PageState.SHADOW_SLAB,
    )
):
    RANK[_code] = _rank
CODE_OF_RANK = sorted(range(NCODES), key=lambda c: RANK[c])

PAGE_PAINTS: dict[int, Paint] = {
    HOLE: Paint("hole", "#444444", glyph=" ", meaning="no RAM (hole)"),
    PageState.FREE: Paint("free", "#5f6b77", glyph="·", meaning="free (buddy)", short="free"),
    PageState.RESERVED: Paint(
        "reserved", "#8a8a8a", glyph="#", meaning="reserved (kernel image)", short="reserved"
    ),
    PageState.PAGE_ALLOC: Paint(
        "page", "#5fafff", glyph="p", meaning="alloc_pages()", short="pages"
    ),
    PageState.VMALLOC: Paint(
        "vmalloc", "#87d7d7", glyph="v", meaning="vmalloc page", short="vmalloc"
    ),
    PageState.STACK: Paint("stack", "#d7af5f", glyph="k", meaning="kernel stack"),
    PageState.LARGE_KMALLOC: Paint(
        "large", "#ffaf5f", glyph="l", meaning="large kmalloc", short="large kmalloc"
    ),
    PageState.SLAB: Paint("slab", "#87d75f", glyph="s", meaning="slab"),
    PageState.PAGE_EXT: Paint("page-ext", "#af87ff", glyph="e", meaning="page_ext"),
    OTHER_SHADOW: Paint(
        "other-shadow",
        "#87875f",
        glyph="o",
        meaning="another scheme's shadow (lockstep)",
        short="other scheme's shadow",
    ),
    PageState.SHADOW_SLAB: Paint(
        "shadow",
        "#ff5fd7",
        bold=True,
        glyph="@",
        meaning="shadow storage of this scheme",
        short="shadow pages",
    ),
}
ATTACHED_PAINT = Paint(
    "attached", "#000000", bg="#5fd7af", glyph="", meaning="UPPERCASE: shadow block/page attached"
)
CURSOR_PAINT = Paint("cursor", "#000000", bg="#ffffff", bold=True, meaning="cursor")
REPORT_PAINT = Paint(
    "report", "#ffffff", bg="#d70000", bold=True, glyph="!", meaning="page of the last bad access"
)
ATTACHED_GLYPH = {
    c: p.glyph.upper() if p.glyph.isalpha() else p.glyph for c, p in PAGE_PAINTS.items()
}


# ------------------------------------------------------------------------ shadow bytes

SHADOW_PAINTS: dict[str, Paint] = {
    "ok": Paint("ok", "#6c7a86", meaning="00 accessible"),
    "partial": Paint("partial", "#ffd75f", bold=True, meaning="01-07 first N bytes accessible"),
    "redzone": Paint("redzone", "#ff5f5f", bold=True, meaning="fc slab redzone, fe page redzone"),
    "freed": Paint("freed", "#d787ff", bold=True, meaning="fb/fa freed object"),
    "free-page": Paint("free-page", "#5f5f87", meaning="ff freed page"),
    "vmalloc": Paint("vmalloc", "#5fafaf", meaning="f8 vmalloc invalid"),
    "global": Paint("global", "#ff8700", bold=True, meaning="f9 global redzone"),
    "stack": Paint("stack", "#d7af00", bold=True, meaning="f1-f4 stack redzones"),
    "alloca": Paint("alloca", "#d7875f", bold=True, meaning="ca/cb alloca redzones"),
    "other": Paint("other", "#ffffff", meaning="other"),
}
BAD_GRANULE_PAINT = Paint(
    "bad", "#ffffff", bg="#d70000", bold=True, meaning="the bad access's first bad granule"
)
SELECTED_GRANULE_PAINT = Paint(
    "selected", "#000000", bg="#ffffff", bold=True, meaning="selected granule"
)
REGION_PAINT = Paint(
    "region", "#5fd7ff", bold=True, meaning="the object's region [start, end) of a real report"
)

SHADOW_KIND: list[str] = ["other"] * 256
SHADOW_KIND[0] = "ok"
for _v in range(1, 8):
    SHADOW_KIND[_v] = "partial"
SHADOW_KIND[KASAN_SLAB_REDZONE] = "redzone"
SHADOW_KIND[KASAN_PAGE_REDZONE] = "redzone"
SHADOW_KIND[KASAN_SLAB_FREE] = "freed"
SHADOW_KIND[KASAN_SLAB_FREE_META] = "freed"
SHADOW_KIND[KASAN_PAGE_FREE] = "free-page"
SHADOW_KIND[KASAN_VMALLOC_INVALID] = "vmalloc"
SHADOW_KIND[KASAN_GLOBAL_REDZONE] = "global"
for _v in (KASAN_STACK_LEFT, KASAN_STACK_MID, KASAN_STACK_RIGHT, KASAN_STACK_PARTIAL):
    SHADOW_KIND[_v] = "stack"
for _v in (KASAN_ALLOCA_LEFT, KASAN_ALLOCA_RIGHT):
    SHADOW_KIND[_v] = "alloca"

# The legend, in the order a reader meets the values (hex shown, then meaning).
SHADOW_LEGEND: tuple[tuple[str, str, str], ...] = (
    ("00", "ok", "ok"),
    ("01-07", "partial", "partial"),
    ("fc", "redzone", "slab redzone"),
    ("fe", "redzone", "page redzone"),
    ("fb", "freed", "freed"),
    ("fa", "freed", "freed+meta"),
    ("ff", "free-page", "free page"),
    ("f8", "vmalloc", "vmalloc"),
    ("f9", "global", "global"),
    ("f1-f4", "stack", "stack"),
    ("ca/cb", "alloca", "alloca"),
)

# The kind of a real report's metadata byte by the name it was decoded to
# (kinspect.reports.explain): older kernels named some values otherwise (mm/kasan/kasan.h: fa was
# KASAN_GLOBAL_REDZONE before 5.8), and in the tag modes the bytes are memory tags.
_KIND_OF_NAME = {p.name: SHADOW_KIND[p.value] for p in POISON_VALUES}
_KIND_OF_NAME.update(
    {
        "KASAN_FREE_PAGE": "free-page",
        "KASAN_KMALLOC_REDZONE": "redzone",
        "KASAN_KMALLOC_FREE": "freed",
        "KASAN_GLOBAL_REDZONE": "global",
        "KASAN_USE_AFTER_SCOPE": "stack",
        "KASAN_VMALLOC_INVALID": "vmalloc",
        "KASAN_TAG_INVALID": "redzone",
        "KASAN_TAG_KERNEL": "ok",
    }
)


def report_byte_kind(meaning, tagged: bool = False, ptr_tag: int | None = None) -> str:
    """The ``SHADOW_PAINTS`` kind of one metadata byte of a real report, decoded for the
    report's era (an ``explain.ByteMeaning``).  ``tagged``: the byte is a memory tag (sw-tags,
    hw-tags), accessible when it matches the pointer's tag ``ptr_tag``."""
    if meaning.name is not None:
        return _KIND_OF_NAME.get(meaning.name, "other")
    if tagged:
        return "ok" if meaning.value == ptr_tag else "other"
    return SHADOW_KIND[meaning.value] if meaning.value < 8 else "other"


def component_css(widget: str, paints) -> str:
    return "\n".join(p.css(widget) for p in paints)
