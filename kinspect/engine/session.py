"""The cursor over a workload: step, step back, run to a report or breakpoint, jump to event N.

A ``Session`` owns one ``Machine`` on which every registered shadow scheme runs in lockstep (the
allocators run once, every shadow write reaches every scheme), so switching the scheme that the
views show keeps the position: it only chooses which scheme's views are read.

Each command returns an immutable ``StepResult``: the step generation, the events applied, the
pfn ranges whose ``struct page`` or shadow changed, the new KASAN reports, and the shadow blocks
(or shadow pages) that attached or detached. Views read engine state of that generation and
redraw only what the result names.

Going back restores the nearest checkpoint at or before the target (the machine and the
workload's variables: a small pickle, the big buffers in a store shared by every checkpoint,
kinspect.engine.checkpoint) and replays forward. A checkpoint of a machine with many live
objects costs tens of milliseconds (to take, and again to restore), so the work is moved out
of the way of the keys:

- ``idle_work()``, called by the UI when the user pauses, takes a checkpoint every
  ``checkpoint_every`` events and prepares *spares*: live machines already at
  ``position - 1``, ``- 2``, ``- 3`` (as memory allows), so that the next steps back are swaps,
  not restores (a machine cannot be copied cheaply, so each one is a restore of its own, made
  while nobody waits; a step back consumes one);
- stepping itself forces a checkpoint only every ``4 * checkpoint_every`` events (when no idle
  time came), a long run every ``_run_interval()`` events (about a tenth of its time);
- ``idle_work()`` also lays a ladder of dense checkpoints just below the spares (4, 16 events
  apart): a key held down past the spares restores one of them and replays a few events;
- after a run stops, checkpoints are laid densely behind the stop;
- checkpoints are thinned (every other one dropped) to stay within a memory budget, dense
  ones evicted (least recently used first) beyond half of it.

A trace can be streamed (``load_trace(stream=True)``): the session starts on its first events
while ``load()`` reads the rest in another thread; ``total`` grows, ``loading`` says more may
come, and a step at the last event read stops with ``"loading"`` (a run may wait instead).

No UI imports here: the Textual app drives a Session, and so can a test or a script.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from operator import attrgetter
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .checkpoint import CheckpointStore
from .errors import KinspectError, WorkloadError
from .ftrace import EventBatch
from .machine import Machine
from .profile import ArchProfile
from .report import BadAccess
from .shadow import SCHEMES
from .shadow.base import Footprint, PageUse, ShadowScheme
from .view import machine_view
from .workload import Event, StepOutcome, Workload, WorkloadRunner, gc_paused

REFERENCE_SCHEME = "flat"
SCHEME_ORDER = ("flat", "pshadow", "pageptr", "pageext")
# A shadow page covers 8 pages (KASAN_SHADOW_SCALE_SHIFT): the window whose shadow links can
# change together when a per-page scheme maps a shadow page.
WINDOW_PAGES = 8
MAX_DIRTY_RANGES = 4096        # beyond this a result says "everything" (dirty None)


def load_trace(path: str, strict: bool = False, stream: bool = False) -> "_TraceDriver":
    """An ftrace kmem capture as a Session's workload: read whole, or with ``stream`` only
    its first events (a file with none is an error now), the rest by ``Session.load()``."""
    return _TraceDriver(path, strict, stream)


def registered_schemes() -> list[str]:
    """The shadow schemes registered now, the flat reference first, then the 2017 designs."""
    names = list(SCHEMES)
    ordered = [n for n in SCHEME_ORDER if n in names]
    return ordered + [n for n in names if n not in ordered]


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class AttachEvent:
    """Shadow storage given to pages (``attach``) or taken from them (``detach``) by a scheme:
    a pageptr/pageext shadow block (``page->shadow``), or a pshadow shadow page."""

    scheme: str
    kind: str                   # "attach" or "detach"
    pfn: int | None             # first pfn; None when the scheme's bill changed but no page's
    count: int                  # pages        link did (e.g. shadow of vmalloc space)
    link: str | None            # the link after an attach, before a detach
    event_index: int = -1

    def describe(self) -> str:
        if self.pfn is None:
            return f"{self.scheme}: {self.kind} ({self.count:+d} blocks/pages)"
        pages = f"pfn {self.pfn:#x}" + (f"+{self.count}" if self.count > 1 else "")
        return f"{self.scheme}: {self.kind} {pages}" + (f" ({self.link})" if self.link else "")

    def inverse(self) -> "AttachEvent":
        return AttachEvent(self.scheme, "detach" if self.kind == "attach" else "attach",
                           self.pfn, self.count, self.link, self.event_index)


@dataclass(frozen=True)
class Breakpoint:
    """Where a run stops.

    kind ``line``: before the event on workload line ``value`` runs;
    ``addr``: after an event that changes the shadow byte of ``value``'s granule or reports an
    access covering it; ``pfn``: after an event that changes page ``value`` (its struct page or
    its shadow); ``attach``: after any scheme attaches or detaches shadow storage.
    """

    kind: str
    value: int | None = None

    KINDS = ("line", "addr", "pfn", "attach")

    def describe(self) -> str:
        if self.kind == "line":
            return f"line {self.value}"
        if self.kind == "addr":
            return f"address {self.value:#x}"
        if self.kind == "pfn":
            return f"pfn {self.value:#x}"
        return "attach/detach"


@dataclass(frozen=True)
class StepResult:
    """What a Session command changed."""

    generation: int
    position: int                            # events applied now
    previous: int                            # events applied before the command
    events: tuple[Event, ...] = ()           # events applied (forward; the last few of a run)
    dirty: tuple[tuple[int, int], ...] | None = ()   # (first pfn, count); None = everything
    reports: tuple[BadAccess, ...] = ()      # new reports made by the applied events
    attach: tuple[AttachEvent, ...] = ()     # attach/detach (undone ones inverted when going back)
    stopped: str | None = None               # why a run stopped: "report", "breakpoint ...", "end",
                                             # "cancelled", "limit"
    expect_failures: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def moved(self) -> bool:
        return self.position != self.previous


# ------------------------------------------------------------------ observing the machine
#
# What each event changed comes from two observers: the memmap's journal of struct page writes
# (``MemMap.written``), and _RecordingShadow, which the machine's shadow is wrapped in.

class _RecordingShadow(ShadowScheme):
    """Wraps the machine's shadow (one scheme, or several in lockstep): notes the addresses of
    shadow writes and the page ranges of attach points, and which of those pages had shadow
    of their own (and its link) before they change."""

    name = "recording"

    def __init__(self, inner: ShadowScheme, schemes: list[ShadowScheme]) -> None:
        self.inner = inner
        self.writes: list[tuple[int, int]] = []          # (addr, bytes of memory)
        self.pages: list[tuple[int, int]] = []           # (pfn, count) at page_alloc/page_free
        # (scheme, pfn) -> (link,) when the page had shadow of its own, else ()
        self.links_before: dict[tuple[str, int], tuple] = {}
        self.watched = [s for s in schemes if s.name != REFERENCE_SCHEME]

    def _note_pages(self, pfn: int, order: int) -> None:
        n = 1 << order
        self.pages.append((pfn, n))
        if not self.watched:
            return
        first = pfn - pfn % WINDOW_PAGES
        last = pfn + n
        last += -last % WINDOW_PAGES
        before = self.links_before
        for s in self.watched:
            own, link = s.has_own_shadow, s.shadow_link
            for p in range(first, last):
                key = (s.name, p)
                if key not in before:
                    before[key] = (link(p),) if own(p) else ()

    def boot(self) -> None:
        self.inner.boot()

    def poison(self, addr: int, size: int, value: int) -> None:
        self.writes.append((addr, size))
        self.inner.poison(addr, size, value)

    def write(self, addr: int, data: bytes) -> None:
        self.writes.append((addr, len(data) << 3))
        self.inner.write(addr, data)

    def set_byte(self, addr: int, value: int) -> None:
        self.writes.append((addr, 8))
        self.inner.set_byte(addr, value)

    def shadow_byte(self, addr: int) -> int:
        return self.inner.shadow_byte(addr)

    def read(self, addr: int, size: int) -> bytes:
        return self.inner.read(addr, size)

    def page_alloc(self, pfn: int, order: int, use: PageUse) -> bool:
        self._note_pages(pfn, order)
        return self.inner.page_alloc(pfn, order, use)

    def page_free(self, pfn: int, order: int) -> None:
        self._note_pages(pfn, order)
        self.inner.page_free(pfn, order)

    def footprint(self) -> Footprint:
        return self.inner.footprint()

    def shadow_link(self, pfn: int) -> str | None:
        return self.inner.shadow_link(pfn)

    def clear(self) -> None:
        self.writes = []
        self.pages = []
        self.links_before = {}


def _dispose(machine: Machine | None, runner=None) -> None:
    """Break the reference cycles of a machine no one uses any more (its schemes point back at
    it, slabs and caches at each other, a WorkloadRunner at its own bound methods), so that
    reference counting frees it at once instead of the cyclic collector, later."""
    if runner is not None:
        vars(runner).clear()
    if machine is None or not vars(machine):
        return
    machine.slub.dispose()
    shadow = machine.shadow
    for scheme in machine.schemes:
        vars(scheme).clear()
    if isinstance(shadow, _RecordingShadow):
        vars(shadow.inner).clear()
        vars(shadow).clear()
    vars(machine).clear()


def _forget_changes(machine: Machine) -> None:
    """Empty the observers of a machine that is not the session's (a spare being replayed)."""
    shadow = machine.shadow
    if isinstance(shadow, _RecordingShadow):
        shadow.clear()
    if machine.memmap.written is not None:
        machine.memmap.written.clear()


