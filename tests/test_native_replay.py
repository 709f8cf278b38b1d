"""The compiled replayer (_replay.pyx) against TraceReplayer.replay, the reference: both real
traces, slices of them, synthetic traces (hypothesis) and bad input replayed on both engines,
compared statistic by statistic, map by map, struct page by struct page and shadow chunk by
shadow chunk."""

from __future__ import annotations

import lzma
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinspect.engine import native
from kinspect.engine.errors import TraceError
from kinspect.engine.ftrace import EVENT_COLUMNS, EventBatch, TraceEvent, TraceReader
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile, parse_size
from kinspect.engine.replay import replay_trace, trace_summary
from kinspect.engine.shadow.base import PageUse
from test_ftrace import ADVERSARIAL, ERA_LINES, trace_lines

pytestmark = pytest.mark.skipif(
    native.compiled("_replay") is None, reason="the native engine is not built"
)

TRACES = Path(__file__).resolve().parent.parent / "samples" / "traces"
PROFILES = {"kmem-trace-x86_64.txt.xz": "x86_64", "kmem-trace-arm32.txt.xz": "arm32"}
needs_fork = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="ParallelTraceReader forks: Linux only"
)


def _state(machine: Machine) -> dict:
    """The simulated machine as a replay leaves it: every struct page of every touched
    section, every flat shadow chunk, the zones' free blocks, the reports, the current task
    and call site (the compiled replayer writes Machine.ip_handle only when it must)."""
    shadow = next(scheme for scheme in machine.schemes if scheme.name == "flat")
    return {
        "sections": {pfn: sec.tobytes() for pfn, sec in machine.memmap.for_each_section()},
        "shadow": {key: bytes(chunk) for key, chunk in shadow._chunks.items()},
        "free": [zone.free_pages for zone in machine.zones],
        "pages": dict(machine.pages),
        "reports": [r.bug_type for r in machine.reports],
        "caches": [(c.id, c.name, c.object_size) for c in machine.caches],
        "task": (machine.task.comm, machine.task.pid, machine.ip_handle),
        "tasks": {pid: task.comm for pid, task in machine.tasks.items()},
    }


def _replay(path: str, profile: str, engine: str, mem: str = "1G", **options):
    """Everything a replay gives on one engine: the summary, statistics, pointer maps (caches
    by id) and the machine's state; a TraceError as (text, line)."""
    machine = Machine(load_profile(profile, parse_size(mem)), engine=engine)
    try:
        reader, rep = replay_trace(machine, path, **options)
    except TraceError as e:
        return ("error", str(e), e.line)
    return (
        trace_summary(reader.stats, rep.stats),
        rep.stats,
        reader.stats,
        rep.events,
        rep.interrupted,
        rep.objects,
        {p: c.id for p, c in rep.object_cache.items()},
        rep.pages,
        rep.slab_pfns,
        _state(machine),
    )


def _same_both_engines(path: str, profile: str = "x86_64", **options) -> None:
    ours = _replay(path, profile, "native", **options)
    reference = _replay(path, profile, "python", **options)
    assert ours == reference


def _slice(tmp_path, trace: str, lines: int) -> str:
    with lzma.open(TRACES / trace, "rt") as f:
        head = "".join(line for _, line in zip(range(lines), f))
    path = tmp_path / f"head-{trace}.txt"
    path.write_text(head)
    return str(path)


@pytest.mark.parametrize("trace", sorted(PROFILES))
def test_a_slice_of_each_real_trace_replays_alike(tmp_path, trace):
    """The first 6000 lines, read in this process and by a reading child."""
    path = _slice(tmp_path, trace, 6000)
    _same_both_engines(path, PROFILES[trace], parallel=False)
    if sys.platform.startswith("linux"):
        _same_both_engines(path, PROFILES[trace], parallel=True)


def test_the_whole_real_traces_replay_alike():
    """Every event of both real captures (about 10 s on each engine together)."""
    for trace, profile in PROFILES.items():
        _same_both_engines(str(TRACES / trace), profile, parallel=False)


