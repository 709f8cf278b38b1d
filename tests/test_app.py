"""The app, driven by Pilot: keys in, state out."""

from __future__ import annotations

from conftest import DEMO
from kinspect.app import KinspectApp
from kinspect.engine.profile import load_profile
from kinspect.engine.workload import parse_workload
from kinspect.screens.dialogs import HelpScreen, PromptScreen
from kinspect.screens.inspector import MainScreen
from kinspect.session import Session, registered_schemes
from kinspect.widgets import PageMap, ShadowBytes


def make_app(shown: str | None = "pageptr", path: str = str(DEMO)) -> KinspectApp:
    session = Session(load_profile("x86_64"), parse_workload(path), shown=shown)
    app = KinspectApp(session)
    return app


async def answer(app, pilot, key: str, text: str) -> None:
    """Open a prompt with ``key``, type ``text`` into it and press enter."""
    await pilot.press(key)
    await pilot.pause()
    assert isinstance(app.screen, PromptScreen)
    app.screen.query_one("#prompt-input").value = text
    await pilot.press("enter")
    await pilot.pause()


def record_notes(app) -> list[tuple[str, str]]:
    """(message, severity) of every notification from now on (``app._notifications`` drops
    them as they time out: a slow run would lose them)."""
    notes = []
    notify = app.notify

    def recording(message, *args, **kwargs):
        notes.append((str(message), kwargs.get("severity", "information")))
        return notify(message, *args, **kwargs)

    app.notify = recording
    return notes


async def started(app, pilot) -> MainScreen:
    await pilot.pause()
    screen = app.main
    screen.idle_work_enabled = False
    return screen


async def after_kmalloc(app, pilot):
    """Started, three steps in (``buf = kmalloc 100`` applied): (screen, session, buf)."""
    screen = await started(app, pilot)
    await pilot.press("space", "space", "space")
    await pilot.pause()
    return screen, app.session, app.session.runner.values["buf"]


async def test_step_and_back_move_the_position_and_the_views():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        s = app.session
        await pilot.press("space", "right", "space")
        await pilot.pause()
        assert s.position == 3
        buf = s.runner.values["buf"]
        assert screen.pfn == s.machine.addr_to_pfn(buf)  # the cursor followed kmalloc
        assert app.screen.query_one(PageMap).cursor == screen.pfn
        assert "struct page" in screen.query_one("#structpage").text()
        await pilot.press("left")
        await pilot.pause()
        assert s.position == 2
        await pilot.press("backspace", "backspace", "backspace")
        await pilot.pause()
        assert s.position == 0


async def test_the_collector_is_off_while_the_app_runs_and_idle_time_collects():
    import gc
    import weakref

    class Node:
        pass

    enabled = gc.isenabled()
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        assert not gc.isenabled()
        while screen.idle_step():  # the objects of the start: a crowd, frozen as it is
            pass
        await pilot.press("space", "space", "left")
        await pilot.pause()
        node = Node()
        node.cycle = node
        ref = weakref.ref(node)
        del node
        assert ref() is not None  # no automatic collection
        while screen.idle_step():  # the pause after the keys
            pass
        assert ref() is None and screen._steps_since_collect == 0
    assert gc.isenabled() == enabled


async def test_cycles_frozen_before_they_died_go_in_a_full_collection_after_a_pause(monkeypatch):
    import weakref

    import kinspect.screens.inspector as app_module

    class Node:
        pass

    monkeypatch.setattr(app_module, "FULL_COLLECT_AFTER", 1)
    monkeypatch.setattr(app_module, "FULL_COLLECT_DELAY", 0.05)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        node = Node()
        node.cycle = node
        ref = weakref.ref(node)
        screen._collect_young()  # alive then: frozen
        del node
        while screen.idle_step():
            pass
        assert ref() is not None  # young collections do not see it
        screen.idle_work_enabled = True
        screen._schedule_idle_work(0.01)
        for _ in range(100):
            await pilot.pause(0.05)
            if ref() is None:
                break
        assert ref() is None