@dataclass
class _Spare:
    """A live machine at ``position`` events, not the session's: going back to it is a swap,
    to a little after it a short replay."""

    position: int
    machine: Machine
    runner: object
    nbytes: int                 # what the checkpoint it was made from restores: about what
                                # it holds


@dataclass
class _Replay(_Spare):
    """Idle work under way: a machine of its own, replayed from a checkpoint toward
    ``target`` a chunk at a time (``Session._build``); done, a spare or disposed of."""

    target: int
    spare: bool                 # it becomes a spare at target (else: it lays the ladder)


_line_of = attrgetter("line")
SPARE_REPLAY = 512              # going back, a spare this many events behind beats a restore
IDLE_CHUNK = 512                # events replayed in one piece of idle work
HOLD_LADDER = 4                 # dense checkpoints kept just below the spares (idle_work)...
LADDER_STEP = 16                # ...this many events apart
# The fast forward (Session._fast_forward): a long move on the native engine replays the
# trace's EventBatches compiled, from a machine booted anew, in pieces...
FAST_FORWARD_MIN = 4096         # events: a shorter move steps the existing way
FAST_FORWARD_PIECE = 8192       # events a piece: the footprints are sampled after each
FAST_FORWARD_TAIL = 64          # the last events before the target: stepped the existing way


def merge_ranges(ranges: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """(first, count) ranges sorted and merged where they touch or overlap."""
    if not ranges:
        return ()
    out: list[list[int]] = []
    for first, count in sorted(ranges):
        if count <= 0:
            continue
        if out and first <= out[-1][0] + out[-1][1]:
            end = max(out[-1][0] + out[-1][1], first + count)
            out[-1][1] = end - out[-1][0]
        else:
            out.append([first, count])
    return tuple((a, n) for a, n in out)


def ranges_contain(ranges: tuple[tuple[int, int], ...] | None, pfn: int) -> bool:
    if ranges is None:
        return True
    return any(a <= pfn < a + n for a, n in ranges)


class _Positions(EventBatch):
    """A slice of a trace's events for the compiled replayer whose ``batch[i]`` is ``i``: the
    replayer's ``after_event(batch[i])`` then costs a call, not a TraceEvent made."""

    __slots__ = ()

    def __getitem__(self, i: int) -> int:
        return i


class _ReportStop(Exception):
    """Raised from the compiled replayer's ``after_event``: the event just applied reported
    and the move stops at it."""


class _Tail:
    """The part of a workload from event ``start`` on, as a WorkloadRunner takes it."""

    def __init__(self, events: list[Event], start: int, funcs) -> None:
        self.events = (events[i] for i in range(start, len(events)))
        self.funcs = funcs
        self.path = ""


class _WorkloadDriver:
    """How a Session runs a ``.kw`` workload: WorkloadRunner; its state is the variables."""

    loading = False                     # parsed whole before the session starts
    error = None

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.path = workload.path
        with gc_paused():
            self.events: list = list(workload.events)
        if not isinstance(workload.events, list):
            workload.events = self.events

    def runner(self, machine: Machine, start: int, state=None):
        runner = WorkloadRunner(machine, _Tail(self.events, start, self.workload.funcs))
        runner.position = start
        if state is not None:
            runner.values, runner.last_reports, runner.expect_failures = state
        return runner

    @staticmethod
    def state(runner) -> tuple:
        return (runner.values, runner.last_reports, runner.expect_failures)

    def event_batches(self, start: int, stop: int) -> None:
        """A workload has no EventBatches: it steps the existing way only."""
        return None

    def load(self, progress=None, cancelled=None) -> None:
        """Nothing to read: the workload was parsed whole."""

    def fraction(self) -> float:
        return 1.0

    def wait_for(self, count: int, timeout: float) -> bool:
        return len(self.events) >= count

    def close(self) -> None:
        """Nothing to stop."""

    def text(self, index: int) -> str:
        return self.events[index].text

    @staticmethod
    def address(runner, ev) -> int | None:
        """The address an event is about: what it allocated, or what it touched."""
        from .workload import Addr
        values = runner.values
        mask = (1 << runner.machine.bits) - 1
        if ev.target is not None:
            v = values.get(ev.target)
            if isinstance(v, int) and v > 16:
                return v
        for arg in ev.args:
            if isinstance(arg, Addr):
                base = 0 if arg.var is None else values.get(arg.var)
                if isinstance(base, int):
                    return (base + arg.offset) & mask
        return None


class TraceRunner:
    """Runs trace events one at a time on a machine (``TraceReplayer``), with the interface of
    a WorkloadRunner that a Session uses."""

    def __init__(self, machine: Machine, path: str, events: list, start: int,
                 replayer=None) -> None:
        from .replay import TraceReplayer
        self.machine = machine
        self.events = events
        self.position = start
        self.replayer = replayer if replayer is not None else TraceReplayer(machine, path)
        self.values: dict = {}
        self.last_reports: list = []
        self.expect_failures: list = []

    def step(self) -> StepOutcome | None:
        if self.position >= len(self.events):
            return None
        ev = self.events[self.position]
        m = self.machine
        before = len(m.reports)
        self.replayer.replay((ev,))
        new = m.reports[before:]
        for r in new:
            r.event_index = self.position
        self.position += 1
        self.last_reports = new
        return StepOutcome(ev, new, None)


class _TraceEvents(Sequence):
    """The events of a trace read as EventBatches (the native engine), as a sequence of
    TraceEvents each made when asked: the batches' columns hold an event in 61 bytes, where a
    list of TraceEvents held about 240 more (135 MiB for the real x86_64 trace)."""

    def __init__(self, batches: list, ends: list[int]) -> None:
        self._batches = batches         # shared with the driver, which appends to both...
        self._ends = ends               # ...the batch first, then its end

    def __len__(self) -> int:
        ends = self._ends
        return ends[-1] if ends else 0

    def __getitem__(self, index):
        n = len(self)
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(n))]
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("event index out of range")
        i = bisect_right(self._ends, index)
        batch = self._batches[i]
        return batch[index - (self._ends[i] - len(batch))]

    def __iter__(self):
        for batch in self._batches[:len(self._ends)]:
            yield from batch

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and \
            list(self) == list(other)

    __hash__ = None


