"""The compiled buddy allocator (_buddy.pyx) against buddy.py, the reference: the same blocks
handed out, the same merges, the same free counts, after any allocations and frees."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kinspect.engine import buddy, native

pytestmark = pytest.mark.skipif(
    native.compiled("_buddy") is None, reason="the native engine is not built"
)


def _zones(max_order: int, ranges):
    zones = [
        buddy.BuddyZone("Normal", 1, max_order),
        native.compiled_for_native("_buddy").BuddyZone("Normal", 1, max_order),
    ]
    for zone in zones:
        for start, end in ranges:
            zone.add_range(start, end)
    return zones


def _state(zone, probes):
    return (
        zone.name,
        zone.index,
        zone.max_order,
        zone.present_pages,
        zone.free_pages,
        zone.nr_free(),
        [zone.find_free_block(pfn) for pfn in probes],
    )


@st.composite
def zone_ranges(draw):
    """Disjoint pfn ranges, aligned or not, some far apart (a hole, as on real machines)."""
    ranges, pfn = [], draw(st.integers(0, 5000))
    for _ in range(draw(st.integers(1, 3))):
        end = pfn + draw(st.integers(1, 3000))
        ranges.append((pfn, end))
        pfn = end + draw(st.sampled_from([0, 7, 1 << 20]))
    return ranges


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 10),
    zone_ranges(),
    st.lists(st.tuples(st.booleans(), st.integers(0, 10), st.integers(0, 10**6)), max_size=300),
)
def test_the_compiled_zone_is_the_reference_zone(max_order, ranges, steps):
    """Random allocations (an order) and frees (one of the blocks handed out), and a
    checkpoint (pickle) on the way: every answer and every count alike."""
    reference, compiled = _zones(max_order, ranges)
    probes = sorted({start + k for start, end in ranges for k in (0, 1, 5, end - start - 1)})
    held: list[tuple[int, int]] = []
    for n, (alloc, order, pick) in enumerate(steps):
        if alloc or not held:
            order = min(order, max_order)
            pfn = reference.alloc(order)
            assert compiled.alloc(order) == pfn
            if pfn is not None:
                held.append((pfn, order))
        else:
            pfn, order = held.pop(pick % len(held))
            reference.free(pfn, order)
            compiled.free(pfn, order)
        if n == len(steps) // 2:
            compiled = pickle.loads(pickle.dumps(compiled))
        assert _state(compiled, probes) == _state(reference, probes)


def test_many_merges_compact_the_heaps():
    """Freeing every page of a split max-order run merges them back: the heaps' stale
    entries are dropped on the way (compaction), the answers stay the reference's."""
    reference, compiled = _zones(10, [(0, 1 << 14)])
    pfns = [reference.alloc(0) for _ in range(5000)]
    assert [compiled.alloc(0) for _ in range(5000)] == pfns
    for pfn in pfns[::2] + pfns[1::2]:
        reference.free(pfn, 0)
        compiled.free(pfn, 0)
        assert compiled.free_pages == reference.free_pages
    probes = range(0, 1 << 14, 97)
    assert _state(compiled, probes) == _state(reference, probes)
    assert [compiled.alloc(k % 4) for k in range(3000)] == [
        reference.alloc(k % 4) for k in range(3000)
    ]


def test_a_machine_boots_on_the_engine_it_is_given():
    from kinspect.engine.machine import Machine
    from kinspect.engine.profile import load_profile

    for engine, module in (("python", buddy), ("native", native.compiled("_buddy"))):
        m = Machine(load_profile("x86_64-q35-3g"), engine=engine)
        assert m.engine == engine
        assert all(type(zone) is module.BuddyZone for zone in m.zones)
