"""A long run at the scale of a kernel build: 10^8 kmem events, GENERATED from the real x86_64
trace's mix (issue 12: "10^8 events with flat in <= 2 minutes").

Kim's 2017 per-page shadow figures came from a kernel build, a trace hundreds of times longer
than the one we ship (samples/traces/kmem-trace-x86_64.txt.xz, 573 377 events). No such trace
is at hand, so this one is generated, and labelled so everywhere it is printed:

1. The mix is measured from the real trace: every allocation it holds (kmalloc and
   kmem_cache_alloc with their requested and slot sizes, call site, cache name and task;
   mm_page_alloc with its order, except the pages that turn out to be slab or large-kmalloc
   pages, which the simulated SLUB makes itself, as the replayer does) with its lifetime, in
   events from its allocation to its free. An allocation still live at the end of the trace
   (boot-time objects, mostly) gets a lifetime drawn uniformly between its age at the end and
   twice the trace's length: without it, 10^8 events would pile up never-freed objects until
   the machine is out of memory, which a kernel build does not do.
2. The events are generated as a stream of EventBatches (ftrace.EventBatch, the columns the
   compiled trace scanner makes), by numpy a block of 65 536 events at a time, never held
   whole (generate()): allocation j draws an allocation of the mix (with replacement,
   seeded) at time 2j, and is freed at time 2j + its lifetime; the stream is every event in
   time order. What is live at any time waits in arrays of due frees: the stream's memory is
   that of the live set, not of the run.
3. The stream is replayed as `kinspect run TRACE` replays a file, with the flat scheme, on
   each engine: the native one hands the batches to the compiled replayer
   (TraceReplayer.compiled(), as replay_trace() does), the Python one replays their events
   one by one (TraceReplayer.replay, the reference); wall and CPU seconds, events/s, the
   load average. The generator's own cost is measured apart, on the first
   --generator-events.
4. Every scheme in lockstep (the figures of `kinspect compare`) on the native engine over
   --schemes-events of the same stream: what each costs (static, dynamic, dynamic peak,
   metadata, total peak; peaks sampled every 16 384 events and at the end), and the checks.
5. check: the first --check-events of the stream, every scheme in lockstep, on both engines:
   their state fingerprints (kinspect/engine/fingerprint.py), replay statistics and scheme
   figures must be equal (exit status 1 if not).

    python benchmarks/longrun.py [--events 1e8] [--python-events 1e7]
                                 [--schemes-events 1e7] [--parts mix,generator,native,python,
                                 schemes,check] [--mem 1G] [--seed 1] [--check-events 2e5]

A part given fewer events than --events is extrapolated linearly to --events, and printed
as such ("extrapolated").
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from itertools import chain
from pathlib import Path
from typing import TypeVar

import numpy as np

from kinspect.engine import native
from kinspect.engine.collector import gc_paused
from kinspect.engine.fingerprint import fingerprint
from kinspect.engine.ftrace import (
    KFREE,
    KMALLOC,
    KMEM_CACHE_ALLOC,
    KMEM_CACHE_FREE,
    PAGE_ALLOC,
    PAGE_FREE,
    EventBatch,
    TraceReader,
)
from kinspect.engine.machine import Machine
from kinspect.engine.profile import format_size, load_profile, parse_size
from kinspect.engine.replay import TraceReplayer
from kinspect.engine.shadow import SCHEMES

TRACE = Path(__file__).resolve().parent.parent / "samples" / "traces" / "kmem-trace-x86_64.txt.xz"
FREE_OF = np.zeros(max(KMALLOC, KMEM_CACHE_ALLOC, PAGE_ALLOC) + 1, np.int8)  # kind -> its free's
FREE_OF[[KMALLOC, KMEM_CACHE_ALLOC, PAGE_ALLOC]] = KFREE, KMEM_CACHE_FREE, PAGE_FREE
BLOCK = 65536  # events per generated EventBatch
LOCKSTEP = ("flat",) + tuple(s for s in SCHEMES if s != "flat")  # flat the reference
SAMPLE_EVERY = 16384  # TraceReplayer.replay()'s progress callback: footprints sampled
PROGRESS_EVERY = 1 << 23  # events between two progress lines (partial figures of a long run)


class Mix:
    """The allocations of a real trace, each with its lifetime in events."""

    def __init__(self, path: str, profile_name: str = "x86_64") -> None:
        p = load_profile(profile_name)
        lm_delta, page_shift = p.page_offset - p.phys_offset, p.page_shift
        # An allocation: (kind, req, size, order, call_site, name, comm, pid); its birth.
        self.allocations: list[tuple] = []
        born: list[int] = []
        lifetime: list[int | None] = []
        slab_page: set[int] = set()  # indices of pages found to hold objects
        live_objects: dict[int, int] = {}  # traced ptr -> index
        live_pages: dict[int, int] = {}  # traced pfn -> index
        events = 0
        with gc_paused():
            for ev in chain.from_iterable(TraceReader(path).batches()):
                line, kind, ptr, pfn, order, req, size, call_site, name, comm, pid = ev
                now = events
                events += 1
                if kind in (KMALLOC, KMEM_CACHE_ALLOC):
                    if not ptr:
                        continue
                    page = (ptr - lm_delta) >> page_shift
                    for mask in (0, 1, 3, 7):  # as TraceReplayer adopts slab pages
                        index = live_pages.pop(page & ~mask, None)
                        if index is not None:
                            slab_page.add(index)
                            break
                    live_objects[ptr] = len(born)
                elif kind == PAGE_ALLOC:
                    live_pages[pfn] = len(born)
                else:
                    index = (live_objects if kind in (KFREE, KMEM_CACHE_FREE) else live_pages).pop(
                        ptr if kind != PAGE_FREE else pfn, None
                    )
                    if index is not None:
                        lifetime[index] = now - born[index]
                        if kind == KMEM_CACHE_FREE and name:
                            self.allocations[index] = (
                                self.allocations[index][:5] + (name,) + self.allocations[index][6:]
                            )
                    continue
                self.allocations.append((kind, req, size, order, call_site, name, comm, pid))
                born.append(now)
                lifetime.append(None)
        self.trace_events = events
        self.censored = 0
        self.lifetimes: list[int | None] = []  # None: drawn at generation time
        self.ages: list[int] = []  # of the censored, at the trace's end
        keep = [i for i in range(len(born)) if i not in slab_page]
        self.slab_pages = len(slab_page)
        self.allocations = [self.allocations[i] for i in keep]
        for i in keep:
            self.lifetimes.append(lifetime[i])
            self.ages.append(events - born[i])
            self.censored += lifetime[i] is None

    def describe(self) -> list[str]:
        kinds = Counter(a[0] for a in self.allocations)
        freed = sorted(t for t in self.lifetimes if t is not None)
        sizes = Counter(a[1] for a in self.allocations if a[0] == KMALLOC)
        caches = Counter((a[1], a[2]) for a in self.allocations if a[0] == KMEM_CACHE_ALLOC)
        orders = Counter(a[3] for a in self.allocations if a[0] == PAGE_ALLOC)
        n = len(self.allocations)
        return [
            f"mix measured from the real trace: {self.trace_events:,} events, {n:,} "
            f"allocations kept (kmalloc {kinds[KMALLOC]:,}, kmem_cache_alloc "
            f"{kinds[KMEM_CACHE_ALLOC]:,}, mm_page_alloc {kinds[PAGE_ALLOC]:,}; "
            f"{self.slab_pages:,} traced page allocations were slab pages, left out)",
            f"  lifetimes (events to the free): median {freed[len(freed) // 2]:,}, 90th "
            f"percentile {freed[len(freed) * 9 // 10]:,}; still live at the end of the trace: "
            f"{self.censored:,} ({100 * self.censored / n:.1f} %), given U(age, "
            f"{2 * self.trace_events:,})",
            "  commonest kmalloc sizes: "
            + ", ".join(f"{s} ({c:,})" for s, c in sizes.most_common(6)),
            "  commonest kmem_cache_alloc (object, slot): "
            + ", ".join(f"{r}/{s} ({c:,})" for (r, s), c in caches.most_common(4)),
            "  page orders: " + ", ".join(f"{o}: {c:,}" for o, c in sorted(orders.items())),
        ]


class MixColumns:
    """A Mix's allocations as numpy columns (one row each), with the string and task tables
    of the EventBatches made from them (``ftrace.EventBatch``: call sites and cache names
    are indexes into ``strings``, (comm, pid) into ``tasks``)."""

    def __init__(self, mix: Mix) -> None:
        self.strings: list[str] = [""]
        self.tasks: list[tuple[str, int]] = []
        string_index = {"": 0}
        task_index: dict[tuple[str, int], int] = {}

        def string(text) -> int:
            if not text:
                return -1
            if text not in string_index:
                string_index[text] = len(self.strings)
                self.strings.append(text)
            return string_index[text]

        def task(comm: str, pid: int) -> int:
            if (comm, pid) not in task_index:
                task_index[comm, pid] = len(self.tasks)
                self.tasks.append((comm, pid))
            return task_index[comm, pid]

        a = mix.allocations
        self.kind = np.array([x[0] for x in a], np.int8)
        page = self.kind == PAGE_ALLOC
        self.req = np.where(page, 0, np.array([x[1] for x in a], np.uint64)).astype(np.uint64)
        self.size = np.where(page, 0, np.array([x[2] for x in a], np.uint64)).astype(np.uint64)
        self.order = np.where(page, np.array([x[3] or 0 for x in a], np.uint64), 0).astype(
            np.uint64
        )
        # the call site of an object (its free's too); a page's reads "" (as TraceEvent's)
        self.call_site = np.where(
            page, 0, np.array([max(string(x[4]), 0) for x in a], np.int32)
        ).astype(np.int32)
        self.name = np.array([string(x[5]) for x in a], np.int32)  # a free's name=, or -1
        self.task = np.array([task(x[6], x[7]) for x in a], np.int32)
        self.lifetime = np.array([-1 if t is None else t for t in mix.lifetimes], np.int64)
        self.age = np.array(mix.ages, np.int64)
        self.horizon = 2 * mix.trace_events


def generate(mix: MixColumns, events: int, seed: int, block: int = BLOCK):
    """``events`` GENERATED kmem events from ``mix``, streamed as EventBatches of about
    ``block`` events, made by numpy a block at a time.

    Allocation j (j = 1, 2, ...) draws a row of the mix (with replacement, seeded) and happens
    at time 2j; its free at time 2j + its lifetime (the row's, in events, at least 1; a row
    still live at the end of the real trace draws one uniformly in [age, 2 x the trace's
    length]). The stream is every event in time order, a free before an allocation at the
    same time, frees of the same time in allocation order: one allocation every two events
    and, once the live set is steady, one free per allocation, so a lifetime is about that
    many events of the stream, as it was in the trace. What is live at any time waits in
    ``pending`` (time, key, row): the stream's memory is that of the live set."""
    rng = np.random.default_rng(seed)
    rows = len(mix.kind)
    per_block = block // 2  # allocations per block
    pending_time = np.empty(0, np.int64)
    pending_key = np.empty(0, np.int64)
    pending_row = np.empty(0, np.int64)
    made = 0  # allocations so far
    n = 0  # events so far
    strings, tasks = mix.strings, mix.tasks
    while n < events:
        # this block's allocations: keys (traced pointers / pfns, small: never inside a traced
        # page) made + 1 .. made + per_block, at times 2 * key
        key = np.arange(made + 1, made + per_block + 1, dtype=np.int64)
        row = rng.integers(rows, size=per_block)
        life = mix.lifetime[row]
        censored = life < 0
        life[censored] = rng.integers(mix.age[row[censored]], mix.horizon + 1)
        made += per_block
        pending_time = np.concatenate([pending_time, 2 * key + np.maximum(life, 1)])
        pending_key = np.concatenate([pending_key, key])
        pending_row = np.concatenate([pending_row, row])
        # frees due before the next block's first allocation (time 2 * (made + 1))
        due = pending_time < 2 * (made + 1)
        free_time, free_key, free_row = pending_time[due], pending_key[due], pending_row[due]
        keep = ~due
        pending_time, pending_key, pending_row = (
            pending_time[keep],
            pending_key[keep],
            pending_row[keep],
        )
        time_ = np.concatenate([free_time, 2 * key])
        is_alloc = np.concatenate([np.zeros(len(free_key), np.int8), np.ones(per_block, np.int8)])
        keys = np.concatenate([free_key, key])
        rows_ = np.concatenate([free_row, row])
        sequence = np.lexsort((keys, is_alloc, time_))[: events - n]
        is_alloc, keys, rows_ = (
            is_alloc[sequence],
            keys[sequence].astype(np.uint64),
            rows_[sequence],
        )
        kind = mix.kind[rows_]
        page = kind == PAGE_ALLOC
        alloc = is_alloc.astype(bool)
        zero = np.zeros(len(sequence), np.uint64)
        yield EventBatch(
            (
                np.arange(n + 1, n + len(sequence) + 1, dtype=np.int64),  # line
                np.where(alloc, kind, FREE_OF[kind]).astype(np.int8),
                np.where(page, zero, keys),  # ptr
                np.where(page, keys, zero),  # pfn
                mix.order[rows_],
                np.where(alloc, mix.req[rows_], zero),
                np.where(alloc, mix.size[rows_], zero),
                mix.call_site[rows_],
                np.where(alloc, -1, mix.name[rows_]).astype(np.int32),
                mix.task[rows_],
            ),
            strings,
            tasks,
        )
        n += len(sequence)


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


