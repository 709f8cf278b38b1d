"""The report screen (``kinspect tui --report FILE``): the memory-state grid rendered line by
line, the screen driven by Pilot on the real reports of tests/data, and its command line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Static

from conftest import ROOT
from kinspect.app import ReportApp
from kinspect.cli import main
from kinspect.reports.explain import explain
from kinspect.reports.kreport import parse_reports
from kinspect.reports.reading import read_reports
from kinspect.reports.symbols import CACHE_ENV
from kinspect.screens.inspector import MainScreen
from kinspect.screens.report import ReportListScreen, ReportScreen
from kinspect.widgets.kreport_view import MemoryStateGrid, legend_text, stacks_text, summary_text
from kinspect.widgets.palette import BAD_GRANULE_PAINT, REGION_PAINT
from kinspect.widgets.text_lines import TextLines

KRUN = Path("tests/data/kernel-run/reports")
CORPUS = Path("tests/data/kasan-reports")
OOB_RIGHT = KRUN / "kmalloc_oob_right.txt"  # three reports
HWTAGS = CORPUS / "ext-09-arm64-hwtags-out-of-bounds-scan_block.txt"


@pytest.fixture(autouse=True)
def _at_root(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def _grid(path: Path, index: int = 0) -> MemoryStateGrid:
    rep = parse_reports(path, partial=True)[index]
    grid = MemoryStateGrid()
    grid.show(rep, explain(rep))
    return grid


# --------------------------------------------------------------------------- the grid


def test_grid_lines_are_the_kernels_with_the_region_drawn() -> None:
    grid = _grid(OOB_RIGHT)
    lines = [grid.render_line(y).text.rstrip() for y in range(6)]
    # the object's allocated 115-byte region [..5a00, ..5a73): '[' before its first granule,
    # ')' after the partial granule 03 that ends it; the kernel's '^' under the 03
    assert lines == [
        " ffff8880056e5900: 00 00 00 00 00 00 00 00 00 00 00 00 00 fc fc fc",
        " ffff8880056e5980: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc",
        ">ffff8880056e5a00:[00 00 00 00 00 00 00 00 00 00 00 00 00 00 03)fc",
        " " * 61 + "^",
        " ffff8880056e5a80: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc",
        " ffff8880056e5b00: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc",
    ]
    guilty = grid.render_line(2)
    cells = {seg.text: seg.style for seg in guilty if seg.text in ("03", "fc", "[", ")")}
    bad, outside, opening = cells["03"], cells["fc"], cells["["]
    assert bad is not None and outside is not None and opening is not None
    assert bad.bgcolor is not None and bad.bgcolor.name == BAD_GRANULE_PAINT.bg  # first bad
    assert bad.underline and not outside.underline  # inside / outside the region
    assert opening.color is not None and opening.color.name == REGION_PAINT.fg
    assert grid.describe(0xFFFF8880056E5A70).plain.startswith(
        "ffff8880056e5a70 (object+0x70): 03 first 3 bytes of the granule accessible"
    )


def test_grid_region_ending_on_a_row_boundary_and_tag_modes() -> None:
    grid = _grid(HWTAGS)  # 16-byte granules; region [..4e00, ..4f00)
    lines = grid.text().splitlines()
    assert lines[2] == (">ffff0000c0074e00:[f7 f7 f7 f7 f7 f7 f7 f7 f7 f7 f7 fe fe fe fe fe)")
    assert lines[3].index("^") == 19 + 3 * 11  # 0x...eb0: granule 11
    assert lines[4].startswith(" ffff0000c0074f00: fe")  # no ')' again below


def test_grid_32bit_and_without_a_dump() -> None:
    grid = _grid(CORPUS / "ext-03-arm32-stack-out-of-bounds-refresh_cpu_vm_stats.txt")
    rep = grid.report
    assert rep is not None and rep.guilty_row is not None and rep.caret_index is not None
    lines = grid.text().splitlines()
    caret = lines[rep.guilty_row + 1]
    assert lines[rep.guilty_row].startswith(">") and len(lines[0].split(":")[0]) == 9
    assert caret.index("^") == 8 + 3 + 3 * rep.caret_index  # 8 hex digits, as printed
    wild = _grid(CORPUS / "ext-14-riscv64-wild-memory-access-io_wq_worker_running.txt")
    assert wild.text() == "no memory-state dump in this report"
    assert wild.describe(wild.bad).plain == ""


def test_legend_and_stacks_texts() -> None:
    rep = parse_reports(KRUN / "kmalloc_uaf.txt")[0]
    exp = explain(rep)
    legend = legend_text(rep, exp).plain
    for b in exp.legend:
        assert f" {b.value:02x}  {b.name + ': ' if b.name else ''}{b.meaning}" in legend
    assert "the object's freed 16-byte region" in legend
    stacks = stacks_text(rep, None).plain
    assert (
        stacks.index("The access: Call Trace")
        < stacks.index("Allocated by task")
        < stacks.index("Freed by task")
        < stacks.index("The physical page")
    )
    assert rep.free_stack is not None
    assert all(f" {f}" in stacks for f in rep.free_stack.frames)


def test_summary_headline_names_the_bug_lines_function() -> None:
    # syzkaller titles every KUnit report "... in kunit_try_run_case"; the BUG line names the
    # test function, shown beside the title (and only where the two differ)
    rep = parse_reports(OOB_RIGHT)[0]
    head = summary_text(rep, explain(rep), 0, 3).plain.splitlines()[1]
    assert head == (
        "KASAN: slab-out-of-bounds Write in kunit_try_run_case (the BUG line: kmalloc_oob_right)"
    )
    syz = parse_reports(CORPUS / "syz-106-use-after-free-read-in-consume_skb.txt", partial=True)[0]
    assert (
        summary_text(syz, explain(syz), 0, 1).plain.splitlines()[1]
        == "KASAN: use-after-free Read in consume_skb"
    )


# --------------------------------------------------------------------------- the screen


def _app(path: Path, **kwargs) -> ReportApp:
    reports, _ = read_reports(str(path), **kwargs)
    return ReportApp(reports, str(path), symbolized=bool(kwargs))


def _summary(screen) -> str:
    return str(screen.query_one("#report-summary", Static).render())


async def test_the_screen_shows_the_report_and_goes_through_the_log() -> None:
    app = _app(OOB_RIGHT)
    reps = parse_reports(OOB_RIGHT)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReportScreen)
        summary = _summary(screen)
        assert reps[0].title is not None
        assert "report 1 of 3" in summary and reps[0].title in summary
        assert "Write of 1 byte at 0xffff8880056e5a73 by task kunit_try_catch/37" in summary
        grid = screen.query_one(MemoryStateGrid)
        assert grid.bad == reps[0].first_bad_addr == 0xFFFF8880056E5A70
        assert grid.object_region == (0xFFFF8880056E5A00, 0xFFFF8880056E5A73)
        info = str(screen.query_one("#granule-info", Static).render())
        assert "ffff8880056e5a70" in info and "the first bad granule" in info
        legend = str(screen.query_one("#legend", Static).render())
        assert all(b.meaning in legend for b in explain(reps[0]).legend)
        stacks = screen.query_one("#stacks", TextLines).plain
        assert "Allocated by task 37" in stacks and "kmalloc_oob_right+0x87/0x690" in stacks
        assert "page_type: f5(slab)" in stacks
        assert app.sub_title.endswith("report 1 of 3")

        await pilot.press("n")
        await pilot.pause()
        assert "report 2 of 3" in _summary(screen)
        assert grid.bad == reps[1].first_bad_addr and "5 bytes to the right" in _summary(screen)
        await pilot.press("n", "n")  # the last one: n does nothing more
        await pilot.pause()
        assert screen.index == 2 and screen.check_action("report", (1,)) is None
        await pilot.press("p")
        await pilot.pause()
        assert screen.index == 1

        await pilot.press("l")  # the list, by title
        await pilot.pause()
        assert isinstance(app.screen, ReportListScreen)
        options = app.screen.query_one(OptionList)
        assert options.option_count == 3 and options.highlighted == 1
        assert reps[2].title is not None
        assert reps[2].title in str(options.get_option_at_index(2).prompt)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.screen is screen and screen.index == 2
        assert grid.bad == reps[2].first_bad_addr


async def test_the_granule_cursor_says_what_each_byte_means() -> None:
    app = _app(KRUN / "kmalloc_uaf.txt")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        grid = screen.query_one(MemoryStateGrid)
        assert screen.check_action("report", (1,)) is False  # one report: no n/p
        await pilot.press("right")  # the cursor appears on the bad granule
        await pilot.pause()
        assert grid.selected == grid.bad == 0xFFFF888004E52708
        await pilot.press("left")
        await pilot.pause()
        info = str(screen.query_one("#granule-info", Static).render())
        assert info.startswith("ffff888004e52700 (object+0x0): fa KASAN_SLAB_FREE_META")
        await pilot.press("up", "right")  # the row above: another object's 07
        await pilot.pause()
        assert grid.selected == 0xFFFF888004E52688
        info = str(screen.query_one("#granule-info", Static).render())
        assert info.startswith("ffff888004e52688 (object-0x78): 07 first 7 bytes")
        await pilot.press("up", "up", "up")  # not past the dump's first row
        await pilot.pause()
        assert grid.selected == 0xFFFF888004E52608


async def test_inspect_opens_the_replay_and_escape_comes_back() -> None:
    import gc

    app = _app(KRUN / "kmalloc_uaf.txt")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        report_screen = app.screen
        assert gc.isenabled()  # no inspector, no idle collections: the usual GC
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert not gc.isenabled()  # the inspector collects in its idle time
        app.screen.idle_work_enabled = False
        session = app.session
        assert session is not None
        assert session.path == f"replay of {KRUN / 'kmalloc_uaf.txt'}:1"
        await pilot.press("r")
        await pilot.pause()
        assert [r.bug_type for r in session.reports] == ["slab-use-after-free"]
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is report_screen and app.session is None
        assert app.sub_title.endswith("report 1 of 1")
        assert gc.isenabled()


async def test_a_tag_based_report_cannot_be_replayed() -> None:
    app = _app(HWTAGS)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, ReportScreen)
        assert any("generic KASAN only" in n.message for n in app._notifications)
        legend = str(app.screen.query_one("#legend", Static).render())
        assert "memory tags (the pointer's tag: f7)" in legend
        assert "the access: inside the 256-byte region, at offset 176" in _summary(app.screen)


async def test_a_region_larger_than_the_dump_is_said_so() -> None:
    app = _app(CORPUS / "syz-226-use-after-free-read-in-rdma_listen.txt")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        pane = app.screen.query_one("#memory-pane")
        title = pane.border_title
        assert title is not None
        assert title.endswith("the region starts above · the region goes on below")
        grid = app.screen.query_one(MemoryStateGrid)
        assert "[" not in grid.text() and ")" not in grid.text()
        assert all(
            seg.style is not None and seg.style.underline
            for seg in grid.render_line(0)
            if len(seg.text) == 2
        )  # every granule in the region


needs_gcc = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("nm") is None, reason="needs gcc and binutils"
)


@needs_gcc
async def test_stacks_are_symbolized_with_a_vmlinux(tmp_path) -> None:
    """The fixture ELF of tests/data/symbols; one frame of the real report is pointed into it
    (as in test_report_command.test_report_with_vmlinux)."""
    src = ROOT / "tests" / "data" / "symbols" / "kasan_like.c"
    shutil.copy(src, tmp_path / src.name)
    vmlinux = tmp_path / "vmlinux"
    subprocess.run(
        ["gcc", "-g", "-O1", "-o", str(vmlinux), src.name],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    nm = subprocess.run(["nm", "-S", str(vmlinux)], capture_output=True, text=True).stdout
    size = next(
        int(p[1], 16)
        for p in (ln.split() for ln in nm.splitlines())
        if len(p) == 4 and p[3] == "kmalloc_oob_right"
    )
    frame = f"kmalloc_oob_right+0x10/{size:#x}"
    text = OOB_RIGHT.read_text().splitlines()[:80]
    report = tmp_path / "report.txt"
    report.write_text(
        "\n".join(ln.replace("kmalloc_oob_right+0x87/0x690", frame) for ln in text) + "\n"
    )
    app = _app(report, vmlinux=str(vmlinux))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        stacks = app.screen.query_one("#stacks", TextLines).plain
        alloc = stacks[stacks.index("Allocated by task 37") :]
        assert " poison_redzone kasan_like.c:" in alloc and "[inline]" in alloc
        assert f" {frame} kasan_like.c:" in alloc
        assert " kasan_save_stack+0x2f/0x50\n" in alloc  # not in this ELF: as printed
        title = app.screen.query_one("#stacks-pane").border_title
        assert title is not None and title.startswith("stacks, symbolized")


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def no_ui(monkeypatch):
    """ReportApp.run records the app instead of taking over the terminal."""
    started = []
    monkeypatch.setattr(ReportApp, "run", lambda self, *a, **k: started.append(self))
    return started


def test_tui_report_opens_the_report_screen(no_ui) -> None:
    assert main(["tui", "--report", str(OOB_RIGHT)]) == 0
    (app,) = no_ui
    assert [r.report.line for r in app.reports] == [r.line for r in parse_reports(OOB_RIGHT)]
    assert app.path == str(OOB_RIGHT) and not app.symbolized


def test_no_report_is_exit_1_like_kinspect_report(no_ui, capsys) -> None:
    neg = CORPUS / "syz-510-neg-general-protection-fault-in-__kernfs_remove.txt"
    assert main(["tui", "--report", str(neg)]) == 1
    assert main(["report", str(neg)]) == 1
    tui, report = capsys.readouterr().out.split("no KASAN report found\n", 1)
    assert tui == report.replace("no KASAN report found\n", "")
    assert tui.startswith("the log's first crash is not a KASAN report: general protection")
    assert not no_ui


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tui", "--report", "no/such.txt"], "no/such.txt: cannot read the file: No such file"),
        (["tui", "--report", "tests/data"], "tests/data: cannot read the file: Is a directory"),
        (["tui", "--report", "-"], "-: the UI reads its keys from standard input"),
        (["tui", "--vmlinux", "vmlinux"], "tui: --vmlinux and --modules symbolize"),
        (
            ["tui", "samples/workloads/demo.kw", "--report", str(OOB_RIGHT)],
            "tui: give a workload or --report FILE, not both",
        ),
        (
            ["tui", "--report", str(OOB_RIGHT), "--vmlinux", str(OOB_RIGHT)],
            f"{OOB_RIGHT}: not an ELF file",
        ),
        (
            ["tui", "--report", str(OOB_RIGHT), "--modules", "no/such/dir"],
            "no/such/dir: not a directory",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_the_ui(no_ui, capsys, argv, message) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"kinspect: {message}") and err.count("\n") == 1
    assert not no_ui


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_slash_finds_text_in_the_reports_and_again_goes_on(size) -> None:
    """Issue 11 A3: ``/`` searches the reports' text as the screen shows it (any case), on
    from the last match through the log and round; the stacks pane scrolls to the match."""
    from kinspect.screens.dialogs import PromptScreen
    from test_app import record_notes

    app = _app(OOB_RIGHT)
    notes = record_notes(app)
    reps = parse_reports(OOB_RIGHT)

    async def find(pilot, text: str) -> None:
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one("#prompt-input", Input).value = text
        await pilot.press("enter")
        await pilot.pause()

    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReportScreen) and reps[2].function is not None
        await find(pilot, reps[2].function.upper())  # only the third's BUG line
        assert screen.index == 2 and "report 3 of 3" in _summary(screen)
        seen = []
        for _ in range(4):
            await find(pilot, "PAGE_TYPE:")  # once in each report's page dump
            stacks = screen.query_one("#stacks", TextLines)
            assert screen.found is not None
            pane, line, text = screen.searched_lines(screen.index)[screen.found[1]]
            assert pane == "stacks" and "page_type:" in text
            row = stacks.row_of_line(line)
            top = int(stacks.scroll_offset.y)
            assert top <= row < top + stacks.size.height
            seen.append(screen.index)
        assert seen == [2, 0, 1, 2]
        assert [m.startswith("search wrapped: report 1, stacks: ") for m, _ in notes] == [
            False,
            False,
            True,
            False,
            False,
        ]
        await find(pilot, "no such text")
        assert screen.index == 2
        assert notes[-1] == ("not found: 'no such text'", "warning")
        titles = {c.title for c in app.get_system_commands(screen)}
        assert {"Find…", "Find next", "Find previous"} <= titles
