"""The compiled replayer (_replay.pyx) against TraceReplayer.replay, the reference: both real
traces, slices of them, synthetic traces (hypothesis) and bad input replayed on both engines,
compared statistic by statistic, map by map, struct page by struct page and shadow chunk by
shadow chunk."""

from __future__ import annotations

import lzma
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ftrace import ADVERSARIAL, ERA_LINES, trace_lines

from kinspect.engine import native
from kinspect.engine.errors import TraceError
from kinspect.engine.ftrace import EventBatch, TraceReader
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile, parse_size
from kinspect.engine.replay import replay_trace, trace_summary

pytestmark = pytest.mark.skipif(native.compiled("_replay") is None,
                                reason="the native engine is not built")

TRACES = Path(__file__).resolve().parent.parent / "samples" / "traces"
PROFILES = {"kmem-trace-x86_64.txt.xz": "x86_64", "kmem-trace-arm32.txt.xz": "arm32"}
needs_fork = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="ParallelTraceReader forks: Linux only")


def _state(machine: Machine) -> dict:
    """The simulated machine as a replay leaves it: every struct page of every touched
    section, every flat shadow chunk, the zones' free blocks, the reports."""
    shadow = machine.schemes[0]
    return {
        "sections": {pfn: sec.tobytes() for pfn, sec in machine.memmap.for_each_section()},
        "shadow": {key: bytes(chunk) for key, chunk in shadow._chunks.items()},
        "free": [zone.free_pages for zone in machine.zones],
        "pages": dict(machine.pages),
        "reports": [r.bug_type for r in machine.reports],
        "caches": [(c.id, c.name, c.object_size) for c in machine.caches],
    }


def _replay(path: str, profile: str, engine: str, mem: str = "1G", **options):
    """Everything a replay gives on one engine: the summary, statistics, pointer maps (caches
    by id) and the machine's state; a TraceError as (text, line)."""
    machine = Machine(load_profile(profile, parse_size(mem)), engine=engine)
    try:
        reader, rep = replay_trace(machine, path, **options)
    except TraceError as e:
        return ("error", str(e), e.line)
    return (trace_summary(reader.stats, rep.stats), rep.stats, reader.stats, rep.events,
            rep.interrupted, rep.objects, {p: c.id for p, c in rep.object_cache.items()},
            rep.pages, rep.slab_pfns, _state(machine))


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


def test_progress_and_after_event_are_called_alike(tmp_path):
    """``progress(events, line, fraction)`` every 16384 events and ``after_event(event)``
    after each replayed one: the same calls with the same TraceEvents."""
    path = _slice(tmp_path, "kmem-trace-x86_64.txt.xz", 60_000)
    calls = {}
    for engine in ("native", "python"):
        seen = calls[engine] = []
        machine = Machine(load_profile("x86_64", parse_size("1G")), engine=engine)
        replay_trace(machine, path, parallel=False,
                     progress=lambda n, line, fraction: seen.append(("progress", n, line)),
                     after_event=lambda ev: seen.append(ev))
    assert sum(1 for call in calls["python"] if call[0] == "progress") >= 2
    assert calls["native"] == calls["python"]


@pytest.mark.parametrize("stop", [1, 777, 2500])
def test_a_keyboard_interrupt_stops_both_alike(tmp_path, stop):
    """Ctrl-C during the replay (here: raised by after_event) keeps the partial figures."""
    path = _slice(tmp_path, "kmem-trace-arm32.txt.xz", 8000)
    results = []
    for engine in ("native", "python"):
        done = [0]

        def after_event(ev):
            done[0] += 1
            if done[0] == stop:
                raise KeyboardInterrupt

        machine = Machine(load_profile("arm32", parse_size("1G")), engine=engine)
        reader, rep = replay_trace(machine, path, parallel=False, after_event=after_event)
        results.append((rep.interrupted, rep.events, rep.stats, rep.objects, rep.pages,
                        rep.slab_pfns, _state(machine)))
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
            _same_both_engines(_write(tmp_path, ["# tracer: nop", line]), strict=strict,
                               parallel=False)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(trace_lines(), min_size=1, max_size=12), st.booleans())
