"""Every shadow scheme agrees with the flat reference, byte for byte, on random workloads.

All registered schemes run in lockstep on one machine: every shadow read of every check and
report is compared across schemes (LockstepShadow raises ShadowDivergence on any difference),
and after every event the shadow views around every pointer the workload holds are compared
too. Verdicts come from those reads, so they are identical by construction once reads agree.
On both engines (the ``engine`` fixture, tests/conftest.py).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.shadow import SCHEMES
from kinspect.engine.shadow.pageptr import PagePtrShadow
from kinspect.engine.shadow.pshadow import PerPageShadow

PROFILES = {name: load_profile(name, 128 << 20) for name in ("x86_64", "arm32", "arm64-64k-42")}
ALL = ["flat"] + [s for s in SCHEMES if s != "flat"]
EVENTS_RUN = {"python": 0, "native": 0}  # events run per engine
MIN_EVENTS = 60
EXAMPLES = 170  # 170 x at least 60 events: more than 10 000 events per run

op = st.one_of(
    st.tuples(st.just("kmalloc"), st.integers(1, 9000)),
    st.tuples(st.just("kmalloc"), st.integers(1, 256)),
    st.tuples(st.just("kfree"), st.integers(0, 63)),
    st.tuples(st.just("krealloc"), st.integers(0, 63), st.integers(1, 600)),
    st.tuples(st.just("alloc_pages"), st.integers(0, 3)),
    st.tuples(st.just("free_pages"), st.integers(0, 63)),
    st.tuples(st.just("good"), st.integers(0, 63), st.sampled_from([1, 2, 4, 8, 16, 3])),
    st.tuples(st.just("bad"), st.integers(0, 63), st.integers(0, 40), st.sampled_from([1, 8])),
    st.tuples(st.just("stale"), st.integers(0, 63), st.sampled_from([1, 8])),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(op, min_size=MIN_EVENTS, max_size=90),
    st.sampled_from(sorted(PROFILES)),
    st.sampled_from(["byte-granular", "always"]),
)
def test_random_workloads_agree_under_every_scheme(engine, program, profile, attach):
    m = Machine(PROFILES[profile], schemes=ALL, scheme_options={"attach": attach}, engine=engine)
    assert m.engine == engine
    live: list[tuple[int, int]] = []  # (pointer, size) of live kmallocs
    freed: list[int] = []
    pages: list[tuple[int, int]] = []
    for ev in program:
        kind = ev[0]
        if kind == "kmalloc":
            p = m.kmalloc(ev[1])
            if p:
                live.append((p, ev[1]))
        elif kind == "kfree" and live:
            p, _ = live.pop(ev[1] % len(live))
            m.kfree(p)
            freed.append(p)
        elif kind == "krealloc" and live:
            i = ev[1] % len(live)
            q = m.krealloc(live[i][0], ev[2])
            if q:
                if q != live[i][0]:
                    freed.append(live[i][0])
                live[i] = (q, ev[2])
        elif kind == "alloc_pages":
            p = m.alloc_pages_addr(ev[1])
            if p:
                pages.append((p, ev[1]))
        elif kind == "free_pages" and pages:
            p, order = pages.pop(ev[1] % len(pages))
            m.free_pages_addr(p, order)
            freed.append(p)
        elif kind == "good" and live:
            p, size = live[ev[1] % len(live)]
            m.check_access(p + size - min(size, ev[2]), min(size, ev[2]), True)
        elif kind == "bad" and live:
            p, size = live[ev[1] % len(live)]
            m.check_access(p + size + ev[2], ev[3], False)
        elif kind == "stale" and freed:
            m.check_access(freed[ev[1] % len(freed)], ev[2], False)
        # Shadow views around everything the workload points at, compared across schemes.
        for p, _ in live[-16:] + pages[-8:]:
            m.shadow.read((p & ~7) - 64, 256)
        for p in freed[-16:]:
            m.shadow.read((p & ~7) - 64, 256)
        EVENTS_RUN[engine] += 1


def test_enough_events_ran(engine):
    """The property test above ran at least 10 000 events on this engine in this run."""
    assert EVENTS_RUN[engine] >= 10_000, EVENTS_RUN


def _address(view: memoryview) -> int:
    return np.frombuffer(view, np.uint8).ctypes.data


@pytest.mark.parametrize("profile", ["x86_64", "arm32"])
@pytest.mark.parametrize("attach", ["byte-granular", "always"])
def test_the_views_by_pfn_never_go_stale(engine, profile, attach):
    """pshadow's and pageptr's Python hot paths keep a view by pfn (a BYPASS page's byte
    shadow, a page's block), filled as they read: on either engine (the native one attaches,
    detaches and clears BYPASS in C), every view kept is the memory the scheme's arrays give
    for its pfn now, and the Python reads agree with the flat reference's."""
    m = Machine(PROFILES[profile], schemes=ALL, scheme_options={"attach": attach}, engine=engine)
    flat = m.schemes[0]
    paged = [s for s in m.schemes if isinstance(s, PerPageShadow | PagePtrShadow)]
    rng = random.Random(12)
    live: list[tuple[int, int]] = []  # (pointer, size) of kmallocs, or (address, -order) of pages
    freed: list[int] = []
    filled = 0
    for step in range(2500):
        if live and rng.random() < 0.48:
            p, size = live.pop(rng.randrange(len(live)))
            m.free_pages_addr(p, -size) if size < 0 else m.kfree(p)
            freed.append(p)
        elif rng.random() < 0.1:
            order = rng.randrange(3)
            p = m.alloc_pages_addr(order)
            if p:
                live.append((p, -order))
        else:
            size = rng.choice((8, 40, 128, 700, 3000, 9000, 20000, 70000))
            p = m.kmalloc(size)
            if p:
                live.append((p, size))
        for p in [p for p, _ in live[-8:]] + freed[-8:]:
            for addr in (p, p + 8 * rng.randrange(64)):
                want = flat.shadow_byte(addr)
                assert [s.shadow_byte(addr) for s in paged] == [want] * len(paged), hex(addr)
        if step % 50 == 0:
            for s in paged:
                views = getattr(s, s._PFN_VIEWS)
                fill = s._bypass_view if isinstance(s, PerPageShadow) else s._block_view
                for pfn, view in list(views.items()):
                    fresh = fill(pfn)
                    assert fresh is not None, (s.name, pfn)
                    assert (_address(fresh), len(fresh)) == (_address(view), len(view))
                filled += len(views)
    assert filled > 1000  # the views were used


