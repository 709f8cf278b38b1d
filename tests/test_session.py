"""The engine's Session: stepping, going back, runs, breakpoints, what each step reports."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kinspect.engine.errors import KinspectError
from kinspect.engine.profile import load_profile
from kinspect.engine.shadow import SCHEMES
from kinspect.engine.workload import parse_workload
from kinspect.session import Breakpoint, SchemeView, Session, merge_ranges, registered_schemes

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "samples" / "workloads" / "demo.kw")


def demo_session(**kwargs) -> Session:
    return Session(load_profile("x86_64"), parse_workload(DEMO), **kwargs)


def churn_lines(n: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    lines = ["task t 1", "func churn 0x1000"]
    live: list[int] = []
    for i in range(n):
        if live and rng.random() < 0.45:
            j = live.pop(rng.randrange(len(live)))
            lines.append(f"kfree p{j}")
        elif rng.random() < 0.05:
            lines.append(f"q{i} = alloc_pages {rng.randrange(3)}")
        else:
            lines.append(f"p{i} = kmalloc {rng.choice([8, 64, 100, 200, 1000, 3000, 9000])}")
            live.append(i)
    return lines


def fingerprint(s: Session) -> tuple:
    """What two states at the same position must share."""
    m = s.machine
    pages = sorted(m.pages.items())
    shadow = b"".join(
        s.scheme_named("flat").read(m.page_address(pfn), 64) for pfn, _ in pages[:200]
    )
    fps = tuple(
        sorted(
            (n, f.total_bytes(), f.blocks_in_use, f.shadow_pages_mapped)
            for n, f in s.footprints().items()
        )
    )
    return (
        s.position,
        len(m.reports),
        tuple(pages),
        shadow,
        fps,
        tuple(sorted(k for k, v in s.runner.values.items() if isinstance(v, int))),
    )


def test_every_registered_scheme_runs_in_lockstep_flat_first():
    s = demo_session()
    assert s.scheme_names[0] == "flat"
    assert set(s.scheme_names) == set(SCHEMES)
    assert registered_schemes()[0] == "flat"


def test_demo_reaches_its_first_attach_and_first_report_within_a_dozen_steps():
    s = demo_session()
    assert s.shown in ("pageptr", "pageext", "pshadow", "flat")
    first_attach = first_report = None
    for _ in range(12):
        r = s.step()
        if first_attach is None and any(
            a.kind == "attach" and a.scheme == s.shown for a in r.attach
        ):
            first_attach = r.position
        if first_report is None and r.reports:
            first_report = r.position
    if s.shown != "flat":
        assert first_attach is not None and first_attach <= 12
    assert first_report is not None and first_report <= 12
    assert s.reports[0].bug_type == "slab-out-of-bounds"


@pytest.mark.skipif("pageptr" not in SCHEMES, reason="pageptr not registered")
def test_demo_attach_names_the_slab_page_and_detach_follows_kfree():
    s = demo_session(shown="pageptr")
    results = [s.step() for _ in range(s.total)]
    attach = [a for r in results for a in r.attach if a.scheme == "pageptr"]
    kinds = [a.kind for a in attach]
    assert "attach" in kinds and "detach" in kinds
    big = next(a for a in attach if a.count == 4)  # kmalloc(12000): order-2, 4 blocks
    assert big.kind == "attach" and "block 0x" in big.link
    assert any(a.kind == "detach" and a.pfn == big.pfn and a.count == 4 for a in attach)


def test_step_reports_the_dirty_pfns_of_a_kmalloc():
    s = demo_session()
    s.step(2)
    r = s.step()  # buf = kmalloc 100
    buf = s.runner.values["buf"]
    pfn = s.machine.addr_to_pfn(buf)
    assert any(a <= pfn < a + n for a, n in r.dirty)
    assert r.generation == s.generation and r.position == 3 and r.previous == 2


def test_back_restores_exactly_the_earlier_state():
    s = Session(
        load_profile("x86_64"), parse_workload("churn.kw", churn_lines(1500)), checkpoint_every=64
    )
    prints = {}
    for _ in range(1200):
        s.step()
        if s.position % 97 == 0:
            prints[s.position] = fingerprint(s)
    for pos in sorted(prints, reverse=True)[:6]:
        r = s.jump(pos)
        assert r.position == pos
        assert fingerprint(s) == prints[pos]
    # step back one at a time, through the standby swap and through a restore
    s.jump(1000)
    while not s.standby_ready() and s.idle_work():
        pass
    assert s.standby_ready()
    s.back()
    via_standby = fingerprint(s)
    s.jump(1000)
    s.drop_spares()  # no spare: a restore
    s.back()
    assert fingerprint(s) == via_standby


def test_back_names_what_it_undoes():
    s = demo_session()
    s.step(6)
    forward = s.step()  # big = kmalloc 12000
    back = s.back()
    assert back.position == 6 and back.previous == 7
    assert back.dirty == forward.dirty
    assert {(a.scheme, a.kind) for a in back.attach} == {
        (a.scheme, "detach") for a in forward.attach if a.kind == "attach"
    }
    assert s.back(100).position == 0
    assert s.back().stopped == "start"


def test_run_stops_at_reports_breakpoints_and_the_end():
    s = demo_session()
    r = s.run()
    assert (
        r.stopped == "report" and r.position == 5 and r.reports[0].bug_type == "slab-out-of-bounds"
    )
    line = s.events[9].line  # read big+12000 1
    s.add_breakpoint(Breakpoint("line", line))
    r = s.run(until="breakpoint")
    assert r.stopped == f"breakpoint: line {line}" and s.next_event().line == line
    r = s.run(until="breakpoint")
    assert r.stopped == "end" and s.at_end and len(r.reports) >= 3


def test_pfn_addr_and_attach_breakpoints():
    s = demo_session(shown="flat")
    s.step(3)
    buf = s.runner.values["buf"]
    pfn = s.machine.addr_to_pfn(buf)
    s.add_breakpoint(Breakpoint("addr", buf))
    r = s.run(until="breakpoint")
    assert r.stopped == f"breakpoint: address {buf:#x}"  # kfree buf poisons it
    assert s.last_event().text.startswith("kfree buf")
    s.breakpoints.clear()
    s.jump(0)
    s.add_breakpoint(Breakpoint("attach"))
    r = s.run(until="breakpoint")
    assert r.stopped == "breakpoint: attach/detach" and r.attach
    s.breakpoints.clear()
    s.jump(3)
    s.add_breakpoint(Breakpoint("pfn", pfn))
    r = s.run(until="breakpoint")
    assert r.stopped == f"breakpoint: pfn {pfn:#x}"


def test_bad_breakpoints_and_schemes_are_kinspect_errors():
    s = demo_session()
    with pytest.raises(KinspectError, match="no event on line 1"):
        s.add_breakpoint(Breakpoint("line", 1))
    with pytest.raises(KinspectError, match="unknown breakpoint kind"):
        s.add_breakpoint(Breakpoint("watch", 1))
    with pytest.raises(KinspectError, match="not running"):
        s.set_shown_scheme("nope")
    with pytest.raises(KinspectError, match="unknown shadow scheme"):
        Session(load_profile("x86_64"), parse_workload(DEMO), schemes=["flat", "nope"])


def test_switching_the_shown_scheme_keeps_the_position():
    s = demo_session()
    s.step(7)
    before = fingerprint(s)
    for name in s.scheme_names:
        r = s.set_shown_scheme(name)
        assert r.dirty is None and r.position == 7 and s.shown == name
    assert fingerprint(s) == before


def test_a_runtime_workload_error_stops_before_the_event_and_keeps_the_state():
    lines = ["p = alloc_pages 1", "q = kmalloc 64", "__free_pages p 0", "kfree q"]
    s = Session(load_profile("x86_64"), parse_workload("bad.kw", lines))
    s.step(2)
    before = fingerprint(s)
    r = s.step()
    assert r.stopped.startswith("error: bad.kw:3") and r.position == 2
    assert fingerprint(s) == before
    assert 2 in s.error_events


def test_checkpoints_thin_under_a_small_budget_and_back_still_works():
    s = Session(
        load_profile("x86_64"),
        parse_workload("churn.kw", churn_lines(3000)),
        checkpoint_every=32,
        checkpoint_budget=512 << 10,  # (chunks compressed: 0.4 MiB held at 2000 events)
    )
    ref = {}
    for _ in range(2000):
        s.step()
        if s.position in (333, 1234):
            ref[s.position] = fingerprint(s)
        if s.position % 100 == 0:
            s.idle_work()
    assert s.checkpoint_every > 32  # thinned at least once
    assert s.checkpoint_stats()["checkpoints"] >= 2
    for pos in (1234, 333):
        s.jump(pos)
        assert fingerprint(s) == ref[pos]


@pytest.mark.parametrize("name", [n for n in ("pageptr", "pageext", "pshadow") if n in SCHEMES])
def test_scheme_view_attached_pages_follow_steps_and_backs(name):
    s = Session(load_profile("x86_64"), parse_workload("churn.kw", churn_lines(600)), shown=name)
    view = SchemeView(s, name)
    rng = random.Random(5)
    for _ in range(120):
        r = s.back(rng.randrange(1, 6)) if rng.random() < 0.25 else s.step(rng.randrange(1, 8))
        view.update(r)
        fresh = SchemeView(s, name)
        assert view.attached == fresh.attached
        assert view.own_shadow == fresh.own_shadow
    assert view.attached


def test_footprint_history_has_one_total_per_position():
    s = demo_session()
    s.step(7)
    for name in s.scheme_names:
        hist = s.footprint_history(name)
        assert len(hist) == 8 and hist[-1] == s.scheme_named(name).footprint().total_bytes()
    s.back(3)
    assert len(s.footprint_history("flat")) == 5


def test_merge_ranges():
    assert merge_ranges([(5, 2), (1, 2), (3, 1), (10, 1)]) == ((1, 3), (5, 2), (10, 1))
    assert merge_ranges([]) == ()


def reference_states(monkeypatch, path: str, back: int) -> tuple[Session, int, dict]:
    """The Python (reference) engine's replay of the trace at ``path`` (flat and pageptr):
    its session, where a test stops (10 events before the end), and the machine's
    fingerprint and the address of the event before at each of the ``back`` positions up to
    there; the engine set back to native."""
    from kinspect.engine.fingerprint import fingerprint as machine_fingerprint
    from kinspect.session import load_trace

    monkeypatch.setenv("KINSPECT_ENGINE", "python")
    ref = Session(load_profile("x86_64"), load_trace(path), schemes=["flat", "pageptr"])
    end = ref.total - 10
    expected = {}
    for pos in range(end - back, end + 1):
        ref.jump(pos)
        expected[pos] = (machine_fingerprint(ref.machine), ref.event_address(pos - 1))
    monkeypatch.setenv("KINSPECT_ENGINE", "native")
    return ref, end, expected


def small_trace(tmp_path, n_lines: int = 2000) -> str:
    """The first lines of the real x86_64 capture, as a plain text trace."""
    import lzma

    src = ROOT / "samples" / "traces" / "kmem-trace-x86_64.txt.xz"
    out = tmp_path / "small-trace.txt"
    with lzma.open(src, "rt") as f, open(out, "w") as g:
        for i, line in enumerate(f):
            if i >= n_lines:
                break
            g.write(line)
    return str(out)


def test_a_trace_steps_goes_back_and_names_its_events(tmp_path):
    from kinspect.session import load_trace

    s = Session(load_profile("x86_64"), load_trace(small_trace(tmp_path)), shown="pageptr")
    assert s.is_trace and s.total > 1000
    s.step()
    assert s.event_text(0).startswith("kmalloc tracepoint_add_func+0x235/0x1080 ptr=")
    assert s.event_address(0) is not None
    s.step(800)
    ref = fingerprint(s)
    s.step(300)
    s.jump(801)
    assert fingerprint(s) == ref
    while s.idle_work():
        pass
    assert s.back().position == 800
    assert s.run(until="breakpoint").stopped == "end"


def test_a_replaced_machine_is_freed_at_once_without_the_cyclic_collector():
    import gc
    import weakref

    s = demo_session()
    s.step(8)
    old = weakref.ref(s.machine)
    gc.disable()
    try:
        s.back(3)  # a restore: a new machine from a checkpoint
        s.idle_work()  # frees the old one (idle time)
        assert old() is None
        while not s.standby_ready():  # a spare, then swapped in by the next back
            s.idle_work()
        live = weakref.ref(s.machine)
        s.back()
        s.back()
        s.back()  # more than two waiting: freed at once
        assert live() is None
    finally:
        gc.enable()


def test_a_replaced_trace_machine_frees_its_replayer_without_the_cyclic_collector(tmp_path):
    """A trace's replayer and its compiled twin (native) refer to each other: disposing of a
    replaced machine breaks that too, or each restore would leak a replayer and its maps."""
    import gc
    import weakref

    from kinspect.session import load_trace

    s = Session(load_profile("x86_64"), load_trace(small_trace(tmp_path)), schemes=["flat"])
    s.step(300)
    old = weakref.ref(s.runner.replayer)
    gc.disable()
    try:
        s.back(3)  # a restore: a new machine and replayer
        while s.idle_work():  # frees the old ones (idle time, one a piece)
            pass
        assert old() is None
    finally:
        gc.enable()


def test_steps_back_in_a_row_swap_in_the_spares_made_while_idle():
    s = Session(
        load_profile("x86_64"), parse_workload("churn.kw", churn_lines(400)), checkpoint_every=64
    )
    s.step(300)
    ref = {}
    for pos in (297, 298, 299):
        s.jump(pos)
        ref[pos] = fingerprint(s)
    s.jump(300)
    while s.idle_work():
        pass
    spares = s.spares
    assert sorted(spares) == [297, 298, 299]
    for pos in (299, 298, 297):
        r = s.back()
        assert r.position == pos and s.machine is spares[pos]  # a swap, no restore
        assert fingerprint(s) == ref[pos]
    s.jump(300)
    while s.idle_work():
        pass
    s.drop_spares(keep=[297])
    (spare,) = s.spares.values()
    assert s.back(2).position == 298 and s.machine is spare  # a short replay from one
    assert fingerprint(s) == ref[298]


def test_a_key_held_past_the_spares_restores_from_the_ladder_and_replays_little():
    from kinspect.session.checkpoints import HOLD_LADDER, LADDER_STEP

    s = Session(
        load_profile("x86_64"), parse_workload("churn.kw", churn_lines(1200)), checkpoint_every=512
    )
    s.step(1000)
    refs = {}
    for pos in range(1000 - 4 - LADDER_STEP * (HOLD_LADDER - 1), 1000):
        s.jump(pos)
        refs[pos] = fingerprint(s)
    s.jump(1000)
    while s.idle_work():
        pass
    top = 1000 - s.spares_wanted - 1
    rungs = [top - LADDER_STEP * i for i in range(HOLD_LADDER)]
    assert set(rungs) <= set(s.checkpoints.positions(dense=True))
    replayed = []
    for pos in range(999, rungs[-1] - 1, -1):  # held down: no idle time in between
        stepped = s.events_stepped
        assert s.back().position == pos
        replayed.append(s.events_stepped - stepped)
        assert fingerprint(s) == refs[pos]
    assert replayed[:3] == [0, 0, 0]  # the spares: swaps
    assert max(replayed[3:]) < LADDER_STEP  # then a rung and a few events


def test_idle_work_comes_in_pieces_of_at_most_a_chunk_of_events(monkeypatch):
    from kinspect.session import checkpoints

    monkeypatch.setattr(checkpoints, "IDLE_CHUNK", 100)
    s = Session(
        load_profile("x86_64"), parse_workload("churn.kw", churn_lines(1200)), checkpoint_every=1024
    )
    for _ in range(1000):  # one at a time, no pause: the only checkpoint is at 0
        s.step()
    seen = []
    while s.idle_work():
        if s.idle_job is not None:
            seen.append(s.idle_job)
    advances = [b[2] - a[2] for a, b in zip(seen, seen[1:]) if a[:2] == b[:2]]
    assert advances and max(advances) <= 100
    assert sorted(s.spares) == [997, 998, 999]


def test_replay_cost_counts_from_the_position_a_spare_or_the_nearest_checkpoint():
    s = Session(
        load_profile("x86_64"), parse_workload("churn.kw", churn_lines(1200)), checkpoint_every=256
    )
    for _ in range(900):
        s.step()  # no idle: checkpoints only where steps force them
    assert s.replay_cost(950) == 50  # forward, from the position
    base = max(k for k in s.checkpoints.positions() if k <= 700)
    assert s.replay_cost(700) == 700 - base
    while s.idle_work():
        pass  # spares at 897-899, a ladder below them
    assert s.replay_cost(899) == 0 and s.replay_cost(898) == 0
    assert s.replay_cost(890) < 16
    s.jump(700)
    assert s.position == 700


def test_index_of_line_finds_each_event_and_nothing_between():
    s = demo_session()
    lines = {e.line for e in s.events}
    for i, e in enumerate(s.events):
        assert s.index_of_line(e.line) == i
    for line in range(0, max(lines) + 3):
        if line not in lines:
            assert s.index_of_line(line) is None  # comments, blank lines, past the end


def test_dense_checkpoints_keep_to_half_the_budget():
    s = Session(
        load_profile("x86_64"),
        parse_workload("churn.kw", churn_lines(1500)),
        checkpoint_every=32,
        checkpoint_budget=2 << 20,  # (chunks compressed: a dense checkpoint holds 20-30 KiB)
    )
    laid = set()
    for stop in range(100, 1400, 100):
        s.jump(stop)
        while s.idle_work():
            pass
        laid |= set(s.checkpoints.positions(dense=True))
    store = s.checkpoints
    dense = [store.at(pos).nbytes for pos in store.positions(dense=True)]
    assert sum(dense) == store.dense_bytes and len(dense) >= 2
    assert sum(dense) <= s.checkpoint_budget // 2 < sum(dense) + max(dense) * 2
    assert len(laid) > len(dense)  # the least recently used went


def test_the_spares_keep_to_their_budget_but_the_standby_is_made():
    s = Session(
        load_profile("x86_64"), parse_workload("churn.kw", churn_lines(200)), spare_budget=0
    )
    s.step(150)
    while s.idle_work():
        pass
    assert list(s.spares) == [149] and s.standby_ready()


def test_the_memmap_journal_records_struct_page_writes_while_it_is_a_list():
    from kinspect.engine.memory import FREE_PAGE, MemMap

    memmap = MemMap(load_profile("x86_64"))
    assert memmap.written is None
    memmap.set_pages(5, 3, FREE_PAGE)  # nobody observes: nothing kept
    memmap.written = []
    memmap.set_pages(5, 3, FREE_PAGE)
    memmap.set_field(9, 1, "refcount", 1)
    assert memmap.written == [(5, 3), (9, 1)]


def test_a_streamed_trace_steps_on_what_is_read_while_the_rest_loads(tmp_path):
    from kinspect.session import load_trace

    path = small_trace(tmp_path, 40000)  # three blocks of the reader
    whole = load_trace(path).events
    s = Session(load_profile("x86_64"), load_trace(path, stream=True))
    first = s.total
    assert s.loading and 0 < first < len(whole)
    r = s.step(first + 10)  # no waiting on this thread
    assert r.position == first and r.stopped == "loading"
    assert s.waiting and not s.at_end
    later = whole[first + 5].line  # not read yet: taken on trust
    nowhere = whole[-1].line + 1000
    for line in (later, nowhere):
        s.add_breakpoint(Breakpoint("line", line))
    with pytest.raises(KinspectError, match="no event on line 1"):
        s.add_breakpoint(Breakpoint("line", 1))
    read = []
    s.load(progress=lambda events, fraction: read.append((events, fraction)))
    assert not s.loading and s.total == len(whole) and read[-1][0] == len(whole)
    assert [f for _n, f in read] == sorted(f for _n, f in read) and s.load_fraction() == 1.0
    assert s.events == whole and s.load_error is None
    assert s.drop_unmatched_breakpoints() == [Breakpoint("line", nowhere)]
    r = s.run(until="breakpoint")
    assert r.stopped == f"breakpoint: line {later}" and s.position == first + 5
    assert s.run(until="breakpoint").stopped == "end" and s.at_end
    assert len(s.footprint_history("flat")) == len(whole) + 1


def test_a_run_in_another_thread_waits_for_the_events_still_loading(tmp_path):
    import threading

    from kinspect.session import load_trace

    path = small_trace(tmp_path, 40000)
    total = len(load_trace(path).events)
    s = Session(load_profile("x86_64"), load_trace(path, stream=True))
    reader = threading.Thread(target=s.load)
    reader.start()
    r = s.jump(total - 3, wait=True)
    reader.join()
    assert r.position == total - 3 and r.stopped is None
    s.step(5)
    assert s.at_end


def test_every_scheme_reads_the_shadow_flat_reads_at_every_demo_step():
    """pageext beside pageptr mirrors its blocks (one copy, lockstep writes only to the twin):
    its reads must go to that copy too, not to its own empty tables (which read FF, free RAM,
    everywhere: issue 11 A1)."""
    s = demo_session()
    page = s.profile.page_size
    while True:
        m = s.machine
        for pfn, (order, *_rest) in sorted(m.pages.items()):
            for p in range(pfn, pfn + (1 << order)):
                if not s.profile.is_lowmem_pfn(p):
                    continue
                base = m.page_address(p)
                want = s.scheme_named("flat").read(base, page)
                for name in s.scheme_names:
                    scheme = s.scheme_named(name)
                    assert scheme.read(base, page) == want, (s.position, name, hex(p))
                    assert scheme.shadow_byte(base + page - 8) == want[-1], (s.position, name)
        if s.at_end:
            break
        s.step()


def test_a_long_jump_on_the_native_engine_is_a_fast_forward_to_the_state_stepping_reaches(
    tmp_path, monkeypatch
):
    """A jump by fast forward (native: the compiled replayer over EventBatch slices, from a
    machine booted anew) leaves the state of the reference engine's jump and of plain
    stepping; the footprints it samples and the last events it steps are exact."""
    from conftest import native_missing
    from kinspect.engine.fingerprint import fingerprint as machine_fingerprint
    from kinspect.session import load_trace, sources
    from kinspect.session.sources import FAST_FORWARD_TAIL

    if native_missing():
        pytest.skip(native_missing())
    monkeypatch.setattr(sources, "FAST_FORWARD_MIN", 1000)
    monkeypatch.setattr(sources, "FAST_FORWARD_PIECE", 700)
    path = small_trace(tmp_path, 7000)
    sessions = {}
    for name, engine, fast in (
        ("fast", "native", True),
        ("stepped", "native", False),
        ("python", "python", True),
    ):
        monkeypatch.setenv("KINSPECT_ENGINE", engine)
        s = Session(load_profile("x86_64"), load_trace(path), schemes=["flat", "pageptr"])
        s.fast_forward = s.fast_forward and fast
        sessions[name] = (s, s.jump(4000))
    fast, r = sessions["fast"]
    assert fast.events_bulk > 0 and fast.events_stepped == FAST_FORWARD_TAIL
    assert r.position == 4000 and r.dirty is None and len(r.events) == FAST_FORWARD_TAIL
    for name in ("stepped", "python"):
        s, _ = sessions[name]
        assert s.events_bulk == 0 and s.events_stepped >= 4000
        assert machine_fingerprint(s.machine) == machine_fingerprint(fast.machine), name
        assert s.report_events == fast.report_events
        assert [s.event_address(i) for i in range(3950, 4000)] == [
            fast.event_address(i) for i in range(3950, 4000)
        ]
    stepped = sessions["stepped"][0]
    sampled = [p for p in range(0, 4000, 700)] + list(range(4000 - FAST_FORWARD_TAIL, 4001))
    for scheme in ("flat", "pageptr"):
        exact, bulk = stepped.footprint_history(scheme), fast.footprint_history(scheme)
        assert len(bulk) == 4001
        assert [bulk[p] for p in sampled] == [exact[p] for p in sampled]
    # going on from there: steps, and a step back that says everything changed
    assert fast.step(5).position == 4005 and fast.back(10).position == 3995
    assert stepped.back(5).position == 3995
    assert machine_fingerprint(fast.machine) == machine_fingerprint(stepped.machine)


def test_a_fast_forward_starts_at_the_nearest_checkpoint_and_reaches_what_stepping_does(
    tmp_path, monkeypatch
):
    """A checkpoint of a trace session holds the compiled replayer (its maps as arrays): a
    later fast forward restores the nearest one and replays compiled from there, not from
    boot, to the state, reports and addresses that plain stepping reaches."""
    from conftest import native_missing
    from kinspect.engine.fingerprint import fingerprint as machine_fingerprint
    from kinspect.session import load_trace, sources
    from kinspect.session.sources import FAST_FORWARD_TAIL

    if native_missing():
        pytest.skip(native_missing())
    monkeypatch.setattr(sources, "FAST_FORWARD_MIN", 1000)
    # whether a move pays a fast forward is decided on measured CPU rates: pinned here, so
    # the test does not depend on the machine's load (what it checks is where one starts)
    monkeypatch.setattr(
        Session,
        "_fast_forward_pays",
        lambda self, start, target, restore: (
            self.fast_forward and target - start >= sources.FAST_FORWARD_MIN
        ),
    )
    monkeypatch.setenv("KINSPECT_ENGINE", "native")
    path = small_trace(tmp_path, 9000)
    fast = Session(load_profile("x86_64"), load_trace(path), schemes=["flat", "pageptr"])
    end = fast.total - 50
    fast.jump(3000)  # from boot; a checkpoint where it ended
    base = fast.checkpoints.nearest_position(end)
    assert base >= 3000 - FAST_FORWARD_TAIL
    bulk = fast.events_bulk
    fast.jump(end)
    assert 0 < fast.events_bulk - bulk <= end - FAST_FORWARD_TAIL - base
    stepped = Session(load_profile("x86_64"), load_trace(path), schemes=["flat", "pageptr"])
    stepped.fast_forward = False
    stepped.jump(end)
    assert machine_fingerprint(fast.machine) == machine_fingerprint(stepped.machine)
    assert fast.report_events == stepped.report_events
    assert [fast.event_address(i) for i in range(end - 100, end)] == [
        stepped.event_address(i) for i in range(end - 100, end)
    ]


def test_a_fast_forward_run_stops_at_a_line_breakpoint_found_beforehand(tmp_path, monkeypatch):
    from conftest import native_missing
    from kinspect.session import load_trace, sources

    if native_missing():
        pytest.skip(native_missing())
    monkeypatch.setattr(sources, "FAST_FORWARD_MIN", 1000)
    monkeypatch.setenv("KINSPECT_ENGINE", "native")
    s = Session(load_profile("x86_64"), load_trace(small_trace(tmp_path, 7000)), schemes=["flat"])
    line = s.events[3000].line
    s.add_breakpoint(Breakpoint("line", line))
    r = s.run(until="breakpoint")
    assert r.stopped == f"breakpoint: line {line}" and s.position == 3000
    assert s.events_bulk > 0


def test_an_event_batch_slice_is_a_view_of_the_same_events(tmp_path):
    from conftest import native_missing
    from kinspect.engine.ftrace import TraceReader

    if native_missing():
        pytest.skip(native_missing())
    batch = next(TraceReader(small_trace(tmp_path), engine="native").batches())
    part = batch.slice(10, 20)
    assert len(part) == 10 and list(part) == list(batch)[10:20]
    assert part.line.base is not None and part.strings is batch.strings


def test_spares_replayed_compiled_in_idle_time_hold_what_plain_stepping_reaches(
    tmp_path, monkeypatch
):
    """On the native engine a trace's spares and ladder are replayed by the compiled replayer
    (Standby._replay), in slices; each spare, swapped in by a step back, and each rung of the
    ladder holds the state, reports and addresses of the reference engine's plain stepping."""
    from conftest import native_missing
    from kinspect.engine.fingerprint import fingerprint as machine_fingerprint
    from kinspect.session import checkpoints, load_trace
    from kinspect.session.checkpoints import HOLD_LADDER, LADDER_SPAN, LADDER_STEP

    if native_missing():
        pytest.skip(native_missing())
    path = small_trace(tmp_path, 3000)
    ref, end, expected = reference_states(monkeypatch, path, 4 + LADDER_SPAN)
    assert end > 1500
    s = Session(
        load_profile("x86_64"),
        load_trace(path),
        schemes=["flat", "pageptr"],
        checkpoint_every=64,
        spares=3,  # (a trace on the native engine makes none by default: its steps back
        # restore in place and replay compiled)
    )
    s.fast_forward = False
    for _ in range(end):  # one at a time: checkpoints every 256 events (steps force them)
        s.step()
    compiled = []
    build = checkpoints.Standby._replay

    def replay(self, job):
        compiled.append(self._compiled(job))
        build(self, job)

    monkeypatch.setattr(checkpoints.Standby, "_replay", replay)
    while s.idle_work():
        pass
    assert compiled and all(compiled)
    assert sorted(s.spares) == [end - 3, end - 2, end - 1]
    rungs = [p for p in s.checkpoints.positions(dense=True) if p < end - 3]
    assert rungs == [end - 4 - LADDER_STEP * i for i in reversed(range(HOLD_LADDER))]
    for pos in rungs:
        machine, _ = s.checkpoints.restore(s.checkpoints.at(pos))
        assert machine_fingerprint(machine) == expected[pos][0], pos
    for pos in (end - 1, end - 2, end - 3):
        assert s.back().position == pos and s.machine is not None
        assert (machine_fingerprint(s.machine), s.event_address(pos - 1)) == expected[pos]
    assert [r.event_index for r in s.reports] == [
        r.event_index for r in ref.reports if r.event_index < end - 3
    ]