def test_fuzzed_lines_replay_alike(tmp_path, lines, strict):
    _same_both_engines(_write(tmp_path, lines, "fuzz.txt"), strict=strict, parallel=False)


# A synthetic trace over few traced keys, so that frees, missed frees, reused pointers, slab
# pages recognised by the objects in them and pages freed twice all happen; pointers in the
# x86_64 direct map (PAGE_OFFSET 0xffff888000000000) of the traced pfns.
DIRECT_MAP = 0xFFFF888000000000
TASKS = ("sh-9", "kworker/0:1-20", "<idle>-0")


@st.composite
def synthetic_event(draw):
    task = draw(st.sampled_from(TASKS))
    site = draw(st.sampled_from(["f+0x1/0x2", "g+0x10/0x40", "c104de4f"]))
    pfn = 0x1000 + draw(st.integers(0, 15))
    ptr = draw(st.one_of(st.just(0), st.builds(lambda p, o: DIRECT_MAP + p * 4096 + o * 64,
                                               st.integers(0x1000, 0x1010), st.integers(0, 8))))
    text = f"{ptr:016x}" if ptr else "          (null)"
    kind = draw(st.integers(0, 5))
    if kind == 0:
        size = draw(st.sampled_from([8, 100, 4096, 9000, 1 << 20, 1 << 40]))
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
        event = (f"mm_page_alloc: page=ffffea0000000000 pfn={pfn:#x} "
                 f"order={draw(st.integers(0, 11))} migratetype=0 gfp_flags=GFP_KERNEL")
    else:
        event = f"mm_page_free: page=ffffea0000000000 pfn={pfn:#x} order={draw(st.integers(0, 3))}"
    return f"  {task} [000] d.... 1.5: {event}"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(synthetic_event(), min_size=1, max_size=200))
def test_synthetic_traces_replay_alike(tmp_path, lines):
    _same_both_engines(_write(tmp_path, lines, "synthetic.txt"), mem="64M", parallel=False)


def test_many_live_keys_grow_the_tables_alike(tmp_path):
    """Thousands of live pointers and pages at once: the compiled tables grow (from 1024
    slots) and delete by backward shift across their wrap-around."""
    lines = []
    for i in range(3000):
        lines.append(f"  sh-9 [000] d.... 1.5: kmalloc: call_site=f+0x1/0x2 "
                     f"ptr={DIRECT_MAP + 0x10000000 + i * 64:016x} bytes_req=8 bytes_alloc=8")
        lines.append(f"  sh-9 [000] d.... 1.5: mm_page_alloc: page=ffffea0000000000 "
                     f"pfn={0x20000 + i:#x} order=0 migratetype=0 gfp_flags=GFP_KERNEL")
    for i in range(0, 3000, 3):
        lines.append(f"  sh-9 [000] d.... 1.5: kfree: call_site=f+0x1/0x2 "
                     f"ptr={DIRECT_MAP + 0x10000000 + i * 64:016x}")
        lines.append(f"  sh-9 [000] d.... 1.5: mm_page_free: page=ffffea0000000000 "
                     f"pfn={0x20000 + i:#x} order=0")
    _same_both_engines(_write(tmp_path, lines, "many.txt"), parallel=False)


def test_an_event_batch_reads_as_the_python_readers_events(tmp_path):
    """The native reader's EventBatch, as a sequence, holds the Python reader's TraceEvents
    (indexing, negative indexes and iteration alike)."""
    path = _slice(tmp_path, "kmem-trace-arm32.txt.xz", 3000)
    batch = next(TraceReader(path, engine="native").batches())
    reference = next(TraceReader(path, engine="python").batches())
    assert isinstance(batch, EventBatch) and len(batch) == len(reference) > 1000
    assert list(batch) == reference
    assert [batch[i] for i in (0, 1, -1, -len(batch))] == \
        [reference[i] for i in (0, 1, -1, -len(reference))]
    with pytest.raises(IndexError):
        batch[len(batch)]
    assert batch.line.dtype == np.int64 and batch.ptr.dtype == np.uint64