class _TraceDriver:
    """How a Session runs an ftrace kmem capture: read whole before the session starts, or
    (``stream``) its first block of events now and the rest by ``load()``, which a UI calls
    in a worker thread while the session already steps. Meanwhile ``events`` grows (appended
    a block at a time: other threads see a consistent list) and ``loading`` is True.

    A file of a MB or more is read in a forked child process where that can help
    (``parallel_possible()``: before any thread starts, a CPU to spare), as ``kinspect run``
    does; the process reading it here only receives the events."""

    LABELS = ("kmalloc", "kmem_cache_alloc", "kfree", "kmem_cache_free", "mm_page_alloc",
              "mm_page_free")

    def __init__(self, path: str, strict: bool = False, stream: bool = False) -> None:
        import os
        from .ftrace import (PARALLEL_MIN_BYTES, ParallelTraceReader, TraceEvent, TraceReader,
                             parallel_possible)
        self.path = path
        try:
            parallel = os.path.getsize(path) >= PARALLEL_MIN_BYTES and parallel_possible()
        except OSError:
            parallel = False            # the reader says what is wrong with the file
        self.reader = (ParallelTraceReader if parallel else TraceReader)(path, strict=strict)
        self._event = TraceEvent if parallel else None   # its child sends plain tuples
        # The native engine's reader gives EventBatches: kept as they are (the events are
        # a view of them, _TraceEvents), and a long move replays slices of them compiled
        # (Session's fast forward). The Python engine's gives TraceEvents: kept in a list.
        self.batches: list | None = [] if self.reader.engine == "native" else None
        self._batch_ends: list[int] = []            # events read up to the end of each batch
        self.events = (_TraceEvents(self.batches, self._batch_ends)
                       if self.batches is not None else [])
        self.loading = True
        self.error: KinspectError | None = None     # what stopped the reading, if anything
        self._arrived = threading.Condition()
        self._batches = self.reader.batches()
        if stream:
            self._read_batch()
        else:
            with gc_paused():
                self.load()

    def _read_batch(self) -> bool:
        """Append the next block's events; False at the end of the file. A TraceError stops
        the reading (the events before it stay) and is raised."""
        try:
            batch = next(self._batches)
        except StopIteration:
            self._finish(None)
            return False
        except KinspectError as e:
            self._finish(e)
            raise
        with self._arrived:
            if self.batches is not None:
                self.batches.append(batch)
                self._batch_ends.append(len(self.events) + len(batch))
            else:
                if self._event is not None:
                    new, event = tuple.__new__, self._event
                    batch = [new(event, ev) for ev in batch]
                self.events.extend(batch)
            self._arrived.notify_all()
        return True

    def event_batches(self, start: int, stop: int) -> list | None:
        """Events ``start`` to ``stop`` (not included) as EventBatch slices (views of the
        columns read), in order; None when the trace was not read as EventBatches."""
        batches, ends = self.batches, self._batch_ends
        if batches is None or stop > (ends[-1] if ends else 0):
            return None
        out = []
        i = bisect_right(ends, start)
        while start < stop:
            first = ends[i] - len(batches[i])
            end = min(stop, ends[i])
            out.append(batches[i].slice(start - first, end - first))
            start = end
            i += 1
        return out

    def _finish(self, error: KinspectError | None) -> None:
        with self._arrived:
            self.loading = False
            self.error = error
            self._arrived.notify_all()

    def load(self, progress: Callable[[int, float], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> None:
        """Read the rest of the trace (from any one thread): ``progress(events, fraction of
        the file)`` after each block; ``cancelled()`` returning True stops the reading for
        good (the events read stay, as if the trace ended there)."""
        while self.loading:
            if cancelled is not None and cancelled():
                self.close()
                return
            if self._read_batch() and progress is not None:
                progress(len(self.events), self.fraction())

    def fraction(self) -> float:
        """How much of the file has been read (0..1)."""
        return self.reader.fraction() if self.loading else 1.0

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until ``count`` events are read; whether they are."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.events) >= count or not self.loading,
                                   timeout)
            return len(self.events) >= count

    def close(self) -> None:
        """Stop reading (not while load() runs in another thread): the file is closed, a
        reading child process ends; the events read so far stay."""
        if self.loading:
            self._batches.close()
            self._finish(None)

    def runner(self, machine: Machine, start: int, state=None):
        if state is None:
            return TraceRunner(machine, self.path, self.events, start)
        replayer, last_reports = state
        runner = TraceRunner(machine, self.path, self.events, start, replayer)
        runner.last_reports = last_reports
        return runner

    @staticmethod
    def state(runner) -> tuple:
        return (runner.replayer, runner.last_reports)

    def text(self, index: int) -> str:
        ev = self.events[index]
        label = self.LABELS[ev.kind] if ev.kind < len(self.LABELS) else str(ev.kind)
        if ev.pfn >= 0:
            return f"{label} pfn={ev.pfn:#x} order={ev.order}  [{ev.comm}/{ev.pid}]"
        sizes = f" {ev.bytes_req}/{ev.bytes_alloc}" if ev.bytes_alloc else ""
        name = f" {ev.name}" if ev.name else ""
        return f"{label} {ev.call_site} ptr={ev.ptr:x}{sizes}{name}  [{ev.comm}/{ev.pid}]"

    @staticmethod
    def address(runner, ev) -> int | None:
        rep = runner.replayer
        if ev.pfn >= 0:
            entry = rep.pages.get(ev.pfn)
            if entry is not None and runner.machine.profile.is_lowmem_pfn(entry[0]):
                return runner.machine.page_address(entry[0])
            return None
        return rep.objects.get(ev.ptr)


# -------------------------------------------------------------------------------- session

@dataclass
class _EventRecord:
    """What one event did, kept so that going back can name what it undoes."""

    dirty: tuple[tuple[int, int], ...]
    attach: tuple[AttachEvent, ...]


class _Accumulator:
    """Folds the items of many applied events into one StepResult (keeps the last few events)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ranges: list[tuple[int, int]] = []
        self.dirty_all = False
        self.reports: list[BadAccess] = []
        self.attach: list[AttachEvent] = []
        self.failures: list[str] = []

    def add(self, item) -> None:
        ev, outcome, dirty, attach = item
        self.events.append(ev)
        if len(self.events) > 128:
            del self.events[:64]
        if not self.dirty_all:
            self.ranges += dirty
            if len(self.ranges) > 8 * MAX_DIRTY_RANGES:
                self.ranges = list(merge_ranges(self.ranges))
                if len(self.ranges) > MAX_DIRTY_RANGES:
                    self.dirty_all, self.ranges = True, []
        if outcome.reports:
            self.reports += outcome.reports
        if attach:
            self.attach += attach
            if len(self.attach) > 1024:
                del self.attach[:512]
        if outcome.expect_failure:
            self.failures.append(outcome.expect_failure)

    def bulk(self, reports: list[BadAccess]) -> None:
        """Events applied by a fast forward: their reports; what they changed is unknown."""
        self.dirty_all, self.ranges = True, []
        self.reports += reports

    def result(self, generation: int, position: int, previous: int, stopped: str | None,
               seconds: float) -> StepResult:
        dirty = None if self.dirty_all else merge_ranges(self.ranges)
        if dirty is not None and len(dirty) > MAX_DIRTY_RANGES:
            dirty = None
        return StepResult(generation, position, previous, tuple(self.events[-64:]), dirty,
                          tuple(self.reports), tuple(self.attach), stopped,
                          tuple(self.failures), seconds)


class Session:
    """A cursor over a workload on one machine with every scheme in lockstep."""

    def __init__(self, profile: ArchProfile, workload,
                 schemes: Sequence[str] | None = None, shown: str | None = None,
                 scheme_options: dict | None = None, checkpoint_every: int | None = None,
                 checkpoint_budget: int = 256 << 20, spares: int = 3,
                 spare_budget: int = 384 << 20) -> None:
        """``schemes``: which to run (default: every registered one; flat always first);
        ``shown``: the scheme the views read (default: the first per-page scheme, else flat);
        ``checkpoint_every``: events between the checkpoints taken while idle (default 256;
        doubled each time the budget makes older checkpoints thin out);
        ``checkpoint_budget``: bytes of checkpoints kept (older ones are thinned), half of
        it for the dense ones laid near the position (the least recently used go first); the
        big buffers are shared between checkpoints, so late in the real trace at 1 TiB the
        default (256 MiB) holds more of them than 1 GiB of whole pickles did;
        ``spares``: live machines kept ready behind the position (at position - 1, - 2...),
        made in idle time, so that that many steps back in a row are swaps;
        ``spare_budget``: about how many bytes they may hold (the one at position - 1 is made
        whatever it costs)."""
        self.profile = profile
        self.workload = workload
        if isinstance(workload, Workload):
            workload.bind(profile)          # sizeof(long), PAGE_SIZE... are the profile's
        self.driver = (workload if isinstance(workload, _TraceDriver)
                       else _WorkloadDriver(workload))
        self.path = self.driver.path
        self.events: list = self.driver.events
        self.is_trace = isinstance(self.driver, _TraceDriver)
        names = list(schemes) if schemes is not None else registered_schemes()
        for name in names:
            if name not in SCHEMES:
                raise KinspectError(f"unknown shadow scheme {name!r} "
                                    f"(known: {', '.join(SCHEMES)})", "--scheme")
        self.scheme_names = [REFERENCE_SCHEME] + [n for n in names if n != REFERENCE_SCHEME]
        if shown is None:
            shown = next((n for n in ("pageptr", "pageext", "pshadow")
                          if n in self.scheme_names), REFERENCE_SCHEME)
        if shown not in self.scheme_names:
            raise KinspectError(f"scheme {shown!r} is not running "
                                f"(running: {', '.join(self.scheme_names)})", "--scheme")
        self.shown = shown
        self.scheme_options = dict(scheme_options or {})
        self.generation = 0
        self.machines_discarded = 0
        self._graveyard: list[tuple] = []
        self.breakpoints: list[Breakpoint] = []
        # Knowledge gathered while stepping (deterministic: valid at any position).
        self._records: OrderedDict[int, _EventRecord] = OrderedDict()
        self._records_max = 2_000_000          # what each event changed: ~150 bytes each
        self.report_events: dict[int, tuple[str, ...]] = {}   # event index -> bug types
        self.attach_events: dict[int, tuple[AttachEvent, ...]] = {}
        self.error_events: dict[int, str] = {}
        n = len(self.events) + 1               # grows with the events (a trace still loading)
        self._fp_known = 0
        self._fp_total = {s: np.zeros(n, dtype=np.int64) for s in self.scheme_names}
        self._fp_counters = {s: np.zeros((n, 3), dtype=np.int32) for s in self.scheme_names}
        self._boot()
        self._record_footprints()
        self.checkpoints = CheckpointStore(checkpoint_budget, checkpoint_every or 256)
        self._interval = 4 * self.checkpoint_every
        self._take_checkpoint()
        self._spares: list[_Spare] = []
        self.spares_wanted = spares
        self.spare_budget = spare_budget
        self._job: _Replay | None = None
        # The fast forward: on the native engine, a trace read as EventBatches. The rates (CPU
        # seconds an event, smoothed) of a compiled replay and of an event stepped the
        # existing way (restores, idle work) choose it; they start from the figures of the
        # real trace at 1 TiB, four schemes (docs/ui.md).
        self.fast_forward = self.machine.engine == "native" and self.is_trace
        self._rate_bulk = 8e-6
        self._rate_step = 40e-6
        self.events_bulk = 0            # events replayed by fast forwards
        self.events_stepped = 0         # events applied the existing way (steps and replays)

    # ------------------------------------------------------------------------- state

    def _boot(self) -> None:
        machine = Machine(self.profile, schemes=self.scheme_names,
                          scheme_options=self.scheme_options)
        self._install(machine)
        self.position = 0
        self.runner = self.driver.runner(machine, 0)

    def _install(self, machine: Machine) -> None:
        """Make ``machine`` the session's, with its observers in place."""
        if not isinstance(machine.shadow, _RecordingShadow):
            machine.shadow = _RecordingShadow(machine.shadow, machine.schemes)
            machine._bind_shadow()          # the machine's own bound write and read of it
        if machine.memmap.written is None:
            machine.memmap.written = []
        old = getattr(self, "machine", None)
        if old is not None and old is not machine:
            # Freeing a big machine takes milliseconds: done in idle time, unless several wait.
            self.machines_discarded += 1
            self._graveyard.append((old, getattr(self, "runner", None)))
            while len(self._graveyard) > 2:
                _dispose(*self._graveyard.pop(0))
        self.machine = machine
        self._rec: _RecordingShadow = machine.shadow
        self._written: list = machine.memmap.written
        self._schemes = {s.name: s for s in machine.schemes}

    def event_text(self, index: int) -> str:
        """The text of event ``index`` (a workload line, or a trace event described)."""
        return self.driver.text(index)

    def event_address(self, index: int) -> int | None:
        """The address event ``index`` is about (valid once it has been applied)."""
        return self.driver.address(self.runner, self.events[index])

    @property
    def total(self) -> int:
        """Events in the workload (read so far, while a trace is ``loading``)."""
        return len(self.events)

    @property
    def loading(self) -> bool:
        """Whether a trace is still being read (``load()``): more events may come."""
        return self.driver.loading

    def load(self, progress: Callable[[int, float], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> None:
        """Read the rest of a streamed trace (``load_trace(stream=True)``), in any one thread
        while this one steps: ``progress(events, fraction)`` after each block; a TraceError
        ends the reading (``load_error``) after the events before it. Returns at once for a
        workload, or a trace read whole."""
        self.driver.load(progress, cancelled)

    @property
    def load_error(self) -> KinspectError | None:
        """What stopped the reading of a trace before its end, if anything."""
        return self.driver.error

    def load_fraction(self) -> float:
        """How much of a trace file has been read (1.0 once read, and for a workload)."""
        return self.driver.fraction()

    def close(self) -> None:
        """Stop reading a streamed trace (the events read so far stay)."""
        self.driver.close()

    @property
    def at_end(self) -> bool:
        """Every event applied, and no more to come."""
        return self.position >= len(self.events) and not self.driver.loading

    @property
    def waiting(self) -> bool:
        """Every event read so far applied, and the trace still loading."""
        return self.position >= len(self.events) and self.driver.loading

    def scheme_named(self, name: str) -> ShadowScheme:
        return self._schemes[name]

    def set_shown_scheme(self, name: str) -> StepResult:
        """Show another running scheme; the position stays. Every view is dirty."""
        if name not in self._schemes:
            raise KinspectError(f"scheme {name!r} is not running "
                                f"(running: {', '.join(self.scheme_names)})")
        self.shown = name
        self.generation += 1
        return StepResult(self.generation, self.position, self.position, dirty=None)

    @property
    def reports(self) -> list[BadAccess]:
        """Every report made by the events applied so far."""
        return self.machine.reports

    def last_event(self) -> Event | None:
        return self.events[self.position - 1] if self.position else None

    def next_event(self) -> Event | None:
        return self.events[self.position] if self.position < len(self.events) else None

    def footprints(self) -> dict[str, Footprint]:
        """Each running scheme's memory bill now (the footprint view)."""
        machine = machine_view(self)
        return {name: machine.footprint(name) for name in self.scheme_names}

    def footprint_history(self, scheme: str) -> np.ndarray:
        """Total shadow bytes (static + dynamic + metadata) of ``scheme`` after each of the
        events 0..position (index 0: after boot)."""
        return self._fp_total[scheme][:self.position + 1]

    def _record_footprints(self) -> None:
        pos = self.position
        if pos < self._fp_known:
            return
        if pos >= len(self._fp_total[REFERENCE_SCHEME]):
            self._grow_footprints(pos)
        for name, s in self._schemes.items():
            fp = s.footprint()
            self._fp_total[name][pos] = fp.total_bytes()
            self._fp_counters[name][pos] = (fp.blocks_in_use, fp.shadow_pages_mapped,
                                            fp.shadow_slab_pages)
        self._fp_known = pos + 1

    def _grow_footprints(self, pos: int) -> None:
        """Room for the footprints after ``pos`` events: every event read, or (a trace still
        loading) twice as many as now. Per scheme, per event: the total (int64) and the three
        counters (int32: blocks in use, shadow pages mapped, shadow slab pages)."""
        n = max(pos, len(self.events) if not self.driver.loading else 2 * pos) + 1
        for name in self.scheme_names:
            total = np.zeros(n, dtype=np.int64)
            counters = np.zeros((n, 3), dtype=np.int32)
            known = self._fp_known
            total[:known] = self._fp_total[name][:known]
            counters[:known] = self._fp_counters[name][:known]
            self._fp_total[name], self._fp_counters[name] = total, counters

    # ------------------------------------------------------------------- checkpoints

    @property
    def checkpoint_every(self) -> int:
        """Events between the regular checkpoints (doubles as they thin out)."""
        return self.checkpoints.every

    @property
    def checkpoint_budget(self) -> int:
        return self.checkpoints.budget

    def _state(self, machine: Machine | None = None, runner=None) -> tuple:
        """What a checkpoint keeps: the machine (every scheme with it) and the runner's state;
        the session's own machine's observers emptied first."""
        if machine is None:
            machine, runner = self.machine, self.runner
            self._rec.clear()
            self._written.clear()
        return machine, self.driver.state(runner)

    def _take_checkpoint(self) -> None:
        every = self.checkpoint_every
        self.checkpoints.take(self.position, self._state())
        if self.checkpoint_every != every:          # they thinned out: fewer to come
            self._interval = max(self._interval, 4 * self.checkpoint_every)

    def _take_dense(self, pos: int | None = None, machine: Machine | None = None,
                    runner=None) -> None:
        pos = self.position if pos is None else pos
        if not self.checkpoints.has(pos):
            self.checkpoints.take(pos, self._state(machine, runner), dense=True)

    def _restore(self, target: int, force: bool = False, lay_dense: bool = False) -> None:
        """Make the state that of ``target`` events applied (a checkpoint, then replay);
        ``lay_dense``: leave dense checkpoints on the way (they cost a pickle each)."""
        base = self.checkpoints.nearest_position(target)
        near = not force and base <= self.position <= target
        if not force and not lay_dense and \
                self._fast_forward_pays(self.position if near else base, target, not near):
            self._adopt(self._fast_forward(target))
            return
        if not near:
            ckpt = self.checkpoints.nearest(target)
            machine, state = self.checkpoints.restore(ckpt)
            self._install(machine)
            self.runner = self.driver.runner(machine, base, state)
            self.position = base
        dense_every = max(16, min(self.checkpoint_every, (target - self.position) // 8 or 1))
        start, t = self.position, time.process_time()
        with gc_paused():
            while self.position < target:
                self._apply(record=False)
                if lay_dense and (target - self.position) % dense_every == 0 and \
                        self.position < target:
                    self._take_dense()
        if self.position - start >= 256 and not lay_dense:
            self._rate_step = 0.5 * self._rate_step + \
                0.5 * (time.process_time() - t) / (self.position - start)

    # ------------------------------------------------------------------ fast forward
    #
    # A long move on the native engine does not step: a machine booted anew replays the
    # trace's EventBatches (slices of what the reader gave, views of its columns) with the
    # compiled replayer (replay.TraceReplayer.compiled()), with no recording wrapper and no
    # per-event Python, up to the target; then its replayer's maps become the Python ones
    # (TraceReplayer's dicts), and the machine the session's. The compiled replayer keeps
    # its maps in C tables it can only start empty, so a fast forward starts at boot, not at a
    # checkpoint: it is chosen when the whole compiled replay costs less than stepping from the
    # position or the nearest checkpoint (the rates, measured as they go).
    #
    # What is recorded of the events replayed so, for the views:
    # - footprints (footprint_history): sampled after every FAST_FORWARD_PIECE events, exact
    #   there and at the target; an event between two samples holds the earlier sample;
    # - reports (the event log's ``!``, report_events): exact, each report's event_index too
    #   (the compiled replayer calls back after each event; a new report is noticed there);
    # - attach/detach (``+``/``-``, attach_events) and what each event changed (the records
    #   that name what a step back undoes): not recorded; a step back over such events says
    #   "everything changed" (dirty None), and their marks show once they are stepped through.

    def _fast_forward_pays(self, start: int, target: int, restore: bool) -> bool:
        """Whether reaching ``target`` by a fast forward from boot costs less than stepping
        there from ``start`` (the position, or a checkpoint to restore first)."""
        if not self.fast_forward or target - start < FAST_FORWARD_MIN or \
                self.driver.event_batches(target, target) is None:
            return False
        stepping = (target - start) * self._rate_step + (self.checkpoints.seconds
                                                          if restore else 0.0)
        return target * self._rate_bulk < stepping

    def _fast_forward(self, target: int, stop_from: int | None = None,
                      cancelled: Callable[[], bool] | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      previous: int = 0, planned: int = 0) -> _Spare:
        """A machine booted anew and the trace replayed on it, compiled, up to ``target``
        events (FAST_FORWARD_PIECE at a time: the footprints sampled after each, ``cancelled``
        asked, ``progress(done since previous, planned)`` called); with ``stop_from``, up to
        the first event at or after it that reports. Not the session's yet (``_adopt``)."""
        from .replay import TraceReplayer
        t = time.process_time()
        machine = Machine(self.profile, schemes=self.scheme_names,
                          scheme_options=self.scheme_options, engine=self.machine.engine)
        replayer = TraceReplayer(machine, self.path)
        replay = replayer.compiled().replay
        reports = machine.reports
        report_events = self.report_events
        noted = [0, 0]                  # reports seen, the first event of the slice replayed

        def after_event(i: int) -> None:
            if len(reports) != noted[0]:
                index = noted[1] + i
                new = reports[noted[0]:]
                for r in new:
                    r.event_index = index
                report_events[index] = tuple(r.bug_type for r in new)
                noted[0] = len(reports)
                if stop_from is not None and index >= stop_from:
                    raise _ReportStop

        pos = 0
        with gc_paused():
            try:
                while pos < target:
                    if cancelled is not None and cancelled():
                        break
                    end = min(target, pos + FAST_FORWARD_PIECE)
                    for batch in self.driver.event_batches(pos, end):
                        noted[1] = replayer.events
                        replay(_Positions(batch.columns(), batch.strings, batch.tasks), None,
                               after_event)
                    pos = replayer.events
                    self._sample_footprints(machine, pos)
                    if progress is not None:
                        progress(max(0, pos - previous), planned)
            except _ReportStop:
                pos = replayer.events
                self._sample_footprints(machine, pos)
        compiled = replayer.compiled()
        (replayer.objects, replayer.object_cache, replayer.pages,
         replayer.slab_pfns) = compiled.maps()
        replayer._compiled = None       # from here on the Python replayer and its dicts
        runner = TraceRunner(machine, self.path, self.events, pos, replayer)
        runner.last_reports = [r for r in reports if r.event_index == pos - 1]
        self.events_bulk += pos
        if pos >= FAST_FORWARD_MIN:
            self._rate_bulk = 0.5 * self._rate_bulk + 0.5 * (time.process_time() - t) / pos
        return _Spare(pos, machine, runner, 0)

    def _adopt(self, forward: _Spare) -> None:
        """Make a fast forward's machine the session's."""
        self._install(forward.machine)
        self.runner = forward.runner
        self.position = forward.position

    def _sample_footprints(self, machine: Machine, pos: int) -> None:
        """Each scheme's footprint after ``pos`` events of a fast forward; the positions since
        the last one known hold that one (see above)."""
        known = self._fp_known
        if pos < known:
            return
        if pos >= len(self._fp_total[REFERENCE_SCHEME]):
            self._grow_footprints(pos)
        for s in machine.schemes:
            total, counters = self._fp_total[s.name], self._fp_counters[s.name]
            total[known:pos] = total[known - 1]
            counters[known:pos] = counters[known - 1]
            fp = s.footprint()
            total[pos] = fp.total_bytes()
            counters[pos] = (fp.blocks_in_use, fp.shadow_pages_mapped, fp.shadow_slab_pages)
        self._fp_known = pos + 1

    # -------------------------------------------------------------------- idle work

    def idle_work(self) -> bool:
        """One piece of background work while the user looks (the UI calls it when idle, again
        while it returns True), most urgent first: free replaced machines; a spare at
        ``position - 1`` (the next step back becomes a swap); spares further back, up to
        ``spares`` of them; the oldest spare's state as a checkpoint (steps back beyond the
        spares restore from near); the ladder of dense checkpoints below it; a checkpoint every
        ``checkpoint_every`` events at the position. A piece is one checkpoint loaded or taken,
        or up to ``IDLE_CHUNK`` events replayed: a key pressed meanwhile waits for no more."""
        if self._graveyard:
            for machine, runner in self._graveyard:
                _dispose(machine, runner)
            self._graveyard.clear()
            return True
        wanted = range(self.position - self.spares_wanted, self.position)
        for spare in self._spares:
            if spare.position not in wanted:
                self._spares.remove(spare)
                _dispose(spare.machine, spare.runner)
                return True
        target = self._next_spare()
        if target is not None:
            return self._build(target, spare=True)
        if self._spares:
            # Keep the oldest spare's state too: steps back taken in a row beyond the spares,
            # with no pause to make more, restore from there instead of from further back.
            oldest = min(self._spares, key=lambda sp: sp.position)
            if oldest.position - self.checkpoints.nearest_position(oldest.position) > 32:
                self._take_dense(oldest.position, oldest.machine, oldest.runner)
                return True
        target = self.position - self.spares_wanted - 1      # the ladder's top rung
        if target > 0 and target - self.checkpoints.nearest_position(target) >= LADDER_STEP:
            return self._build(target, spare=False)
        self._drop_job()
        if self.position - self.checkpoints.last_regular(self.position) >= \
                self.checkpoint_every:
            self._take_checkpoint()
            return True
        return False

    def _next_spare(self) -> int | None:
        """The position of the spare to make next: ``position - 1`` whatever it costs, then
        the nearest missing one within the budget; None when there are enough."""
        have = {sp.position for sp in self._spares}
        held = sum(sp.nbytes for sp in self._spares)
        for distance in range(1, self.spares_wanted + 1):
            target = self.position - distance
            if target < 0:
                return None
            if target in have:
                continue
            if distance > 1 and \
                    held + self.checkpoints.at(self.checkpoints.nearest_position(target)).size \
                    > self.spare_budget:
                return None
            return target
        return None

    def _build(self, target: int, spare: bool) -> bool:
        """One piece of the idle job that replays a machine of its own up to ``target``: the
        nearest checkpoint loaded, or up to ``IDLE_CHUNK`` events replayed. ``spare``: the
        machine becomes a spare at ``target``; else it lays the ladder on its way (a rung
        ``LADDER_STEP`` events apart in the last ``HOLD_LADDER`` of them: one piece each), so
        that steps back taken in a row beyond the spares (a key held down) each restore a rung
        and replay a few events, not up to ``checkpoint_every``."""
        job = self._job
        if job is not None and (job.target, job.spare) != (target, spare):
            self._drop_job()
            job = None
        if job is None:
            ckpt = self.checkpoints.nearest(target)
            machine, state = self.checkpoints.restore(ckpt)
            self._job = _Replay(ckpt.position, machine,
                                self.driver.runner(machine, ckpt.position, state),
                                ckpt.size, target, spare)
            return True
        try:
            with gc_paused():
                end = min(target, job.position + IDLE_CHUNK)
                while job.position < end:
                    job.runner.step()
                    job.position += 1
                    _forget_changes(job.machine)
                    below = target - job.position
                    if not spare and below < LADDER_STEP * HOLD_LADDER and \
                            below % LADDER_STEP == 0:
                        self._take_dense(job.position, job.machine, job.runner)
                        break
        except (KinspectError, ValueError, MemoryError, KeyError, IndexError):
            self._drop_job()
            return False
        if job.position >= target:
            self._job = None
            if spare:
                self._spares.append(job)
            else:
                _dispose(job.machine, job.runner)
        return True

    def _drop_job(self) -> None:
        if self._job is not None:
            _dispose(self._job.machine, self._job.runner)
            self._job = None

    def standby_ready(self) -> bool:
        """Whether the next step back is a swap: a spare at ``position - 1`` is ready."""
        return any(sp.position == self.position - 1 for sp in self._spares)

    def _take_spare(self, target: int) -> bool:
        """Make the spare nearest at or before ``target`` the session's machine and replay it
        to ``target``, when it is near enough to beat a restore; whether one was."""
        best = None
        for spare in self._spares:
            if 0 <= target - spare.position <= SPARE_REPLAY and \
                    (best is None or spare.position > best.position):
                best = spare
        if best is None:
            return False
        self._spares.remove(best)
        self._install(best.machine)
        self.runner = best.runner
        self.position = best.position
        with gc_paused():
            while self.position < target:
                self._apply(record=False)
        return True

    @property
    def spares(self) -> dict[int, Machine]:
        """The spare machines ready behind the position: position -> machine (not the
        session's; a step back to one of them swaps it in)."""
        return {sp.position: sp.machine for sp in self._spares}

    def drop_spares(self, keep: Sequence[int] = ()) -> None:
        """Dispose of the spares, but those at the positions ``keep``."""
        for spare in [sp for sp in self._spares if sp.position not in keep]:
            self._spares.remove(spare)
            _dispose(spare.machine, spare.runner)

    @property
    def idle_job(self) -> tuple[int, bool, int] | None:
        """The idle work under way, if any: (target, whether it makes a spare, position)."""
        job = self._job
        return None if job is None else (job.target, job.spare, job.position)

    def checkpoint_stats(self) -> dict:
        """The checkpoint store's figures (CheckpointStore.stats) and ``spares``."""
        return {**self.checkpoints.stats(), "spares": len(self._spares)}

    # ------------------------------------------------------------------------ stepping

    def _apply(self, record: bool = True):
        """Apply the next event; (event, outcome, dirty, attach) when recording.

        A workload error at run time (``__free_pages`` of a page not allocated at that order,
        no memory for a kernel stack...) leaves the state as it was before the event and
        raises ``WorkloadError`` naming the event's line."""
        index = self.position
        ev = self.events[index]
        try:
            outcome = self.runner.step()
        except (KinspectError, ValueError, MemoryError, KeyError, IndexError) as e:
            self.error_events[index] = str(e)
            self._restore(self.position, force=True)
            if isinstance(e, KinspectError):
                raise
            raise WorkloadError(f"{self.event_text(index)}: {e or type(e).__name__}",
                                self.path, ev.line) from None
        self.position += 1
        self.events_stepped += 1
        if not record:
            self._rec.clear()
            self._written.clear()
            return None
        self._record_footprints()
        dirty, attach = self._collect(index)
        if index not in self._records:
            self._records[index] = _EventRecord(dirty, attach)
            if len(self._records) > self._records_max:
                self._records.popitem(last=False)
        if outcome.reports:
            self.report_events[index] = tuple(r.bug_type for r in outcome.reports)
        if attach:
            self.attach_events[index] = attach
        if self.position - self.checkpoints.last_regular(self.position) >= self._interval:
            self._take_checkpoint()
        return ev, outcome, dirty, attach

    def _collect(self, index: int) -> tuple[tuple[tuple[int, int], ...],
                                           tuple[AttachEvent, ...]]:
        """The pfn ranges the last event changed, and its attach/detach events."""
        rec = self._rec
        ranges = list(self._written)
        ranges += rec.pages
        pshift = self.machine.page_shift
        for addr, size in rec.writes:
            ranges += self._pfns_of_range(addr, size, pshift)
        attach = self._attach_events(index) if rec.links_before else []
        seen = {a.scheme for a in attach}
        attach += self._counter_events(index, seen)
        rec.clear()
        self._written.clear()
        dirty = merge_ranges(ranges)
        if len(dirty) > MAX_DIRTY_RANGES:
            dirty = ((dirty[0][0], dirty[-1][0] + dirty[-1][1] - dirty[0][0]),)
        return dirty, tuple(attach)

    def _pfns_of_range(self, addr: int, size: int, pshift: int) -> list[tuple[int, int]]:
        m = self.machine
        p = self.profile
        if p.vmalloc_start <= addr < p.vmalloc_end:
            out = []
            page = 1 << pshift
            a = addr - addr % page
            while a < addr + size:
                pfn = m.addr_to_pfn(a)
                if pfn is not None:
                    out.append((pfn, 1))
                a += page
            return out
        first = m.addr_to_pfn(addr)
        if first is None:
            return []
        last = m.addr_to_pfn(addr + max(size, 1) - 1)
        if last is None or last < first:
            return [(first, 1)]
        return [(first, last - first + 1)]

    def _attach_events(self, index: int) -> list[AttachEvent]:
        before = self._rec.links_before
        changed: dict[str, list[tuple[int, str, str | None]]] = {}
        for (name, pfn), old in before.items():
            scheme = self._schemes[name]
            if scheme.has_own_shadow(pfn) == bool(old):
                continue
            kind, link = ("detach", old[0]) if old else ("attach", scheme.shadow_link(pfn))
            changed.setdefault(name, []).append((pfn, kind, link))
        out: list[AttachEvent] = []
        for name, items in changed.items():
            items.sort(key=lambda t: t[0])
            run: list = []
            for pfn, kind, link in items:
                if run and run[1] == kind and pfn == run[0] + run[2]:
                    run[2] += 1
                    continue
                if run:
                    out.append(AttachEvent(name, run[1], run[0], run[2], run[3], index))
                run = [pfn, kind, 1, link]
            if run:
                out.append(AttachEvent(name, run[1], run[0], run[2], run[3], index))
        return out

    def _counter_events(self, index: int, seen: set[str]) -> list[AttachEvent]:
        """Attach/detach that changed a scheme's bill but no page link we watched."""
        pos = self.position
        out = []
        for s in self._rec.watched:
            if s.name in seen:
                continue
            now, prev = self._fp_counters[s.name][pos], self._fp_counters[s.name][pos - 1]
            delta = int(now[0] - prev[0] + now[1] - prev[1])
            if delta:
                out.append(AttachEvent(s.name, "attach" if delta > 0 else "detach", None,
                                       delta, None, index))
        return out

    def step(self, n: int = 1) -> StepResult:
        """Apply the next ``n`` events (fewer at the end of the workload)."""
        return self.run(until="limit", limit=n)

    def back(self, n: int = 1) -> StepResult:
        """Undo the last ``n`` events (restore a checkpoint, replay up to position - n)."""
        t0 = time.perf_counter()
        previous = self.position
        target = max(0, previous - n)
        self.generation += 1
        if target == previous:
            return StepResult(self.generation, previous, previous, stopped="start")
        if not self._take_spare(target):
            self._restore(target)
        ranges: list[tuple[int, int]] = []
        attach: list[AttachEvent] = []
        known = True
        for index in range(target, previous):
            rec = self._records.get(index)
            if rec is None:
                known = False
                break
            ranges += rec.dirty
            attach += [a.inverse() for a in rec.attach]
        dirty = merge_ranges(ranges) if known else None
        if dirty is not None and len(dirty) > MAX_DIRTY_RANGES:
            dirty = None
        return StepResult(self.generation, self.position, previous, (), dirty, (),
                          tuple(reversed(attach[-256:])), None, (),
                          time.perf_counter() - t0)

    def replay_cost(self, index: int) -> int:
        """How many events going to the state after ``index`` events replays (from the
        position, a spare or the nearest checkpoint): whether a UI can do it at once."""
        start = self.checkpoints.nearest_position(index)
        if self.position <= index:
            start = max(start, self.position)
        for spare in self._spares:
            if spare.position <= index:
                start = max(start, spare.position)
        if self._fast_forward_pays(start, index, start != self.position):
            return int(index * self._rate_bulk / self._rate_step)   # in events stepped
        return index - start

    def jump(self, index: int, wait: bool = False,
             cancelled: Callable[[], bool] | None = None,
             progress: Callable[[int, int], None] | None = None) -> StepResult:
        """Go to the state after ``index`` events (0 = just booted). Beyond the events read so
        far of a trace still loading: as far as they go, or with ``wait`` (in a worker thread:
        see ``run``) as the events come, to ``index`` or the end of the trace."""
        index = max(0, index if wait else min(index, len(self.events)))
        if index < self.position:
            return self.back(self.position - index)
        return self.run(until="limit", limit=index - self.position, cancelled=cancelled,
                        progress=progress, wait=wait)

    # -------------------------------------------------------------------- running

    def add_breakpoint(self, bp: Breakpoint) -> Breakpoint:
        """Add a breakpoint (a ``line`` breakpoint must name a line that has an event, or,
        while a trace is loading, a line after the last one read: see
        ``drop_unmatched_breakpoints``)."""
        if bp.kind not in Breakpoint.KINDS:
            raise KinspectError(f"unknown breakpoint kind {bp.kind!r} "
                                f"(known: {', '.join(Breakpoint.KINDS)})")
        if bp.kind == "line" and self.index_of_line(bp.value) is None:
            read = self.events[-1].line if self.events else 0
            if not (self.driver.loading and bp.value > read):
                raise KinspectError(f"no event on line {bp.value}", self.path)
        if bp.kind in ("pfn", "addr") and (bp.value is None or bp.value < 0):
            raise KinspectError(f"a {bp.kind} breakpoint needs a value")
        if bp not in self.breakpoints:
            self.breakpoints.append(bp)
        return bp

    def remove_breakpoint(self, bp: Breakpoint) -> bool:
        if bp in self.breakpoints:
            self.breakpoints.remove(bp)
            return True
        return False

    def drop_unmatched_breakpoints(self) -> list[Breakpoint]:
        """Once a trace is read whole: remove the line breakpoints (set while it loaded) whose
        line has no event after all; those removed."""
        if self.driver.loading or not any(b.kind == "line" for b in self.breakpoints):
            return []
        lines = {e.line for e in self.events}
        gone = [b for b in self.breakpoints if b.kind == "line" and b.value not in lines]
        for bp in gone:
            self.breakpoints.remove(bp)
        return gone

    def toggle_breakpoint(self, bp: Breakpoint) -> bool:
        """Add or remove; True if it is set afterwards."""
        if self.remove_breakpoint(bp):
            return False
        self.add_breakpoint(bp)
        return True

    def run(self, until: str = "report", limit: int | None = None,
            cancelled: Callable[[], bool] | None = None,
            progress: Callable[[int, int], None] | None = None,
            progress_every: int = 2000, wait: bool = False) -> StepResult:
        """Apply events until something stops the run:

        - ``until="report"``: an event made a KASAN report, or a breakpoint;
        - ``until="breakpoint"``: a breakpoint (reports do not stop);
        - ``until="limit"``: only ``limit`` events (breakpoints and reports do not stop);

        and always the end of the workload, ``limit`` events, ``cancelled()`` returning True,
        or a workload error (``stopped`` starts with ``"error:"``, the position is the event
        before it). ``progress(done, planned)`` is called every ``progress_every`` events.

        While a trace is loading, the last event read so far stops the run
        (``stopped="loading"``), unless ``wait``: a run in a worker thread waits for the events
        to come (``cancelled()`` is asked meanwhile).
        """
        t0 = time.perf_counter()
        previous = self.position
        end = None if limit is None else previous + limit
        planned = (len(self.events) if end is None else end) - previous
        check_bps = until != "limit" and bool(self.breakpoints)
        bps = self.breakpoints if check_bps else []
        lines = {b.value for b in bps if b.kind == "line"}
        pfns = [b.value for b in bps if b.kind == "pfn"]
        addrs = [b.value for b in bps if b.kind == "addr"]
        on_attach = any(b.kind == "attach" for b in bps)
        ref = self._schemes[REFERENCE_SCHEME]
        acc = _Accumulator()
        stopped = None
        if planned > 4 * self.checkpoint_every:
            # A long run keeps checkpoints sparser: their cost stays a small share of it.
            self._interval = max(self.checkpoint_every, self._run_interval())
        if not (pfns or addrs or on_attach):
            self._run_forward(until, end, lines, acc, cancelled, progress, previous, planned)
        try:
            with gc_paused():
                while True:
                    if self.position >= len(self.events) and not self.driver.loading:
                        stopped = "end"
                        break
                    if end is not None and self.position >= end:
                        stopped = "limit"
                        break
                    if cancelled is not None and cancelled():
                        stopped = "cancelled"
                        break
                    if self.position >= len(self.events):
                        if not wait:
                            stopped = "loading"
                            break
                        self.driver.wait_for(self.position + 1, 0.1)
                        continue
                    ev = self.events[self.position]
                    if lines and ev.line in lines and self.position != previous:
                        stopped = f"breakpoint: line {ev.line}"
                        break
                    before = [ref.read(a - a % 8, 8) for a in addrs]
                    try:
                        item = self._apply()
                    except KinspectError as e:
                        stopped = f"error: {e}"
                        break
                    acc.add(item)
                    done = self.position - previous
                    if progress is not None and done % progress_every == 0:
                        progress(done, (len(self.events) if end is None else end) - previous)
                    if until == "report" and item[1].reports:
                        stopped = "report"
                        break
                    hit = self._breakpoint_hit(item, pfns, addrs, before, on_attach)
                    if hit:
                        stopped = f"breakpoint: {hit}"
                        break
        finally:
            self._interval = 4 * self.checkpoint_every
        if self.position - previous > 1:
            self._densify()
        self.generation += 1
        if until == "limit" and stopped == "limit":
            stopped = None
        return acc.result(self.generation, self.position, previous, stopped,
                          time.perf_counter() - t0)

    def _run_forward(self, until: str, end: int | None, lines: set, acc: "_Accumulator",
                     cancelled, progress, previous: int, planned: int) -> None:
        """The bulk of a long run as a fast forward, when it pays (and no breakpoint needs
        each event looked at: line breakpoints are found in the events beforehand): up to
        FAST_FORWARD_TAIL events before where the run would stop, so that the run's last
        events are stepped the existing way (what the last one changed, exactly). A run to
        a report stops at the first event that reports: the fast forward is made again to a
        tail before it (reports are rare)."""
        goal = min(len(self.events), end if end is not None else len(self.events))
        target = goal - FAST_FORWARD_TAIL
        if not self._fast_forward_pays(self.position, target, False):
            return
        if lines:
            start = self.position + 1
            wanted = np.fromiter(lines, np.int64, len(lines))
            for batch in self.driver.event_batches(start, goal):
                hits = np.flatnonzero(np.isin(batch.line, wanted))
                if len(hits):
                    goal = start + int(hits[0])
                    break
                start += len(batch)
            target = goal - FAST_FORWARD_TAIL
            if not self._fast_forward_pays(self.position, target, False):
                return
        forward = self._fast_forward(target, previous if until == "report" else None,
                                     cancelled, progress, previous, planned)
        if until == "report" and forward.runner.last_reports:
            reported = forward.position - 1
            _dispose(forward.machine, forward.runner)
            if not self._fast_forward_pays(self.position, reported - FAST_FORWARD_TAIL, False):
                return
            forward = self._fast_forward(reported - FAST_FORWARD_TAIL)
        self._adopt(forward)
        self._take_checkpoint()
        acc.bulk([r for r in self.machine.reports if r.event_index >= previous])

    def _breakpoint_hit(self, item, pfns, addrs, before, on_attach) -> str:
        _ev, outcome, dirty, att = item
        if on_attach and att:
            return "attach/detach"
        for pfn in pfns:
            if ranges_contain(dirty, pfn):
                return f"pfn {pfn:#x}"
        if addrs:
            ref = self._schemes[REFERENCE_SCHEME]
            for addr, old in zip(addrs, before):
                if ref.read(addr - addr % 8, 8) != old:
                    return f"address {addr:#x}"
                for r in outcome.reports:
                    if r.addr <= addr < r.addr + (r.size or 1):
                        return f"address {addr:#x}"
        return ""

    def _run_interval(self) -> int:
        """Events between checkpoints in a long run: a checkpoint costs about a tenth of the
        time of the events it covers (at about 10 us an event)."""
        return int(max(256, min(1 << 16, self.checkpoints.seconds / 10e-6 * 10)))

    def _densify(self) -> None:
        """After a run: checkpoints behind the stop, so that the first steps back are fast."""
        pos = self.position
        base = self.checkpoints.nearest_position(pos)
        if pos - base <= 64:
            return
        self._restore(pos - 1, force=True, lay_dense=True)
        self._take_dense()                  # the first step back: a restore, no replay
        with gc_paused():
            self._apply(record=False)
        self._take_dense()

    # ------------------------------------------------------------------------ views

    def latest_report(self) -> BadAccess | None:
        """The newest report made by the events applied so far."""
        return self.machine.reports[-1] if self.machine.reports else None

    def index_of_line(self, line: int) -> int | None:
        """The index of the event on workload (or trace file) line ``line``, among those read
        (events are in the file's order)."""
        events = self.events
        i = bisect_left(events, line, hi=len(events), key=_line_of)
        return i if i < len(events) and events[i].line == line else None


# ---------------------------------------------------------------------- scheme views

@dataclass(frozen=True)
class ShadowSlabInfo:
    """One slab page (2^order pages from ``pfn``) of a scheme's shadow-block cache."""

    pfn: int
    pages: int
    blocks: tuple                # ShadowBlock(addr, pfn | None, vaddr | None) per slot


class SchemeView:
    """What the views need from one running scheme, kept per step generation.

    - ``attached``: sorted pfns whose shadow lives in storage of their own (a block, or the
      byte shadow of a mapped pshadow window), kept up to date from the attach/detach events;
    - ``own_shadow``: sorted pfns of this scheme's shadow pages (shadow slab pages, pshadow
      shadow pages), as opposed to those of the other schemes running in lockstep;
    - ``slabs()``: the shadow-block cache's slabs, blocks and the pfn each block serves.
    """

    def __init__(self, session: Session, name: str) -> None:
        self.session = session
        self.name = name
        self.kind = machine_view(session).shadow_storage(name)
        self.generation = -1
        self.attached: list[int] = []
        self.own_shadow: list[int] = []
        self._slabs: list[ShadowSlabInfo] | None = None
        self._block_of_pfn: dict[int, int] | None = None
        self._counters = None
        self.rebuild()

    # -- keeping up

    def rebuild(self) -> None:
        """Everything from the scheme's own views (after a jump back, or a scheme switch)."""
        s = self.session
        self._slabs = None
        self._block_of_pfn = None
        self.attached = []
        self.own_shadow = []
        if self.kind == "blocks":
            slabs = self.slabs()
            self.attached = sorted(b.pfn for slab in slabs for b in slab.blocks
                                   if b.pfn is not None)
            self.own_shadow = self._own_shadow_pages()
        elif self.kind == "windows":
            attached = []
            machine = machine_view(s)
            own = []
            for w in machine.shadow_windows(self.name):
                own.append(w.shadow_pfn)
                if w.pfn is not None:
                    attached += [p for p in range(w.pfn, w.pfn + WINDOW_PAGES)
                                 if machine.has_own_shadow(self.name, p)]
            self.attached = sorted(attached)
            self.own_shadow = sorted(own)
        self._counters = self._current_counters()
        self.generation = s.generation

    def _own_shadow_pages(self) -> list[int]:
        """Pfns of this scheme's shadow pages, without walking every block."""
        return machine_view(self.session).shadow_slab_pages(self.name)

    def _current_counters(self):
        fp = machine_view(self.session).footprint(self.name)
        return (fp.blocks_in_use, fp.shadow_pages_mapped, fp.shadow_slab_pages)

    def update(self, result: StepResult) -> None:
        """Follow one StepResult (incrementally when it names what changed)."""
        if self.kind == "flat":
            self.generation = result.generation
            return
        mine = [a for a in result.attach if a.scheme == self.name]
        if result.dirty is None or any(a.pfn is None for a in mine):
            self.rebuild()
            return
        attached = set(self.attached)
        for a in mine:
            pfns = range(a.pfn, a.pfn + a.count)
            if a.kind == "attach":
                attached.update(pfns)
            else:
                attached.difference_update(pfns)
        if mine:
            self.attached = sorted(attached)
        counters = self._current_counters()
        if counters != self._counters:
            self._slabs = None
            self._block_of_pfn = None
            self.own_shadow = self._own_shadow_pages()
            self._counters = counters
        elif mine:
            self._slabs = None
            self._block_of_pfn = None
        self.generation = result.generation

    # -- reading

    def attached_in(self, first: int, count: int) -> list[int]:
        """Attached pfns in [first, first + count)."""
        a = self.attached
        return a[bisect_right(a, first - 1):bisect_right(a, first + count - 1)]

    def own_shadow_in(self, first: int, count: int) -> list[int]:
        a = self.own_shadow
        return a[bisect_right(a, first - 1):bisect_right(a, first + count - 1)]

    def is_attached(self, pfn: int) -> bool:
        return bool(self.attached_in(pfn, 1))

    def link(self, pfn: int) -> str | None:
        return machine_view(self.session).shadow_link(self.name, pfn)

    def slabs(self) -> list[ShadowSlabInfo]:
        """The shadow-block cache's slabs in pfn order (pageptr, pageext); [] otherwise."""
        if self._slabs is None:
            self._slabs = [ShadowSlabInfo(*slab) for slab in
                           machine_view(self.session).shadow_slabs(self.name)]
        return self._slabs

    def block_of_pfn(self, pfn: int) -> int | None:
        """The address of the block serving ``pfn``, or None."""
        if self._block_of_pfn is None:
            self._block_of_pfn = {b.pfn: b.addr for slab in self.slabs() for b in slab.blocks
                                  if b.pfn is not None}
        return self._block_of_pfn.get(pfn)

    def shadow_slab_of_block(self, addr: int) -> ShadowSlabInfo | None:
        for slab in self.slabs():
            if slab.blocks and slab.blocks[0].addr <= addr <= slab.blocks[-1].addr:
                return slab
        return None
