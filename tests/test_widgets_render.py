"""Widgets rendered line by line, without an app (render_line / row text)."""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.text import Text

from kinspect.engine.memory import PageState
from kinspect.session import SchemeView
from kinspect.widgets import EventLog, PageMap, SessionPages, ShadowBytes
from kinspect.widgets.footprint import FootprintPlot, sparkline
from kinspect.widgets.palette import HOLE, OTHER_SHADOW
from kinspect.widgets.report_view import report_text
from kinspect.widgets.struct_page import describe_page
from kinspect.widgets.text_lines import _CONSOLE, StyledLines


class FakePages:
    """A PageSource: 64 pages from pfn 0x100, a hole at 0x110-0x117."""

    first_pfn = 0x100
    end_pfn = 0x140

    def __init__(self) -> None:
        self.codes = np.zeros(0x40, dtype=np.uint8)
        self.codes[0x00:0x04] = PageState.SLAB
        self.codes[0x04:0x08] = PageState.LARGE_KMALLOC
        self.codes[0x08] = PageState.SHADOW_SLAB
        self.codes[0x09] = OTHER_SHADOW
        self.codes[0x10:0x18] = HOLE
        self.codes[0x20] = PageState.RESERVED
        self.attached = {0x100, 0x101}

    def cells(self, first, ncells, ppc):
        out = np.full(ncells * ppc, HOLE, dtype=np.uint8)
        att = np.zeros(ncells, dtype=bool)
        for i in range(ncells * ppc):
            pfn = first + i
            if self.first_pfn <= pfn < self.end_pfn:
                out[i] = self.codes[pfn - self.first_pfn]
                if pfn in self.attached:
                    att[i // ppc] = True
        from kinspect.widgets.page_map import _CODE_OF_RANK, _RANK

        codes = _CODE_OF_RANK[_RANK[out].reshape(ncells, ppc).max(axis=1)]
        return codes, att

    def describe(self, pfn):
        return ""


def test_page_map_rows_show_state_glyphs_attach_marks_cursor_and_report():
    pm = PageMap(FakePages())
    pm._fixed_width = 16 + 7  # gutter "0x140 " is 6 wide: 16 columns fit
    assert pm.cols == 16 and pm.rows == 4
    pm.cursor = 0x120
    pm.report_pfn = 0x105
    assert pm.row_text(0) == "0x100 SSssl!ll@o······"
    assert pm.row_text(1) == "0x110 " + " " * 8 + "·" * 8
    assert pm.row_text(2) == "0x120 " + "#" + "·" * 15  # the cursor keeps its glyph
    assert pm.row_text(4) == " " * 22  # past the end: blank


def test_page_map_zoomed_out_cells_show_the_most_telling_page():
    pm = PageMap(FakePages())
    pm._fixed_width = 16 + 7
    pm.cursor = 0x13F
    pm.zoom = 2  # 4 pages per cell
    assert pm.rows == 1
    assert pm.row_text(0) == "0x100 Sl@·  ··#·······"


def test_page_map_over_a_real_session_marks_the_attached_slab_page(make_session):
    s = make_session(shown="pageptr")
    s.step(3)
    view = SchemeView(s, "pageptr")
    pm = PageMap(SessionPages(s, view))
    pm._fixed_width = 80
    buf_pfn = s.machine.addr_to_pfn(s.runner.values["buf"])
    row = pm.row_of(buf_pfn)
    text = pm.row_text(row)
    assert text[pm.gutter_width + pm.col_of(buf_pfn)] == "S"  # slab, block attached
    assert "@" in "".join(pm.row_text(pm.row_of(p)) for p in view.own_shadow)


def test_shadow_bytes_marks_the_bad_granule_like_the_kernel():
    data = bytes([0] * 12 + [4] + [0xFC] * 3) + bytes([0xFC]) * 16
    sb = ShadowBytes(bits=64, page_size=256)
    sb._fixed_width = 80
    base = 0xFFFF888000100000
    sb.show(
        lambda addr, size: (data + bytes([0xFB]) * size)[: size // 8],
        base + 8,
        selected=base + 8,
        bad=base + 12 * 8,
    )
    lines = sb.text().splitlines()
    assert lines[0] == ">ffff888000100000: 00 00 00 00 00 00 00 00 00 00 00 00 04 fc fc fc"
    assert lines[1] == " " * 55 + "^"
    assert lines[2] == " ffff888000100080: " + " ".join(["fc"] * 16)
    assert len(lines) == 256 // 8 // 16 + 1


def test_shadow_bytes_narrow_rows_and_no_shadow_note():
    sb = ShadowBytes(bits=32, page_size=128)
    sb._fixed_width = 30
    assert sb.per_row == 8
    sb.show(lambda a, n: bytes(range(n // 8)), 0xC0001000)
    assert sb.text().splitlines()[1] == " c0001040: 08 09 0a 0b 0c 0d 0e 0f"
    sb.show(None, None, note="no shadow: highmem has no direct map")
    assert sb.text() == "no shadow: highmem has no direct map"


def test_event_log_marks_position_reports_and_attach(make_session):
    s = make_session(shown="pageptr")
    log = EventLog()
    log.set_session(s, "pageptr")
    s.step(5)
    lines = log.text().splitlines()
    assert lines[5].startswith(" 6  + buf = kmalloc 100")  # attached (pageptr)
    assert lines[7].startswith(" 8 ▶! write buf+100 1")  # current, made a report
    assert lines[0].startswith(" 1    # kinspect's demo")  # comments are kept


def test_sparkline_scales_each_series_to_its_own_range():
    assert sparkline(np.array([5, 5, 5]), 10) == "───"
    assert sparkline(np.array([0, 7, 14]), 3) == "▁▄█"
    assert len(sparkline(np.arange(1000), 20)) == 20


def test_footprint_plot_lists_every_scheme_and_marks_the_shown_one(make_session):
    s = make_session(shown="pageptr")
    s.step(8)
    plot = FootprintPlot()
    plot.session = s
    text = "\n".join(line.text for line in plot.build_lines(100))
    for name in s.scheme_names:
        assert name in text
    assert "▶ pageptr" in text and "shadow blocks in use" in text


def test_struct_page_and_report_text(make_session):
    s = make_session(shown="pageptr")
    s.step(5)
    pfn = s.machine.addr_to_pfn(s.runner.values["buf"])
    text = describe_page(s, pfn).plain
    assert f"pfn {pfn:#x}" in text and "slab_cache kmalloc-128" in text
    assert "pageptr  block 0x" in text and "dump_page()" in text
    report = report_text(s.latest_report(), 1, 1, 8).plain
    assert "BUG: KASAN: slab-out-of-bounds in demo_probe" in report
    assert "report 1 of 1 · event 5 (line 8)" in report  # the fifth event made it
    assert s.latest_report().event_index == 4
    caret = next(
        line for line in report_text(s.latest_report()).split("\n") if line.plain.strip() == "^"
    )
    assert [caret.plain[span.start : span.end] for span in caret.spans] == ["^"]
    assert "No KASAN report yet" in report_text(None).plain


def test_styled_lines_are_the_lines_the_same_rich_text_renders_to():
    pieces = [
        ("struct page ", "bold"),
        ("pfn 0x10", "bold #87d7ff"),
        ("  phys 0x10000\n", ""),
        (" flags      ", "#8a8a8a"),
        ("0x0()\n", ""),
        ("a", ""),
        ("b\n\nc", ""),
        ("x\n", "bold"),
        ("", "bold"),
        ("y", ""),
        ("z", "bold"),
        ("\n", ""),
    ]
    text, lines = Text(), StyledLines()
    for piece, style in pieces:
        text.append(piece, style)
        lines.append(piece, style)
    assert lines.plain == text.plain
    assert lines.lines == list(Segment.split_lines(text.render(_CONSOLE, end="")))


def test_event_log_find_searches_the_rows_as_shown_any_case_with_wrap(make_session):
    s = make_session()
    log = EventLog()
    log.set_session(s, s.shown)
    rows = [text for _line, text, _index in log.lines]
    kfrees = [r for r, text in enumerate(rows) if "kfree" in text.lower()]
    assert len(kfrees) == 4
    assert log.find("KFREE", -1) == (kfrees[0], False)
    assert log.find("kFree", kfrees[0]) == (kfrees[1], False)  # after the row, not on it
    assert log.find("kfree", kfrees[-1]) == (kfrees[0], True)  # wrapped at the end
    assert log.find("kfree", kfrees[0], -1) == (kfrees[-1], True)  # and at the start
    assert log.find("kfree", kfrees[-1], -1) == (kfrees[-2], False)
    assert log.find("kfree", kfrees[0], 1, cancelled=lambda: True) is None
    assert log.find("no such text", 3) is None and log.find("", 3) is None
    only = rows.index(next(t for t in rows if "Every statement" in t))  # a comment: no event
    assert log.find("every STATEMENT", only) == (only, True)  # itself, after a lap
    assert log.position_of_row(only) == 0  # before the first event
    step5 = next(r for r, t in enumerate(rows) if "step 5" in t)
    assert log.position_of_row(step5) == log._row(step5)[2] + 1
    assert log.row_of_position(log.position_of_row(step5)) == step5 and log.row_of_position(0) == -1


def test_event_log_marks_the_found_text_in_its_row(make_session):
    s = make_session()
    log = EventLog()
    log.set_session(s, s.shown)
    row = log.find("KMALLOC 12000", -1)[0]
    plain = log.row_strip(row)
    log.set_found((row, "KMALLOC 12000"))
    marked = log.row_strip(row)
    assert marked.text == plain.text  # the same text...
    found = [seg for seg in marked if seg.text.lower() == "kmalloc 12000"]
    assert len(found) == 1  # ...its match a piece of its own (coloured in an app:
    # test_app's test_slash_finds_in_the_event_log...)
    assert not [seg for seg in plain if seg.text.lower() == "kmalloc 12000"]
