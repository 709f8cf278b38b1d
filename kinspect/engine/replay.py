"""Replaying a real kernel's kmem trace on the simulated machine (docs/traces.md).

Traced pointers and pfns are identity keys, never addresses: the simulated machine places
every object and page itself, so a trace from a 3 GB machine replays on a 1 GB profile as long
as its live memory fits (when it does not, the allocation fails as in a kernel, and the summary
counts it).

- ``kmalloc``: a simulated ``kmalloc(bytes_req)`` (the kmalloc cache follows from the size, as
  in the kernel; above KMALLOC_MAX_CACHE_SIZE a compound page).
- ``kmem_cache_alloc``: a cache per (object size, slot size) seen in the trace
  (``bytes_req`` = s->object_size, ``bytes_alloc`` = s->size in 6.x), named after the first
  ``kmem_cache_free name=`` that frees one of its objects, or ``cache-<req>-<alloc>``.
- ``kfree`` / ``kmem_cache_free``: by traced pointer; an object allocated before tracing
  began is counted, not an error.
- ``mm_page_alloc`` / ``mm_page_free(_batched)``: by traced pfn and order. Slab pages and
  large kmallocs also show up as page allocations; the simulated allocator makes its own, so a
  traced page in which a traced slab object (or large kmalloc) appears is recognised as one
  and its simulated plain-page copy is given back.
- The call site is the allocation's "stack": reports say ``Allocated by task PID:
  call_site FILE:LINE``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain

from . import native
from .ftrace import (
    KIND_NAMES,
    KMALLOC,
    KMEM_CACHE_ALLOC,
    KMEM_CACHE_FREE,
    PAGE_ALLOC,
    PARALLEL_MIN_BYTES,
    EventFields,
    ParallelTraceReader,
    TraceEvent,
    TraceReader,
    TraceStats,
    parallel_possible,
)
from .machine import Machine
from .report import Frame, StackDepot
from .slab import KmemCache
from .workload import gc_paused

_SYMBOL = re.compile(r"(.+?)\+0x([0-9a-f]+)/0x([0-9a-f]+)")


@dataclass
class ReplayStats:
    """What happened to the trace's events on the simulated machine."""

    replayed: Counter = field(default_factory=Counter)
    freed_before_trace: Counter = field(default_factory=Counter)  # frees of unknown keys
    failed: Counter = field(default_factory=Counter)  # out of simulated memory
    slab_pages: int = 0  # traced page allocations recognised as slab/large pages
    caches: int = 0  # kmem_caches created for kmem_cache_alloc events