PROFILE_DIR = Path(__file__).resolve().parents[1] / "kinspect" / "data" / "profiles"
MACHINES = [(p.stem, None) for p in sorted(PROFILE_DIR.glob("*.toml"))]
MACHINES += [("x86_64", 1 << 40), ("arm64-4k-48", 1 << 40)]  # (--mem 1T)


@pytest.mark.parametrize(("profile", "mem"), MACHINES)
def test_a_flat_chunk_made_a_run_of_pages_at_a_time_is_the_one_made_page_by_page(profile, mem):
    """FlatShadow._initial_chunk asks initial_shadow_byte once for the pages between two of
    the machine's initial_shadow_edges: wherever the answer changes (at the edges of the
    memory ranges, of the kernel image in both its maps, of the direct map and the vmalloc
    space), an edge is there, and every chunk that holds one of those places (and its
    neighbours) is the one asked page by page, on every profile."""
    from kinspect.engine.machine import KERNEL_IMAGE_RESERVED
    from kinspect.engine.shadow.flat import _FILL, CHUNK_SHIFT, FlatShadow

    p = load_profile(profile, mem)
    machine = Machine(p, schemes=["flat"])
    flat = next(s for s in machine.schemes if isinstance(s, FlatShadow))
    page = 1 << p.page_shift
    per_page = page >> 3
    image = KERNEL_IMAGE_RESERVED[p.bits]
    lm = p.page_offset - p.phys_offset  # the direct map's delta
    looked = [p.page_offset, p.high_memory, p.vmalloc_start, p.vmalloc_end]
    looked += [lm + edge for r in p.memory for edge in (r.start, r.end)]
    for start in (p.kernel_image_start, lm + p.kernel_image_phys):  # the image, both maps
        looked += range(start, start + image + 1, 1 << CHUNK_SHIFT)
    edges = machine.initial_shadow_edges()
    for a in looked:  # where the answer changes from a page to the next, an edge
        a -= a % page
        if machine.initial_shadow_byte(a - page) != machine.initial_shadow_byte(a):
            assert any(a - page < e <= a for e in edges), (profile, hex(a))
    keys = {(a >> CHUNK_SHIFT) + d for a in looked + edges for d in (-1, 0, 1)}
    for key in sorted(keys):
        base = key << CHUNK_SHIFT
        by_page = b"".join(
            _FILL[machine.initial_shadow_byte(base + i * page)] * per_page
            for i in range((1 << CHUNK_SHIFT) // page)
        )
        assert flat._initial_chunk(key) == by_page, (profile, hex(base))
