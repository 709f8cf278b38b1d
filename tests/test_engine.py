"""Engine tests against oracles: hand-computed shadow bytes and the real kernel's numbers.

Real numbers quoted here come from the 6.12.117 KASAN kernel run (tests/data/kernel-run/SOURCE.md):
the kmalloc slot strides of its kmem trace and the slab counters of its reports.
"""

from __future__ import annotations

import pytest

from kinspect.engine.kasan import (
    KASAN_PAGE_FREE,
    KASAN_PAGE_REDZONE,
    KASAN_SLAB_FREE,
    KASAN_SLAB_FREE_META,
    KASAN_SLAB_REDZONE,
    get_shadow_bug_type,
    kasan_find_first_bad_addr,
    memory_is_poisoned,
)
from kinspect.engine.machine import Machine
from kinspect.engine.memory import PAGE_DTYPE, MemMap
from kinspect.engine.profile import load_profile
from kinspect.engine.report import Frame, format_report
from kinspect.engine.slab import QUARANTINE_PERCPU_SIZE, kmem_cache_layout, optimal_redzone

FC, FB, FA, FE, FF = (
    KASAN_SLAB_REDZONE,
    KASAN_SLAB_FREE,
    KASAN_SLAB_FREE_META,
    KASAN_PAGE_REDZONE,
    KASAN_PAGE_FREE,
)


@pytest.fixture(scope="module")
def x86():
    return load_profile("x86_64")


@pytest.fixture
def m(x86):
    return Machine(x86)


def shadow(m: Machine, addr: int, n: int) -> list[int]:
    return list(m.shadow.read(addr, n * 8))


# --- slab layout -----------------------------------------------------------------------------

# (cache, object size, s->size) from the real x86_64 trace (kernel-run README stride table).
REAL_X86_STRIDES = [
    ("kmalloc-8", 8, 32),
    ("kmalloc-16", 16, 32),
    ("kmalloc-32", 32, 64),
    ("kmalloc-64", 64, 128),
    ("kmalloc-96", 96, 128),
    ("kmalloc-128", 128, 256),
    ("kmalloc-192", 192, 256),
    ("kmalloc-256", 256, 512),
    ("kmalloc-512", 512, 1024),
    ("kmalloc-1k", 1024, 2048),
    ("kmalloc-2k", 2048, 4096),
    ("kmalloc-4k", 4096, 8192),
    ("kmalloc-8k", 8192, 16384),
]


def test_kmalloc_caches_match_real_x86_strides(m):
    got = [(c.name, c.object_size, c.size) for _, c in m.kmalloc_caches]
    assert got == REAL_X86_STRIDES


def test_arm32_has_no_kmalloc_below_64_and_real_strides():
    m = Machine(load_profile("arm32"))
    caches = {c.name: c for _, c in m.kmalloc_caches}
    assert min(c.object_size for c in caches.values()) == 64
    assert "kmalloc-96" not in caches and "kmalloc-192" in caches
    assert caches["kmalloc-64"].size == 128 and caches["kmalloc-128"].size == 256
    assert m.kmalloc_cache(32) is caches["kmalloc-64"]  # "bytes_req=32 bytes_alloc=128"


def test_objects_per_slab_match_real_slab_counters(m):
    # counters words of the real reports: kmalloc-128 0x10 objects, kmalloc-32 0x40,
    # test_cache(200) 0xf, kmem_cache 0xc (reports kmalloc_oob_right, rcu_uaf, kmem_cache_oob,
    # kmem_cache_double_destroy).
    assert m.kmalloc_cache(128).objects == 16
    assert m.kmalloc_cache(32).objects == 64
    test_cache = m.kmem_cache_create("test_cache", 200, 0, 0, False)
    assert (test_cache.size, test_cache.objects) == (264, 15)
    assert (m.kmem_cache_cache.size, m.kmem_cache_cache.objects) == (320, 12)


def test_kasan_cache_create_metadata_placement():
    kw = dict(word=8, page_shift=12, nr_cpus=2, max_order=10, kmalloc_max_size=4 << 20)
    small = kmem_cache_layout(8, 8, 0, False, **kw)
    # 8-byte object: free meta (16) starts in the object and spills 8 bytes; alloc meta moves.
    assert (small.alloc_meta_offset, small.free_meta_offset, small.size) == (16, 0, 32)
    rcu = kmem_cache_layout(200, 8, 0x00080000, False, **kw)
    # SLAB_TYPESAFE_BY_RCU: free pointer after the object, both metas in the redzone.
    assert (rcu.offset, rcu.alloc_meta_offset, rcu.free_meta_offset) == (200, 208, 224)
    assert optimal_redzone(48) == 16 and optimal_redzone(49) == 32 and optimal_redzone(3969) == 256


