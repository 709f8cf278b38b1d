"""What each event changed, and each scheme's bill after each event: the session's records.

What a step changed comes from two observers of the session's machine: the memmap's journal of
struct page writes (``MemMap.written``), and ``RecordingShadow``, which the machine's shadow is
wrapped in (``observe``). ``Changes.collect`` turns them, after each event, into the pfn ranges
whose struct page or shadow changed and the shadow storage attached or detached
(``AttachEvent``); ``Accumulator`` folds those of many events into one ``StepResult``.
``FootprintHistory`` keeps each running scheme's memory bill after every event (the footprint
view's history).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..engine.machine import Machine
from ..engine.ranges import merge_ranges
from ..engine.report import BadAccess
from ..engine.shadow.base import Footprint, PageUse, ShadowScheme
from ..engine.workload import Event

REFERENCE_SCHEME = "flat"
# A shadow page covers 8 pages (KASAN_SHADOW_SCALE_SHIFT): the window whose shadow links can
# change together when a per-page scheme maps a shadow page.
WINDOW_PAGES = 8
MAX_DIRTY_RANGES = 4096  # beyond this a result says "everything" (dirty None)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AttachEvent:
    """Shadow storage given to pages (``attach``) or taken from them (``detach``) by a scheme:
    a pageptr/pageext shadow block (``page->shadow``), or a pshadow shadow page."""

    scheme: str
    kind: str  # "attach" or "detach"
    pfn: int | None  # first pfn; None when the scheme's bill changed but no page's
    count: int  # pages        link did (e.g. shadow of vmalloc space)
    link: str | None  # the link after an attach, before a detach
    event_index: int = -1

    def describe(self) -> str:
        if self.pfn is None:
            return f"{self.scheme}: {self.kind} ({self.count:+d} blocks/pages)"
        pages = f"pfn {self.pfn:#x}" + (f"+{self.count}" if self.count > 1 else "")
        return f"{self.scheme}: {self.kind} {pages}" + (f" ({self.link})" if self.link else "")

    def inverse(self) -> AttachEvent:
        return AttachEvent(
            self.scheme,
            "detach" if self.kind == "attach" else "attach",
            self.pfn,
            self.count,
            self.link,
            self.event_index,
        )


@dataclass(frozen=True)
class StepResult:
    """What a Session command changed."""

    generation: int
    position: int  # events applied now
    previous: int  # events applied before the command
    events: tuple[Event, ...] = ()  # events applied (forward; the last few of a run)
    dirty: tuple[tuple[int, int], ...] | None = ()  # (first pfn, count); None = everything
    reports: tuple[BadAccess, ...] = ()  # new reports made by the applied events
    attach: tuple[AttachEvent, ...] = ()  # attach/detach (undone ones inverted when going back)
    stopped: str | None = None  # why a run stopped: "report", "breakpoint ...", "end",
    # "cancelled", "limit"
    expect_failures: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def moved(self) -> bool:
        return self.position != self.previous


# ------------------------------------------------------------------ observing the machine


class RecordingShadow(ShadowScheme):
    """Wraps the machine's shadow (one scheme, or several in lockstep): notes the addresses of
    shadow writes and the page ranges of attach points, and which of those pages had shadow
    of their own (and its link) before they change."""

    name = "recording"

    def __init__(self, inner: ShadowScheme, schemes: list[ShadowScheme]) -> None:
        self.inner = inner
        self.writes: list[tuple[int, int]] = []  # (addr, bytes of memory)
        self.pages: list[tuple[int, int]] = []  # (pfn, count) at page_alloc/page_free
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


def dispose(machine: Machine | None, runner=None) -> None:
    """Break the reference cycles of a machine no one uses any more (its schemes point back at
    it, slabs and caches at each other, a WorkloadRunner at its own bound methods), so that
    reference counting frees it at once instead of the cyclic collector, later; a trace
    runner's replayer and its compiled twin refer to each other too."""
    if runner is not None:
        replayer = getattr(runner, "replayer", None)
        if replayer is not None:
            vars(replayer).clear()
        vars(runner).clear()
    if machine is None or not vars(machine):
        return
    machine.slub.dispose()
    shadow = machine.shadow
    for scheme in machine.schemes:
        vars(scheme).clear()
    if isinstance(shadow, RecordingShadow):
        vars(shadow.inner).clear()
        vars(shadow).clear()
    vars(machine).clear()