class TraceReplayer:
    """Feeds trace events to a Machine, keeping traced keys → simulated addresses.

    ``replay()`` is the Python engine's, the reference. On the native engine, replay_trace()
    hands the reader's EventBatches to ``compiled()``, the twin in _replay.pyx, which keeps
    the pointer maps in its own tables (taking over those of the dicts when it is made) and
    copies them into these dicts when the replay ends (``compiled().maps()``); a session's
    TraceRunner drives it one event at a time and keeps it, pickled with its tables in a
    checkpoint. ``object_address()`` and ``page()`` read the maps wherever they are."""

    def __init__(self, machine: Machine, path: str) -> None:
        self.machine = machine
        self.path = path
        self.stats = ReplayStats()
        self.objects: dict[int, int] = {}  # traced ptr -> simulated address
        self.object_cache: dict[
            int, KmemCache
        ] = {}  # traced ptr -> its kmem_cache (if not kmalloc)
        self.pages: dict[int, tuple[int, int]] = {}  # traced pfn -> (simulated pfn, order)
        self.slab_pfns: set[int] = set()  # traced pfns that turned out slab pages
        self.caches: dict[tuple[int, int], KmemCache] = {}
        self._named: set[int] = set()
        self._frames: dict[str, int] = {}
        self._pid: int | None = None
        p = machine.profile
        self._page_shift = p.page_shift
        self._lm_delta = p.page_offset - p.phys_offset
        self._depot = machine.depot = StackDepot()
        self.events = 0
        self.interrupted = False
        self._compiled = None

    def compiled(self):
        """The compiled replayer (``_replay.BatchReplayer``) bound to this one, made on first
        use; ``compiled().replay(batch, progress, after_event)`` replays an EventBatch."""
        if self._compiled is None:
            self._compiled = native.compiled("_replay").BatchReplayer(self)
        return self._compiled

    def object_address(self, ptr: int) -> int | None:
        """The simulated address of a live traced pointer, or None."""
        if self._compiled is not None:
            return self._compiled.object_address(ptr)
        return self.objects.get(ptr)

    def page(self, pfn: int) -> tuple[int, int] | None:
        """(simulated pfn, order) of a live traced page allocation, or None."""
        if self._compiled is not None:
            return self._compiled.page(pfn)
        return self.pages.get(pfn)

    def _frame(self, call_site: str, line: int) -> int:
        """The stack-depot handle of a call site (``func+0xoff/0xlen`` or a raw address)."""
        handle = self._frames.get(call_site)
        if handle is None:
            m = _SYMBOL.fullmatch(call_site)
            if m:
                frame = Frame(m.group(1), int(m.group(2), 16), int(m.group(3), 16), self.path, line)
            else:
                frame = Frame(call_site or "unknown_call_site", 0, 1, self.path, line)
            handle = self._frames[call_site] = self._depot.save(frame)
        return handle

    def _traced_page_of(self, ptr: int) -> int | None:  # (inlined in replay())
        """The traced page allocation (head pfn) holding a traced pointer, if one is live."""
        pfn = (ptr - self._lm_delta) >> self._page_shift
        pages = self.pages
        for mask in (0, 1, 3, 7):  # slab orders 0..3 (PAGE_ALLOC_COSTLY)
            head = pfn & ~mask
            if head in pages:
                return head
        return None

    def _adopt_slab_page(self, ptr: int) -> None:
        head = self._traced_page_of(ptr)
        if head is not None:
            sim_pfn, order = self.pages.pop(head)
            self.machine.free_pages(sim_pfn, order)
            self.slab_pfns.add(head)
            self.stats.slab_pages += 1

    def replay(self, events: Iterable[EventFields], progress=None, after_event=None) -> None:
        """Apply events in order; ``progress(events_done, line)`` every 16384 events,
        ``after_event(event)`` after each."""
        m = self.machine
        stats = self.stats
        objects = self.objects
        object_cache = self.object_cache
        pages = self.pages
        slab_pfns = self.slab_pfns
        frames = self._frames
        caches = self.caches
        lm_delta, page_shift = self._lm_delta, self._page_shift
        kmalloc, kmem_cache_alloc, kfree = m.kmalloc, m.kmem_cache_alloc, m.kfree
        alloc_pages, free_pages = m.alloc_pages, m.free_pages
        lost = stats.freed_before_trace
        done = [0] * 6  # replayed, by kind (added to stats at the end)
        n = self.events
        try:
            for ev in events:
                line, kind, ptr, pfn, order, req, size, call_site, name, comm, pid = ev
                n += 1
                if progress is not None and not n & 0x3FFF:
                    self.events = n
                    progress(n, line)
                if pid != self._pid:
                    m.set_task(comm or "?", pid)
                    self._pid = pid
                if kind <= KMEM_CACHE_ALLOC:  # kmalloc, kmem_cache_alloc
                    if not ptr:
                        continue  # the traced allocation failed
                    if ptr in objects:  # a missed free: treat as freed
                        lost["lost free"] += 1
                        del objects[ptr]
                        object_cache.pop(ptr, None)
                    if pages:  # _adopt_slab_page(), inlined
                        p = (ptr - lm_delta) >> page_shift
                        head = (
                            p
                            if p in pages
                            else p & ~1
                            if p & ~1 in pages
                            else p & ~3
                            if p & ~3 in pages
                            else p & ~7
                            if p & ~7 in pages
                            else None
                        )
                        if head is not None:
                            sim_pfn, sim_order = pages.pop(head)
                            free_pages(sim_pfn, sim_order)
                            slab_pfns.add(head)
                            stats.slab_pages += 1
                    handle = frames.get(call_site)
                    m.ip_handle = handle if handle is not None else self._frame(call_site, line)
                    if kind == KMALLOC:
                        addr: int | None = kmalloc(req)
                    else:
                        cache = caches.get((req, size)) or self._cache(req, size)
                        addr = kmem_cache_alloc(cache) if cache is not None else 0
                        if addr:  # made by kmem_cache_alloc(cache): cache is not None
                            object_cache[ptr] = cache  # type: ignore[assignment]  # see the if
                    if addr:
                        objects[ptr] = addr
                    else:
                        stats.failed[KIND_NAMES[kind]] += 1
                        continue
                elif kind <= KMEM_CACHE_FREE:  # kfree, kmem_cache_free
                    addr = objects.pop(ptr, None)
                    if addr is None:
                        if ptr:
                            lost[KIND_NAMES[kind]] += 1
                        continue
                    handle = frames.get(call_site)
                    m.ip_handle = handle if handle is not None else self._frame(call_site, line)
                    cache = object_cache.pop(ptr, None)
                    if cache is None:
                        kfree(addr)
                    else:
                        if name and cache.id not in self._named:
                            cache.name = name
                            self._named.add(cache.id)
                        m.kmem_cache_free(cache, addr)
                elif kind == PAGE_ALLOC:
                    if pfn in pages:
                        lost["lost page free"] += 1
                        sim_pfn, sim_order = pages.pop(pfn)
                        free_pages(sim_pfn, sim_order)
                    sim = alloc_pages(order)
                    if sim is None:
                        stats.failed["mm_page_alloc"] += 1
                        continue
                    pages[pfn] = (sim, order)
                    slab_pfns.discard(pfn)
                else:  # PAGE_FREE
                    entry = pages.pop(pfn, None)
                    if entry is None:
                        if pfn in slab_pfns:
                            slab_pfns.discard(pfn)  # SLUB gave the slab page back
                        else:
                            lost["mm_page_free"] += 1
                        continue
                    free_pages(entry[0], entry[1])
                done[kind] += 1
                if after_event is not None:
                    self.events = n
                    after_event(ev)
        finally:
            self.events = n
            replayed = stats.replayed
            for kind, count in enumerate(done):
                if count:
                    replayed[KIND_NAMES[kind]] += count

    def _cache(self, object_size: int, slot: int) -> KmemCache | None:
        """The cache of (object size, slot size); None when the simulated kernel cannot make
        one (an object too big for a slab, no memory): its allocations fail."""
        cache = self.caches.get((object_size, slot))
        if cache is None:
            cache = self.machine.kmem_cache_create(
                f"cache-{object_size}-{slot}", object_size, 0, 0, False
            )
            if cache is None:
                return None
            self.caches[(object_size, slot)] = cache
            self.stats.caches += 1
        return cache


