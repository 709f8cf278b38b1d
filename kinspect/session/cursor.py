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
kinspect.session.checkpoints) and replays forward. A checkpoint of a machine with many live
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

import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

import numpy as np

from ..engine.collector import gc_paused
from ..engine.errors import KinspectError, WorkloadError
from ..engine.machine import Machine
from ..engine.profile import ArchProfile
from ..engine.ranges import ranges_contain
from ..engine.report import BadAccess
from ..engine.shadow import SCHEMES
from ..engine.shadow.base import Footprint, ShadowScheme
from ..engine.view import machine_view
from ..engine.workload import Event, Workload
from . import sources
from .checkpoints import (
    IDLE_SECONDS,
    CheckpointStore,
    Spare,
    Standby,
    TakeInPieces,
    tune_malloc,
)
from .recording import (
    REFERENCE_SCHEME,
    WINDOW_PAGES,
    Accumulator,
    AttachEvent,
    EventRecord,
    FootprintHistory,
    StepResult,
    dispose,
    observe,
    undone,
    unobserve,
)
from .sources import TraceDriver, WorkloadDriver, fast_forward
from .written import Buffers

SCHEME_ORDER = ("flat", "pshadow", "pageptr", "pageext")
_line_of = attrgetter("line")


def registered_schemes() -> list[str]:
    """The shadow schemes registered now, the flat reference first, then the 2017 designs."""
    names = list(SCHEMES)
    ordered = [n for n in SCHEME_ORDER if n in names]
    return ordered + [n for n in names if n not in ordered]


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