async def test_the_help_intro_wraps_to_the_terminal_not_to_the_source():
    from textual.widgets import Static

    from kinspect.screens.dialogs import HELP_INTRO

    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        await started(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        intro = next(w for w in app.screen.query(Static) if str(w.render()) == HELP_INTRO)
        rows = [line.text.rstrip() for line in intro.render_lines(intro.region.reset_offset)]
        rows = [r for r in rows if r.strip()]
        assert len(rows) > 1 and all(len(r) > intro.size.width // 2 for r in rows[:-1])


async def test_run_to_report_shows_the_report_and_marks_the_bad_granule():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        await pilot.press("r")
        await pilot.pause()
        s = app.session
        assert s.position == 5 and s.latest_report().bug_type == "slab-out-of-bounds"
        assert screen.tab == "report"
        report = screen.query_one("#report").text()
        assert "BUG: KASAN: slab-out-of-bounds" in report
        shadow = screen.query_one(ShadowBytes)
        assert shadow.bad == s.latest_report().first_bad_addr & ~7
        assert "^" in shadow.text()
        assert screen.query_one(PageMap).report_pfn == s.latest_report().pfn
        await pilot.press("r", "r")
        await pilot.pause()
        assert [r.bug_type for r in s.reports][:3] == ["slab-out-of-bounds"] * 2 + [
            "use-after-free"
        ]


async def test_scheme_switch_keeps_the_position():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        s = app.session
        await pilot.press("space", "space", "space", "space")
        await pilot.pause()
        seen = {s.shown}
        for _ in range(len(s.scheme_names)):
            await pilot.press("s")
            await pilot.pause()
            assert s.position == 4
            seen.add(s.shown)
            assert screen.query_one(PageMap).source.view.name == s.shown
        assert seen == set(s.scheme_names)


async def test_goto_address_pfn_symbol_and_garbage():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen, s, buf = await after_kmalloc(app, pilot)
        await pilot.press("g", *"pfn 0x10", "enter")  # typed, once
        await pilot.pause()
        assert screen.pfn == 0x10
        await answer(app, pilot, "g", "buf+16")
        assert screen.addr == buf + 16 and screen.pfn == s.machine.addr_to_pfn(buf)
        await answer(app, pilot, "g", "no_such_thing")
        assert app.screen is screen  # a notification, not a crash
        assert any("nothing called" in n.message for n in app._notifications)
        await answer(app, pilot, "g", f"{buf:#x}")
        assert screen.addr == buf
        await answer(app, pilot, "g", "kmalloc-128")
        cache = next(c for c in s.machine.caches if c.name == "kmalloc-128")
        assert screen.pfn == min(s.machine.slub.slab_heads(cache))


async def test_breakpoints_stop_runs_and_bad_ones_notify():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await started(app, pilot)
        s = app.session
        await answer(app, pilot, "b", "line 13")  # kfree big
        assert [b.describe() for b in s.breakpoints] == ["line 13"]
        await pilot.press("e")
        await pilot.pause()
        assert s.next_event().line == 13
        await answer(app, pilot, "b", "line 2")  # a comment line
        assert any("no event on line 2" in n.message for n in app._notifications)
        await answer(app, pilot, "b", "attach")
        await pilot.press("e")
        await pilot.pause()
        assert s.last_event().text.startswith("kfree big")  # its blocks detach


async def test_jump_to_event_and_line():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await started(app, pilot)
        s = app.session
        await answer(app, pilot, "j", "9")
        assert s.position == 9
        await answer(app, pilot, "j", "line 6")
        assert s.position == 3 and s.last_event().line == 6
        await answer(app, pilot, "j", "999")
        assert s.position == 3
        assert any("outside" in n.message for n in app._notifications)


async def test_copy_help_zoom_poisoned_and_attached_navigation():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen, s, buf = await after_kmalloc(app, pilot)
        await pilot.press("y")
        await pilot.pause()
        assert app.clipboard == f"{buf:016x}"
        await pilot.press("p")  # the partial granule 04 after buf
        await pilot.pause()
        assert screen.addr == buf + 96
        await pilot.press("Y")
        await pilot.pause()
        assert app.clipboard.startswith(f"{buf:016x}:")
        await pilot.press("a")
        await pilot.pause()
        assert screen.view.is_attached(screen.pfn)
        pm = screen.query_one(PageMap)
        await pilot.press("minus", "minus")
        await pilot.pause()
        assert pm.zoom == 2
        await pilot.press("plus")
        await pilot.pause()
        assert pm.zoom == 1
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_bindings_grey_out_at_the_ends_and_keys_are_remappable(make_session):
    session = make_session()
    app = KinspectApp(session, keymap={"step": "x"})
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        assert screen.check_action("back", ()) is None
        await pilot.press("x")
        await pilot.pause()
        assert session.position == 1
        session.jump(session.total)
        assert screen.check_action("step", ()) is None


async def test_long_runs_go_through_the_worker():
    lines = ["task t 1"] + [f"p{i} = kmalloc 64\nkfree p{i}" for i in range(2500)] + ["read p0 1"]
    import kinspect.screens.inspector as app_module

    session = Session(
        load_profile("x86_64"), parse_workload("long.kw", "\n".join(lines).splitlines())
    )
    app = KinspectApp(session)
    old = app_module.SYNC_RUN_LIMIT
    app_module.SYNC_RUN_LIMIT = 10
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await started(app, pilot)
            await pilot.press("r")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert session.at_end and session.latest_report().bug_type == "slab-use-after-free"
            for near in (1000, 4900, 40):  # back, forward, back: long replays
                index = next(i for i in range(near, near + 200) if session.replay_cost(i) > 10)
                app.main._jump(str(index))
                assert app.main.running  # the keys stay free meanwhile
                await app.workers.wait_for_complete()
                await pilot.pause()
                assert session.position == index and not app.main.running
    finally:
        app_module.SYNC_RUN_LIMIT = old


async def test_narrow_terminal_gets_the_narrow_layout():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await started(app, pilot)
        assert screen.has_class("narrow")
        await pilot.press("space", "space", "space", "space", "space")
        await pilot.pause()
        assert app.session.position == 5


async def test_idle_work_prepares_the_standby():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(app, pilot)
        screen.idle_work_enabled = True
        await pilot.press("space", "space", "space")
        await pilot.pause(0.6)
        assert app.session.standby_ready()


async def test_a_trace_opens_and_steps(tmp_path):
    from kinspect.session import load_trace
    from kinspect.widgets import EventLog
    from test_session import small_trace

    session = Session(load_profile("x86_64"), load_trace(small_trace(tmp_path, 400)))
    app = KinspectApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(app, pilot)
        await pilot.press("space", "space")
        await pilot.pause()
        assert session.position == 2
        assert screen.pfn == session.machine.addr_to_pfn(session.event_address(1))
        log = screen.query_one(EventLog).text().splitlines()
        assert "kmalloc tracepoint_add_func+0x235/0x1080" in log[1]
        await pilot.press("e")
        await pilot.pause()
        assert session.at_end


async def test_the_command_palette_offers_the_actions_that_apply():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        titles = {c.title for c in app.get_system_commands(screen)}
        assert {
            "Step",
            "Run to the next report",
            "Go to address, pfn or symbol…",
            "Show scheme flat",
        } <= titles
        assert "Step back" not in titles and "Clear breakpoints" not in titles
        await pilot.press("space")
        await pilot.pause()
        commands = {c.title: c for c in app.get_system_commands(screen)}
        assert "Step back" in commands
        commands["Show scheme flat"].callback()
        await pilot.pause()
        assert app.session.shown == "flat" and app.session.position == 1


async def test_a_streamed_trace_opens_at_once_steps_and_reads_on(tmp_path):
    import threading

    from kinspect.session import load_trace
    from kinspect.widgets import EventLog
    from test_session import small_trace

    path = small_trace(tmp_path, 40000)
    whole = load_trace(path).events
    session = Session(load_profile("x86_64"), load_trace(path, stream=True))
    first = session.total
    gate = threading.Event()  # the reading waits until the test says
    read = session.driver.load

    def load(progress=None, cancelled=None):
        gate.wait(30)
        read(progress, cancelled)

    session.driver.load = load
    app = KinspectApp(session)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        status = screen.query_one("#status").plain
        assert status.startswith(f"event 0/{first}+ (reading")
        session.jump(first - 1)
        screen._refresh_all(None)
        await pilot.press("space", "space")  # the last event read, then one not read
        await pilot.pause()
        assert session.position == first and session.waiting
        assert any("is not read yet" in n.message for n in app._notifications)
        await answer(app, pilot, "b", f"line {whole[first + 7].line}")  # not read yet
        await answer(app, pilot, "j", str(first + 3))  # waits for them
        assert screen.running and session.position == first
        gate.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert session.position == first + 3 and not session.loading
        assert session.total == len(whole)
        assert screen.query_one(EventLog).row_count == len(whole)
        assert screen.query_one("#status").plain.startswith(f"event {first + 3}/{len(whole)} ")
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert session.position == first + 7  # the breakpoint on a line read later
        await answer(app, pilot, "j", f"line {whole[9].line}")
        assert session.position == 10
        top = int(screen.query_one(EventLog).scroll_offset.y)
        await pilot.click(EventLog, offset=(4, 0))  # the top row of the log: a trace event
        await pilot.pause()
        assert session.position == top + 1


async def test_steps_back_in_a_row_swap_in_the_spares_made_in_a_pause():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        s = app.session
        await pilot.press(*["space"] * 9)
        await pilot.pause()
        while screen.idle_step():  # the pause before the key is held
            pass
        spares = s.spares
        assert sorted(spares) == [6, 7, 8]
        await pilot.press("left", "left", "left")  # as one step back, or three
        await pilot.pause()
        assert s.position == 6 and s.machine is spares[6]


async def test_the_detail_tabs_cycle_and_answer_clicks():
    from kinspect.widgets.tab_bar import TabBar

    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        bar = screen.query_one(TabBar)
        assert (
            screen.tab == "structpage"
            and bar.text() == "report [struct page] shadow slab footprint"
        )
        await pilot.press("t")
        await pilot.pause()
        assert screen.tab == "shadowslab" and "[shadow slab]" in bar.text()
        start = {tab: first for first, _end, tab in bar._spans()}
        await pilot.click(TabBar, offset=(start["footprint"] + 2, 0))
        await pilot.pause()
        assert screen.tab == "footprint"
        await pilot.click(TabBar, offset=(2, 0))
        await pilot.pause()
        assert screen.tab == "report"


async def test_every_scheme_shows_flats_shadow_bytes_at_every_demo_step():
    """The shadow pane under each scheme shows the bytes flat has (issue 11 A1: pageext showed
    FF on pages whose blocks it mirrors from pageptr)."""
    panes = {}
    for name in registered_schemes():
        app = make_app(shown=name)
        async with app.run_test(size=(160, 48)) as pilot:
            screen = await started(app, pilot)
            s = app.session
            shadow = screen.query_one(ShadowBytes)
            seen = panes[name] = []
            while True:
                if name == "flat":
                    flat = s.scheme_named("flat").read(shadow.base, s.profile.page_size)
                    assert " ".join(f"{b:02x}" for b in flat[:16]) in shadow.text()
                seen.append((s.position, shadow.base, shadow.text()))
                if s.at_end:
                    break
                await pilot.press("space")
                await pilot.pause()
    for name, seen in panes.items():
        assert len(seen) == len(panes["flat"])
        for (pos, base, text), (_pos, flat_base, flat_text) in zip(seen, panes["flat"]):
            if base == flat_base:  # the cursor follows the same addresses
                assert text == flat_text, (name, pos)


async def test_follow_moves_the_cursor_going_back_too():
    """Back (or a jump back) puts the cursor on what the last event applied now touched (the
    one ``▶`` marks), its bad access if it made a report; not with follow off (issue 11 A4)."""
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        s = app.session
        await pilot.press("home")
        await answer(app, pilot, "j", "5")
        assert s.position == 5
        bad = s.latest_report().first_bad_addr
        assert screen.addr == bad
        await pilot.press("left")
        await pilot.pause()
        assert s.position == 4
        assert screen.addr == s.event_address(3) != bad  # write buf+99
        assert screen.pfn == s.machine.addr_to_pfn(screen.addr)
        await pilot.press("space", "space")
        await pilot.pause()
        await pilot.press("left")  # back onto the report
        await pilot.pause()
        assert s.position == 5 and screen.addr == bad
        await pilot.press("home")
        await pilot.pause()
        await answer(app, pilot, "j", "3")  # a jump back follows too
        assert screen.addr == s.event_address(2) == s.runner.values["buf"]
        await pilot.press("f", "home")
        await pilot.pause()
        where = (screen.pfn, screen.addr)
        await pilot.press("left")
        await pilot.pause()
        assert s.position == 2 and (screen.pfn, screen.addr) == where


async def test_the_status_says_an_attach_undone_going_back_is_the_step_back():
    """Stepping back over ``big = kmalloc 12000`` (line 10: its order-2 pages get shadow) gives
    back that attach, which the status shows after "stepped back:", not as the work of the
    event the view now shows (``expect``, line 9); stepping over it forward, as itself."""
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        await answer(app, pilot, "j", "6")
        await pilot.press("space")
        await pilot.pause()
        forward = screen.query_one("#status").plain
        assert "line 10: big = kmalloc 12000" in forward
        assert "stepped back" not in forward and "attach pfn" in forward
        await pilot.press("left")
        await pilot.pause()
        back = screen.query_one("#status").plain
        assert "line 9: expect slab-out-of-bounds" in back
        assert "stepped back: detach pfn" in back


async def test_f12_saves_in_the_screenshots_directory_never_the_working_one(tmp_path, monkeypatch):
    """Issue 11 A8: $KINSPECT_SCREENSHOTS, else kinspect/ in the pictures directory; the
    notification says where; a directory that cannot be made is a notification."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    shots = tmp_path / "shots" / "here"
    monkeypatch.setenv("KINSPECT_SCREENSHOTS", str(shots))
    app = make_app()
    notes = record_notes(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        await pilot.press("f12")
        await pilot.pause()
        saved = list(shots.glob("*.svg"))
        assert len(saved) == 1 and saved[0].read_text().startswith("<svg")
        assert any(str(saved[0]) in message for message, _severity in notes)
        monkeypatch.delenv("KINSPECT_SCREENSHOTS")
        monkeypatch.setenv("XDG_PICTURES_DIR", str(tmp_path / "pictures"))
        await pilot.press("f12")
        await pilot.pause()
        assert len(list((tmp_path / "pictures" / "kinspect").glob("*.svg"))) == 1
        (tmp_path / "a-file").write_text("")
        monkeypatch.setenv("KINSPECT_SCREENSHOTS", str(tmp_path / "a-file"))
        await pilot.press("f12")
        await pilot.pause()
        assert any(
            severity == "error"
            and "cannot save a screenshot in" in message
            and "KINSPECT_SCREENSHOTS" in message
            for message, severity in notes
        )
    assert list(work.iterdir()) == []


async def searched(app, pilot, key: str, text: str | None = None) -> None:
    """``/`` and a query (or ``n`` / ``N``), and wait for the search and its jump."""
    if text is None:
        await pilot.press(key)
    else:
        await answer(app, pilot, key, text)
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_slash_finds_in_the_event_log_and_n_and_shift_n_repeat():
    """Issue 11 A3: a match moves the session there (the event list selects events by the
    position: ▶); a match in a comment goes to the state before the events after it."""
    from kinspect.widgets import EventLog

    app = make_app()
    notes = record_notes(app)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        s = app.session
        log = screen.query_one(EventLog)
        await searched(app, pilot, "slash", "KFREE")
        assert s.last_event().text == "kfree big" and log.found[1] == "KFREE"
        assert log.row_of_position(s.position) == log.found[0]
        match = [seg for seg in log.row_strip(log.found[0]) if seg.text == "kfree"]
        assert len(match) == 1 and match[0].style.bgcolor is not None  # marked (kinspect.tcss)
        await searched(app, pilot, "n")
        assert s.last_event().text == "kfree buf" and s.last_event().line == 17
        await searched(app, pilot, "n")
        assert s.last_event().text == "kfree buf" and s.last_event().line == 20
        await searched(app, pilot, "n")
        assert s.last_event().text == "kfree obj+8"
        await searched(app, pilot, "n")
        assert s.last_event().text == "kfree big"
        assert notes[-1] == ("search hit BOTTOM, continuing at TOP", "information")
        await searched(app, pilot, "N")
        assert s.last_event().text == "kfree obj+8"
        await searched(app, pilot, "slash", "every statement")  # line 3, a comment
        assert s.position == 0 and log.found[0] == 2
        await searched(app, pilot, "slash", "# step")  # from the comment on
        assert s.last_event().line == 6
        titles = {c.title: c for c in app.get_system_commands(screen)}
        assert {"Find…", "Find next", "Find previous"} <= set(titles)
        titles["Find previous"].callback()  # wraps to line 13's
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert s.last_event().line == 13
        await searched(app, pilot, "slash", "no such text")
        assert s.last_event().line == 13 and log.found[1] == "# step"
        assert notes[-1] == ("not found: 'no such text'", "warning")


async def test_slash_finds_a_trace_event_by_its_text_as_the_log_shows_it(tmp_path):
    from kinspect.session import load_trace
    from kinspect.widgets import EventLog
    from test_session import small_trace

    session = Session(load_profile("x86_64"), load_trace(small_trace(tmp_path, 400)))
    app = KinspectApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(app, pilot)
        s = app.session
        target = 250
        ptr = s.event_text(target).split("ptr=")[1].split()[0]
        first = next(i for i in range(s.total) if f"ptr={ptr}" in s.event_text(i))
        await searched(app, pilot, "slash", f"PTR={ptr.upper()}")
        assert s.position == first + 1
        log = screen.query_one(EventLog)
        assert log.found == (first, f"PTR={ptr.upper()}")
        assert f"ptr={ptr}" in log.text().splitlines()[first]


async def test_a_click_on_a_far_line_of_the_log_replays_in_the_worker(monkeypatch):
    """A click jumps as ``j`` does: a long replay in the worker, the keys live (it was on the
    keys: seconds frozen on the real trace)."""
    import kinspect.screens.inspector as app_module
    from kinspect.widgets import EventLog

    monkeypatch.setattr(app_module, "SYNC_RUN_LIMIT", 10)
    lines = ["task t 1"] + [f"p{i} = kmalloc 64\nkfree p{i}" for i in range(100)]
    session = Session(
        load_profile("x86_64"), parse_workload("long.kw", "\n".join(lines).splitlines())
    )
    app = KinspectApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await started(app, pilot)
        target = session.events[150]
        screen._line_clicked(EventLog.LineClicked(target.line))
        assert screen.running  # the keys stay free meanwhile
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert session.position == 151 and not screen.running


async def test_the_shadow_slab_pane_asks_for_its_slabs_in_pieces_and_lists_the_same(monkeypatch):
    """The shadow slab pane asks the machine for a few slabs at a time, up to its cut: the
    lines are those of one question for them all, the cut included."""
    from kinspect.widgets import shadow_slab
    from kinspect.widgets.shadow_slab import ShadowSlabView

    lines = ["task t 1", "func probe 0x100"] + [f"p{i} = kmalloc 4096" for i in range(60)]
    session = Session(load_profile("x86_64"), parse_workload("many.kw", lines), shown="pageptr")
    session.jump(session.total)
    app = KinspectApp(session)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await started(app, pilot)
        await pilot.press("t")
        await pilot.pause()
        assert screen.tab == "shadowslab"
        pane = screen.query_one(ShadowSlabView)
        monkeypatch.setattr(shadow_slab, "MAX_OPTIONS", 40)  # 17 lines a slab: cut after 3
        texts = {}
        for asked in (1, 3, 1 << 20):
            monkeypatch.setattr(shadow_slab, "SLABS_ASKED", asked)
            pane.refresh_view(session, screen.view, force=True)
            texts[asked] = pane.text()
        assert texts[1] == texts[3] == texts[1 << 20]
        text = texts[1]
        assert "8 shadow slabs" in text.splitlines()[0] and "… 8 slabs in all (list cut)" in text
        assert text.count("slab pfn") == 3
