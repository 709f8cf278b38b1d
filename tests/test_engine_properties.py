"""Random workloads against a naive oracle: the shadow of every slab slot follows from the last
thing that happened to it, and the allocators keep their invariants after every step. On both
engines (the ``engine`` fixture, tests/conftest.py)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinspect.engine.kasan import (
    KASAN_GRANULE_SIZE,
    KASAN_PAGE_FREE,
    KASAN_SLAB_FREE,
    KASAN_SLAB_FREE_META,
    KASAN_SLAB_REDZONE,
)
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile

PROFILES = {name: load_profile(name, 64 << 20) for name in ("x86_64", "arm32", "arm64-64k-42")}

ops = st.lists(
    st.one_of(
        st.tuples(st.just("kmalloc"), st.integers(1, 9000)),
        st.tuples(st.just("kfree"), st.integers(0, 63)),
        st.tuples(st.just("krealloc"), st.integers(0, 63), st.integers(1, 600)),
        st.tuples(st.just("pages"), st.integers(0, 3)),
        st.tuples(st.just("free_pages"), st.integers(0, 63)),
    ),
    min_size=1,
    max_size=120,
)


def expected_object_shadow(cache, state: str, size: int) -> list[int]:
    """What the object's granules must hold: a naive restatement of mm/kasan/common.c."""
    granules = -(-cache.object_size // KASAN_GRANULE_SIZE)
    if state == "freed":
        return [KASAN_SLAB_FREE_META] + [KASAN_SLAB_FREE] * (granules - 1)
    out = [0] * (size // 8) + ([size % 8] if size % 8 else [])
    return out + [KASAN_SLAB_REDZONE] * (granules - len(out))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops, st.sampled_from(sorted(PROFILES)))
def test_shadow_follows_the_object_life_cycle(engine, program, profile_name):
    m = Machine(PROFILES[profile_name], engine=engine)
    assert m.engine == engine
    live: list[tuple[int, int]] = []  # (addr, requested size) of live kmallocs
    pages: list[tuple[int, int]] = []  # (addr, order)
    slots: dict[int, tuple[str, int]] = {}  # slab object -> (state, size), the oracle
    for op in program:
        if op[0] == "kmalloc":
            p = m.kmalloc(op[1])
            if p:
                live.append((p, op[1]))
                if m.find_slab(p):
                    slots[p] = ("live", op[1])
        elif op[0] == "kfree" and live:
            p, _ = live.pop(op[1] % len(live))
            m.kfree(p)
            if p in slots:
                slots[p] = ("freed", 0)
        elif op[0] == "krealloc" and live:
            i = op[1] % len(live)
            p, _ = live[i]
            q = m.krealloc(p, op[2])
            assert q
            if q != p and p in slots:
                slots[p] = ("freed", 0)
            live[i] = (q, op[2])
            if m.find_slab(q):
                slots[q] = ("live", op[2])
        elif op[0] == "pages":
            p = m.alloc_pages_addr(op[1])
            if p:
                pages.append((p, op[1]))
        elif op[0] == "free_pages" and pages:
            p, order = pages.pop(op[1] % len(pages))
            m.free_pages_addr(p, order)
            assert set(m.shadow.read(p, m.page_size << order)) == {KASAN_PAGE_FREE}
        # Oracle: every slot we know of, in a slab that still exists.
        for addr, (state, size) in slots.items():
            slab = m.find_slab(addr)
            if slab is None:
                continue
            want = expected_object_shadow(slab.cache, state, size)
            assert list(m.shadow.read(addr, len(want) * 8)) == want, (hex(addr), state, size)
        # Live allocations never overlap and are fully accessible, and the byte after is not.
        spans = sorted((p, p + s) for p, s in live)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
        for p, s in live:
            assert m.check_access(p, s, False)
    assert m.reports == []
    # Buddy accounting: free + allocated pages = all pages given to the zones.
    allocated = sum(1 << order for order, _ in m.pages.values())
    assert sum(z.free_pages for z in m.zones) + allocated == sum(z.present_pages for z in m.zones)
