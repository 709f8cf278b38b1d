"""The two engines side by side (issue 12): the native engine must leave the machine in the
state the Python engine, the reference, leaves it in.

- Both real traces (samples/traces, on their own profiles), whole, replayed on a machine per
  engine, each engine reading the file with its own scanner: the events read are the same,
  the state fingerprints (kinspect/engine/fingerprint.py) are equal every EVERY events and at
  the end, every report is the same text, and the trace's and the replay's statistics are
  equal.
- Every sample workload (samples/workloads/*.kw, samples/workloads/kasan_test/*.kw): `kinspect
  run` prints the same bytes and exits alike on both engines.

A divergence names the first event at which the engines differ, as FILE:LINE, and the parts of
the fingerprint that differ there.
"""

from __future__ import annotations

import pickle
from itertools import chain, islice

import pytest

from conftest import ROOT, native_missing
from kinspect.cli import main
from kinspect.engine import native
from kinspect.engine.fingerprint import Fingerprinter, fingerprint
from kinspect.engine.ftrace import KMALLOC, TraceReader
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.replay import TraceReplayer, trace_summary
from kinspect.engine.report import format_report
from kinspect.engine.workload import WorkloadRunner, gc_paused, parse_workload

both_engines = pytest.mark.skipif(native_missing() is not None, reason=str(native_missing()))

ENGINES = ("python", "native")
EVERY = 25_000  # events between two fingerprints of a trace replay (both whole traces
# in about 25 s of CPU, both engines, on a quiet machine)
TRACES = [("kmem-trace-x86_64.txt.xz", "x86_64"), ("kmem-trace-arm32.txt.xz", "arm32")]
WORKLOADS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in chain(
        (ROOT / "samples" / "workloads").glob("*.kw"),
        (ROOT / "samples" / "workloads" / "kasan_test").glob("*.kw"),
    )
)


def _differing(a: dict, b: dict) -> list[str]:
    return [part for part in a if a[part] != b[part]]


class TraceSide:
    """One engine's replay of a trace: its own reader, machine, replayer and fingerprints."""

    def __init__(self, path: str, profile: str, engine: str) -> None:
        self.machine = Machine(load_profile(profile), engine=engine)
        self.reader = TraceReader(path, engine=engine)
        self.replayer = TraceReplayer(self.machine, path)
        self.fingerprinter = Fingerprinter(self.machine)
        self._events = chain.from_iterable(self.reader.batches())

    def read(self, n: int) -> list:
        return list(islice(self._events, n))

    def replay(self, events: list) -> None:
        with gc_paused():
            self.replayer.replay(events)

    def state(self) -> bytes:
        """The replay so far, pickled (a machine pickles: checkpoints are made so)."""
        return pickle.dumps((self.replayer, self.fingerprinter))


def _first_divergence(path: str, profile: str, before: int, events: list, parts: list[str]) -> str:
    """FILE:LINE of the first of ``events`` (which follow the first ``before`` events of the
    trace, and after which the fingerprints' ``parts`` differ) after which the engines'
    fingerprints differ, and the parts that differ there: both replays are redone up to
    ``before``, then the events bisected from that state."""
    sides = [TraceSide(path, profile, engine) for engine in ENGINES]
    for side in sides:
        side.replay(side.read(before))
    saved = [side.state() for side in sides]
    good, bad = 0, len(events)  # equal after `good` of the events, unequal after `bad`
    while bad - good > 1:
        middle = (good + bad) // 2
        prints = []
        for state in saved:
            replayer, fingerprinter = pickle.loads(state)
            with gc_paused():
                replayer.replay(events[:middle])
            prints.append(fingerprinter.take())
        differing = _differing(*prints)
        if differing:
            bad, parts = middle, differing
        else:
            good = middle
    return f"{path}:{events[bad - 1].line}: the engines differ after this event ({parts})"


@both_engines
@pytest.mark.parametrize("trace,profile", TRACES)
def test_the_real_traces_replay_alike(trace, profile):
    path = str(ROOT / "samples" / "traces" / trace)
    sides = [TraceSide(path, profile, engine) for engine in ENGINES]
    done = 0
    while True:
        chunks = [side.read(EVERY) for side in sides]
        assert chunks[0] == chunks[1], f"{path}: the engines' readers differ after event {done}"
        if not chunks[0]:
            break
        for side, chunk in zip(sides, chunks):
            side.replay(chunk)
        prints = [side.fingerprinter.take() for side in sides]
        if prints[0] != prints[1]:
            pytest.fail(_first_divergence(path, profile, done, chunks[0], _differing(*prints)))
        done += len(chunks[0])
    reference, ours = sides
    assert done == reference.replayer.events == ours.replayer.events > 100_000
    assert [format_report(r) for r in ours.machine.reports] == [
        format_report(r) for r in reference.machine.reports
    ]
    assert ours.machine.summary() == reference.machine.summary()
    assert ours.replayer.stats == reference.replayer.stats
    assert trace_summary(ours.reader.stats, ours.replayer.stats) == trace_summary(
        reference.reader.stats, reference.replayer.stats
    )


