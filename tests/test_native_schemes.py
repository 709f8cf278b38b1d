"""The shadow schemes in lockstep, compiled (kinspect/engine/_schemes.pyx), against the Python
schemes, the reference (issue 12).

A slice of each real trace (events FIRST to FIRST + SLICE, past the boot's allocations, where
frees and checks are as frequent as allocations) is replayed with every scheme in lockstep on
both engines; every SLICE // 4 events the two machines must have the same fingerprint
(kinspect/engine/fingerprint.py: struct pages, the reference's shadow, summary...) and, for
every scheme, the same footprint (checks and loads included), the same shadow bytes over every
range allocated so far, and the same storage (each per-page scheme's storage(): pageptr's
blocks and allocations by pfn, pshadow's per-page and in-use bytes and shadow pages). A
native machine pickled mid-slice and unpickled replays the rest of the slice as the machine
it was copied from does. A per-page scheme's state late in the slice pickles as a few arrays.
Every sample workload gives the same `kinspect compare --schemes all` output on both
engines.
"""

from __future__ import annotations

import io
import pickle
from itertools import chain, islice

import pytest

from conftest import ROOT, native_missing
from kinspect.cli import main
from kinspect.engine import native
from kinspect.engine.fingerprint import Fingerprinter
from kinspect.engine.ftrace import TraceReader
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.ranges import merge_ranges
from kinspect.engine.replay import TraceReplayer
from kinspect.engine.shadow import SCHEMES
from kinspect.engine.workload import gc_paused

pytestmark = pytest.mark.skipif(native_missing() is not None, reason=str(native_missing()))

ALL = ["flat"] + [s for s in SCHEMES if s != "flat"]
FIRST = 100_000
SLICE = 40_000  # events of each trace (about 2 s of CPU for both engines)
WORKLOADS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in chain(
        (ROOT / "samples" / "workloads").glob("*.kw"),
        (ROOT / "samples" / "workloads" / "kasan_test").glob("*.kw"),
    )
)
CASES = [
    ("kmem-trace-x86_64.txt.xz", "x86_64", "byte-granular"),
    ("kmem-trace-arm32.txt.xz", "arm32", "always"),
]


def _events(path: str, n: int) -> list:
    """Events FIRST to FIRST + n of a trace (read by the native reader, tested elsewhere)."""
    return list(islice(chain.from_iterable(TraceReader(path).batches()), FIRST, FIRST + n))


def _schemes_state(machine, ranges) -> dict:
    """Every scheme's footprint, shadow over ranges, and storage, as plain values."""
    state = {}
    for s in machine.schemes:
        state[s.name, "footprint"] = s.footprint().as_dict()
        state[s.name, "shadow"] = b"".join(s.read(a, n) for a, n in ranges)
        if s.name in ("pshadow", "pageptr", "pageext"):
            state[s.name, "storage"] = (s.storage(), s.shadow_link(0x1000))
    return state


class Side:
    def __init__(self, profile: str, attach: str, engine: str, path: str) -> None:
        self.machine = Machine(
            load_profile(profile, 256 << 20),
            schemes=ALL,
            scheme_options={"attach": attach},
            engine=engine,
        )
        self.replayer = TraceReplayer(self.machine, path)
        self.fingerprinter = Fingerprinter(self.machine)

    def replay(self, events: list) -> None:
        with gc_paused():
            self.replayer.replay(events)

    def state(self, ranges) -> tuple[dict, dict]:
        return self.fingerprinter.take(), _schemes_state(self.machine, ranges)


def _compare(sides: list[Side], done: int) -> None:
    ranges = merge_ranges(tuple(sides[0].fingerprinter.allocated_ranges()))
    (print_a, schemes_a), (print_b, schemes_b) = (side.state(ranges) for side in sides)
    parts = [part for part in print_a if print_a[part] != print_b[part]]
    assert not parts, f"after {done} events: {parts}"
    differing = [key for key in schemes_a if schemes_a[key] != schemes_b[key]]
    assert not differing, f"after {done} events: {differing}"