T = TypeVar("T")


def _timed(what: str, run: Callable[[], T], events: int, target: int) -> T:
    load = _load()
    t, c = time.perf_counter(), time.process_time()
    result = run()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    label = (
        ""
        if events == target
        else f"; extrapolated to {target:,} events: {wall * target / events:,.0f} s wall, "
        f"{cpu * target / events:,.0f} s CPU (EXTRAPOLATED)"
    )
    print(
        f"{what}: {events:,} GENERATED events in {wall:,.1f} s wall, {cpu:,.1f} s CPU = "
        f"{events / wall:,.0f} events/s wall, {events / cpu:,.0f} events/s CPU "
        f"({1e6 * cpu / events:.2f} us/event){label}; load average before {load}, "
        f"after {_load()}; peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB",
        flush=True,
    )
    return result


def _replay(
    mix: MixColumns, events: int, seed: int, mem: int, engine: str, schemes, quiet: bool = False
) -> tuple[dict, Machine, TraceReplayer]:
    """Replay ``events`` generated events as `kinspect run` replays a trace on each engine:
    the native one hands the EventBatches to the compiled replayer
    (``TraceReplayer.compiled()``, as replay_trace() does), the Python one replays their
    events one by one (TraceReplayer.replay, the reference). The figures per scheme (peaks
    sampled), the machine and the replayer."""
    machine = Machine(load_profile("x86_64", mem), schemes=schemes, engine=engine)
    replayer = TraceReplayer(machine, "GENERATED")
    peaks = {s.name: 0 for s in machine.schemes}
    start, start_cpu = time.perf_counter(), time.process_time()

    def sample(n: int = 0, _line: int = 0) -> None:
        for scheme in machine.schemes:
            peaks[scheme.name] = max(peaks[scheme.name], scheme.footprint().total_bytes())
        if n and not n % PROGRESS_EVERY and not quiet:
            cpu = time.process_time() - start_cpu
            print(
                f"  [{engine}] ... {n:,} events: {time.perf_counter() - start:,.0f} s wall, "
                f"{cpu:,.0f} s CPU ({1e6 * cpu / n:.2f} us/event), load average {_load()}",
                flush=True,
            )

    batches = generate(mix, events, seed)
    with gc_paused():
        if engine == "native":
            replay_batch = replayer.compiled().replay
            for batch in batches:
                replay_batch(batch, sample)
        else:
            replayer.replay(chain.from_iterable(batches), progress=sample)
    sample()
    rows = {}
    for scheme in machine.schemes:
        fp = scheme.footprint()
        rows[scheme.name] = (
            fp,
            max(peaks[scheme.name], fp.static_bytes + fp.metadata_bytes + fp.dynamic_peak_bytes),
        )
    s = machine.summary()
    if not quiet:
        print(
            f"  [{engine}] end: pages in use {s['pages_in_use']:,}, slabs {s['slabs']:,}, "
            f"objects in use {s['objects_in_use']:,}, quarantine "
            f"{format_size(s['quarantine_bytes'])}, failed allocations "
            f"{dict(replayer.stats.failed) or 'none'}, reports {s['reports']}",
            flush=True,
        )
    return rows, machine, replayer


