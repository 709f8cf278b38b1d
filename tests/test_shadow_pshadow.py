"""The ``pshadow`` scheme (Joonsoo Kim, "mm/kasan: support per-page shadow memory", May 2017).

Oracles computed by hand from the series
(https://lore.kernel.org/r/1494897409-14408-1-git-send-email-iamjoonsoo.kim@lge.com, 2017-05-16)
and the x86_64 profile: one shadow page per 8-page window, mapped when a page in it becomes slab,
stack or large kmalloc, given back when the whole window is free again; then every kasan_test
workload and random workloads in lockstep with the flat reference (LockstepShadow raises
ShadowDivergence on the first differing shadow byte).

The buddy allocator hands out the lowest block of the smallest order that fits, so most tests
first take every free block of order 0..2 (``drain_small_orders``): after that, allocations
split fresh aligned order-3 blocks, and where each page lands (and where its shadow page lands)
can be worked out by hand.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from kinspect.engine.kasan import (
    KASAN_GLOBAL_REDZONE,
    KASAN_PAGE_FREE,
    KASAN_SLAB_REDZONE,
    KASAN_VMALLOC_INVALID,
)
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.shadow import SCHEMES, scheme_class
from kinspect.engine.shadow.base import BYTE_GRANULAR_USES, PageUse
from kinspect.engine.shadow.pshadow import MappedWindow, PerPageShadow
from kinspect.engine.workload import WorkloadRunner, parse_workload

KASAN_TEST = sorted((ROOT / "samples" / "workloads" / "kasan_test").glob("*.kw"))
LOCKSTEP_PROFILES = ("x86_64", "arm32", "arm64-64k-42")
PROFILES = {name: load_profile(name) for name in LOCKSTEP_PROFILES}
SMALL = {name: load_profile(name, 128 << 20) for name in LOCKSTEP_PROFILES}
X86 = PROFILES["x86_64"]
PAGE = 4096


def pshadow_of(m: Machine) -> PerPageShadow:
    scheme = next(s for s in m.schemes if s.name == "pshadow")
    assert isinstance(scheme, PerPageShadow)
    return scheme


def drain_small_orders(m: Machine) -> list[int]:
    """Take every free block of order 0..2 as plain pages: later allocations split order-3+."""
    taken = []
    while any(zone.nr_free()[order] for zone in m.zones for order in range(3)):
        pfn = m.alloc_pages(0)
        assert pfn is not None
        taken.append(pfn)
    return taken


def window(pfn: int) -> int:
    """First pfn of the 8-page window (x86_64: PAGE_OFFSET - PHYS_OFFSET is window aligned)."""
    return pfn & ~7


# --------------------------------------------------------------------------- registration


def test_registered_and_built_with_any_options():
    assert SCHEMES["pshadow"][:2] == ("pshadow", "PerPageShadow")
    assert scheme_class("pshadow") is PerPageShadow
    m = Machine(X86, schemes=("pshadow",), scheme_options={"attach": "always", "other": 1})
    assert pshadow_of(m).name == "pshadow"


# ------------------------------------------------------------------------------- footprint


def test_footprint_of_the_1gib_x86_64_machine():
    fp = pshadow_of(Machine(X86, schemes=("pshadow",))).footprint()
    # e820 of the real run: [0x1000, 0x9f000) and [0x100000, 0x3ffdf000): 0x9e + 0x3fedf pages.
    assert (0x9F000 - 0x1000 + 0x3FFDF000 - 0x100000) // PAGE == 262013
    assert fp.static_bytes == 262013 + 2 * PAGE  # one byte a page, zero and black page
    # ffffec0000000000-fffffc0000000000 stays reserved, plus KASAN_PSHADOW_SIZE 1 << (47 - 12).
    assert fp.virtual_range_bytes == (16 << 40) + (32 << 30)
    assert fp.metadata_bytes == 0
    assert fp.dynamic_bytes == (fp.shadow_pages_mapped + fp.page_table_pages) * PAGE
    assert fp.dynamic_peak_bytes >= fp.dynamic_bytes
    assert (fp.inline_possible, fp.stack_possible) == (False, True)


@pytest.mark.parametrize(
    "name, static, virtual",
    [
        # 768 MiB of lowmem (highmem has no shadow); b6e00000-bf000000 covers 1040 MiB: 260 KiB.
        ("arm32", (768 << 20 >> 12) + 2 * PAGE, 0x8200000 + (1040 << 20 >> 12)),
        # 1 GiB of 64K pages; 512 GiB of byte shadow covers 4 TiB: 64 MiB of per-page shadow.
        ("arm64-64k-42", (1 << 30 >> 16) + 2 * (64 << 10), (512 << 30) + (64 << 20)),
    ],
)
def test_footprint_other_profiles(name, static, virtual):
    fp = pshadow_of(Machine(PROFILES[name], schemes=("pshadow",))).footprint()
    assert (fp.static_bytes, fp.virtual_range_bytes) == (static, virtual)


# ------------------------------------------------------------------------ shadow windows


@pytest.mark.parametrize("name", ["x86_64", "arm32", "arm64-64k-42", "ppc32", "riscv64-sv39"])
def test_boot_free_runs_are_the_pages_whose_boot_shadow_is_free(name):
    """pshadow fills a new per-page shadow chunk from the machine's free runs at boot: they
    hold exactly the lowmem pages whose flat boot shadow (initial_shadow_byte) is
    KASAN_PAGE_FREE; the kernel image's pages and the holes are 0."""
    p = load_profile(name)
    m = Machine(p)
    delta = p.page_offset - p.phys_offset
    lo, hi = p.phys_offset >> p.page_shift, p.max_low_pfn
    runs = list(m.boot_free_runs(lo, hi))
    image = p.kernel_image_phys >> p.page_shift
    for pfn in sorted(
        {lo, lo + 1, image - 1, image, image + 1, hi - 1, *range(lo, hi, max(1, (hi - lo) // 997))}
    ):
        boot = m.initial_shadow_byte((pfn << p.page_shift) + delta)
        assert boot in (0, KASAN_PAGE_FREE)
        assert any(a <= pfn < b for a, b in runs) == (boot == KASAN_PAGE_FREE), hex(pfn)


def test_one_kmalloc_maps_exactly_one_shadow_page():
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    drain_small_orders(m)
    before = ps.footprint()
    p = m.kmalloc(64)
    slab = m.find_slab(p)
    assert slab.cache.layout.order == 0
    # The order-0 slab splits a fresh order-3 block at B; the shadow page takes B + 1.
    b = slab.pfn
    assert b == window(b)
    assert MappedWindow(b, b + 1, 1) in ps.windows()
    after = ps.footprint()
    assert after.shadow_pages_mapped - before.shadow_pages_mapped == 1
    assert after.shadow_pages_needed - before.shadow_pages_needed == 1
    assert m.pages[b + 1] == (0, PageUse.SHADOW)
    assert ps.shadow_link(b) == (
        f"pshadow ff (bypass) -> shadow page pfn {b + 1:#x} (window pfn {b:#x}-{b + 7:#x})"
    )
    assert ps.shadow_link(b + 1) == "pshadow 00 (allocated)"
    assert ps.shadow_link(b + 2) == "pshadow fe (free)"
    # kmalloc-64: 8 granules 00, then its redzone.
    assert m.shadow.read(p, 72) == bytes(8) + bytes([KASAN_SLAB_REDZONE])


def test_a_page_from_alloc_pages_needs_no_shadow_page():
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    drain_small_orders(m)
    before = ps.footprint().shadow_pages_mapped
    pfn = m.alloc_pages(3)
    addr = m.page_address(pfn)
    assert ps.footprint().shadow_pages_mapped == before
    assert ps.shadow_link(pfn) == "pshadow 00 (allocated)"
    assert m.shadow.read(addr, 8 * PAGE) == bytes(8 * PAGE // 8)
    m.free_pages(pfn, 3)
    assert ps.footprint().shadow_pages_mapped == before
    assert ps.shadow_link(pfn + 7) == "pshadow fe (free)"
    assert m.shadow.read(addr, 8 * PAGE) == bytes([KASAN_PAGE_FREE]) * (8 * PAGE // 8)


def test_eight_slab_pages_in_one_window_need_one_shadow_page():
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    drain_small_orders(m)
    before = ps.footprint()
    b = m.alloc_pages(3, PageUse.SLAB)  # an aligned order-3 block: one window
    after = ps.footprint()
    assert after.shadow_pages_mapped - before.shadow_pages_mapped == 1
    assert after.shadow_pages_needed - before.shadow_pages_needed == 1
    entry = next(w for w in ps.windows() if w.pfn == b)
    assert entry.bypass_pages == 8 and window(entry.shadow_pfn) != b


def test_seven_order0_slab_pages_share_a_window_with_their_shadow_page():
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    drain_small_orders(m)
    before = ps.footprint().shadow_pages_mapped
    pfns = [m.alloc_pages(0, PageUse.SLAB) for _ in range(8)]
    # The first splits a fresh block at B and its shadow page takes B + 1 (the lowest order-0
    # block then), the next six fill B + 2 .. B + 7; the eighth splits another fresh block at
    # E, whose shadow page takes E + 1.
    b, e = pfns[0], pfns[7]
    assert pfns[:7] == [b] + list(range(b + 2, b + 8)) and e == window(e)
    assert MappedWindow(b, b + 1, 7) in ps.windows()
    assert MappedWindow(e, e + 1, 1) in ps.windows()
    assert ps.footprint().shadow_pages_mapped - before == 2


def test_one_slab_page_in_each_of_eight_windows_needs_eight_shadow_pages():
    """The case behind Vyukov's counter-proposal (2017-05-29): with one page of 8 in use, a
    512-byte block per page would do, where pshadow maps a whole shadow page."""
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    drain_small_orders(m)
    b = m.alloc_pages(6)  # 64 pages; split_page() and give back
    for i in range(8):  # pages 3 and 7 of each window
        m.free_pages(b + 8 * i + 3, 0)
        m.free_pages(b + 8 * i + 7, 0)
    before = ps.footprint()
    slabs = [m.alloc_pages(0, PageUse.SLAB) for _ in range(8)]
    assert slabs == [b + 8 * i + 3 for i in range(8)]
    after = ps.footprint()
    assert after.shadow_pages_mapped - before.shadow_pages_mapped == 8
    assert after.shadow_pages_needed - before.shadow_pages_needed == 8
    assert [w for w in ps.windows() if b <= (w.pfn or 0) < b + 64] == [
        MappedWindow(b + 8 * i, b + 8 * i + 7, 1) for i in range(8)
    ]
    # 8 slab pages (32 KiB) cost 8 shadow pages (32 KiB): no saving at all over flat here.
    assert (after.dynamic_bytes - before.dynamic_bytes) // PAGE >= 8


def test_freeing_everything_in_a_window_unmaps_it():
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    drain_small_orders(m)
    before = ps.footprint()
    b = m.alloc_pages(3, PageUse.SLAB)
    shadow_pfn = next(w.shadow_pfn for w in ps.windows() if w.pfn == b)
    peak = ps.footprint().dynamic_peak_bytes
    m.free_pages(b, 3)
    after = ps.footprint()
    assert after.shadow_pages_mapped == before.shadow_pages_mapped
    assert after.shadow_pages_needed == before.shadow_pages_needed
    assert all(w.pfn != b for w in ps.windows())
    assert shadow_pfn not in m.pages  # back in the buddy
    assert m.zones[X86.zone_of_pfn(shadow_pfn)].find_free_block(shadow_pfn) is not None
    assert after.dynamic_peak_bytes == peak
    assert after.page_table_pages >= before.page_table_pages  # PTE pages are kept
    assert m.shadow.read(m.page_address(b), 8) == bytes([KASAN_PAGE_FREE])


def test_a_window_stays_mapped_while_one_of_its_pages_is_in_use():
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    drain_small_orders(m)
    b = m.alloc_pages(6)
    m.free_pages(b + 7, 0)  # the slab page's slot, in window b
    m.free_pages(b + 15, 0)  # its shadow page's, in the next window
    slab = m.alloc_pages(0, PageUse.SLAB)
    assert slab == b + 7 and MappedWindow(b, b + 15, 1) in ps.windows()
    m.free_pages(slab, 0)
    assert MappedWindow(b, b + 15, 0) in ps.windows()  # needed no more, still mapped
    for pfn in range(b, b + 7):
        assert any(w.pfn == b for w in ps.windows())
        m.free_pages(pfn, 0)
    assert all(w.pfn != b for w in ps.windows())
    assert b + 15 not in m.pages


def test_no_memory_for_the_shadow_page_fails_the_allocation():
    m = Machine(SMALL["x86_64"], schemes=("pshadow",))
    ps = pshadow_of(m)
    for order in range(SMALL["x86_64"].max_order, -1, -1):
        while m.alloc_pages(order) is not None:
            pass
    mapped = ps.windows()
    last = max(
        pfn
        for pfn, (order, _) in m.pages.items()
        if order == 0 and all(w.pfn != window(pfn) for w in mapped)
    )
    m.free_pages(last, 0)  # one free page, none for its shadow
    assert m.alloc_pages(0, PageUse.SLAB) is None
    assert ps.windows() == mapped
    assert ps.shadow_link(last) == "pshadow fe (free)"
    assert m.alloc_pages(0) == last  # the page went back to the buddy


def test_large_kmalloc_of_4mib_maps_128_shadow_pages_under_one_pte_page():
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    before = ps.footprint()
    p = m.kmalloc(4 << 20)  # order 10: 1024 pages, 128 windows
    after = ps.footprint()
    assert after.shadow_pages_mapped - before.shadow_pages_mapped == 128
    # 512 KiB of shadow, 512 KiB aligned: inside one 2 MiB PTE page (0 if it already existed).
    assert after.page_table_pages - before.page_table_pages in (0, 1)
    assert X86.kasan_mem_to_shadow(p) >> 21 == X86.kasan_mem_to_shadow(p + (4 << 20) - 1) >> 21
    m.kfree(p)
    assert ps.footprint().shadow_pages_mapped == before.shadow_pages_mapped


# -------------------------------------------------------------- per-page values and BYPASS


def test_mempool_page_pool_elements_stay_per_page():
    """4.x mempool called kasan_free_pages()/kasan_alloc_pages() on page-pool elements: under
    the series those write the per-page byte, so no byte shadow is needed."""
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    before = ps.footprint().shadow_pages_mapped
    pool = m.mempool_create("page", 2, 1)
    element = pool.elements[-1]
    pfn = m._direct_map_pfn(element)
    assert pfn in m.pages and ps.shadow_link(pfn) == "pshadow fe (free)"
    assert m.shadow.shadow_byte(element + PAGE) == KASAN_PAGE_FREE
    assert m.mempool_alloc(pool) == element
    assert ps.shadow_link(pfn) == "pshadow 00 (allocated)"
    assert ps.footprint().shadow_pages_mapped == before


def test_a_partial_write_switches_an_allocated_page_to_bypass():
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    drain_small_orders(m)
    pfn = m.alloc_pages(0)
    addr = m.page_address(pfn)
    m.shadow.set_byte(addr + 16, 3)
    assert ps.shadow_link(pfn).startswith("pshadow ff (bypass)")
    assert m.shadow.read(addr, 64) == bytes([0, 0, 3, 0, 0, 0, 0, 0])
    assert m.shadow.read(addr + 64, PAGE - 64) == bytes((PAGE - 64) // 8)
    m.free_pages(pfn, 0)
    assert ps.shadow_link(pfn) == "pshadow fe (free)"
    assert m.shadow.read(addr, 64) == bytes([KASAN_PAGE_FREE]) * 8


def test_globals_and_vmalloc_get_byte_shadow_on_first_write_and_keep_it():
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    before = {w for w in ps.windows() if w.pfn is None}
    g = m.register_global("global_array", 10)
    v = m.vmalloc(100)
    outside = [w for w in ps.windows() if w.pfn is None and w not in before]
    # One window for the global, one for vmalloc's page and guard page (8 KiB of 32 KiB).
    assert [w.bypass_pages for w in outside] == [8, 8]
    assert m.shadow.read(g, 64) == bytes([0, 2]) + bytes([KASAN_GLOBAL_REDZONE]) * 6
    assert m.shadow.read(v + 96, 16) == bytes([4, KASAN_VMALLOC_INVALID])
    assert m.shadow.shadow_byte(v + 2 * PAGE) == KASAN_VMALLOC_INVALID
    m.vfree(v)
    assert [w for w in ps.windows() if w.pfn is None and w not in before] == outside


def test_arm32_globals_make_kernel_image_pages_bypass():
    """arm32: the kernel image is in the direct map (reserved pages, per-page 0)."""
    m = Machine(PROFILES["arm32"], schemes=("pshadow",))
    ps = pshadow_of(m)
    g = m.register_global("global_array", 10)
    pfn = m._direct_map_pfn(g)
    assert ps.shadow_link(pfn).startswith("pshadow ff (bypass)")
    assert ps.shadow_link(pfn + 1) == "pshadow 00 (allocated)"
    assert m.shadow.read(g, 16) == bytes([0, 2])


def test_highmem_has_no_shadow():
    p = PROFILES["arm32"]
    ps = pshadow_of(Machine(p, schemes=("pshadow",)))
    assert ps.shadow_link(p.max_low_pfn) == "no shadow (highmem)"
    assert ps.shadow_link(p.max_pfn) is None


def test_arm64_64k_window_is_eight_64k_pages():
    m = Machine(PROFILES["arm64-64k-42"], schemes=("pshadow",))
    ps = pshadow_of(m)
    drain_small_orders(m)
    before = ps.footprint()
    p = m.kmalloc(64)
    pfn = m._direct_map_pfn(p)
    after = ps.footprint()
    assert after.shadow_pages_mapped - before.shadow_pages_mapped == 1
    assert (after.dynamic_bytes - before.dynamic_bytes) in (64 << 10, 128 << 10)
    entry = next(w for w in ps.windows() if w.pfn == pfn & ~7)
    assert entry.bypass_pages == 1


# ------------------------------------------------------------------------ check loads


def test_loads_follow_patch_11s_order():
    """Byte shadow first (one load); the per-page byte only when that reads poisoned."""
    m = Machine(X86, schemes=("pshadow",))
    ps = pshadow_of(m)
    p = m.kmalloc(64)
    page = m.page_address(m.alloc_pages(0))
    v = m.vmalloc(64)

    def cost(addr):
        fp = ps.footprint()
        m.shadow.shadow_byte(addr)
        after = ps.footprint()
        assert after.checks == fp.checks + 1
        return after.loads - fp.loads

    assert cost(p) == 1  # slab object: byte shadow 00
    assert cost(p + 64) == 2  # its redzone: fc, then the per-page BYPASS
    assert cost(page) == 2  # plain page: the black page's ff, then per-page 0
    assert cost(page + PAGE) == 2  # a free page: ff, then per-page FREE
    assert cost(v) == 1  # vmalloc: byte shadow 00
    assert cost(v + 64) == 2  # its KASAN_VMALLOC_INVALID


# --------------------------------------------------------------- lockstep with flat


@pytest.mark.parametrize("profile", LOCKSTEP_PROFILES)
@pytest.mark.parametrize("path", KASAN_TEST, ids=[p.stem for p in KASAN_TEST])
def test_kasan_test_workloads_in_lockstep_with_flat(profile, path):
    p = PROFILES[profile]
    alone = Machine(p, schemes=("flat",))
    WorkloadRunner(alone, parse_workload(str(path))).run()
    both = Machine(p, schemes=("flat", "pshadow"))
    WorkloadRunner(both, parse_workload(str(path))).run()  # ShadowDivergence = failure
    assert [r.bug_type for r in both.reports] == [r.bug_type for r in alone.reports]


def check_invariants(m: Machine) -> None:
    """The windows are exactly what the pages need: BYPASS pages are the byte-granular
    allocations' (and arm32's kernel image pages holding globals); a direct-map window is
    mapped only while some page of it is in use; shadow pages are the machine's SHADOW pages."""
    ps = pshadow_of(m)
    p = m.profile
    granular = {
        head + i
        for head, (order, use) in m.pages.items()
        if use in BYTE_GRANULAR_USES
        for i in range(1 << order)
    }
    flat = m.schemes[0]
    lo, hi = p.page_offset, p.high_memory
    windows = ps.windows()
    for w in windows:
        if w.pfn is None:
            assert w.bypass_pages == 8
            continue
        bypass = 0
        in_use = False
        for pfn in range(w.pfn, w.pfn + 8):
            if not p.is_lowmem_pfn(pfn) or not p.pfn_valid(pfn):
                in_use = True
                continue
            free = m.zones[p.zone_of_pfn(pfn)].find_free_block(pfn) is not None
            in_use |= not free
            reserved = (
                not free
                and pfn not in granular
                and all(
                    not (head <= pfn < head + (1 << order)) for head, (order, _) in m.pages.items()
                )
            )
            addr = m.page_address(pfn)
            if pfn in granular or (reserved and any(flat.read(addr, PAGE))):
                bypass += 1
            assert lo <= addr < hi
        assert w.bypass_pages == bypass, w
        assert in_use or bypass, f"window {w.pfn:#x} mapped with every page free"
    missing = {window(pfn) for pfn in granular} - {w.pfn for w in windows}
    assert not missing
    shadow_pages = {pfn for pfn, (_, use) in m.pages.items() if use == PageUse.SHADOW}
    assert shadow_pages == {w.shadow_pfn for w in windows}
    fp = ps.footprint()
    assert fp.shadow_pages_mapped == len(windows)
    assert fp.shadow_pages_needed == sum(1 for w in windows if w.bypass_pages)
    assert fp.dynamic_bytes == (fp.shadow_pages_mapped + fp.page_table_pages) * p.page_size
    assert fp.dynamic_peak_bytes >= fp.dynamic_bytes


op = st.one_of(
    st.tuples(st.just("kmalloc"), st.integers(1, 40000)),
    st.tuples(st.just("kmalloc"), st.integers(1, 512)),
    st.tuples(st.just("kfree"), st.integers(0, 63)),
    st.tuples(st.just("alloc_pages"), st.integers(0, 4)),
    st.tuples(st.just("free_pages"), st.integers(0, 63)),
    st.tuples(st.just("vmalloc"), st.integers(1, 40000)),
    st.tuples(st.just("vfree"), st.integers(0, 63)),
    st.tuples(st.just("mempool"), st.integers(0, 2)),
    st.tuples(st.just("global"), st.integers(1, 300)),
    st.tuples(st.just("frame"), st.integers(1, 200)),
    st.tuples(
        st.just("pop_frames"),
    ),
    st.tuples(
        st.just("check"), st.integers(0, 63), st.integers(-64, 200), st.sampled_from([1, 8, 16])
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=20, max_size=60), st.sampled_from(LOCKSTEP_PROFILES))
def test_random_workloads_in_lockstep_with_flat(program, profile):
    m = Machine(SMALL[profile], schemes=("flat", "pshadow"))
    live: list[int] = []  # kmalloc pointers
    pages: list[tuple[int, int]] = []  # (pfn, order)
    areas: list[int] = []
    pools = []
    seen: list[int] = []  # every pointer handed out, live or not
    for ev in program:
        kind = ev[0]
        if kind == "kmalloc" and (q := m.kmalloc(ev[1])):
            live.append(q)
            seen.append(q)
        elif kind == "kfree" and live:
            m.kfree(live.pop(ev[1] % len(live)))
        elif kind == "alloc_pages" and (pfn := m.alloc_pages(ev[1])) is not None:
            pages.append((pfn, ev[1]))
            seen.append(m.page_address(pfn))
        elif kind == "free_pages" and pages:
            m.free_pages(*pages.pop(ev[1] % len(pages)))
        elif kind == "vmalloc" and (v := m.vmalloc(ev[1])):
            areas.append(v)
            seen.append(v)
        elif kind == "vfree" and areas:
            m.vfree(areas.pop(ev[1] % len(areas)))
        elif kind == "mempool":
            if len(pools) < 2:
                pools.append(m.mempool_create("page", 2, ev[1]))
            pool = pools[ev[1] % len(pools)]
            if pool.elements:
                seen.append(m.mempool_alloc(pool))
                m.mempool_free(seen[-1], pool)
        elif kind == "global":
            seen.append(m.register_global(f"g{len(seen)}", ev[1]))
        elif kind == "frame":
            seen.append(m.push_frame([(32, ev[1], "buf")]))
        elif kind == "pop_frames":
            m.pop_frames()
        elif kind == "check" and seen:
            m.check_access(seen[ev[1] % len(seen)] + ev[2], ev[3], False)
        for q in seen[-12:]:
            m.shadow.read((q & ~7) - 128, 512)
    check_invariants(m)
