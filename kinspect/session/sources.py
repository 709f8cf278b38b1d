"""Where a session's events come from, and the long moves through them.

A Session runs a ``.kw`` workload (``WorkloadDriver``: a WorkloadRunner, its variables the
state a checkpoint keeps) or an ftrace kmem capture (``TraceDriver``, ``load_trace``: read
whole, or streamed while the session already steps; ``TraceRunner`` replays its events one at
a time, the replayer's maps the state a checkpoint keeps). A driver makes a runner for a
machine at a position (``runner``), says what of a runner's state a checkpoint keeps
(``state``), names an event (``text``, ``address``) and gives the trace's events as
EventBatch slices for the compiled replayer (``event_batches``).

``fast_forward`` is a long move on the native engine: the trace's EventBatches replayed
compiled, from a machine booted anew or restored from a checkpoint, with no recording wrapper
and no per-event Python, up to the target; then the machine becomes a session's, its
compiled replayer stepping on (``Session._fast_forward``, which chooses it:
docs/architecture.md "Long moves: the fast forward").
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_right
from collections.abc import Callable, Sequence

from ..engine.collector import gc_paused
from ..engine.errors import KinspectError
from ..engine.ftrace import (
    KIND_NAMES,
    PARALLEL_MIN_BYTES,
    EventBatch,
    ParallelTraceReader,
    TraceEvent,
    TraceReader,
    parallel_possible,
)
from ..engine.machine import Machine
from ..engine.replay import TraceReplayer
from ..engine.workload import Addr, Event, StepOutcome, Workload, WorkloadRunner

# The fast forward: a long move on the native engine replays the trace's EventBatches
# compiled, from a machine booted anew, in pieces...
FAST_FORWARD_MIN = 4096  # events: a shorter move steps the existing way
FAST_FORWARD_PIECE = 8192  # events a piece: the footprints are sampled after each
FAST_FORWARD_TAIL = 64  # the last events before the target: stepped the existing way


def load_trace(path: str, strict: bool = False, stream: bool = False) -> TraceDriver:
    """An ftrace kmem capture as a Session's workload: read whole, or with ``stream`` only
    its first events (a file with none is an error now), the rest by ``Session.load()``."""
    return TraceDriver(path, strict, stream)


class _Positions(EventBatch):
    """A slice of a trace's events for the compiled replayer whose ``batch[i]`` is ``i``: the
    replayer's ``after_event(batch[i])`` then costs a call, not a TraceEvent made."""

    __slots__ = ()

    def __getitem__(self, i: int) -> int:  # type: ignore[override]  # an index, not an event
        return i


class _Tail:
    """The part of a workload from event ``start`` on, as a WorkloadRunner takes it."""

    def __init__(self, events: list[Event], start: int, funcs) -> None:
        self.events = (events[i] for i in range(start, len(events)))
        self.funcs = funcs
        self.path = ""