def _kinspect_run(capsys, monkeypatch, engine: str, workload: str) -> tuple[int, str, str]:
    monkeypatch.setenv(native.VARIABLE, engine)
    assert native.engine() == engine
    status = main(["run", workload])
    out, err = capsys.readouterr()
    return status, out, err


def _fingerprints_after_each_event(workload: str, engine: str) -> list:
    """(line, fingerprint) after every event of a workload run on one engine."""
    machine = Machine(load_profile("x86_64"), engine=engine)
    fingerprinter = Fingerprinter(machine)
    prints: list = []
    WorkloadRunner(machine, parse_workload(workload)).run(
        after_event=lambda ev: prints.append((ev.line, fingerprinter.take()))
    )
    return prints


def _first_workload_divergence(workload: str) -> str:
    """FILE:LINE of the first event of a workload after which the engines' fingerprints
    differ, and the parts that differ (a fingerprint after every event)."""
    runs = [_fingerprints_after_each_event(workload, engine) for engine in ENGINES]
    for (line, ours), (_, reference) in zip(*runs):
        if ours != reference:
            return (
                f"{workload}:{line}: the engines differ after this event "
                f"({_differing(ours, reference)})"
            )
    return f"{workload}: the same state after every event, yet a different output"


@both_engines
@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_sample_workload_runs_alike(workload, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    reference, ours = (_kinspect_run(capsys, monkeypatch, engine, workload) for engine in ENGINES)
    assert ours == reference, _first_workload_divergence(workload)
    assert reference[1] or reference[2]  # something was compared: output or an error


def test_a_freed_range_stays_in_the_fingerprint(engine):
    """A page block freed since an earlier fingerprint is still compared: its shadow must
    now say free (a fingerprint taken only now would not look at it)."""
    machines = [Machine(load_profile("x86_64", 64 << 20), engine=engine) for _ in range(2)]
    fingerprinters = [Fingerprinter(m) for m in machines]
    for m, fingerprinter in zip(machines, fingerprinters):
        addr = m.alloc_pages_addr(1)
        fingerprinter.take()
        m.free_pages_addr(addr, 1)
    machines[1].schemes[0].poison(addr + 4096, 8, 0)  # the second machine forgot a granule
    assert fingerprint(machines[0]) == fingerprint(machines[1])
    assert _differing(*(f.take() for f in fingerprinters)) == ["shadow"]


@both_engines
def test_a_trace_divergence_names_its_first_event(monkeypatch):
    """The bisection finds the event at which the engines part: here a native replayer that
    drops one kmalloc of the arm32 trace."""
    path = str(ROOT / "samples" / "traces" / "kmem-trace-arm32.txt.xz")
    events = TraceSide(path, "arm32", "python").read(3000)
    dropped = next(ev for ev in events[2000:] if ev.kind == KMALLOC and ev.ptr)
    replay = TraceReplayer.replay

    def replay_but_one(self, events, progress=None, after_event=None):
        if self.machine.engine == "native":
            events = [ev for ev in events if ev.line != dropped.line]
        return replay(self, events, progress, after_event)

    monkeypatch.setattr(TraceReplayer, "replay", replay_but_one)
    where = _first_divergence(path, "arm32", 1000, events[1000:], ["every part"])
    assert where.startswith(f"{path}:{dropped.line}: the engines differ after this event ("), where
    assert "'slab objects'" in where


@both_engines
def test_a_workload_divergence_names_its_first_event(monkeypatch, root):
    """The same for a workload: a native machine whose first kfree (of a large kmalloc, in
    the demo) does nothing."""
    demo = str(root / "samples" / "workloads" / "demo.kw")
    first_kfree = next(ev for ev in parse_workload(demo).events if ev.op == "kfree")
    bind = Machine._bind_slab_entry_points  # (a native Machine's kfree is compiled)
    skipped = []

    def bind_a_kfree_that_skips_the_first(self):
        bind(self)
        if self.engine == "native":
            kfree = self.kfree

            def kfree_but_the_first(addr):
                if not skipped:
                    skipped.append(addr)
                    return
                kfree(addr)

            self.kfree = kfree_but_the_first

    monkeypatch.setattr(Machine, "_bind_slab_entry_points", bind_a_kfree_that_skips_the_first)
    where = _first_workload_divergence(demo)
    assert where.startswith(f"{demo}:{first_kfree.line}: the engines differ after this event ("), (
        where
    )
    assert "'shadow'" in where  # the object stays allocated on one