@pytest.mark.parametrize("parallel", [False, pytest.param(True, marks=needs_fork)])
def test_progress_and_after_event_are_called_alike(tmp_path, parallel):
    """``progress(events, line, fraction)`` every 16384 events and ``after_event(event)``
    after each replayed one: the same calls with the same TraceEvents, read here or by a
    reading child."""
    path = _slice(tmp_path, "kmem-trace-x86_64.txt.xz", 60_000)
    calls = {}
    for engine in ("native", "python"):
        seen = calls[engine] = []
        machine = Machine(load_profile("x86_64", parse_size("1G")), engine=engine)
        replay_trace(
            machine,
            path,
            parallel=parallel,
            progress=lambda n, line, fraction, seen=seen: seen.append(("progress", n, line)),
            after_event=seen.append,
        )
    assert sum(1 for call in calls["python"] if call[0] == "progress") >= 2
    assert all(type(call) is TraceEvent for call in calls["native"] if call[0] != "progress")
    assert calls["native"] == calls["python"]


@pytest.mark.parametrize("stop", [1, 777, 2500])
def test_a_keyboard_interrupt_stops_both_alike(tmp_path, stop):
    """Ctrl-C during the replay (here: raised by after_event) keeps the partial figures."""
    path = _slice(tmp_path, "kmem-trace-arm32.txt.xz", 8000)
    results = []
    for engine in ("native", "python"):
        done = [0]

        def after_event(ev, done=done):
            done[0] += 1
            if done[0] == stop:
                raise KeyboardInterrupt

        machine = Machine(load_profile("arm32", parse_size("1G")), engine=engine)
        reader, rep = replay_trace(machine, path, parallel=False, after_event=after_event)
        results.append(
            (
                rep.interrupted,
                rep.events,
                rep.stats,
                rep.objects,
                rep.pages,
                rep.slab_pfns,
                _state(machine),
            )
        )
    assert results[0][0] is True
    assert results[0] == results[1]


def _write(tmp_path, lines: list[str], name: str = "lines.txt") -> str:
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return str(path)


def test_bad_lines_give_the_same_errors_on_both(tmp_path):
    """Every adversarial and era line of test_ftrace.py, strict and not, alone and together."""
    lines = ADVERSARIAL + [line for line, _, _ in ERA_LINES]
    for strict in (False, True):
        _same_both_engines(_write(tmp_path, lines), strict=strict, parallel=False)
        for line in lines:
            _same_both_engines(
                _write(tmp_path, ["# tracer: nop", line]), strict=strict, parallel=False
            )


FUZZ_CORPUS = sorted((Path(__file__).resolve().parent / "fuzz" / "trace").glob("*.txt"))


@pytest.mark.parametrize("path", FUZZ_CORPUS, ids=lambda p: p.name)
def test_the_fuzz_corpus_replays_alike(path):
    """The traces the fuzzer kept (tests/fuzz/trace), strict and not."""
    for strict in (False, True):
        _same_both_engines(str(path), strict=strict, parallel=False)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(trace_lines(), min_size=1, max_size=12), st.booleans())
def test_fuzzed_lines_replay_alike(tmp_path, lines, strict):
    _same_both_engines(_write(tmp_path, lines, "fuzz.txt"), strict=strict, parallel=False)


# A synthetic trace over few traced keys, so that frees, missed frees, reused pointers, slab
# pages recognised by the objects in them and pages freed twice all happen; pointers in the
# x86_64 direct map (PAGE_OFFSET 0xffff888000000000) of the traced pfns.
DIRECT_MAP = 0xFFFF888000000000
TASKS = ("sh-9", "kworker/0:1-20", "<idle>-0", "bash-9")  # (pid 9 under two comms)


@st.composite
def synthetic_event(draw):
    task = draw(st.sampled_from(TASKS))
    site = draw(st.sampled_from(["f+0x1/0x2", "g+0x10/0x40", "c104de4f"]))
    pfn = 0x1000 + draw(st.integers(0, 15))
    ptr = draw(
        st.one_of(
            st.just(0),
            st.builds(
                lambda p, o: DIRECT_MAP + p * 4096 + o * 64,
                st.integers(0x1000, 0x1010),
                st.integers(0, 8),
            ),
        )
    )
    text = f"{ptr:016x}" if ptr else "          (null)"
    kind = draw(st.integers(0, 5))
    if kind == 0:
        size = draw(st.sampled_from([0, 8, 100, 4096, 9000, 1 << 20, 1 << 40]))
        event = f"kmalloc: call_site={site} ptr={text} bytes_req={size} bytes_alloc={size}"
    elif kind == 1:
        req, slot = draw(st.sampled_from([(24, 32), (200, 256), (5000, 8192), (1 << 30, 1 << 30)]))
        event = f"kmem_cache_alloc: call_site={site} ptr={text} bytes_req={req} bytes_alloc={slot}"
    elif kind == 2:
        event = f"kfree: call_site={site} ptr={text}"
    elif kind == 3:
        name = draw(st.sampled_from(["", " name=dentry", " name=inode_cache"]))
        event = f"kmem_cache_free: call_site={site} ptr={text}{name}"
    elif kind == 4:
        event = (
            f"mm_page_alloc: page=ffffea0000000000 pfn={pfn:#x} "
            f"order={draw(st.integers(0, 11))} migratetype=0 gfp_flags=GFP_KERNEL"
        )
    else:
        event = f"mm_page_free: page=ffffea0000000000 pfn={pfn:#x} order={draw(st.integers(0, 3))}"
    return f"  {task} [000] d.... 1.5: {event}"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(synthetic_event(), min_size=1, max_size=200))
