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
2. The events are generated as a stream, never held whole: each step frees the oldest due
   allocation if one is due, else draws an allocation from the measured ones (with
   replacement, seeded), which is freed when its lifetime is up. What is live at any time is
   in a heap of due frees: the stream's memory is that of the live set, not of the run.
3. The stream is replayed by TraceReplayer (what `kinspect run TRACE` does, without reading
   a file), with the flat scheme, on each engine; wall and CPU seconds, events/s, the load
   average. The generator's own cost is measured apart, on the first --generator-events.
4. Every scheme in lockstep (the figures of `kinspect compare`) on the native engine over
   --schemes-events of the same stream: what each costs (static, dynamic, dynamic peak,
   metadata, total peak; peaks sampled every 16 384 events and at the end), and the checks.

    python benchmarks/longrun.py [--events 1e8] [--python-events 1e7]
                                 [--schemes-events 1e7] [--parts mix,generator,native,python,
                                 schemes] [--mem 1G] [--seed 1]

A part given fewer events than --events is extrapolated linearly to --events, and printed
as such ("extrapolated").
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import resource
import sys
import time
from collections import Counter
from itertools import chain
from pathlib import Path

from kinspect.engine import native
from kinspect.engine.ftrace import (KFREE, KMALLOC, KMEM_CACHE_ALLOC, KMEM_CACHE_FREE,
                                    PAGE_ALLOC, PAGE_FREE, TraceReader)
from kinspect.engine.machine import Machine
from kinspect.engine.profile import format_size, load_profile, parse_size
from kinspect.engine.replay import TraceReplayer
from kinspect.engine.shadow import SCHEMES
from kinspect.engine.workload import gc_paused

TRACE = Path(__file__).resolve().parent.parent / "samples" / "traces" / "kmem-trace-x86_64.txt.xz"
FREE_OF = {KMALLOC: KFREE, KMEM_CACHE_ALLOC: KMEM_CACHE_FREE, PAGE_ALLOC: PAGE_FREE}
SAMPLE_EVERY = 16384        # TraceReplayer.replay()'s progress callback: footprints sampled
PROGRESS_EVERY = 1 << 23    # events between two progress lines (partial figures of a long run)


class Mix:
    """The allocations of a real trace, each with its lifetime in events."""

    def __init__(self, path: str, profile_name: str = "x86_64") -> None:
        p = load_profile(profile_name)
        lm_delta, page_shift = p.page_offset - p.phys_offset, p.page_shift
        # An allocation: (kind, req, size, order, call_site, name, comm, pid); its birth.
        self.allocations: list[tuple] = []
        born: list[int] = []
        lifetime: list[int | None] = []
        slab_page: set[int] = set()                    # indices of pages found to hold objects
        live_objects: dict[int, int] = {}              # traced ptr -> index
        live_pages: dict[int, int] = {}                # traced pfn -> index
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
                    for mask in (0, 1, 3, 7):          # as TraceReplayer adopts slab pages
                        index = live_pages.pop(page & ~mask, None)
                        if index is not None:
                            slab_page.add(index)
                            break
                    live_objects[ptr] = len(born)
                elif kind == PAGE_ALLOC:
                    live_pages[pfn] = len(born)
                else:
                    index = (live_objects if kind in (KFREE, KMEM_CACHE_FREE)
                             else live_pages).pop(ptr if kind != PAGE_FREE else pfn, None)
                    if index is not None:
                        lifetime[index] = now - born[index]
                        if kind == KMEM_CACHE_FREE and name:
                            self.allocations[index] = self.allocations[index][:5] + (name,) \
                                + self.allocations[index][6:]
                    continue
                self.allocations.append((kind, req, size, order, call_site, name, comm, pid))
                born.append(now)
                lifetime.append(None)
        self.trace_events = events
        self.censored = 0
        self.lifetimes: list[int | None] = []         # None: drawn at generation time
        self.ages: list[int] = []                     # of the censored, at the trace's end
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
            "  commonest kmalloc sizes: " + ", ".join(f"{s} ({c:,})"
                                                     for s, c in sizes.most_common(6)),
            "  commonest kmem_cache_alloc (object, slot): "
            + ", ".join(f"{r}/{s} ({c:,})" for (r, s), c in caches.most_common(4)),
            "  page orders: " + ", ".join(f"{o}: {c:,}" for o, c in sorted(orders.items())),
        ]


def generate(mix: Mix, events: int, seed: int):
    """GENERATED kmem events from ``mix`` (TraceEvent fields, plain tuples), streamed."""
    rng = random.Random(seed)
    draw, uniform = rng.randrange, rng.randint
    allocations, lifetimes, ages = mix.allocations, mix.lifetimes, mix.ages
    horizon = 2 * mix.trace_events
    count = len(allocations)
    due: list[tuple[int, int, tuple]] = []            # (free at, key, the free event's fields)
    pop, push = heapq.heappop, heapq.heappush
    key = 0
    for now in range(1, events + 1):
        if due and due[0][0] <= now:
            _, k, (kind, name, order, comm, pid, call_site) = pop(due)
            if kind == PAGE_FREE:
                yield (now, kind, 0, k, order, 0, 0, "", "", comm, pid)
            else:
                yield (now, kind, k, 0, 0, 0, 0, call_site, name, comm, pid)
            continue
        i = draw(count)
        kind, req, size, order, call_site, name, comm, pid = allocations[i]
        key += 1            # a fresh traced pointer (small: never inside a traced page) or pfn
        if kind == PAGE_ALLOC:
            yield (now, kind, 0, key, order, 0, 0, "", "", comm, pid)
        else:
            yield (now, kind, key, 0, 0, req, size, call_site, "", comm, pid)
        life = lifetimes[i]
        if life is None:
            life = uniform(ages[i], horizon)
        push(due, (now + max(life, 1), key, (FREE_OF[kind], name, order, comm, pid, call_site)))


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _timed(what: str, run, events: int, target: int) -> None:
    load = _load()
    t, c = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    label = "" if events == target else \
        f"; extrapolated to {target:,} events: {wall * target / events:,.0f} s wall, " \
        f"{cpu * target / events:,.0f} s CPU (EXTRAPOLATED)"
    print(f"{what}: {events:,} GENERATED events in {wall:,.1f} s wall, {cpu:,.1f} s CPU = "
          f"{events / wall:,.0f} events/s wall, {events / cpu:,.0f} events/s CPU "
          f"({1e6 * cpu / events:.2f} us/event){label}; load average before {load}, "
          f"after {_load()}; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB", flush=True)


