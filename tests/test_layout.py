"""The inspector's layout at the terminal sizes a newcomer meets (80x24, 120x40, 160x48): every
pane readable, the important keys in the footer, the workload's narration shown whole."""

from __future__ import annotations

import pytest
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.widgets._footer import FooterKey

from conftest import DEMO, ROOT
from kinspect.app import KinspectApp, ReportApp
from kinspect.engine.profile import load_profile
from kinspect.engine.workload import parse_workload
from kinspect.reports.reading import read_reports
from kinspect.screens.dialogs import PromptScreen
from kinspect.session import Session
from kinspect.widgets import EventLog, Narration, ShadowBytes, StructPageView
from kinspect.widgets.footer import KeyFooter
from kinspect.widgets.text_lines import WRAP_INDENT, fold_line

SIZES = [(80, 24), (120, 40), (160, 48)]


def make_app() -> KinspectApp:
    return KinspectApp(Session(load_profile("x86_64"), parse_workload(str(DEMO)), shown="pageptr"))


async def stepped(app, pilot, steps: int):
    await pilot.pause()
    screen = app.main
    screen.idle_work_enabled = False
    await pilot.press(*["space"] * steps)
    await pilot.pause()
    return screen


def comment_of_line(lineno: int) -> str:
    return DEMO.read_text().splitlines()[lineno - 1].split("#", 1)[1].strip()


def shown_text(widget) -> list[str]:
    """The lines a widget paints in its region, as text."""
    width, height = widget.size
    return [strip.text for strip in widget.render_lines(Region(0, 0, width, height))]