class Session:
    """A cursor over a workload on one machine with every scheme in lockstep."""

    def __init__(
        self,
        profile: ArchProfile,
        workload,
        schemes: Sequence[str] | None = None,
        shown: str | None = None,
        scheme_options: dict | None = None,
        checkpoint_every: int | None = None,
        checkpoint_budget: int = 256 << 20,
        spares: int | None = None,
        spare_budget: int = 384 << 20,
    ) -> None:
        """``schemes``: which to run (default: every registered one; flat always first);
        ``shown``: the scheme the views read (default: the first per-page scheme, else flat);
        ``checkpoint_every``: events between the checkpoints taken while idle (default 256;
        doubled each time the budget makes older checkpoints thin out);
        ``checkpoint_budget``: bytes of checkpoints kept (older ones are thinned), half of
        it for the dense ones laid near the position (the least recently used go first); the
        big buffers are shared between checkpoints, so late in the real trace at 1 TiB the
        default (256 MiB) holds more of them than 1 GiB of whole pickles did;
        ``spares``: live machines kept ready behind the position (at position - 1, - 2...),
        made in idle time, so that that many steps back in a row are swaps (default: 3; none
        for a trace on the native engine, whose steps back restore in place and replay
        compiled from the ladder below the position: ``_restore``);
        ``spare_budget``: about how many bytes they may hold (the one at position - 1 is made
        whatever it costs)."""
        tune_malloc()  # machines made and dropped: their memory given back
        self.profile = profile
        self.workload = workload
        if isinstance(workload, Workload):
            workload.bind(profile)  # sizeof(long), PAGE_SIZE... are the profile's
        self.driver = workload if isinstance(workload, TraceDriver) else WorkloadDriver(workload)
        self.path = self.driver.path
        self.events: Sequence = self.driver.events
        self.is_trace = isinstance(self.driver, TraceDriver)
        names = list(schemes) if schemes is not None else registered_schemes()
        for name in names:
            if name not in SCHEMES:
                raise KinspectError(
                    f"unknown shadow scheme {name!r} (known: {', '.join(SCHEMES)})", "--scheme"
                )
        self.scheme_names = [REFERENCE_SCHEME] + [n for n in names if n != REFERENCE_SCHEME]
        if shown is None:
            shown = next(
                (n for n in ("pageptr", "pageext", "pshadow") if n in self.scheme_names),
                REFERENCE_SCHEME,
            )
        if shown not in self.scheme_names:
            raise KinspectError(
                f"scheme {shown!r} is not running (running: {', '.join(self.scheme_names)})",
                "--scheme",
            )
        self.shown = shown
        self.scheme_options = dict(scheme_options or {})
        self.generation = 0
        self.machines_discarded = 0
        self._graveyard: list[tuple] = []
        self.breakpoints: list[Breakpoint] = []
        # Knowledge gathered while stepping (deterministic: valid at any position).
        self._records: OrderedDict[int, EventRecord] = OrderedDict()
        self._records_max = 2_000_000  # what each event changed: ~150 bytes each
        self.report_events: dict[int, tuple[str, ...]] = {}  # event index -> bug types
        self.attach_events: dict[int, tuple[AttachEvent, ...]] = {}
        self.error_events: dict[int, str] = {}
        # grows with the events (every event read, or twice as many while a trace loads)
        self._footprints = FootprintHistory(self.scheme_names, self._footprint_room)
        self._boot()
        self._footprints.record(0, self.machine.schemes)
        self.checkpoints = CheckpointStore(checkpoint_budget, checkpoint_every or 256)
        self._interval = 4 * self.checkpoint_every
        self._take_checkpoint()
        # a regular checkpoint taken in pieces in idle time, and its generation
        self._idle_take: tuple[TakeInPieces, int] | None = None
        # The fast forward: on the native engine, a trace read as EventBatches. The rates (CPU
        # seconds an event, smoothed) of a compiled replay and of an event stepped the
        # existing way (restores, idle work) choose it; they start from the figures of the
        # real trace at 1 TiB, four schemes (docs/ui.md).
        self.fast_forward = self.machine.engine == "native" and self.is_trace
        if spares is None:
            spares = 0 if self.fast_forward else 3
        self.standby = Standby(self.checkpoints, self.driver, spares, spare_budget)
        self._rate_bulk = 8e-6
        self._rate_step = 40e-6
        self.events_bulk = 0  # events replayed by fast forwards
        self.events_stepped = 0  # events applied the existing way (steps and replays)

    # ------------------------------------------------------------------------- state

    def _boot(self) -> None:
        machine = Machine(
            self.profile, schemes=self.scheme_names, scheme_options=self.scheme_options
        )
        self._install(machine)
        self.position = 0
        self.runner = self.driver.runner(machine, 0)

    def _install(self, machine: Machine, buffers: list | None = None) -> None:
        """Make ``machine`` the session's, with its observers in place; ``buffers``: its
        buffers as a restore or take listed them (a restore that replaces it writes into
        them: CheckpointStore.restore's ``reuse``)."""
        changes = observe(machine)
        self._buffers = buffers
        old = getattr(self, "machine", None)
        if old is not None and old is not machine:
            # Freeing a big machine takes milliseconds: done in idle time, unless several wait.
            self.machines_discarded += 1
            self._graveyard.append((old, getattr(self, "runner", None)))
            while len(self._graveyard) > 2:
                dispose(*self._graveyard.pop(0))
        self.machine = machine
        self._changes = changes
        self._schemes = changes.schemes

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

    def load(
        self,
        progress: Callable[[int, float], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
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
            raise KinspectError(
                f"scheme {name!r} is not running (running: {', '.join(self.scheme_names)})"
            )
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
        return self._footprints.totals(scheme, self.position)

    def _footprint_room(self, pos: int) -> int:
        """Events to keep footprints for once ``pos`` does not fit: every event read, or (a
        trace still loading) twice as many as now."""
        return max(pos, len(self.events), 2 * pos if self.driver.loading else 0) + 1

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
            self._changes.clear()
        return machine, self.driver.state(runner)

    def _take_checkpoint(self) -> None:
        every = self.checkpoint_every
        buffers = Buffers()
        self.checkpoints.take(self.position, self._state(), buffers=buffers, previous=self._buffers)
        if buffers:  # a pickle was made of this machine
            self._buffers = buffers
        if self.checkpoint_every != every:  # they thinned out: fewer to come
            self._interval = max(self._interval, 4 * self.checkpoint_every)

    def _take_dense(self) -> None:
        """A dense checkpoint at the position, unless one is kept there."""
        if not self.checkpoints.has(self.position):
            buffers = Buffers()
            self.checkpoints.take(
                self.position, self._state(), dense=True, buffers=buffers, previous=self._buffers
            )
            if buffers:
                self._buffers = buffers

    def _restore(self, target: int, force: bool = False, lay_dense: bool = False) -> None:
        """Make the state that of ``target`` events applied (a checkpoint, then replay);
        ``lay_dense``: leave dense checkpoints on the way (they cost a pickle each)."""
        base = self.checkpoints.nearest_position(target)
        near = not force and base <= self.position <= target
        fast = (
            not force
            and not lay_dense
            and self._fast_forward_pays(self.position if near else base, target, not near)
        )
        if fast or not near:
            # the session's machine is replaced, its buffers written into (in place); a
            # machine swapped out is freed first, should another be made
            while self._graveyard:
                dispose(*self._graveyard.pop(0))
        if fast:
            self._adopt(self._fast_forward(target, reuse=self._buffers))
            return
        if not near:
            ckpt = self.checkpoints.nearest(target)
            buffers = Buffers()
            if self._buffers is not None:
                # restored in place: the machine replaced is freed first, its buffers kept
                # (written into); the restore's new objects (a table's copy: 2.6 MB late in
                # the real trace at 1T) take the memory it held, already faulted in, not pages
                # fresh from the kernel (each fault 2-11 us in this VM)
                dispose(self.machine, self.runner)
            machine, state = self.checkpoints.restore(ckpt, self._buffers, buffers)
            self._install(machine, buffers)
            self.runner = self.driver.runner(machine, base, state)
            self.position = base
        dense_every = max(16, min(self.checkpoint_every, (target - self.position) // 8 or 1))
        start, t = self.position, time.process_time()
        with gc_paused():
            while self.position < target:
                self._apply(record=False)
                if (
                    lay_dense
                    and (target - self.position) % dense_every == 0
                    and self.position < target
                ):
                    self._take_dense()
        if self.position - start >= 256 and not lay_dense:
            self._rate_step = 0.5 * self._rate_step + 0.5 * (time.process_time() - t) / (
                self.position - start
            )

    # ------------------------------------------------------------------ fast forward
    #
    # A long move on the native engine does not step: a machine booted anew, or restored from
    # the nearest checkpoint (with its compiled replayer: its maps pickle as arrays), replays
    # the trace's EventBatches (slices of what the reader gave, views of its columns) with the
    # compiled replayer, with no recording wrapper and no per-event Python, up to the target;
    # then the machine becomes the session's, its compiled replayer stepping on. It is chosen
    # when it costs less than stepping from the position or the nearest checkpoint (the
    # rates, measured as they go, and the store's restore time).
    #
    # What is recorded of the events replayed so, for the views:
    # - footprints (footprint_history): sampled after every FAST_FORWARD_PIECE events (sources),
    #   exact there and at the target; an event between two samples holds the earlier sample;
    # - reports (the event log's ``!``, report_events): exact, each report's event_index too
    #   (the compiled replayer calls back after each event; a new report is noticed there);
    # - attach/detach (``+``/``-``, attach_events) and what each event changed (the records
    #   that name what a step back undoes): not recorded; a step back over such events says
    #   "everything changed" (dirty None), and their marks show once they are stepped through.

    def _fast_forward_base(self, target: int) -> tuple[int, float]:
        """Where a fast forward to ``target`` starts (boot, or the nearest checkpoint when
        restoring it costs less than replaying up to it), and what it costs (CPU seconds)."""
        base = self.checkpoints.nearest_position(target)
        from_boot = target * self._rate_bulk
        from_base = self.checkpoints.restore_seconds + (target - base) * self._rate_bulk
        return (base, from_base) if base and from_base < from_boot else (0, from_boot)

    def _fast_forward_pays(self, start: int, target: int, restore: bool) -> bool:
        """Whether reaching ``target`` by a fast forward costs less than stepping there from
        ``start`` (the position, or a checkpoint to restore first)."""
        if (
            not self.fast_forward
            or target - start < sources.FAST_FORWARD_MIN
            or self.driver.event_batches(target, target) is None
        ):
            return False
        stepping = (target - start) * self._rate_step + (
            self.checkpoints.restore_seconds if restore else 0.0
        )
        return self._fast_forward_base(target)[1] < stepping

    def _fast_forward(
        self,
        target: int,
        stop_from: int | None = None,
        cancelled: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
        previous: int = 0,
        planned: int = 0,
        reuse: list | None = None,
    ) -> Spare:
        """The trace replayed compiled up to ``target`` events (sources.fast_forward: the
        footprints sampled after each piece) on a machine booted anew or restored from the
        nearest checkpoint (``_fast_forward_base``), into the buffers ``reuse`` if given
        (the session's machine's: it is not to be used any more); with ``stop_from``, up to
        the first event at or after it that reports. Not the session's yet (``_adopt``)."""
        base, _cost = self._fast_forward_base(target)
        replayer = None
        buffers: list | None = None
        if base:
            buffers = Buffers()
            machine, (replayer, _reports) = self.checkpoints.restore(
                self.checkpoints.nearest(target), reuse, buffers
            )
            unobserve(machine)
        else:
            machine = Machine(
                self.profile,
                schemes=self.scheme_names,
                scheme_options=self.scheme_options,
                engine=self.machine.engine,
            )
        t = time.process_time()
        assert isinstance(self.driver, TraceDriver)  # a fast forward replays a trace
        runner = fast_forward(
            self.driver,
            machine,
            replayer,
            target,
            self.report_events,
            self._sample_footprints,
            stop_from,
            cancelled,
            progress,
            previous,
            planned,
        )
        pos = runner.position
        self.events_bulk += pos - base
        if pos - base >= sources.FAST_FORWARD_MIN:
            self._rate_bulk = 0.5 * self._rate_bulk + 0.5 * (time.process_time() - t) / (pos - base)
        return Spare(pos, machine, runner, 0, buffers)

    def _adopt(self, forward: Spare) -> None:
        """Make a fast forward's machine the session's."""
        self._install(forward.machine, forward.buffers)
        self.runner = forward.runner
        self.position = forward.position

    def _sample_footprints(self, machine: Machine, pos: int) -> None:
        """Each scheme's footprint after ``pos`` events of a fast forward; the positions since
        the last one known hold that one (see above)."""
        self._footprints.sample(pos, machine.schemes)

    # -------------------------------------------------------------------- idle work

    def idle_work(self) -> bool:
        """One piece of background work while the user looks (the UI calls it when idle, again
        while it returns True), most urgent first: free replaced machines; the standby's work
        (checkpoints.Standby.work: spares behind the position, the oldest one's state as a
        checkpoint, the ladder of dense checkpoints below them); the tables of the two
        checkpoints below the position unpickled (CheckpointStore.warm); a checkpoint every
        ``checkpoint_every`` events at the position (taken in pieces: given up if the position
        moves first). A piece is about ``IDLE_SECONDS`` of a checkpoint's restore or take, or
        of events replayed (checkpoints.Standby.work): a key pressed meanwhile waits for no
        more."""
        if self._graveyard:
            dispose(*self._graveyard.pop(0))  # one a piece: tens of ms each late on
            return True
        if self.standby.work(self.position):
            return True
        if self.checkpoints.warm(self.position):
            return True
        if self._idle_take is not None:
            take, generation = self._idle_take
            if generation != self.generation:  # the machine moved on: given up
                take.abandon()
                self._idle_take = None
            elif take.work(IDLE_SECONDS):
                self._idle_take = None
                if take.checkpoint is not None:
                    self._buffers = take.buffers
            return True
        if self.position - self.checkpoints.last_regular(self.position) >= self.checkpoint_every:
            started = self.checkpoints.take_in_pieces(
                self.position, self._state(), previous=self._buffers
            )
            if started is not None:
                self._idle_take = (started, self.generation)
            return True
        return False

    def standby_ready(self) -> bool:
        """Whether the next step back is a swap: a spare at ``position - 1`` is ready."""
        return self.position - 1 in self.standby.positions()

    def _take_spare(self, target: int) -> bool:
        """Make the spare nearest at or before ``target`` the session's machine and replay it
        to ``target``, when it is near enough to beat a restore; whether one was."""
        best = self.standby.take(target)
        if best is None:
            return False
        self._install(best.machine, best.buffers)
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
        return self.standby.machines()

    @property
    def spares_wanted(self) -> int:
        """How many spares idle work keeps ready behind the position."""
        return self.standby.wanted

    def drop_spares(self, keep: Sequence[int] = ()) -> None:
        """Dispose of the spares, but those at the positions ``keep``."""
        self.standby.drop(keep)

    @property
    def idle_job(self) -> tuple[int, bool, int] | None:
        """The idle work under way, if any: (target, whether it makes a spare, position)."""
        return self.standby.job

    def checkpoint_stats(self) -> dict:
        """The checkpoint store's figures (CheckpointStore.stats) and ``spares``."""
        return {**self.checkpoints.stats(), "spares": len(self.standby.positions())}

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
            raise WorkloadError(
                f"{self.event_text(index)}: {e or type(e).__name__}", self.path, ev.line
            ) from None
        self.position += 1
        self.events_stepped += 1
        if not record:
            self._changes.clear()
            return None
        self._footprints.record(self.position, self.machine.schemes)
        dirty, attach = self._changes.collect(index, self._footprints, self.position)
        if index not in self._records:
            self._records[index] = EventRecord(dirty, attach)
            if len(self._records) > self._records_max:
                self._records.popitem(last=False)
        if outcome.reports:
            self.report_events[index] = tuple(r.bug_type for r in outcome.reports)
        if attach:
            self.attach_events[index] = attach
        if self.position - self.checkpoints.last_regular(self.position) >= self._interval:
            self._take_checkpoint()
        return ev, outcome, dirty, attach

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
        dirty, attach = undone(self._records, target, previous)
        return StepResult(
            self.generation,
            self.position,
            previous,
            (),
            dirty,
            (),
            tuple(reversed(attach[-256:])),
            None,
            (),
            time.perf_counter() - t0,
        )

    def replay_cost(self, index: int) -> int:
        """How many events going to the state after ``index`` events replays (from the
        position, a spare or the nearest checkpoint): whether a UI can do it at once."""
        start = self.checkpoints.nearest_position(index)
        if self.position <= index:
            start = max(start, self.position)
        for spare in self.standby.positions():
            if spare <= index:
                start = max(start, spare)
        if self._fast_forward_pays(start, index, start != self.position):
            return int(self._fast_forward_base(index)[1] / self._rate_step)  # events stepped
        return index - start

    def jump(
        self,
        index: int,
        wait: bool = False,
        cancelled: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> StepResult:
        """Go to the state after ``index`` events (0 = just booted). Beyond the events read so
        far of a trace still loading: as far as they go, or with ``wait`` (in a worker thread:
        see ``run``) as the events come, to ``index`` or the end of the trace."""
        index = max(0, index if wait else min(index, len(self.events)))
        if index < self.position:
            return self.back(self.position - index)
        return self.run(
            until="limit",
            limit=index - self.position,
            cancelled=cancelled,
            progress=progress,
            wait=wait,
        )

    # -------------------------------------------------------------------- running

    def add_breakpoint(self, bp: Breakpoint) -> Breakpoint:
        """Add a breakpoint (a ``line`` breakpoint must name a line that has an event, or,
        while a trace is loading, a line after the last one read: see
        ``drop_unmatched_breakpoints``)."""
        if bp.kind not in Breakpoint.KINDS:
            raise KinspectError(
                f"unknown breakpoint kind {bp.kind!r} (known: {', '.join(Breakpoint.KINDS)})"
            )
        line = bp.value if bp.kind == "line" else None  # narrowed: a line breakpoint's line
        if line is not None and self.index_of_line(line) is None:
            read = self.events[-1].line if self.events else 0
            if not (self.driver.loading and line > read):
                raise KinspectError(f"no event on line {bp.value}", self.path)
        if bp.kind in ("line", "pfn", "addr") and (bp.value is None or bp.value < 0):
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

    def run(
        self,
        until: str = "report",
        limit: int | None = None,
        cancelled: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
        progress_every: int = 2000,
        wait: bool = False,
    ) -> StepResult:
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
        addrs = [b.value for b in bps if b.kind == "addr" and b.value is not None]
        on_attach = any(b.kind == "attach" for b in bps)
        ref = self._schemes[REFERENCE_SCHEME]
        acc = Accumulator()
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
        return acc.result(
            self.generation, self.position, previous, stopped, time.perf_counter() - t0
        )

    def _run_forward(
        self,
        until: str,
        end: int | None,
        lines: set,
        acc: Accumulator,
        cancelled,
        progress,
        previous: int,
        planned: int,
    ) -> None:
        """The bulk of a long run as a fast forward, when it pays (and no breakpoint needs
        each event looked at: line breakpoints are found in the events beforehand): up to
        FAST_FORWARD_TAIL (sources) events before where the run would stop, so that the run's
        last events are stepped the existing way (what the last one changed, exactly). A run to
        a report stops at the first event that reports: the fast forward is made again to a
        tail before it (reports are rare)."""
        goal = min(len(self.events), end if end is not None else len(self.events))
        target = goal - sources.FAST_FORWARD_TAIL
        if not self._fast_forward_pays(self.position, target, False):
            return
        if lines:
            start = self.position + 1
            wanted = np.fromiter(lines, np.int64, len(lines))
            batches = self.driver.event_batches(start, goal)
            assert batches is not None  # the fast forward pays: a trace read as EventBatches
            for batch in batches:
                hits = np.flatnonzero(np.isin(batch.line, wanted))
                if len(hits):
                    goal = start + int(hits[0])
                    break
                start += len(batch)
            target = goal - sources.FAST_FORWARD_TAIL
            if not self._fast_forward_pays(self.position, target, False):
                return
        forward = self._fast_forward(
            target, previous if until == "report" else None, cancelled, progress, previous, planned
        )
        if until == "report" and forward.runner.last_reports:
            reported = forward.position - 1
            dispose(forward.machine, forward.runner)
            target = reported - sources.FAST_FORWARD_TAIL
            if not self._fast_forward_pays(self.position, target, False):
                return
            forward = self._fast_forward(target)
        self._adopt(forward)
        self._take_checkpoint()
        acc.bulk(
            [
                r
                for r in self.machine.reports
                if r.event_index is not None and r.event_index >= previous
            ]
        )

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
        self._take_dense()  # the first step back: a restore, no replay
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
    blocks: tuple  # ShadowBlock(addr, pfn | None, vaddr | None) per slot


class SchemeView:
    """What the views need from one running scheme, kept per step generation.

    - ``attached``: sorted pfns whose shadow lives in storage of their own (a block, or the
      byte shadow of a mapped pshadow window), kept up to date from the attach/detach events;
    - ``own_shadow``: sorted pfns of this scheme's shadow pages (shadow slab pages, pshadow
      shadow pages), as opposed to those of the other schemes running in lockstep;
    - ``slab_heads()``, ``slabs(first, count)``: the shadow-block cache's slabs (those in a
      pfn range), blocks and the pfn each block serves: asked of the machine when shown.
    """

    def __init__(self, session: Session, name: str) -> None:
        self.session = session
        self.name = name
        self.kind = machine_view(session).shadow_storage(name)
        self.generation = -1
        self.attached: list[int] = []
        self.own_shadow: list[int] = []
        self._counters = None
        self.rebuild()

    # -- keeping up

    def rebuild(self) -> None:
        """Everything from the scheme's own views (after a jump back, or a scheme switch)."""
        s = self.session
        self.attached = []
        self.own_shadow = []
        if self.kind == "blocks":
            self.attached = machine_view(s).shadow_block_pfns(self.name)
            self.own_shadow = self._own_shadow_pages()
        elif self.kind == "windows":
            attached = []
            machine = machine_view(s)
            own = []
            for w in machine.shadow_windows(self.name):
                own.append(w.shadow_pfn)
                if w.pfn is not None:
                    attached += [
                        p
                        for p in range(w.pfn, w.pfn + WINDOW_PAGES)
                        if machine.has_own_shadow(self.name, p)
                    ]
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
            assert a.pfn is not None  # checked above
            pfns = range(a.pfn, a.pfn + a.count)
            if a.kind == "attach":
                attached.update(pfns)
            else:
                attached.difference_update(pfns)
        if mine:
            self.attached = sorted(attached)
        counters = self._current_counters()
        if counters != self._counters:
            self.own_shadow = self._own_shadow_pages()
            self._counters = counters
        self.generation = result.generation

    # -- reading

    def attached_in(self, first: int, count: int) -> list[int]:
        """Attached pfns in [first, first + count)."""
        a = self.attached
        return a[bisect_right(a, first - 1) : bisect_right(a, first + count - 1)]

    def own_shadow_in(self, first: int, count: int) -> list[int]:
        a = self.own_shadow
        return a[bisect_right(a, first - 1) : bisect_right(a, first + count - 1)]

    def is_attached(self, pfn: int) -> bool:
        return bool(self.attached_in(pfn, 1))

    def link(self, pfn: int) -> str | None:
        return machine_view(self.session).shadow_link(self.name, pfn)

    def slab_heads(self) -> list[int]:
        """Head pfns of the shadow-block cache's slabs, sorted (pageptr, pageext); []
        otherwise."""
        return machine_view(self.session).shadow_slab_heads(self.name)

    def slabs(self, first: int = 0, count: int | None = None) -> list[ShadowSlabInfo]:
        """The shadow-block cache's slabs whose head pfn is in [first, first + count) (all of
        them by default) in pfn order (pageptr, pageext); [] otherwise."""
        return [
            ShadowSlabInfo(*slab)
            for slab in machine_view(self.session).shadow_slabs(self.name, first, count)
        ]

    def block_of_pfn(self, pfn: int) -> int | None:
        """The address of the block serving ``pfn``, or None."""
        return machine_view(self.session).shadow_block_of_pfn(self.name, pfn)

    def shadow_slab_of_block(self, addr: int) -> ShadowSlabInfo | None:
        """The shadow slab whose slots hold ``addr`` (a block's address), or None."""
        machine = machine_view(self.session)
        pfn = machine.addr_to_pfn(addr)
        slab = machine.find_slab(pfn) if pfn is not None else None
        if slab is None:
            return None
        for found in self.slabs(slab.pfn, 1):
            if found.blocks and found.blocks[0].addr <= addr <= found.blocks[-1].addr:
                return found
        return None