def test_idle_work_given_up_anywhere_leaves_checkpoints_that_restore_what_stepping_reached(
    monkeypatch,
):
    """Idle work in pieces (takes and restores stopped at every buffer here) interrupted by a
    step after any number of pieces: the takes under way are given up, the checkpoints kept
    restore the states plain stepping reached, and the spares made later are right too."""
    from kinspect.session import checkpoints, cursor

    monkeypatch.setattr(checkpoints, "IDLE_SECONDS", 0.0)
    monkeypatch.setattr(cursor, "IDLE_SECONDS", 0.0)
    lines = churn_lines(700)
    ref = Session(load_profile("x86_64"), parse_workload("churn.kw", lines))
    expected = {}
    for pos in range(0, 611):
        expected[pos] = fingerprint(ref)
        ref.step()
    for pieces in (1, 4, 40, 300, 700, 900, 1000):  # the session's own take from about 890
        s = Session(load_profile("x86_64"), parse_workload("churn.kw", lines), spares=2)
        for _ in range(600):
            s.step()
        for _ in range(pieces):
            s.idle_work()
        s.step(10)  # whatever was under way is given up (or done)
        while s.idle_work():
            pass
        assert sorted(s.spares) == [608, 609]
        for pos in [p for p in s.checkpoints.positions() if p <= 610] + [609, 608, 600]:
            s.jump(pos)
            assert fingerprint(s) == expected[pos], (pieces, pos)