def _replay(mix: Mix, events: int, seed: int, mem: int, engine: str, schemes) -> dict:
    """Replay ``events`` generated events; the figures per scheme (peaks sampled)."""
    machine = Machine(load_profile("x86_64", mem), schemes=schemes, engine=engine)
    replayer = TraceReplayer(machine, "GENERATED")
    peaks = {s.name: 0 for s in machine.schemes}
    start, start_cpu = time.perf_counter(), time.process_time()

    def sample(n: int = 0, _line: int = 0) -> None:
        for scheme in machine.schemes:
            peaks[scheme.name] = max(peaks[scheme.name], scheme.footprint().total_bytes())
        if n and not n % PROGRESS_EVERY:
            cpu = time.process_time() - start_cpu
            print(f"  [{engine}] ... {n:,} events: {time.perf_counter() - start:,.0f} s wall, "
                  f"{cpu:,.0f} s CPU ({1e6 * cpu / n:.2f} us/event), load average {_load()}",
                  flush=True)

    with gc_paused():
        replayer.replay(generate(mix, events, seed), progress=sample)
    sample()
    rows = {}
    for scheme in machine.schemes:
        fp = scheme.footprint()
        rows[scheme.name] = (fp, max(peaks[scheme.name], fp.static_bytes + fp.metadata_bytes
                                     + fp.dynamic_peak_bytes))
    s = machine.summary()
    print(f"  [{engine}] end: pages in use {s['pages_in_use']:,}, slabs {s['slabs']:,}, "
          f"objects in use {s['objects_in_use']:,}, quarantine "
          f"{format_size(s['quarantine_bytes'])}, failed allocations "
          f"{dict(replayer.stats.failed) or 'none'}, reports {s['reports']}", flush=True)
    return rows


def _print_rows(rows: dict, events: int) -> None:
    print(f"  what each scheme costs over {events:,} GENERATED events (--mem as given; peaks "
          f"sampled every {SAMPLE_EVERY:,} events and at the end):")
    print(f"  {'scheme':8} {'static':>11} {'dynamic':>11} {'dyn. peak':>11} {'metadata':>11} "
          f"{'total peak':>11} {'checks':>8} {'loads':>8}")
    for name, (fp, peak) in rows.items():
        print(f"  {name:8} {format_size(fp.static_bytes):>11} "
              f"{format_size(fp.dynamic_bytes):>11} {format_size(fp.dynamic_peak_bytes):>11} "
              f"{format_size(fp.metadata_bytes):>11} {format_size(peak):>11} "
              f"{fp.checks:>8,} {fp.loads:>8,}", flush=True)


def main() -> None:
    built = native.compiled(native.COMPILED[0]) is not None
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=str(TRACE), help="the real trace whose mix is used")
    ap.add_argument("--events", type=float, default=1e8)
    ap.add_argument("--python-events", type=float, default=1e7,
                    help="events for the Python engine (extrapolated to --events)")
    ap.add_argument("--schemes-events", type=float, default=1e7,
                    help="events for every scheme in lockstep (native engine)")
    ap.add_argument("--generator-events", type=float, default=1e6)
    ap.add_argument("--parts", default="mix,generator,native,python,schemes" if built
                    else "mix,generator,python,schemes")
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    parts = args.parts.split(",")
    target = int(args.events)
    mem = parse_size(args.mem)
    print(f"benchmarks/longrun.py: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {_load()}; machine x86_64 --mem {args.mem}", flush=True)
    t = time.process_time()
    mix = Mix(args.trace)
    print(f"(mix measured in {time.process_time() - t:.1f} s CPU)")
    if "mix" in parts:
        print("\n".join(mix.describe()), flush=True)
    if "generator" in parts:
        n = int(args.generator_events)
        _timed("generator alone", lambda: sum(1 for _ in generate(mix, n, args.seed)), n, target)
    for engine, n in (("native", target), ("python", int(args.python_events))):
        if engine in parts:
            rows = {}
            _timed(f"flat replay [{engine}] (generator included)",
                   lambda: rows.update(_replay(mix, n, args.seed, mem, engine, ("flat",))),
                   n, target)
            _print_rows(rows, n)
    if "schemes" in parts:
        n = int(args.schemes_events)
        engine = "native" if built else "python"
        schemes = ("flat",) + tuple(s for s in SCHEMES if s != "flat")
        rows = {}
        _timed(f"every scheme in lockstep [{engine}] (generator included)",
               lambda: rows.update(_replay(mix, n, args.seed, mem, engine, schemes)), n, target)
        _print_rows(rows, n)


if __name__ == "__main__":
    main()