@pytest.mark.parametrize("trace,profile,attach", CASES)
def test_a_trace_slice_replays_alike_under_every_scheme(trace, profile, attach):
    path = str(ROOT / "samples" / "traces" / trace)
    events = _events(path, SLICE)
    sides = [Side(profile, attach, engine, path) for engine in ("python", "native")]
    assert sides[1].machine.shadow.compiled is not None  # the compiled lockstep runs
    assert sides[0].machine.shadow.compiled is None
    step = SLICE // 4
    for done in range(0, SLICE, step):
        for side in sides:
            side.replay(events[done : done + step])
        _compare(sides, done + step)
    assert sides[0].machine.schemes[1].footprint().checks > 10_000  # reads were compared


def test_a_pickled_native_lockstep_replays_on_as_its_original():
    trace, profile, attach = CASES[0]
    path = str(ROOT / "samples" / "traces" / trace)
    events = _events(path, SLICE // 2)
    original = Side(profile, attach, "native", path)
    original.replay(events[: SLICE // 4])
    copy = pickle.loads(pickle.dumps(original))
    assert copy.machine.shadow.compiled is not None
    assert copy.machine.shadow.compiled is not original.machine.shadow.compiled
    for side in (original, copy):
        side.replay(events[SLICE // 4 :])
    _compare([original, copy], SLICE // 2)


def _kinspect_compare(capsys, monkeypatch, engine: str, workload: str) -> tuple[int, str, str]:
    monkeypatch.setenv(native.VARIABLE, engine)
    status = main(["compare", workload, "--schemes", "all", "--format", "json"])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_sample_workload_compares_alike(workload, capsys, monkeypatch):
    """`kinspect compare --schemes all` prints the same figures (every scheme's footprint,
    checks and loads) and verdicts on both engines."""
    monkeypatch.chdir(ROOT)
    reference, ours = (
        _kinspect_compare(capsys, monkeypatch, engine, workload) for engine in ("python", "native")
    )
    assert ours == reference
    assert reference[1] or reference[2]  # something was compared: output or an error


class _SchemeStatePickler(pickle.Pickler):
    """Pickles a scheme's own state: what belongs to the machine (the machine, its profile,
    its allocations, the shadow-block cache, their bound methods) is left out, by reference."""

    def __init__(self, machine, scheme) -> None:
        super().__init__(io.BytesIO())
        self.outside = {
            id(o)
            for o in (machine, machine.profile, machine.pages, getattr(scheme, "_cache", None))
            if o is not None
        }

    def persistent_id(self, obj):
        if id(obj) in self.outside or id(getattr(obj, "__self__", obj)) in self.outside:
            return "machine"
        return None


OBJECTS_BOUND = 100


@pytest.mark.parametrize("engine", ["python", "native"])
def test_a_per_page_scheme_pickles_as_a_few_arrays(engine):
    """Late in a trace, the state of pshadow and pageptr is a handful of arrays and scalars:
    the pickle of each memoizes at most OBJECTS_BOUND objects (its attribute names, its arrays,
    a few small containers), however many blocks and shadow pages it holds (thousands here;
    one bytearray each, and a tuple and table entries, before issue 12)."""
    trace, profile, attach = CASES[0]
    path = str(ROOT / "samples" / "traces" / trace)
    side = Side(profile, attach, engine, path)
    side.replay(_events(path, SLICE // 2))
    held = 0
    for s in side.machine.schemes:
        if s.name not in ("pshadow", "pageptr"):
            continue
        fp = s.footprint()
        held += fp.blocks_in_use + fp.shadow_pages_mapped
        pickler = _SchemeStatePickler(side.machine, s)
        pickler.dump(s.__getstate__())
        objects = len(pickler.memo.copy())
        assert objects <= OBJECTS_BOUND, (s.name, objects)
    assert held > 1_000