def forget_changes(machine: Machine) -> None:
    """Empty the observers of a machine that is not the session's (a spare being replayed)."""
    shadow = machine.shadow
    if isinstance(shadow, RecordingShadow):
        shadow.clear()
    if machine.memmap.written is not None:
        machine.memmap.written.clear()


# ------------------------------------------------------------------- what changed


@dataclass
class EventRecord:
    """What one event did, kept so that going back can name what it undoes."""

    dirty: tuple[tuple[int, int], ...]
    attach: tuple[AttachEvent, ...]


class Changes:
    """The observers of one machine (``observe``): what the last event changed."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        assert isinstance(machine.shadow, RecordingShadow)  # observe() wrapped it
        self.rec: RecordingShadow = machine.shadow
        assert machine.memmap.written is not None  # observe() journals the memmap
        self.written: list[tuple[int, int]] = machine.memmap.written
        self.schemes = {s.name: s for s in machine.schemes}

    def clear(self) -> None:
        """Forget what the events since the last ``collect`` changed."""
        self.rec.clear()
        self.written.clear()

    def collect(
        self, index: int, footprints: FootprintHistory, position: int
    ) -> tuple[tuple[tuple[int, int], ...], tuple[AttachEvent, ...]]:
        """The pfn ranges event ``index`` (the last one applied, ``position`` events now)
        changed, and its attach/detach events."""
        rec = self.rec
        ranges = list(self.written)
        ranges += rec.pages
        pshift = self.machine.page_shift
        for addr, size in rec.writes:
            ranges += self._pfns_of_range(addr, size, pshift)
        attach = self._attach_events(index) if rec.links_before else []
        seen = {a.scheme for a in attach}
        attach += self._counter_events(index, seen, footprints, position)
        self.clear()
        dirty = merge_ranges(ranges)
        if len(dirty) > MAX_DIRTY_RANGES:
            dirty = ((dirty[0][0], dirty[-1][0] + dirty[-1][1] - dirty[0][0]),)
        return dirty, tuple(attach)

    def _pfns_of_range(self, addr: int, size: int, pshift: int) -> list[tuple[int, int]]:
        m = self.machine
        p = m.profile
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
        before = self.rec.links_before
        changed: dict[str, list[tuple[int, str, str | None]]] = {}
        for (name, pfn), old in before.items():
            scheme = self.schemes[name]
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

    def _counter_events(
        self, index: int, seen: set[str], footprints: FootprintHistory, pos: int
    ) -> list[AttachEvent]:
        """Attach/detach that changed a scheme's bill but no page link we watched."""
        out = []
        for s in self.rec.watched:
            if s.name in seen:
                continue
            now, prev = footprints.counters(s.name, pos), footprints.counters(s.name, pos - 1)
            delta = int(now[0] - prev[0] + now[1] - prev[1])
            if delta:
                out.append(
                    AttachEvent(
                        s.name, "attach" if delta > 0 else "detach", None, delta, None, index
                    )
                )
        return out


def observe(machine: Machine) -> Changes:
    """Put the observers in place on ``machine`` (its shadow wrapped in a RecordingShadow, its
    memmap journalling), once; what they see."""
    if not isinstance(machine.shadow, RecordingShadow):
        machine.shadow = RecordingShadow(machine.shadow, machine.schemes)
        machine._bind_shadow()  # the machine's own bound write and read of it
    if machine.memmap.written is None:
        machine.memmap.written = []
    return Changes(machine)