def same_on_both_engines(mix: MixColumns, events: int, seed: int, mem: int) -> list[str]:
    """The parts of the state (kinspect/engine/fingerprint.py), replay statistics and
    per-scheme figures that differ between the engines after the same ``events`` generated
    events (every scheme in lockstep); [] when none does."""
    sides = [
        _replay(mix, events, seed, mem, engine, LOCKSTEP, quiet=True)
        for engine in ("python", "native")
    ]
    (rows_p, machine_p, replayer_p), (rows_n, machine_n, replayer_n) = sides
    prints = fingerprint(machine_p), fingerprint(machine_n)
    differ = [part for part in prints[0] if prints[0][part] != prints[1][part]]
    if replayer_p.stats != replayer_n.stats:
        differ.append("replay statistics")
    if rows_p != rows_n:
        differ.append("scheme figures")
    return differ


def _print_rows(rows: dict, events: int) -> None:
    print(
        f"  what each scheme costs over {events:,} GENERATED events (--mem as given; peaks "
        f"sampled every {SAMPLE_EVERY:,} events and at the end):"
    )
    print(
        f"  {'scheme':8} {'static':>11} {'dynamic':>11} {'dyn. peak':>11} {'metadata':>11} "
        f"{'total peak':>11} {'checks':>8} {'loads':>8}"
    )
    for name, (fp, peak) in rows.items():
        print(
            f"  {name:8} {format_size(fp.static_bytes):>11} "
            f"{format_size(fp.dynamic_bytes):>11} {format_size(fp.dynamic_peak_bytes):>11} "
            f"{format_size(fp.metadata_bytes):>11} {format_size(peak):>11} "
            f"{fp.checks:>8,} {fp.loads:>8,}",
            flush=True,
        )