def test_a_trace_on_the_native_engine_goes_back_by_restores_in_place_near_the_position(
    tmp_path, monkeypatch
):
    """No spares for a trace on the native engine: each step back restores a checkpoint in
    place (the session's machine's buffers written into) and replays from there; the idle
    work keeps a ladder below the position, laid again as steps back go down it, so that no
    step back replays from far (a step past the ladder restored the start and replayed the
    whole trace). Each state is the reference engine's."""
    from conftest import native_missing
    from kinspect.engine.fingerprint import fingerprint as machine_fingerprint
    from kinspect.session import load_trace
    from kinspect.session.checkpoints import LADDER_SPAN

    if native_missing():
        pytest.skip(native_missing())
    path = small_trace(tmp_path, 3000)
    backs = 3 * LADDER_SPAN
    _, end, expected = reference_states(monkeypatch, path, backs)
    s = Session(  # regular checkpoints far apart: the ladder is what is near
        load_profile("x86_64"), load_trace(path), schemes=["flat", "pageptr"], checkpoint_every=4096
    )
    assert s.fast_forward and s.spares_wanted == 0
    s.jump(end)
    for i in range(backs):
        if i % 2 == 0:  # a pause, then a press held
            while s.idle_work():
                pass
            assert not s.spares
        target = s.position - 1
        assert target - s.checkpoints.nearest_position(target) <= LADDER_SPAN, target
        buffers = list(s._buffers)
        assert s.back().position == target
        assert any(b is a for a, b in zip(buffers, s._buffers))  # written into, in place
        assert machine_fingerprint(s.machine) == expected[target][0], target