def unobserve(machine: Machine) -> None:
    """Take the observers off ``machine`` (a fast forward replays it compiled, unobserved;
    ``observe`` puts them back when it becomes the session's)."""
    if isinstance(machine.shadow, RecordingShadow):
        machine.shadow = machine.shadow.inner
        machine._bind_shadow()
    machine.memmap.written = None


class Accumulator:
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

    def result(
        self, generation: int, position: int, previous: int, stopped: str | None, seconds: float
    ) -> StepResult:
        dirty = None if self.dirty_all else merge_ranges(self.ranges)
        if dirty is not None and len(dirty) > MAX_DIRTY_RANGES:
            dirty = None
        return StepResult(
            generation,
            position,
            previous,
            tuple(self.events[-64:]),
            dirty,
            tuple(self.reports),
            tuple(self.attach),
            stopped,
            tuple(self.failures),
            seconds,
        )


def undone(
    records: dict[int, EventRecord], target: int, previous: int
) -> tuple[tuple[tuple[int, int], ...] | None, list[AttachEvent]]:
    """What going back from ``previous`` events to ``target`` undoes: the pfn ranges (None when
    an event's record is missing: everything) and the attach/detach events, inverted."""
    ranges: list[tuple[int, int]] = []
    attach: list[AttachEvent] = []
    for index in range(target, previous):
        rec = records.get(index)
        if rec is None:
            return None, attach
        ranges += rec.dirty
        attach += [a.inverse() for a in rec.attach]
    dirty = merge_ranges(ranges)
    return (None if len(dirty) > MAX_DIRTY_RANGES else dirty), attach


# ------------------------------------------------------------------------ footprints


class FootprintHistory:
    """Each running scheme's memory bill after each of the events 0..known - 1 (index 0: after
    boot): per scheme, per event, the total (int64) and three counters (int32: blocks in use,
    shadow pages mapped, shadow slab pages). ``room(pos)`` says how many events to make room
    for when ``pos`` does not fit (every event read, or twice as many while a trace loads)."""

    def __init__(self, names: Sequence[str], room: Callable[[int], int]) -> None:
        self.names = list(names)
        self._room = room
        n = room(0)
        self.known = 0
        self._total = {s: np.zeros(n, dtype=np.int64) for s in self.names}
        self._counters = {s: np.zeros((n, 3), dtype=np.int32) for s in self.names}

    def totals(self, scheme: str, position: int) -> np.ndarray:
        """The totals after each of the events 0..position."""
        return self._total[scheme][: position + 1]

    def counters(self, scheme: str, position: int) -> np.ndarray:
        return self._counters[scheme][position]

    def record(self, position: int, schemes: Sequence[ShadowScheme]) -> None:
        """The schemes' bills after ``position`` events (already known: nothing to do)."""
        if position < self.known:
            return
        self._fit(position)
        for s in schemes:
            self._put(s, position)
        self.known = position + 1

    def sample(self, position: int, schemes: Sequence[ShadowScheme]) -> None:
        """The bills after ``position`` events of a fast forward; the positions since the last
        one known hold that one."""
        known = self.known
        if position < known:
            return
        self._fit(position)
        for s in schemes:
            total, counters = self._total[s.name], self._counters[s.name]
            total[known:position] = total[known - 1]
            counters[known:position] = counters[known - 1]
            self._put(s, position)
        self.known = position + 1

    def _put(self, s: ShadowScheme, position: int) -> None:
        fp = s.footprint()
        self._total[s.name][position] = fp.total_bytes()
        self._counters[s.name][position] = (
            fp.blocks_in_use,
            fp.shadow_pages_mapped,
            fp.shadow_slab_pages,
        )

    def _fit(self, position: int) -> None:
        if position < len(self._total[self.names[0]]):
            return
        n = max(position + 1, self._room(position))
        known = self.known
        for name in self.names:
            total = np.zeros(n, dtype=np.int64)
            counters = np.zeros((n, 3), dtype=np.int32)
            total[:known] = self._total[name][:known]
            counters[:known] = self._counters[name][:known]
            self._total[name], self._counters[name] = total, counters