def main() -> None:
    built = native.compiled(native.COMPILED[0]) is not None
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=str(TRACE), help="the real trace whose mix is used")
    ap.add_argument("--events", type=float, default=1e8)
    ap.add_argument(
        "--python-events",
        type=float,
        default=1e7,
        help="events for the Python engine (extrapolated to --events)",
    )
    ap.add_argument(
        "--schemes-events",
        type=float,
        default=1e7,
        help="events for every scheme in lockstep (native engine)",
    )
    ap.add_argument("--generator-events", type=float, default=1e7)
    ap.add_argument(
        "--check-events",
        type=float,
        default=2e5,
        help="events replayed on both engines, every scheme, and compared",
    )
    ap.add_argument(
        "--parts",
        default="mix,generator,native,python,schemes,check"
        if built
        else "mix,generator,python,schemes",
    )
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    parts = args.parts.split(",")
    target = int(args.events)
    mem = parse_size(args.mem)
    print(
        f"benchmarks/longrun.py: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {_load()}; machine x86_64 --mem {args.mem}",
        flush=True,
    )
    t = time.process_time()
    mix = Mix(args.trace)
    print(f"(mix measured in {time.process_time() - t:.1f} s CPU)")
    if "mix" in parts:
        print("\n".join(mix.describe()), flush=True)
    columns = MixColumns(mix)
    if "generator" in parts:
        n = int(args.generator_events)
        _timed(
            "generator alone (numpy, EventBatches)",
            lambda: sum(len(b) for b in generate(columns, n, args.seed)),
            n,
            target,
        )
    for engine, n in (("native", target), ("python", int(args.python_events))):
        if engine in parts:
            rows, *_ = _timed(
                f"flat replay [{engine}] (generator included)",
                partial(_replay, columns, n, args.seed, mem, engine, ("flat",)),
                n,
                target,
            )
            _print_rows(rows, n)
    if "schemes" in parts:
        n = int(args.schemes_events)
        engine = "native" if built else "python"
        rows, *_ = _timed(
            f"every scheme in lockstep [{engine}] (generator included)",
            partial(_replay, columns, n, args.seed, mem, engine, LOCKSTEP),
            n,
            target,
        )
        _print_rows(rows, n)
    if "check" in parts and built:
        n = int(args.check_events)
        differ = same_on_both_engines(columns, n, args.seed, mem)
        print(
            f"check: the first {n:,} GENERATED events, every scheme in lockstep, on both "
            f"engines: "
            + (
                f"DIFFER in {', '.join(differ)}"
                if differ
                else "same state fingerprint, statistics and scheme figures"
            ),
            flush=True,
        )
        if differ:
            sys.exit(1)


if __name__ == "__main__":
    main()
