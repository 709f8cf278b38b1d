"""Vyukov's pageptr and Murzin's pageext schemes (linux-mm, 2017-05-29 and 05-30).

Most machines run the schemes in lockstep with flat: every shadow read of a check, a report or
a test is compared with the flat reference and raises ShadowDivergence on any difference. The
oracles are hand-computed from the profiles (x86_64: 4 KiB pages, 1 GiB in two RAM ranges,
262013 present pages, 128 MiB sections, 2 CPUs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kinspect.engine.errors import KinspectError
from kinspect.engine.kasan import (
    KASAN_GLOBAL_REDZONE,
    KASAN_PAGE_FREE,
    KASAN_SLAB_REDZONE,
    KASAN_VMALLOC_INVALID,
)
from kinspect.engine.machine import Machine
from kinspect.engine.memory import PageState
from kinspect.engine.profile import load_profile
from kinspect.engine.shadow.base import PageUse
from kinspect.engine.shadow.pageext import PageExtShadow
from kinspect.engine.shadow.pageptr import PagePtrShadow
from kinspect.engine.workload import WorkloadRunner, parse_workload

KW_DIR = Path(__file__).resolve().parent.parent / "samples" / "workloads" / "kasan_test"
LOCKSTEP = ("flat", "pageptr", "pageext")
POLICIES = ("byte-granular", "always")


@pytest.fixture(scope="module")
def x86():
    return load_profile("x86_64")


def machine(profile, schemes=LOCKSTEP, attach="byte-granular") -> Machine:
    return Machine(profile, schemes=schemes, scheme_options={"attach": attach})


def by_name(m: Machine) -> dict:
    return {s.name: s for s in m.schemes}


def pfn_of(m: Machine, addr: int) -> int:
    return (addr - (m.profile.page_offset - m.profile.phys_offset)) >> m.page_shift


# --- geometry and registration ---------------------------------------------------------------


@pytest.mark.parametrize(
    "profile, block", [("x86_64", 512), ("arm32", 512), ("arm64-64k-42", 8192)]
)
def test_blocks_are_an_eighth_of_a_page_from_a_dedicated_cache(profile, block):
    m = machine(load_profile(profile))
    for s in m.schemes[1:]:
        cache = (getattr(s, "twin", None) or s)._cache  # lockstep pageext mirrors pageptr
        assert s.block_size == block and cache.size == block and cache.is_shadow
        assert cache.name == "kasan_shadow_blocks"
        # 2 CPUs: SLUB wants 4 * (fls(2) + 1) = 12 objects, 12 blocks fit in an order-1 slab.
        assert cache.layout.order == 1 and cache.objects == 16
        assert cache.objects // (1 << cache.layout.order) == m.page_size // block  # 8 a page


def test_unknown_attach_policy_is_refused(x86):
    with pytest.raises(KinspectError, match="attach policy"):
        machine(x86, schemes=("pageptr",), attach="sometimes")


def test_pageext_is_pageptr_with_the_pointer_elsewhere():
    assert issubclass(PageExtShadow, PagePtrShadow)
    assert (PagePtrShadow.loads_with_block, PagePtrShadow.loads_null) == (2, 1)
    assert (PageExtShadow.loads_with_block, PageExtShadow.loads_null) == (3, 2)


# --- attach and detach -----------------------------------------------------------------------


@pytest.mark.parametrize("attach", POLICIES)
def test_kmalloc_attaches_one_block_per_slab_page(x86, attach):
    m = machine(x86, attach=attach)
    s = by_name(m)
    before = {n: s[n].footprint().blocks_in_use for n in ("pageptr", "pageext")}
    p = m.kmalloc(64)
    slab = m.find_slab(p)
    assert slab.cache.name == "kmalloc-64" and slab.cache.layout.order == 0  # 32 x 128 B
    for name in ("pageptr", "pageext"):
        assert s[name].footprint().blocks_in_use == before[name] + 1
    link = s["pageptr"].shadow_link(slab.pfn)
    block = int(link.split()[1], 16)
    assert link == f"block {block:#x} (pageptr)"
    assert m.memmap.get(slab.pfn, "shadow", 0) == block  # page->shadow
    assert s["pageext"].shadow_link(slab.pfn).endswith("(page_ext)")
    # The block is an object of the scheme's own cache, on a SHADOW page of the same buddy.
    owner = m.find_slab(block)
    assert owner.cache is s["pageptr"]._cache
    assert m.pages[owner.pfn][1] == PageUse.SHADOW
    assert m.memmap.get(owner.pfn, "state", 0) == PageState.SHADOW_SLAB
    assert m.memmap.get(owner.pfn + 1, "state", 0) == PageState.SHADOW_SLAB
    assert s["pageptr"].shadow_link(owner.pfn) == "no block: page state"  # never shadowed
    # The object's shadow, read through every scheme (lockstep compares them).
    assert m.shadow.read(p, 64) == bytes(8)
    assert m.shadow.read(p + 64, 64) == bytes([KASAN_SLAB_REDZONE]) * 8


def test_an_order_1_slab_gets_two_blocks(x86):
    m = machine(x86)
    s = by_name(m)["pageptr"]
    # kmalloc-256: 512-byte slots, 12 wanted (2 CPUs) x 512 = 6 KiB: an order-1 slab.
    before = s.footprint().blocks_in_use
    p = m.kmalloc(256)
    head = m.find_slab(p).pfn
    assert m.find_slab(p).cache.layout.order == 1
    assert s.footprint().blocks_in_use == before + 2
    assert all(s.shadow_link(head + i).startswith("block ") for i in range(2))
    # kmalloc-1k: 2048-byte slots, 12 x 2 KiB = 24 KiB: order 3, eight blocks.
    before = s.footprint().blocks_in_use
    q = m.kmalloc(1024)
    assert m.find_slab(q).cache.layout.order == 3
    assert s.footprint().blocks_in_use == before + 8


@pytest.mark.parametrize("attach, blocks", [("byte-granular", 0), ("always", 1)])
def test_alloc_pages_and_free_pages(x86, attach, blocks):
    m = machine(x86, attach=attach)
    s = by_name(m)["pageptr"]
    before = s.footprint().blocks_in_use
    addr = m.alloc_pages_addr(0)
    pfn = pfn_of(m, addr)
    assert s.footprint().blocks_in_use == before + blocks
    assert s.shadow_link(pfn).startswith("block " if blocks else "no block")
    assert m.shadow.read(addr, m.page_size) == bytes(512)
    assert m.check_access(addr + 100, 8, True)
    m.free_pages_addr(addr, 0)
    # Freed: the block (if any) went back to its cache, the page reads KASAN_PAGE_FREE.
    assert s.footprint().blocks_in_use == before
    assert s.shadow_link(pfn) == "no block: page state"
    assert m.memmap.get(pfn, "shadow", 0) == 0  # NULL
    assert m.shadow.read(addr, m.page_size) == bytes([KASAN_PAGE_FREE]) * 512
    assert not m.check_access(addr, 1, False)
    assert m.reports[-1].bug_type == "use-after-free"


def test_freeing_a_page_writes_no_block(x86):
    """free_pages() poisons the pages (FF) just before page_free: the refcount is already
    zero, the state implies FF, so a blockless page is not given a block to write it."""
    m = machine(x86)
    s = by_name(m)["pageptr"]
    before = s.footprint().blocks_in_use
    attaches = []
    real = m.shadow_block_alloc
    m.shadow_block_alloc = lambda cache: attaches.append(cache) or real(cache)
    pfn = m.alloc_pages(2)
    m.free_pages(pfn, 2)
    assert attaches == [] and s.footprint().blocks_in_use == before


def test_detach_returns_the_block_to_its_cache(x86):
    m = machine(x86)
    s = by_name(m)["pageptr"]
    p = m.kmalloc(3 * 4096 + 100)  # kmalloc_large: order 2, one block a subpage
    head = pfn_of(m, p)
    blocks = [int(s.shadow_link(head + i).split()[1], 16) for i in range(4)]
    in_use = s.footprint().blocks_in_use
    m.kfree(p)
    assert s.footprint().blocks_in_use == in_use - 4
    free = {b.addr for blocks_ in s.shadow_slabs().values() for b in blocks_ if b.pfn is None}
    assert set(blocks) <= free
    assert m.shadow.read(p, 4096) == bytes([KASAN_PAGE_FREE]) * 512


def test_a_mempool_poisoning_an_allocated_page_attaches_a_block(x86):
    """byte-granular: a page_alloc page has no block, until a mempool poisons it (FF while
    allocated, which its state does not imply)."""
    m = machine(x86)
    s = by_name(m)["pageptr"]
    before = s.footprint().blocks_in_use
    pool = m.mempool_create("page", 1, 0)
    element = pool.elements[0]
    pfn = pfn_of(m, element)
    assert s.footprint().blocks_in_use == before + 1
    assert s.shadow_link(pfn).startswith("block ")
    assert m.shadow.read(element, 4096) == bytes([KASAN_PAGE_FREE]) * 512
    assert m.mempool_alloc(pool) == element
    assert m.shadow.read(element, 4096) == bytes(512)
    m.mempool_free(element, pool)
    m.mempool_destroy(pool)
    assert s.footprint().blocks_in_use == before
    assert m.shadow.read(element, 4096) == bytes([KASAN_PAGE_FREE]) * 512


def test_kernel_stacks_get_blocks(x86):
    m = machine(x86)
    s = by_name(m)["pageptr"]
    before = s.footprint().blocks_in_use
    m.set_task("worker", 7)
    base = m.push_frame([(32, 10, "buf")])
    assert s.footprint().blocks_in_use == before + 8  # THREAD_SIZE_ORDER 3
    assert m.shadow.read(base + 32, 16)[1] == 2  # 10 bytes: 8, then 2
    assert not m.check_access(base + 42, 1, False)
    assert m.reports[-1].bug_type == "stack-out-of-bounds"


# --- outside the direct map ------------------------------------------------------------------


def test_globals_attach_a_block_to_the_reserved_image_page(x86):
    m = machine(x86)
    s = by_name(m)["pageptr"]
    before = s.footprint().blocks_in_use
    g = m.register_global("global_array", 10)
    image_pfn = m.addr_to_pfn(g)
    assert s.footprint().blocks_in_use == before + 1
    assert s.shadow_link(image_pfn).startswith("block ")
    assert m.memmap.get(image_pfn, "state", 0) == PageState.RESERVED
    assert m.shadow.read(g, 64) == bytes([0, 2] + [KASAN_GLOBAL_REDZONE] * 6)
    # The image's direct-map alias keeps flat's 00 (lockstep checks it).
    alias = m.page_address(image_pfn) + (g & (m.page_size - 1))
    assert m.shadow.read(alias, 64) == bytes(8)
    assert not m.check_access(g + 10, 1, False)
    assert m.reports[-1].bug_type == "global-out-of-bounds"


def test_globals_on_arm32_are_reserved_direct_map_pages():
    m = machine(load_profile("arm32"))
    s = by_name(m)["pageptr"]
    g = m.register_global("global_array", 10)
    assert m.profile.page_offset <= g < m.profile.high_memory
    assert s.shadow_link(pfn_of(m, g)).startswith("block ")
    assert m.shadow.read(g, 64) == bytes([0, 2] + [KASAN_GLOBAL_REDZONE] * 6)


@pytest.mark.parametrize("attach, physical", [("byte-granular", 0), ("always", 2)])
def test_vmalloc_shadow_is_kept_per_virtual_page(x86, attach, physical):
    m = machine(x86, attach=attach)
    s = by_name(m)["pageptr"]
    before = s.footprint().blocks_in_use
    v = m.vmalloc(5000)  # 2 pages and a guard page
    assert s.footprint().blocks_in_use == before + 2 + physical
    served = [b.vaddr for blocks in s.shadow_slabs().values() for b in blocks if b.vaddr]
    assert served == [v, v + 4096]
    assert m.shadow.read(v + 4096, 4096) == bytes(113) + bytes([KASAN_VMALLOC_INVALID]) * 399
    assert m.shadow.read(v + 8192, 4096) == bytes([KASAN_VMALLOC_INVALID]) * 512  # guard
    assert not m.check_access(v + 5000, 1, False)
    assert m.reports[-1].bug_type == "vmalloc-out-of-bounds"
    m.vfree(v)  # the whole area is F8 again: blocks go back
    assert s.footprint().blocks_in_use == before
    assert m.shadow.read(v, 3 * 4096) == bytes([KASAN_VMALLOC_INVALID]) * 3 * 512


# --- out of memory ---------------------------------------------------------------------------


def test_no_memory_for_blocks_fails_the_allocation(x86):
    m = Machine(load_profile("x86_64", 64 << 20), schemes=("flat", "pageptr"))
    s = by_name(m)["pageptr"]
    # Leave fewer than 8 free blocks in the shadow cache (order-2 large kmallocs, 4 each).
    while s.footprint().blocks_capacity - s.footprint().blocks_in_use >= 8:
        assert m.kmalloc(3 * 4096 + 100)
    # Fill the buddy with page_alloc pages (no blocks under byte-granular).
    fillers = []
    while (pfn := m.alloc_pages(0)) is not None:
        fillers.append(pfn)
    # Give back one order-3 block: an order-3 kmalloc_large gets the pages but not its 8
    # blocks (the shadow cache would need an order-1 slab: none left).
    taken = set(fillers)
    head = next(p for p in fillers if p % 8 == 0 and all(p + i in taken for i in range(8)))
    for i in range(8):
        m.free_pages(head + i, 0)
    in_use = s.footprint().blocks_in_use
    assert m.kmalloc(7 * 4096 + 100) == 0
    assert s.footprint().blocks_in_use == in_use
    assert head not in m.pages and m.memmap.get(head, "state", 1) == PageState.FREE
    assert all(s.shadow_link(head + i) == "no block: page state" for i in range(8))
    addr = m.page_address(head)
    assert m.shadow.read(addr, 8 * 4096) == bytes([KASAN_PAGE_FREE]) * 8 * 512
    assert m.alloc_pages(3) == head  # the buddy has it back, whole


# --- the bill --------------------------------------------------------------------------------


def test_footprint_x86_64(x86):
    m = machine(x86)
    s = by_name(m)
    p = m.kmalloc(64)
    for name in ("pageptr", "pageext"):
        fp = s[name].footprint()
        cache = (getattr(s[name], "twin", None) or s[name])._cache
        assert fp.static_bytes == 0 and fp.virtual_range_bytes == 0
        assert not fp.inline_possible and not fp.stack_possible
        assert fp.shadow_slab_pages == 2 * m.slub.nr_slabs(cache)
        assert fp.dynamic_bytes == 4096 * fp.shadow_slab_pages <= fp.dynamic_peak_bytes
        assert fp.blocks_capacity == 16 * m.slub.nr_slabs(cache)
        # Under byte-granular, exactly the workload's slab pages have blocks.
        assert fp.blocks_in_use == sum(
            m.slub.nr_slabs(c) << c.layout.order for c in m.caches if not c.is_shadow
        )
    # struct page grows by 8 bytes for each of the 262013 present pages.
    assert s["pageptr"].footprint().metadata_bytes == 8 * 262013
    # page_ext: 8 sections of 128 MiB (32768 pages), entries of 8 (flags) + 8 (pointer).
    assert s["pageext"].footprint().metadata_bytes == 8 * 32768 * 16
    m.kfree(p)


@pytest.mark.parametrize(
    "profile, pageptr, pageext",
    [
        # 1 GiB at 0x40000000, 4 KiB pages, 32-bit: 262144 pages x 4;
        # 4 sections of 256 MiB x (4 + 4)
        ("arm32", 4 * 262144, 4 * 65536 * 8),
        # 1 GiB of 64 KiB pages: 16384 pages x 8; 2 sections of 512 MiB (8192 pages) x (8 + 8)
        ("arm64-64k-42", 8 * 16384, 2 * 8192 * 16),
    ],
)
def test_metadata_covers_all_present_memory(profile, pageptr, pageext):
    m = machine(load_profile(profile))
    s = by_name(m)
    assert s["pageptr"].footprint().metadata_bytes == pageptr
    assert s["pageext"].footprint().metadata_bytes == pageext


def test_loads_per_shadow_read(x86):
    m = machine(x86)
    s = by_name(m)

    def loads():
        return s["pageptr"].footprint().loads, s["pageext"].footprint().loads

    p = m.kmalloc(64)
    page = m.alloc_pages_addr(0)
    freed = m.alloc_pages_addr(0)
    m.free_pages_addr(freed, 0)
    a = loads()
    assert m.check_access(p, 1, False)  # slab page: pointer, byte
    b = loads()
    assert (b[0] - a[0], b[1] - a[1]) == (2, 3)
    assert m.check_access(page, 1, False)  # NULL pointer: allocated, 00
    c = loads()
    assert (c[0] - b[0], c[1] - b[1]) == (1, 2)
    assert not m.check_access(freed, 1, False)  # freed: FF needs one more load
    d = loads()
    assert (d[0] - c[0], d[1] - c[1]) == (2, 3)
    assert s["pageptr"].footprint().checks == s["flat"].footprint().checks


def test_pageext_leaves_struct_page_alone(x86):
    m = machine(x86, schemes=("pageext",))
    s = m.schemes[0]
    p = m.kmalloc(64)
    pfn = pfn_of(m, p)
    assert s.shadow_link(pfn).endswith("(page_ext)")
    assert m.memmap.get(pfn, "shadow", 0) == 0  # NULL


def test_shadow_slabs_view(x86):
    m = machine(x86, attach="always")
    s = by_name(m)["pageptr"]
    for _ in range(40):
        m.alloc_pages(0)
    slabs = s.shadow_slabs()
    cache = s._cache
    assert list(slabs) == m.slub.slab_heads(cache)
    used = 0
    for head, blocks in slabs.items():
        assert m.pages[head] == (1, PageUse.SHADOW)  # order-1 slabs, listed by head
        assert [b.addr for b in blocks] == [m.page_address(head) + 512 * i for i in range(16)]
        for b in blocks:
            if b.pfn is not None:
                used += 1
                assert s.shadow_link(b.pfn) == f"block {b.addr:#x} (pageptr)"
    assert used == s.footprint().blocks_in_use


# --- workloads in lockstep -------------------------------------------------------------------


def bug_types(profile, path, schemes, attach="byte-granular") -> list[str]:
    m = machine(profile, schemes=schemes, attach=attach)
    WorkloadRunner(m, parse_workload(str(path))).run()
    return [r.bug_type for r in m.reports]


KASAN_TEST = sorted(KW_DIR.glob("*.kw"))


@pytest.mark.parametrize("attach", POLICIES)
@pytest.mark.parametrize("path", KASAN_TEST, ids=lambda p: p.stem)
def test_kasan_test_workloads_agree_with_flat(x86, path, attach):
    flat = bug_types(x86, path, ("flat",))
    assert bug_types(x86, path, LOCKSTEP, attach) == flat
    assert bug_types(x86, path, ("pageptr",), attach) == flat


def test_every_kasan_test_workload_is_run():
    assert len(KASAN_TEST) == 58  # the 6.12 KUnit cases kinspect re-enacts


FEW = [
    "kmalloc_oob_right",
    "kmalloc_large_uaf",
    "kasan_global_oob_right",
    "vmalloc_oob",
    "mempool_page_alloc_uaf",
    "kasan_stack_oob",
    "kasan_alloca_oob_left",
    "kmem_cache_rcu_uaf",
]


@pytest.mark.parametrize("attach", POLICIES)
@pytest.mark.parametrize("profile", ["arm32", "arm64-64k-42"])
@pytest.mark.parametrize("case", FEW)
def test_workloads_agree_on_other_profiles(profile, case, attach):
    p = load_profile(profile)
    path = KW_DIR / f"{case}.kw"
    assert bug_types(p, path, LOCKSTEP, attach) == bug_types(p, path, ("flat",))


def test_boot_shadow_of_free_ram_in_the_first_chunk(x86):
    m = machine(x86)
    assert m.initial_shadow_byte(m.page_address(0x20)) == KASAN_PAGE_FREE
    m.shadow.read(m.page_address(0x20), 4096)


@pytest.mark.parametrize("name", ["x86_64", "arm32"])
@pytest.mark.parametrize("attach", POLICIES)
def test_has_own_shadow_is_what_the_page_pointer_and_the_per_page_byte_say(name, attach):
    """has_own_shadow(), the views' query, against each scheme's own record of it: pageptr's
    pointer in struct page (non-NULL), pageext's answer the same blocks', pshadow's per-page
    byte (KASAN_PER_PAGE_BYPASS: the page's shadow is its window's real shadow page); never
    for flat. After a churning workload, over every pfn of lowmem."""
    p = load_profile(name, 256 << 20)
    m = machine(p, ("flat", "pshadow", "pageptr", "pageext"), attach)
    text = Path(__file__).resolve().parent.parent / "samples" / "workloads" / "churn.kw"
    WorkloadRunner(m, parse_workload(str(text), text.read_text().splitlines())).run()
    flat, pshadow, pageptr, pageext = m.schemes
    lo, hi = p.phys_offset >> p.page_shift, p.max_low_pfn
    own = [pfn for pfn in range(lo, hi) if pageptr.has_own_shadow(pfn)]
    assert own and own == [pfn for pfn in range(lo, hi) if m.memmap.get(pfn, "shadow", 0)]
    assert own == [pfn for pfn in range(lo, hi) if pageext.has_own_shadow(pfn)]
    bypass = [pfn for pfn in range(lo, hi) if pshadow.has_own_shadow(pfn)]
    assert bypass == [
        pfn
        for pfn in range(lo, hi)
        if (pshadow.shadow_link(pfn) or "").startswith("pshadow ff (bypass)")
    ]
    if attach == "byte-granular":  # the same pages need byte-granular shadow
        assert bypass == own
    assert not any(flat.has_own_shadow(pfn) for pfn in range(lo, hi))