# --- shadow life cycle -----------------------------------------------------------------------


def test_kmalloc_115_shadow(m):
    p = m.kmalloc(115)
    # 14 accessible granules, 115 & 7 = 3 in the 15th, the 16th redzone, then the slot tail.
    assert shadow(m, p, 32) == [0] * 14 + [3] + [FC] * 17


def test_kfree_shadow_and_quarantine(m):
    p = m.kmalloc(115)
    m.kfree(p)
    assert shadow(m, p, 32) == [FA] + [FB] * 15 + [FC] * 16
    q = m.kmalloc(115)
    assert q != p  # p sits in quarantine


def test_new_slab_is_all_redzone(m):
    p = m.kmalloc(64)
    slab = m.find_slab(p)
    assert shadow(m, p, 16) == [0] * 8 + [FC] * 8
    assert shadow(m, p + 128, 16) == [FC] * 16  # the next, never allocated slot
    assert slab.objects == 32


def test_large_kmalloc_shadow(m):
    p = m.kmalloc(8202)
    # order 2 (16 KiB): 1025 accessible granules, 02, then FE to the end of the compound page.
    s = shadow(m, p, 2048)
    assert s[:1025] == [0] * 1025 and s[1025] == 2 and set(s[1026:]) == {FE}
    m.kfree(p)
    assert set(shadow(m, p, 2048)) == {FF}


def test_krealloc_in_place_moves_the_redzone(m):
    p = m.kmalloc(201)
    q = m.krealloc(p, 235)
    assert q == p
    assert shadow(m, p, 32) == [0] * 29 + [3] + [FC] * 2
    r = m.krealloc(p, 201)
    assert r == p and shadow(m, p, 32) == [0] * 25 + [1] + [FC] * 6


def test_quarantine_delays_reuse_until_ram_over_32():
    x86 = load_profile("x86_64", 128 << 20)
    m = Machine(x86)
    cache = m.kmalloc_cache(64)
    first = m.kmalloc(64)
    m.kfree(first)
    reused_after = None
    freed_bytes = cache.size
    for _ in range(40000):
        p = m.kmalloc(64)
        if p == first:
            reused_after = freed_bytes
            break
        m.kfree(p)
        freed_bytes += cache.size
    assert reused_after is not None
    limit = x86.mem_total // 32 - QUARANTINE_PERCPU_SIZE * x86.nr_cpus
    assert limit < reused_after < limit + 3 * QUARANTINE_PERCPU_SIZE


# --- the check ---------------------------------------------------------------------------------


def _sb(table):
    return lambda addr: table.get(addr & ~7, 0)


@pytest.mark.parametrize(
    "addr,size,bad",
    [
        (0x1000, 1, False),
        (0x1007, 1, True),  # granule 0x1000 is 03: bytes 0..2 valid
        (0x1002, 1, False),
        (0x1003, 1, True),
        (0x0FFE, 2, False),
        (0x0FFF, 2, False),
        (0x1001, 2, False),
        (0x1002, 2, True),
        (0x0FFC, 8, True),
        (0x0FF8, 8, False),
        (0x0FFB, 8, False),
        (0x0FFD, 8, True),
        (0x0FF0, 16, False),
        (0x0FF3, 16, False),
        (0x0FF4, 16, True),
        (0x0FF8, 16, True),
        (0x0FE0, 35, False),
        (0x0FE0, 36, True),
        (0x0FE0, 44, True),
    ],
)
def test_memory_is_poisoned_hand_cases(addr, size, bad):
    sb = _sb({0x1000: 3, 0x1008: FC})
    assert memory_is_poisoned(sb, addr, size) is bad


def test_first_bad_addr_steps_from_the_access_address():
    sb = _sb({0x1010: 3, 0x1018: FC})
    assert kasan_find_first_bad_addr(sb, 0x1004, 32) == 0x1014
    assert get_shadow_bug_type(sb, 0x1010) == "slab-out-of-bounds"  # 03 looks at the next


def test_one_terabyte_costs_nothing_until_touched():
    big = Machine(load_profile("x86_64", 1 << 40))
    small = Machine(load_profile("x86_64", 1 << 30))
    assert big.profile.mem_total == 1 << 40
    # Booting touches the kernel image's section and the one the boot slabs come from
    # (ZONE_NORMAL above 4 GiB on the big machine, DMA32 on the small one): nothing else.
    sections = lambda m: sum(1 for _ in m.memmap.for_each_section())  # noqa: E731
    assert sections(big) <= 2 and sections(small) <= 2
    assert len(big.shadow._chunks) <= 3 and len(small.shadow._chunks) <= 3