def squeezed(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("size", SIZES)
async def test_the_shadow_pane_shows_whole_rows(size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await stepped(app, pilot, 5)  # the report of buf+100: a caret row
        shadow = screen.query_one(ShadowBytes)
        assert shadow.per_row == (8 if size[0] < 100 else 16)  # 16: the kernel's row
        assert not shadow.show_horizontal_scrollbar
        assert shadow.virtual_size.width <= shadow.scrollable_content_region.width
        rows = shown_text(shadow)
        assert shadow.bad is not None and any(r.startswith(">") for r in rows)
        for y, row in enumerate(rows):
            assert row.rstrip() == shadow.line_strip(y + int(shadow.scroll_offset.y)).text.rstrip()


@pytest.mark.parametrize("size", [*SIZES, (120, 24)])
async def test_legends_are_whole_or_hidden(size):
    """A legend shows whole (? shows both) or not at all: none when narrow or short."""
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await stepped(app, pilot, 5)
        shadow = screen.query_one(ShadowBytes)
        for legend in (screen.query_one("#map-legend"), screen.query_one("#shadow-legend")):
            if legend.display:
                assert legend.size.height == legend.get_content_height(
                    legend.size, app.size, legend.size.width
                )
        short = size[1] < 30
        assert screen.query_one("#shadow-legend").display == (size[0] >= 100 and not short)
        assert screen.query_one("#map-legend").display == (size[0] >= 120 and not short)
        assert shadow.size.height >= 5


@pytest.mark.parametrize("size", SIZES)
async def test_the_struct_page_is_not_cut(size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await stepped(app, pilot, 5)
        await pilot.press("t")  # from the report to the struct page
        await pilot.pause()
        view = screen.query_one(StructPageView)
        assert view.display and view.size.width >= min(size[0], 82)
        width = view.scrollable_content_region.width
        lines = [Segment.get_line_length(line) for line in view._lines]
        assert max(lines) <= width
        assert squeezed("".join(s.text for line in view._lines for s in line)) == squeezed(
            view.plain
        )
        assert not view.show_horizontal_scrollbar


@pytest.mark.parametrize("size", SIZES)
async def test_the_status_line_shows_the_report_before_the_next_event(size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await stepped(app, pilot, 5)  # write buf+100 1: a report
        status = screen.query_one("#status")
        shown = shown_text(status)[0]
        assert "KASAN: slab-out-of-bounds" in shown
        assert status.plain.index("KASAN:") < status.plain.index("next:")


@pytest.mark.parametrize("size", SIZES)
async def test_the_footprint_fits_its_pane(size):
    from kinspect.widgets import FootprintPlot

    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await stepped(app, pilot, 5)
        await pilot.press("t", "t", "t")  # report -> ... -> footprint
        await pilot.pause()
        plot = screen.query_one(FootprintPlot)
        assert plot.display
        width = plot.scrollable_content_region.width
        assert max(line.cell_length for line in plot._lines) <= width
        assert not plot.show_horizontal_scrollbar


@pytest.mark.parametrize("size", SIZES)
async def test_the_narration_of_the_last_event_is_shown_whole(size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await stepped(app, pilot, 5)  # line 8: write buf+100 1  # step 5...
        narration = screen.query_one(Narration)
        assert narration.display and narration.size.width >= 30
        comment = comment_of_line(8)
        assert narration.narration == comment
        assert " ".join(" ".join(shown_text(narration)).split()) == comment


@pytest.mark.parametrize("size", [*SIZES, (100, 30), (119, 30)])  # and the breakpoints
async def test_the_footer_keeps_the_important_keys_whole(size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await stepped(app, pilot, 1)
        footer = screen.query_one(KeyFooter)
        keys = [k for k in footer.query(FooterKey) if k.display]
        for key in keys:
            assert footer.region.contains_region(key.region), key.key
        regions = sorted(k.region for k in keys)
        for left, right in zip(regions, regions[1:]):
            assert left.right <= right.x  # the palette key docked over none
        shown = {k.key for k in keys}
        assert {"j", "q", "question_mark", "right", "left", "r"} <= shown


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("key", ["g", "j", "b", "slash"])
async def test_dialog_hints_fit(size, key):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await stepped(app, pilot, 1)
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen)
        dialog = app.screen.query_one("#prompt")
        hint = app.screen.query_one("#prompt-hint")
        assert Region(0, 0, *size).contains_region(dialog.region)
        assert dialog.content_region.contains_region(hint.region)
        assert squeezed("".join(shown_text(hint))) == squeezed(app.screen.hint)


@pytest.mark.parametrize("size", SIZES)
async def test_the_report_screen_stacks_fold_to_their_pane(size):
    path = ROOT / "tests" / "data" / "kernel-run" / "reports" / "kmalloc_oob_right.txt"
    reports, _ = read_reports(str(path))
    app = ReportApp(reports, str(path))
    async with app.run_test(size=size) as pilot:
        await pilot.press("n")
        await pilot.pause()
        stacks = app.screen.query_one("#stacks")
        width = stacks.scrollable_content_region.width
        assert max(Segment.get_line_length(line) for line in stacks._lines) <= width
        assert squeezed("".join(s.text for line in stacks._lines for s in line)) == squeezed(
            stacks.plain
        )
        assert not stacks.show_horizontal_scrollbar


def test_narration_is_the_comment_of_the_last_event_or_the_nearest_above(make_session):
    s = make_session(shown="pageptr")
    log = EventLog()
    log.set_session(s, "pageptr")
    header = " ".join(comment_of_line(n) for n in (1, 2, 3))
    assert log.narration() == header  # before any event: the file's opening
    s.step(1)  # line 4, task demo 100: no comment
    assert log.narration() == header
    s.step(2)  # line 6: buf = kmalloc 100  # step 3...
    assert log.narration() == comment_of_line(6)
    s.step(3)  # line 9: expect ...: line 8's
    assert log.narration() == comment_of_line(8)


def test_narration_takes_the_comment_block_above_an_event(tmp_path):
    path = tmp_path / "w.kw"
    path.write_text("task t 1\n\n# the object\n# of the test\nbuf = kmalloc 8  # eight bytes\n")
    s = Session(load_profile("x86_64"), parse_workload(str(path)))
    log = EventLog()
    log.set_session(s, s.shown)
    assert log.narration() == ""  # nothing above the first event
    s.step(2)
    assert log.narration() == "the object of the test eight bytes"


async def test_folded_lines_stay_clear_of_a_scrollbar_the_fold_brings():
    """Eight lines fit the height; folded, nine do not: the vertical scrollbar that shows then
    resizes nothing, and the lines must already leave its columns free."""
    from textual.app import App

    from kinspect.widgets.text_lines import TextLines

    class Folding(App):
        CSS = "TextLines { width: 40; height: 8; }"

        def compose(self):
            yield TextLines(wrap=True)

    app = Folding()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(TextLines)
        view.set_text("\n".join(["short"] * 7 + ["word " * 12]))
        await pilot.pause()
        assert view.show_vertical_scrollbar and len(view._lines) > 8
        width = view.scrollable_content_region.width
        assert max(Segment.get_line_length(line) for line in view._lines) <= width


def test_fold_line_cuts_at_spaces_and_indents_the_rest():
    style = Style(bold=True)
    line = [Segment("flags ", style), Segment("0x0(zone=0) and a long tail of words")]
    pieces = fold_line(line, 20)
    texts = ["".join(s.text for s in piece) for piece in pieces]
    assert texts == ["flags 0x0(zone=0) ", "  and a long tail ", "  of words"]
    assert pieces[0][0] == Segment("flags ", style)  # styles kept
    assert all(Segment.get_line_length(p) <= 20 for p in pieces)
    assert fold_line(line, 80) == [line]
    frame = [Segment(" ? _raw_read_unlock_irqrestore+0x30/0x30")]
    assert ["".join(s.text for s in p) for p in fold_line(frame, 38)] == [
        " ? _raw_read_unlock_irqrestore+0x30/",
        " " * WRAP_INDENT + "0x30",
    ]
    word = [Segment("x" * 30)]  # no space: cut at the width
    assert ["".join(s.text for s in p) for p in fold_line(word, 12)] == [
        "x" * 12,
        " " * WRAP_INDENT + "x" * 10,
        " " * WRAP_INDENT + "x" * 8,
    ]