def test_synthetic_traces_replay_alike(tmp_path, lines):
    _same_both_engines(_write(tmp_path, lines, "synthetic.txt"), mem="64M", parallel=False)


def test_many_live_keys_grow_the_tables_alike(tmp_path):
    """Thousands of live pointers and pages at once: the compiled tables grow (from 1024
    slots) and delete by backward shift across their wrap-around."""
    lines = []
    for i in range(3000):
        lines.append(
            f"  sh-9 [000] d.... 1.5: kmalloc: call_site=f+0x1/0x2 "
            f"ptr={DIRECT_MAP + 0x10000000 + i * 64:016x} bytes_req=8 bytes_alloc=8"
        )
        lines.append(
            f"  sh-9 [000] d.... 1.5: mm_page_alloc: page=ffffea0000000000 "
            f"pfn={0x20000 + i:#x} order=0 migratetype=0 gfp_flags=GFP_KERNEL"
        )
    for i in range(0, 3000, 3):
        lines.append(
            f"  sh-9 [000] d.... 1.5: kfree: call_site=f+0x1/0x2 "
            f"ptr={DIRECT_MAP + 0x10000000 + i * 64:016x}"
        )
        lines.append(
            f"  sh-9 [000] d.... 1.5: mm_page_free: page=ffffea0000000000 "
            f"pfn={0x20000 + i:#x} order=0"
        )
    _same_both_engines(_write(tmp_path, lines, "many.txt"), parallel=False)


def test_an_event_batch_reads_as_the_python_readers_events(tmp_path):
    """The native reader's EventBatch, as a sequence, holds the Python reader's TraceEvents
    (indexing, negative indexes and iteration alike)."""
    path = _slice(tmp_path, "kmem-trace-arm32.txt.xz", 3000)
    batch = next(TraceReader(path, engine="native").batches())
    reference = next(TraceReader(path, engine="python").batches())
    assert isinstance(batch, EventBatch) and len(batch) == len(reference) > 1000
    assert list(batch) == reference
    assert [batch[i] for i in (0, 1, -1, -len(batch))] == [
        reference[i] for i in (0, 1, -1, -len(reference))
    ]
    with pytest.raises(IndexError):
        batch[len(batch)]
    assert batch.line.dtype == np.int64 and batch.ptr.dtype == np.uint64
    # the columns the class declares (for the type checker) are EVENT_COLUMNS'
    assert list(EventBatch.__annotations__) == [name for name, _ in EVENT_COLUMNS]


# ---------------------------------------------------------------- the compiled page path


@st.composite
def page_calls(draw):
    """alloc_pages(order, use, compound) and free_pages of a live block, as (call, args)."""
    calls = []
    for _ in range(draw(st.integers(1, 60))):
        if draw(st.booleans()):
            calls.append(
                (
                    "alloc",
                    draw(st.integers(0, 12)),
                    draw(st.sampled_from(list(PageUse))),
                    draw(st.booleans()),
                )
            )
        else:
            calls.append(("free", draw(st.integers(0, 1000))))
    return calls