class WorkloadDriver:
    """How a Session runs a ``.kw`` workload: WorkloadRunner; its state is the variables."""

    loading = False  # parsed whole before the session starts
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
    a WorkloadRunner that a Session uses. A trace read as EventBatches (the native engine) is
    stepped by the compiled replayer, a one-event slice at a time: its maps stay in its tables
    (what a checkpoint keeps, and a fast forward goes on with); else by the Python one."""

    def __init__(
        self,
        machine: Machine,
        driver: TraceDriver,
        start: int,
        replayer: TraceReplayer | None = None,
    ) -> None:
        self.machine = machine
        self.events = driver.events
        self.position = start
        self.replayer = replayer if replayer is not None else TraceReplayer(machine, driver.path)
        self._slices = (
            driver.event_batches
            if (driver.batches is not None and machine.engine == "native")
            else None
        )
        self.values: dict = {}
        self.last_reports: list = []
        self.expect_failures: list = []

    def step(self) -> StepOutcome | None:
        if self.position >= len(self.events):
            return None
        ev = self.events[self.position]
        m = self.machine
        before = len(m.reports)
        if self._slices is not None:
            batches = self._slices(self.position, self.position + 1)
            assert batches is not None  # an event read is in the batches
            self.replayer.compiled().replay(batches[0])
        else:
            self.replayer.replay((ev,))
        new = m.reports[before:]
        for r in new:
            r.event_index = self.position
        self.position += 1
        self.last_reports = new
        return StepOutcome(ev, new, None)


EventRunner = WorkloadRunner | TraceRunner  # what a driver's runner() makes


class _TraceEvents(Sequence):
    """The events of a trace read as EventBatches (the native engine), as a sequence of
    TraceEvents each made when asked: the batches' columns hold an event in 61 bytes, where a
    list of TraceEvents held about 240 more (135 MiB for the real x86_64 trace)."""

    def __init__(self, batches: list, ends: list[int]) -> None:
        self._batches = batches  # shared with the driver, which appends to both...
        self._ends = ends  # ...the batch first, then its end

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
        for batch in self._batches[: len(self._ends)]:
            yield from batch

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and list(self) == list(other)

    # (defining __eq__ makes it unhashable: __hash__ is None)


class TraceDriver:
    """How a Session runs an ftrace kmem capture: read whole before the session starts, or
    (``stream``) its first block of events now and the rest by ``load()``, which a UI calls
    in a worker thread while the session already steps. Meanwhile ``events`` grows (appended
    a block at a time: other threads see a consistent list) and ``loading`` is True.

    A file of a MB or more is read in a forked child process where that can help
    (``parallel_possible()``: before any thread starts, a CPU to spare), as ``kinspect run``
    does; the process reading it here only receives the events."""

    def __init__(self, path: str, strict: bool = False, stream: bool = False) -> None:
        self.path = path
        try:
            parallel = os.path.getsize(path) >= PARALLEL_MIN_BYTES and parallel_possible()
        except OSError:
            parallel = False  # the reader says what is wrong with the file
        self.reader = (ParallelTraceReader if parallel else TraceReader)(path, strict=strict)
        self._event = TraceEvent if parallel else None  # its child sends plain tuples
        # The native engine's reader gives EventBatches: kept as they are (the events are
        # a view of them, _TraceEvents), and a long move replays slices of them compiled
        # (Session's fast forward). The Python engine's gives TraceEvents: kept in a list.
        self.batches: list | None = [] if self.reader.engine == "native" else None
        self._batch_ends: list[int] = []  # events read up to the end of each batch
        self.events = (
            _TraceEvents(self.batches, self._batch_ends) if self.batches is not None else []
        )
        self.loading = True
        self.error: KinspectError | None = None  # what stopped the reading, if anything
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
                assert isinstance(self.events, list)  # not read as EventBatches: a list
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

    def load(
        self,
        progress: Callable[[int, float], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
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
            self._arrived.wait_for(lambda: len(self.events) >= count or not self.loading, timeout)
            return len(self.events) >= count

    def close(self) -> None:
        """Stop reading (not while load() runs in another thread): the file is closed, a
        reading child process ends; the events read so far stay."""
        if self.loading:
            self._batches.close()
            self._finish(None)

    def runner(self, machine: Machine, start: int, state=None):
        if state is None:
            return TraceRunner(machine, self, start)
        replayer, last_reports = state
        runner = TraceRunner(machine, self, start, replayer)
        runner.last_reports = last_reports
        return runner

    @staticmethod
    def state(runner) -> tuple:
        return (runner.replayer, runner.last_reports)

    def text(self, index: int) -> str:
        ev = self.events[index]
        label = KIND_NAMES[ev.kind] if ev.kind < len(KIND_NAMES) else str(ev.kind)
        if ev.pfn >= 0:
            return f"{label} pfn={ev.pfn:#x} order={ev.order}  [{ev.comm}/{ev.pid}]"
        sizes = f" {ev.bytes_req}/{ev.bytes_alloc}" if ev.bytes_alloc else ""
        name = f" {ev.name}" if ev.name else ""
        return f"{label} {ev.call_site} ptr={ev.ptr:x}{sizes}{name}  [{ev.comm}/{ev.pid}]"

    @staticmethod
    def address(runner, ev) -> int | None:
        rep = runner.replayer
        if ev.pfn >= 0:
            entry = rep.page(ev.pfn)
            if entry is not None and runner.machine.profile.is_lowmem_pfn(entry[0]):
                return runner.machine.page_address(entry[0])
            return None
        return rep.object_address(ev.ptr)


class ReportStop(Exception):
    """Raised from the compiled replayer's ``after_event``: the event just applied reported
    and the move stops at it."""


def fast_forward(
    driver: TraceDriver,
    machine: Machine,
    replayer: TraceReplayer | None,
    target: int,
    report_events: dict[int, tuple[str, ...]],
    sampled: Callable[[Machine, int], None],
    stop_from: int | None = None,
    cancelled: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    previous: int = 0,
    planned: int = 0,
) -> TraceRunner:
    """Replay the trace compiled on ``machine`` up to ``target`` events: a machine booted
    anew (``replayer`` None), or one restored from a checkpoint with its replayer (which has
    replayed ``replayer.events`` events), its observers off (recording.unobserve).
    FAST_FORWARD_PIECE events at a time: ``sampled(machine, events)`` after each,
    ``cancelled`` asked, ``progress(done since previous, planned)`` called; with
    ``stop_from``, up to the first event at or after it that reports. Each new report's
    ``event_index`` is set and its event noted in ``report_events``. The runner that goes on
    from there (its position: the events replayed)."""
    if replayer is None:
        replayer = TraceReplayer(machine, driver.path)
    replay = replayer.compiled().replay
    reports = machine.reports
    noted = [len(reports), 0]  # reports seen, the first event of the slice replayed

    def after_event(i: int) -> None:
        if len(reports) != noted[0]:
            index = noted[1] + i
            new = reports[noted[0] :]
            for r in new:
                r.event_index = index
            report_events[index] = tuple(r.bug_type for r in new)
            noted[0] = len(reports)
            if stop_from is not None and index >= stop_from:
                raise ReportStop

    pos = replayer.events
    with gc_paused():
        try:
            while pos < target:
                if cancelled is not None and cancelled():
                    break
                end = min(target, pos + FAST_FORWARD_PIECE)
                batches = driver.event_batches(pos, end)
                assert batches is not None  # read as EventBatches, up to the target
                for batch in batches:
                    noted[1] = replayer.events
                    replay(
                        _Positions(batch.columns(), batch.strings, batch.tasks), None, after_event
                    )
                pos = replayer.events
                sampled(machine, pos)
                if progress is not None:
                    progress(max(0, pos - previous), planned)
        except ReportStop:
            pos = replayer.events
            sampled(machine, pos)
    runner = TraceRunner(machine, driver, pos, replayer)
    runner.last_reports = [r for r in reports if r.event_index == pos - 1]
    return runner
