"""The compiled slab allocator (_slab.pyx) against slab.SlubAllocator, the reference: two
machines, one per engine, run the same calls (kmalloc, kfree, kmem_cache_create/alloc/free/
destroy, double and invalid frees, RCU caches, the quarantine overflowing on a small machine)
and must answer alike, call by call: every address, the shadow of every object touched, KASAN's
object metadata, the reports' text, the slabs' and pages' states; with a checkpoint (pickle
round trip) on the way. Then the shipped workloads, run whole on both engines."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kinspect.cli import main
from kinspect.engine import native
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.report import format_report
from kinspect.engine.slab import SLAB_TYPESAFE_BY_RCU, SlubAllocator

pytestmark = pytest.mark.skipif(
    native.compiled("_slab") is None, reason="the native engine is not built"
)

ROOT = Path(__file__).resolve().parent.parent
SMALL = 48 << 20  # a machine whose quarantine (RAM/32 - 1 MiB a CPU) overflows at once


@pytest.fixture(scope="module")
def small():
    return load_profile("x86_64", SMALL)


@functools.cache
def _profile(name: str):
    return load_profile(name, SMALL)


def _machines(profile, schemes=("flat",)):
    machines = (
        Machine(profile, schemes=schemes, engine="python"),
        Machine(profile, schemes=schemes, engine="native"),
    )
    assert type(machines[0].slub) is SlubAllocator
    assert type(machines[1].slub) is native.compiled("_slab").SlubAllocator
    return machines


def _object_state(m: Machine, addr: int):
    """What the machine says of the slab object at addr: its slab, shadow and metadata."""
    slab = m.find_slab(addr)
    if slab is None:
        return None, m.shadow.read(addr & ~7, 64)
    obj = slab.cache.nearest_obj(slab, addr)
    return (
        (slab.cache.id, slab.pfn, slab.base, slab.objects, slab.inuse, slab.frozen),
        m.shadow.read(obj, (slab.cache.object_size + 7) & ~7),
        m.object_meta(obj),
    )


def _state(m: Machine, touched):
    return (
        [_object_state(m, a) for a in sorted(touched)],
        [format_report(r) for r in m.reports],
        m.summary(),
        dict(m.pages),
        [(m.slub.slab_heads(c), m.slub.nr_slabs(c), m.slub.objects_in_use(c)) for c in m.caches],
        [m.dump_page(pfn) for pfn in sorted(m.pages)[-3:]],
        [(s.checks, s.loads) for s in m.schemes],
    )


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("kmalloc"), st.sampled_from([0, 1, 8, 13, 64, 100, 192, 700, 4096, 8192, 9000])
        ),
        st.tuples(st.just("kfree"), st.integers(0, 1000)),
        st.tuples(st.just("kfree_zero_or_null"), st.sampled_from([0, 16])),
        st.tuples(st.just("cache_free_invalid"), st.integers(0, 1000), st.integers(1, 200)),
        st.tuples(st.just("double_free"), st.integers(0, 1000)),
        st.tuples(st.just("invalid_free"), st.integers(0, 1000), st.integers(1, 200)),
        st.tuples(st.just("cache_create"), st.integers(1, 3000), st.booleans()),
        st.tuples(st.just("cache_alloc"), st.integers(0, 1000)),
        st.tuples(st.just("cache_free"), st.integers(0, 1000)),
        st.tuples(st.just("cache_destroy"), st.integers(0, 1000)),
        st.tuples(st.just("call_rcu"), st.integers(0, 1000)),
        st.tuples(st.just("rcu_barrier")),
        st.tuples(st.just("krealloc"), st.integers(0, 1000), st.integers(1, 9000)),
        st.tuples(st.just("ksize"), st.integers(0, 1000)),
        st.tuples(st.just("task"), st.integers(1, 5)),
        st.tuples(st.just("checkpoint")),
    ),
    max_size=120,
)


def _step(m: Machine, op, live: list[int], caches: list, objects: list) -> object:
    """One call on one machine; its answer (addresses, sizes), the same on both engines."""
    kind = op[0]
    if kind == "kmalloc":
        p = m.kmalloc(op[1])
        if p > 16:
            live.append(p)
        return p
    if kind in ("kfree", "double_free") and live:
        p = live[op[1] % len(live)]
        if kind == "kfree":
            live.remove(p)
        m.kfree(p)
        return p
    if kind == "invalid_free" and live:
        m.kfree(live[op[1] % len(live)] + op[2])
        return None
    if kind == "kfree_zero_or_null":  # ZERO_OR_NULL_PTR: nothing to free
        m.kfree(op[1])
        return None
    if kind == "cache_free_invalid" and objects:
        cache, p = objects[op[1] % len(objects)]
        m.kmem_cache_free(cache, p + op[2])
        return None
    if kind == "cache_create":
        flags = SLAB_TYPESAFE_BY_RCU if op[2] else 0
        cache = m.kmem_cache_create(f"test-{len(caches)}", op[1], 0, flags, False)
        if cache is not None:
            caches.append(cache)
        return None if cache is None else (cache.id, cache.addr)
    if kind == "cache_alloc" and caches:
        cache = caches[op[1] % len(caches)]
        p = m.kmem_cache_alloc(cache) if not cache.destroyed else 0
        if p:
            objects.append((cache, p))
        return p
    if kind == "cache_free" and objects:
        cache, p = objects.pop(op[1] % len(objects))
        m.kmem_cache_free(cache, p)
        return p
    if kind == "cache_destroy" and caches:
        cache = caches[op[1] % len(caches)]
        m.kmem_cache_destroy(cache)
        return cache.destroyed
    if kind == "call_rcu" and (live or objects):
        pool = live + [p for _, p in objects]
        p = pool[op[1] % len(pool)]
        m.call_rcu(p + 1)
        return p
    if kind == "rcu_barrier":
        m.rcu_barrier()
        return None
    if kind == "krealloc" and live:
        i = op[1] % len(live)
        q = m.krealloc(live[i], op[2])
        if q:
            live[i] = q
        return q
    if kind == "ksize" and live:
        return m.ksize(live[op[1] % len(live)])
    if kind == "task":
        m.set_task(f"task{op[1]}", op[1])
        return None
    return None


def _run_both(machines, ops):
    reference, compiled = machines
    books = [([], [], []), ([], [], [])]  # live kmallocs, caches, cache objects
    touched: set[int] = set()
    for n, op in enumerate(ops):
        if op[0] == "checkpoint":
            reference = pickle.loads(pickle.dumps(reference))
            compiled = pickle.loads(pickle.dumps(compiled))
            books = [
                (
                    list(live),
                    [reference.caches[c.id] for c in caches]
                    if i == 0
                    else [compiled.caches[c.id] for c in caches],
                    [((reference if i == 0 else compiled).caches[c.id], p) for c, p in objects],
                )
                for i, (live, caches, objects) in enumerate(books)
            ]
            continue
        answers = [_step(m, op, *book) for m, book in zip((reference, compiled), books)]
        assert answers[0] == answers[1], (n, op)
        if isinstance(answers[0], int) and answers[0] > 16:
            touched.add(answers[0])
        touched.update(books[0][0])
        assert _state(reference, touched) == _state(compiled, touched), (n, op)
    return reference, compiled


@pytest.mark.parametrize("name", ["x86_64", "arm32", "arm64-64k-42"])
@settings(max_examples=40, deadline=None)
@given(ops=OPS)
def test_the_compiled_allocator_is_the_reference(name, ops):
    """The flat shadow: the compiled hooks write its chunks in place (64-bit and 32-bit
    addresses, 4K and 64K pages)."""
    _run_both(_machines(_profile(name)), ops)


@settings(max_examples=15, deadline=None)
@given(ops=OPS)
def test_the_compiled_allocator_is_the_reference_under_every_scheme(small, ops):
    """Every scheme in lockstep: the compiled hooks go through the shadow's write(), and the
    per-page schemes' shadow blocks come from the allocator's own shadow caches."""
    _run_both(_machines(small, ("flat", "pageptr", "pageext", "pshadow")), ops)


def test_quarantine_overflow_frees_in_the_same_order(small):
    """Enough 8 KiB frees to fill several quarantine batches: the oldest go back first, and
    the next allocations reuse the same slots on both engines."""
    machines = _machines(small)
    for m in machines:
        ptrs = [m.kmalloc(8192) for _ in range(600)]
        for p in ptrs:
            m.kfree(p)
        m.again = [m.kmalloc(8192) for _ in range(300)]
    reference, compiled = machines
    assert reference.again == compiled.again
    assert reference.summary() == compiled.summary()
    assert reference.summary()["quarantine_bytes"] < 600 * 8192  # it did overflow
    assert _state(reference, reference.again) == _state(compiled, compiled.again)


def test_a_pickled_allocator_is_a_few_buffers(small):
    """Checkpoints pickle the machine: the allocator's state goes as bytearrays (whose
    changes a checkpoint can find), not as lists of ints, and comes back whole."""
    m = Machine(small, engine="native")
    p = m.kmalloc(100)
    m.kfree(p)
    reduced = m.slub.__reduce__()[1]
    buffers = [x for x in reduced if isinstance(x, bytearray)]
    assert len(buffers) >= 6 and all(
        not isinstance(x, (list, tuple)) or len(x) < 64 for x in reduced[2:]
    )
    assert all(isinstance(v, bytearray) for v in reduced[-1].values())  # per-pfn sections
    again = pickle.loads(pickle.dumps(m))
    assert again.object_meta(p) == m.object_meta(p)
    assert again.kmalloc(100) == m.kmalloc(100)


def _kinspect(args: list[str], engine: str, capsys, monkeypatch) -> tuple[int, str, str]:
    """``kinspect ARGS`` on an engine: exit status, stdout, stderr."""
    monkeypatch.setenv(native.VARIABLE, engine)
    status = main(args)
    out = capsys.readouterr()
    return status, out.out, out.err


WORKLOADS = [
    *sorted((ROOT / "samples/workloads").glob("*.kw")),
    *sorted((ROOT / "samples/workloads/kasan_test").glob("*.kw")),
]


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda p: p.stem)
def test_workloads_run_alike_on_both_engines(workload, capsys, monkeypatch):
    """``kinspect run`` (flat) and ``kinspect compare`` (every scheme in lockstep) of every
    shipped workload (the KUnit ones, the demo...): the same output on both engines."""
    profile = ["--profile", "arm32"] if workload.stem.startswith("arm32") else []
    for args in (
        ["run", str(workload), *profile],
        ["compare", str(workload), "--schemes", "all", *profile],
    ):
        python = _kinspect(args, "python", capsys, monkeypatch)
        compiled = _kinspect(args, "native", capsys, monkeypatch)
        assert python == compiled
        assert python[1]