def _page_path(profile: str, schemes: tuple, engine: str, calls: list) -> tuple:
    machine = Machine(load_profile(profile, parse_size("64M")), schemes=schemes, engine=engine)
    machine.memmap.written = []
    live, answers = [], []
    for call in calls:
        if call[0] == "alloc":
            _, order, use, compound = call
            pfn = machine.alloc_pages(order, use, compound)
            answers.append(pfn)
            if pfn is not None:
                live.append((pfn, order))
        elif live:
            pfn, order = live.pop(call[1] % len(live))
            machine.free_pages(pfn, order)
    shadows = [
        machine.shadow.read(machine.page_address(pfn), machine.page_size << order)
        for pfn, order in live
        if machine.profile.is_lowmem_pfn(pfn)
    ]
    return answers, shadows, machine.memmap.written, _state(machine)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    page_calls(),
    st.sampled_from(["x86_64", "arm32"]),
    st.sampled_from([("flat",), ("pageext", "flat")]),
)
def test_alloc_pages_and_free_pages_alike(calls, profile, schemes):
    """Random alloc_pages()/free_pages() on both engines: the same pfns, struct pages (and
    the MemMap's journal of writes), shadow of every live block, zones; the flat scheme
    alone (the compiled memset) and behind another scheme (shadow.poison())."""
    assert _page_path(profile, schemes, "native", calls) == _page_path(
        profile, schemes, "python", calls
    )


def test_the_native_machine_pickles_with_its_page_path():
    """A checkpoint (a pickle of the machine) of a native machine comes back with its
    compiled page path bound to the unpickled state."""
    machine = Machine(load_profile("x86_64", parse_size("64M")), engine="native")
    pfn = machine.alloc_pages(2)
    clone = pickle.loads(pickle.dumps(machine))
    clone.free_pages(pfn, 2)
    assert pfn in machine.pages and pfn not in clone.pages
    assert clone.memmap.get(pfn, "state", None) == 0 != machine.memmap.get(pfn, "state", None)


def test_a_missed_free_forgets_the_objects_kmem_cache(tmp_path):
    """A pointer allocated from a kmem_cache, never freed in the trace, then kmalloc'd: it is
    a kmalloc object now, with no kmem_cache of its own (both engines), so that its kfree
    frees it with kfree(), not kmem_cache_free() of the old cache."""
    ptr = DIRECT_MAP + 0x5000000
    lines = [
        f"  sh-9 [000] d.... 1.5: kmem_cache_alloc: call_site=f+0x1/0x2 ptr={ptr:016x} "
        f"bytes_req=200 bytes_alloc=256",
        f"  sh-9 [000] d.... 1.5: kmalloc: call_site=f+0x1/0x2 ptr={ptr:016x} bytes_req=8 "
        f"bytes_alloc=8",
    ]
    path = _write(tmp_path, lines, "missed.txt")
    for engine in ("python", "native"):
        machine = Machine(load_profile("x86_64", parse_size("64M")), engine=engine)
        reader, rep = replay_trace(machine, path, parallel=False)
        assert rep.stats.freed_before_trace == {"lost free": 1}
        assert list(rep.objects) == [ptr] and rep.object_cache == {}


def test_a_compiled_replayer_pickled_midway_goes_on_as_one_never_pickled(tmp_path):
    """A BatchReplayer pickles with its machine as a few arrays (what a session's checkpoint
    keeps) and, restored, replays on to the state and maps of one that was never pickled; one
    made for a replayer driven the Python way so far takes its dicts' maps over."""
    from kinspect.engine.replay import TraceReplayer

    path = _slice(tmp_path, "kmem-trace-x86_64.txt.xz", 12000)
    batch = next(TraceReader(path, engine="native").batches())
    half = len(batch) // 2
    first, rest = batch.slice(0, half), batch.slice(half, len(batch))

    def fresh() -> TraceReplayer:
        return TraceReplayer(Machine(load_profile("x86_64"), engine="native"), path)

    def result(rep: TraceReplayer) -> tuple:
        objects, object_cache, pages, slab_pfns = rep.compiled().maps()
        return (
            rep.events,
            rep.stats,
            objects,
            {p: c.id for p, c in object_cache.items()},
            pages,
            slab_pfns,
            _state(rep.machine),
        )

    never = fresh()
    never.compiled().replay(first)
    blob = pickle.dumps(never, protocol=pickle.HIGHEST_PROTOCOL)
    assert b"KeyTable" in blob
    never.compiled().replay(rest)
    restored = pickle.loads(blob)
    assert restored.events == half and restored._compiled is not None
    assert restored.compiled().objects.count > 1000
    restored.compiled().replay(rest)
    assert result(restored) == result(never)

    python_first = fresh()
    python_first.replay(list(first))
    live = dict(python_first.objects)
    assert len(live) > 1000
    compiled = python_first.compiled()  # takes the dicts' maps over
    assert not python_first.objects and compiled.objects.count == len(live)
    assert all(python_first.object_address(ptr) == addr for ptr, addr in live.items())
    compiled.replay(rest)
    assert result(python_first) == result(never)