def looks_like_trace(path: str, head: bytes | None = None) -> bool:
    """True if a file is (probably) an ftrace capture rather than a .kw workload; ``head``:
    its first bytes when the caller has them (a pipe cannot be read twice)."""
    if path.endswith((".gz", ".xz")):
        return True
    if path.endswith(".kw"):
        return False
    if head is None:
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError:
            return False
    return (
        head.startswith((b"# tracer:", b"\x1f\x8b", b"\xfd7zXZ"))
        or b"call_site=" in head
        or b" pfn=" in head
    )


def trace_summary(stats: TraceStats, replay: ReplayStats) -> list[str]:
    """Lines for the end of a replay: what was replayed, counted, skipped."""
    lines = [
        f"trace: {stats.lines} lines, replayed "
        + ", ".join(f"{k} {v}" for k, v in sorted(replay.replayed.items()))
    ]
    if stats.other_events:
        lines.append(
            "other events (counted, not replayed): "
            + ", ".join(f"{k} {v}" for k, v in stats.other_events.most_common())
        )
    if replay.freed_before_trace:
        lines.append(
            "frees of objects/pages allocated before tracing began: "
            + ", ".join(f"{k} {v}" for k, v in sorted(replay.freed_before_trace.items()))
        )
    if replay.failed:
        lines.append(
            "allocations that failed (out of simulated memory): "
            + ", ".join(f"{k} {v}" for k, v in sorted(replay.failed.items()))
        )
    lines.append(
        f"traced page allocations recognised as slab/large-kmalloc pages: "
        f"{replay.slab_pages}; kmem_caches made for kmem_cache_alloc: {replay.caches}"
    )
    if stats.bad_lines:
        first = "; ".join(f"line {n}: {what}" for n, what in stats.first_bad[:5])
        lines.append(f"unreadable lines: {stats.bad_lines} (first: {first})")
    if stats.markers:
        lines.append("trace markers: " + "; ".join(f"line {n}: {t}" for n, t in stats.markers))
    return lines


def replay_trace(
    machine: Machine,
    path: str,
    strict: bool = False,
    progress=None,
    after_event=None,
    parallel: bool | None = None,
    stream=None,
) -> tuple[TraceReader, TraceReplayer]:
    """Replay a whole trace file on a machine (streamed). On KeyboardInterrupt the replay stops
    where it is: ``replayer.interrupted`` is set, and the reader and replayer keep the partial
    figures.

    ``parallel``: read the trace in a child process (ParallelTraceReader) while this one
    replays; None chooses it for files of a MB or more where it can run (parallel_possible()).
    ``stream``: the trace as an open binary file (a pipe, standard input), named ``path``."""
    if stream is not None:
        parallel = False
    elif parallel is None:
        try:
            parallel = os.path.getsize(path) >= PARALLEL_MIN_BYTES and parallel_possible()
        except OSError:
            parallel = False
    engine = machine.engine  # the reader's too: the native one gives EventBatches
    reader = (
        ParallelTraceReader(path, strict=strict, engine=engine)
        if parallel
        else TraceReader(path, strict=strict, stream=stream, engine=engine)
    )
    replayer = TraceReplayer(machine, path)
    tick = None if progress is None else (lambda n, line: progress(n, line, reader.fraction()))
    if after_event is not None and parallel and engine == "python":
        callback, new = after_event, tuple.__new__
        after_event = lambda ev: callback(new(TraceEvent, ev))  # noqa: E731  (plain tuples)
    batches = reader.batches()
    try:
        with gc_paused():
            if engine == "native":
                replay_batch = replayer.compiled().replay
                for batch in batches:
                    replay_batch(batch, tick, after_event)
            else:
                replayer.replay(chain.from_iterable(batches), tick, after_event)
    except KeyboardInterrupt:
        replayer.interrupted = True
    finally:
        batches.close()  # the file (and a ParallelTraceReader's child) now
        if replayer._compiled is not None:
            (replayer.objects, replayer.object_cache, replayer.pages, replayer.slab_pfns) = (
                replayer._compiled.maps()
            )
    return reader, replayer