def test_out_of_memory_is_a_null_result():
    m = Machine(load_profile("x86_64", 64 << 20))
    got = [m.alloc_pages_addr(10) for _ in range(64)]
    assert got[0] != 0 and got[-1] == 0  # 4 MiB blocks run out before 64 of them
    assert m.kmalloc(1 << 22) == 0


def test_buddy_split_and_merge_restore_the_free_blocks(m):
    zone = m.zones[0]
    before = zone.nr_free()
    pfns = [m.alloc_pages(0) for _ in range(10)]
    for pfn in pfns:
        m.free_pages(pfn, 0)
    assert zone.nr_free() == before


def test_struct_page_views_with_kernel_names(m):
    from kinspect.engine.memory import PageState, page_to_pfn, pfn_to_page, virt_to_page

    p = m.kmalloc(9000)  # an order-2 compound page
    head = virt_to_page(m.memmap, p)
    assert head.PageHead() and head.order == 2 and head.refcount == 1
    assert head.state == PageState.LARGE_KMALLOC
    tail = pfn_to_page(m.memmap, page_to_pfn(head) + 3)
    assert tail.PageTail() and tail.head == head.pfn
    slab_page = virt_to_page(m.memmap, m.kmalloc(64))
    assert slab_page.PageSlab() and slab_page.cache == m.kmalloc_cache(64).id
    untouched = pfn_to_page(m.memmap, m.profile.max_pfn // 2)  # 512 MiB: never used
    assert untouched.state == PageState.FREE and untouched.refcount == 0


@pytest.mark.parametrize(
    "field,value",
    [
        ("flags", 0xDEADBEEF),
        ("page_type", 0xF0000000),
        ("order", 9),
        ("refcount", -3),
        ("cache", 77),
        ("state", 4),
        ("head", -1),
        ("shadow", 0xFFFF888012345000),
    ],
)
def test_set_field_writes_one_field_of_one_page(field, value):
    """set_field() on one page packs the value in place: that field of that page changes, as
    numpy reads it back; its neighbours and the page's other fields do not."""
    memmap = MemMap(load_profile("x86_64"))
    record = (1, 2, 3, 4, 5, 6, 7, 8)
    memmap.set_pages(4095, 3, record)  # across a section boundary or not
    for pfn in (4095, 4096):
        memmap.set_field(pfn, 1, field, value)
    memmap.set_field(4097, 1, field, value)
    memmap.set_field(4097, 1, field, record[PAGE_DTYPE.names.index(field)])
    names = PAGE_DTYPE.names
    for pfn in (4095, 4096, 4097):
        for name, want in zip(names, record):
            got = memmap.get(pfn, name, None)
            assert got == (value if name == field and pfn < 4097 else want), (pfn, name)


# show_stack()'s heading and closing lines around the frames, read from the 6.12 sources
# (arch/x86/kernel/dumpstack.c show_trace_log_lvl(), arch/arm64/kernel/stacktrace.c
# dump_backtrace(), arch/riscv/kernel/stacktrace.c and arch/powerpc/kernel/process.c
# show_stack(), arch/arm/kernel/traps.c dump_backtrace() with CONFIG_ARM_UNWIND: none).
@pytest.mark.parametrize(
    "profile, opening, closing",
    [
        ("x86_64", ["Call Trace:", " <TASK>"], [" </TASK>"]),
        ("arm64-4k-48", ["Call trace:"], []),
        ("riscv64-sv39", ["Call Trace:"], []),
        ("ppc32", ["Call Trace:"], []),
        ("arm32", [], []),
    ],
)
def test_report_stack_framed_as_the_architecture_prints_it(profile, opening, closing, engine):
    m = Machine(load_profile(profile, 64 << 20), engine=engine)
    obj = m.kmalloc(100)
    m.check_access(obj + 100, 1, True)
    lines = format_report(m.reports[0]).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Hardware name: ")) + 1
    end = lines.index("", start)
    frame = m.ip.trace_line()
    assert lines[start:end] == [*opening, frame, *closing]


def test_a_track_without_a_saved_stack_is_not_printed(engine):
    """describe_object_stacks() (mm/kasan/report.c) prints a track only when its stack was
    saved: stack depot handle 0 (no stack) leaves "Allocated by task" out."""
    m = Machine(load_profile("x86_64", 64 << 20), engine=engine)
    m.task = m._get_task("worker", 7)
    m.ip_handle = 0  # no stack saved for the allocation
    obj = m.kmalloc(100)
    m.set_ip(Frame("free_it", 0x10, 0x40))
    m.kfree(obj)
    m.check_access(obj, 1, False)
    text = format_report(m.reports[0])
    assert "Allocated by task" not in text
    assert "Freed by task 7:\n free_it+0x10/0x40\n" in text
