"""Architecture profiles: the samples load, derived numbers match hand computations and the real
6.12.117 runs (tests/data/kernel-run/), --mem resizes RAM, and every bad value is reported as
one ProfileError at the file, line and column of the offending key."""

from __future__ import annotations

import re
import time

import pytest

from kinspect.engine.errors import ProfileError
from kinspect.engine.profile import (
    PROFILES_DIR,
    ArchProfile,
    MemoryRange,
    Zone,
    find_profile_path,
    format_profiles_table,
    format_size,
    list_profiles,
    load_profile,
    parse_size,
)

SAMPLES = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
G = 1 << 30


# --- the samples ------------------------------------------------------------------------------


def test_required_samples_exist():
    samples = {"x86_64", "arm64-4k-48", "arm64-64k-42", "arm32", "riscv64-sv39", "ppc32"}
    assert samples <= set(SAMPLES)


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_loads_and_is_consistent(name):
    p = load_profile(name)
    assert isinstance(p, ArchProfile)
    assert p.name == name and p.path == find_profile_path(name)
    assert p.kasan_granule_size == 8 and p.word_size * 8 == p.bits
    assert p.kasan_mem_to_shadow(p.page_offset) >= p.kasan_shadow_start
    assert p.kasan_mem_to_shadow(p.high_memory - 1) < p.kasan_shadow_end
    assert p.addr_has_metadata(p.page_offset) and p.addr_has_metadata(p.kernel_image_start)
    assert not p.addr_has_metadata(0)
    assert p.pfn_valid(p.kernel_image_phys >> p.page_shift)
    assert p.zones[-1].end is None
    assert p.virt_to_phys(p.phys_to_virt(p.memory[0].start)) == p.memory[0].start
    with open(p.path, encoding="utf-8") as f:
        assert f.readline().startswith("#"), "each sample starts with a comment citing its sources"


def test_list_profiles_sorted_by_name():
    assert [p.name for p in list_profiles()] == SAMPLES


def test_profiles_table():
    text = format_profiles_table(list_profiles())
    assert max(len(line) for line in text.splitlines()) <= 80
    blocks = [block.splitlines() for block in text.split("\n\n")]
    assert [block[0].split()[:2] for block in blocks] == [
        ["NAME", "ARCH"],
        ["NAME", "PAGE_OFFSET"],
        ["NAME", "KASAN_SHADOW_START"],
    ]
    assert all(len(block) == len(SAMPLES) + 1 for block in blocks)

    def row(block, name):
        return next(line for line in blocks[block] if line.startswith(name + " ")).split()

    assert row(0, "arm32") == ["arm32", "arm", "32", "4K", "1G", "(768M", "low)", "32", "yes"]
    assert row(1, "arm32") == ["arm32", "0xc0000000", "0x9f000000"]
    assert row(2, "arm32") == ["arm32", "0xb6e00000", "0xbf000000", "130M"]
    assert row(2, "x86_64") == ["x86_64", "0xffffec0000000000", "0xfffffc0000000000", "16T"]
    # aligned columns: every row of the second block has PAGE_OFFSET at the same column
    column = blocks[1][0].index("PAGE_OFFSET")
    assert all(line[column : column + 2] == "0x" for line in blocks[1][1:])


# --- derived numbers, by hand and from the real runs ----------------------------------------------


def test_x86_64_numbers():
    p = load_profile("x86_64")
    assert p.kasan_mem_to_shadow(0xFFFF888000000000) == 0xFFFFED1000000000
    # KASAN_SHADOW_START shadows the start of the upper half (arch/x86/include/asm/kasan.h)
    assert p.kasan_mem_to_shadow(0xFFFF800000000000) == p.kasan_shadow_start == 0xFFFFEC0000000000
    assert p.kasan_shadow_to_mem(0xFFFFED1000000000) == 0xFFFF888000000000
    assert p.kasan_shadow_end - p.kasan_shadow_start == 16 << 40
    assert p.addr_has_metadata(0xFFFF800000000000) and not p.addr_has_metadata(0x00007FFFFFFFFFFF)
    assert (p.page_size, p.word_size, p.pages_per_section) == (4096, 8, 32768)
    # the real KUnit run: 262013 pages in [0x1000, 0x9f000) and [0x100000, 0x3ffdf000)
    assert p.memory == (MemoryRange(0x1000, 0x9F000), MemoryRange(0x100000, 0x3FFDF000))
    assert p.mem_total == 262013 * 4096
    assert (p.min_pfn, p.max_pfn) == (1, 0x3FFDF)
    assert [p.pfn_valid(pfn) for pfn in (0, 1, 0x9E, 0x9F, 0xFF, 0x100, 0x3FFDE, 0x3FFDF)] == [
        False,
        True,
        True,
        False,
        False,
        True,
        True,
        False,
    ]
    assert p.zones == (Zone("DMA32", 4 * G), Zone("Normal", None))
    assert p.zone_of_pfn(0x3FFDE) == 0 and p.zone_of_pfn(0x100000) == 1
    # reports/kmem_cache_double_destroy.txt: object ffff888004cf4dc0 on "pfn:0x4cf4"
    assert p.virt_to_phys(0xFFFF888004CF4DC0) >> p.page_shift == 0x4CF4
    assert p.phys_to_virt(0x4CF4DC0) == 0xFFFF888004CF4DC0
    assert p.is_lowmem_pfn(0x4CF4) and p.lowmem_limit is None
    with pytest.raises(ValueError):
        p.virt_to_phys(0xFFFFFFFF82DF4B4D)  # a global: kernel image, not direct map
    with pytest.raises(ValueError):
        p.phys_to_virt(0x3FFDF000)  # above the end of RAM


def test_x86_64_trace_machine_matches_proc_snapshot():
    p = load_profile("x86_64-q35-3g")
    # proc/zoneinfo: DMA32 present 524154 pages, Normal present 262144 pages from pfn 0x100000
    dma32 = sum(r.size for r in p.memory if r.end <= 4 * G) >> p.page_shift
    assert dma32 == 524154 and (p.mem_total >> p.page_shift) - dma32 == 262144
    # the kmem trace's kmalloc ptr=ffff88810644b100 lives on pfn 0x10644b, in ZONE_NORMAL
    pfn = p.virt_to_phys(0xFFFF88810644B100) >> p.page_shift
    assert pfn == 0x10644B and p.pfn_valid(pfn) and p.zones[p.zone_of_pfn(pfn)].name == "Normal"


def test_arm32_numbers():
    p = load_profile("arm32")
    assert (p.kasan_shadow_start, p.kasan_shadow_end) == (0xB6E00000, 0xBF000000)
    assert p.kasan_shadow_end - p.kasan_shadow_start == 130 << 20
    # the run's boot log: "c0000000-f0000000 at shadow: b7000000-bd000000",
    # "bfe00000-c0000000 at shadow: b6fc0000-b7000000"
    assert p.kasan_mem_to_shadow(0xC0000000) == 0xB7000000
    assert p.kasan_mem_to_shadow(0xF0000000) == 0xBD000000
    assert p.kasan_mem_to_shadow(0xBFE00000) == 0xB6FC0000
    assert p.kasan_shadow_to_mem(p.kasan_shadow_start) == 0xBF000000  # MODULES_VADDR
    assert p.addr_has_metadata(0xBF000000) and not p.addr_has_metadata(0xBEFFFFFF)
    assert p.kasan_mem_to_shadow(0xFFFFFFFF) == p.kasan_shadow_end - 1
    assert p.task_size == p.kasan_shadow_start
    # 768 MiB lowmem (Normal), 256 MiB HighMem
    assert p.lowmem_limit == 0x70000000 and p.max_low_pfn == 0x70000
    assert p.high_memory == 0xF0000000
    assert p.is_lowmem_pfn(0x6FFFF) and not p.is_lowmem_pfn(0x70000)
    assert p.pfn_valid(0x7FFFF) and not p.pfn_valid(0x80000) and not p.pfn_valid(0x3FFFF)
    assert [z.name for z in p.zones] == ["Normal", "HighMem"]
    assert p.zone_of_pfn(0x6FFFF) == 0 and p.zone_of_pfn(0x70000) == 1
    assert p.phys_to_virt(p.kernel_image_phys) == p.kernel_image_start == 0xC0E00000
    # the arm32 kmem trace: kmalloc ptr=c4200b00; mm_page_alloc pfn=0x4421a
    assert p.virt_to_phys(0xC4200B00) == 0x44200B00
    with pytest.raises(ValueError):
        p.phys_to_virt(0x70000000)  # highmem has no direct mapping
    with pytest.raises(ValueError):
        p.virt_to_phys(0xF0000000)
    assert (p.sizeof_struct_page, p.page_ext_size, p.kmalloc_minalign) == (32, 4, 64)


@pytest.mark.parametrize(
    "name, addr, shadow",
    [
        ("arm64-4k-48", 0xFFFF000000000000, 0xFFFF600000000000),
        ("arm64-4k-48", 0xFFFF7FFFFFFFFFFF, 0xFFFF6FFFFFFFFFFF),
        ("arm64-64k-42", 0xFFFFFC0000000000, 0xFFFFFD8000000000),
        ("riscv64-sv39", 0xFFFFFFC000000000, 0xFFFFFFF700000000),
        ("riscv64-sv39", 0xFFFFFFD600000000, 0xFFFFFFF9C0000000),
        ("ppc32", 0xC0000000, 0xF8000000),
        ("ppc32", 0xFFFFFFFF, 0xFFFFFFFF >> 3 | 0xE0000000),
    ],
)
def test_kasan_mem_to_shadow(name, addr, shadow):
    p = load_profile(name)
    assert p.kasan_mem_to_shadow(addr) == shadow
    assert p.kasan_shadow_to_mem(shadow) == addr & ~7


def test_other_arch_numbers():
    a64k = load_profile("arm64-64k-42")
    assert (a64k.page_size, a64k.pages_per_section, a64k.max_order) == (65536, 8192, 13)
    assert a64k.phys_to_virt(0x40000000) == 0xFFFFFC0000000000
    a4k = load_profile("arm64-4k-48")
    assert a4k.kasan_shadow_to_mem(a4k.kasan_shadow_start) == a4k.page_offset
    ppc = load_profile("ppc32")
    assert (ppc.endianness, ppc.bits, ppc.lowmem_limit) == ("big", 32, 0x30000000)
    assert ppc.high_memory == 0xF0000000 and ppc.zone_of_pfn(0x30000) == 1
    rv = load_profile("riscv64-sv39")
    assert rv.phys_to_virt(0x80000000) == 0xFFFFFFD600000000 and rv.vmalloc_end == rv.page_offset


# --- --mem ----------------------------------------------------------------------------------------


def test_mem_extends_the_last_range():
    p = load_profile("x86_64", mem=G)
    assert p.mem_total == G
    assert p.memory[0] == MemoryRange(0x1000, 0x9F000)  # the hole below 1 MiB stays
    assert p.memory[1].start == 0x100000 and p.memory[1].end == 0x100000 + G - 0x9E000


def test_mem_truncates_in_order():
    p = load_profile("x86_64-q35-3g", mem=G)
    assert p.memory == (MemoryRange(0x1000, 0x9F000), MemoryRange(0x100000, 0x40062000))
    assert not p.pfn_valid(0x100000)  # the range above 4 GiB is gone


def test_mem_one_terabyte_costs_nothing():
    start = time.perf_counter()
    p = load_profile("x86_64", mem=1 << 40)
    assert p.mem_total == 1 << 40 and p.pfn_valid(p.max_pfn - 1)
    assert p.zones[p.zone_of_pfn(p.max_pfn - 1)].name == "Normal"
    assert time.perf_counter() - start < 1.0


def test_mem_arm32_keeps_lowmem_limit():
    small = load_profile("arm32", mem=512 << 20)
    assert small.memory == (MemoryRange(0x40000000, 0x60000000),)
    assert small.max_low_pfn == 0x60000 and small.high_memory == 0xE0000000
    big = load_profile("arm32", mem=3 * G)  # RAM up to exactly 4 GiB
    assert big.memory[-1].end == 1 << 32 and big.max_low_pfn == 0x70000


@pytest.mark.parametrize(
    "name, mem, message",
    [
        ("x86_64", 4097, "not a positive multiple of the page size (4K)"),
        ("x86_64", 0, "not a positive multiple"),
        ("arm64-64k-42", 4096, "page size (64K)"),
        ("arm32", 4 * G, "beyond the 32-bit physical address space"),
        ("arm32", 1 << 40, "beyond the 32-bit physical address space"),
        ("ppc32", 4 * G + 4096, "beyond the 32-bit"),
        ("riscv64-sv39", 150 * G, "runs into the KASAN shadow region"),
        ("riscv64-sv39", 1 << 40, "does not fit in 64 bits"),
        ("x86_64", 16 << 20, "kernel_image_phys 0x2600000 is not in RAM"),
        ("x86_64", 65 << 40, "beyond the 46-bit"),
    ],
)
def test_mem_errors_name_the_option(name, mem, message):
    with pytest.raises(ProfileError) as info:
        load_profile(name, mem=mem)
    assert info.value.path == "--mem" and info.value.line is None
    assert message in info.value.message
    assert str(info.value).startswith("--mem: ")


# --- sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("4096", 4096),
        ("0x1000", 4096),
        ("0X1F", 31),
        ("1k", 1024),
        ("4K", 4096),
        ("512M", 512 << 20),
        ("1G", G),
        ("1g", G),
        ("1T", 1 << 40),
        (" 2G ", 2 * G),
        ("1.5K", 1536),
        ("0.5G", 512 << 20),
        ("0", 0),
    ],
)
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "G", "1X", "-1G", "1.3K", "1 G B", "0x", "1e3", "ten"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="bad size"):
        parse_size(text)


@pytest.mark.parametrize(
    "value, text",
    [
        (G, "1G"),
        (1536, "1.5K"),
        (100, "100"),
        (0, "0"),
        (4096, "4K"),
        (1 << 40, "1T"),
        (130 << 20, "130M"),
        (768 << 20, "768M"),
        (16 << 40, "16T"),
    ],
)
def test_format_size(value, text):
    assert format_size(value) == text
    assert parse_size(text) == value


# --- errors: one ProfileError at the offending key ------------------------------------------------


def _write(tmp_path, base: str, edits: list[tuple[str, str]]) -> tuple[str, str]:
    text = (PROFILES_DIR / f"{base}.toml").read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"bad-{base}.toml"
    path.write_text(text, encoding="utf-8")
    return str(path), text


def _position(text: str, marker: str) -> tuple[int, int]:
    """1-based line and column where ``marker`` starts: the first line that is exactly
    ``marker``, else the first line that sets the key ``marker``."""
    lines = text.splitlines()
    for matches in (lambda s: s == marker, lambda s: re.match(rf"{re.escape(marker)}\s*=", s)):
        for lineno, line in enumerate(lines, 1):
            if matches(line.strip()):
                return lineno, len(line) - len(line.lstrip()) + 1
    raise AssertionError(f"marker {marker!r} not in the edited file")


X86_ERRORS = [
    # (edits, marker of the offending key (None: top of file), message fragment)
    (
        [("page_shift = 12", "page_shift = 12\npag_shift = 12")],
        "pag_shift",
        "unknown key 'pag_shift' in [mm]",
    ),
    (
        [('kernel_release = "6.12.117"', 'kernel_release = "6.12.117"\nrelease = "x"')],
        "release",
        "unknown key 'release' in the top level",
    ),
    ([("[kasan]", "[kasn]")], "[kasn]", "unknown key 'kasn'"),
    ([("nr_cpus = 2\n", "")], "[cpu]", "missing key 'nr_cpus' in [cpu]"),
    (
        [
            (
                'description = "x86_64, 4-level paging (47-bit), 4K pages; QEMU q35, 2 CPUs, 1 GiB '
                '(the real 6.12.117 run)"\n',
                "",
            )
        ],
        None,
        "missing key 'description'",
    ),
    ([("bits = 64", 'bits = "sixty-four"')], "bits", "bits: bad size 'sixty-four'"),
    ([("bits = 64", "bits = 48")], "bits", "bits must be 32 or 64"),
    ([("bits = 64", "bits = 32")], "bits", "arch 'x86_64' is 64-bit"),
    ([('arch = "x86_64"', 'arch = "mips"')], "arch", "has no generic KASAN"),
    ([('arch = "x86_64"', "arch = 64")], "arch", "arch must be a non-empty string"),
    ([('endianness = "little"', 'endianness = "middle"')], "endianness", "endianness must be"),
    ([("nr_cpus = 2", "nr_cpus = true")], "nr_cpus", "must be an integer"),
    ([("nr_cpus = 2", "nr_cpus = 0")], "nr_cpus", "at least 1"),
    ([("page_shift = 12", "page_shift = 13")], "page_shift", "page_shift must be 12, 14 or 16"),
    ([("max_physmem_bits = 46", "max_physmem_bits = 70")], "max_physmem_bits", "must lie in"),
    (
        [("section_size_bits = 27", "section_size_bits = 50")],
        "section_size_bits",
        "exceeds MAX_PHYSMEM_BITS",
    ),
    ([("max_order = 10", "max_order = 16")], "max_order", "exceeds SECTION_SIZE_BITS 27"),
    (
        [("thread_size_order = 3", "thread_size_order = 11")],
        "thread_size_order",
        "exceeds MAX_PAGE_ORDER",
    ),
    (
        [("sizeof_struct_page = 64", "sizeof_struct_page = 60")],
        "sizeof_struct_page",
        "multiple of the word size (8)",
    ),
    ([("page_ext_size = 8", "page_ext_size = 0")], "page_ext_size", "multiple of the word size"),
    ([("kmalloc_minalign = 8", "kmalloc_minalign = 24")], "kmalloc_minalign", "power of two"),
    ([("slab_minalign = 8", "slab_minalign = 3")], "slab_minalign", "power of two"),
    (
        [("sizeof_kmem_cache = 200", "sizeof_kmem_cache = 0")],
        "sizeof_kmem_cache",
        "must be positive",
    ),
    ([("phys_offset = 0", "phys_offset = -4096")], "phys_offset", "must not be negative"),
    (
        [("page_offset = 0xffff888000000000", "page_offset = 0x1ffff888000000000")],
        "page_offset",
        "does not fit in 64 bits",
    ),
    (
        [("page_offset = 0xffff888000000000", "page_offset = 0xffff888000000100")],
        "page_offset",
        "not page aligned",
    ),
    (
        [("task_size = 0x00007ffffffff000", "task_size = 0xffff900000000000")],
        "task_size",
        "TASK_SIZE reaches",
    ),
    (
        [("vmalloc_end = 0xffffe90000000000", "vmalloc_end = 0xffffc80000000000")],
        "vmalloc_start",
        "below vmalloc_end",
    ),
    (
        [("vmalloc_end = 0xffffe90000000000", "vmalloc_end = 0xffffed0000000000")],
        "vmalloc_start",
        "overlaps the KASAN shadow",
    ),
    (
        [("inline_instrumentation = true", "inline_instrumentation = 1")],
        "inline_instrumentation",
        "true or false",
    ),
    (
        [("kasan_shadow_scale_shift = 3", "kasan_shadow_scale_shift = 4")],
        "kasan_shadow_scale_shift",
        "SHADOW_SCALE_SHIFT 3",
    ),
    (
        [("kasan_shadow_offset = 0xdffffc0000000000", "kasan_shadow_offset = 0xdfffec0000000000")],
        "kasan_shadow_offset",
        "kasan_mem_to_shadow(page_offset 0xffff888000000000)",
    ),
    (
        [("kasan_shadow_start = 0xffffec0000000000", "kasan_shadow_start = 0xfffffc0000000000")],
        "kasan_shadow_start",
        "below kasan_shadow_end",
    ),
    (
        [("kasan_shadow_end = 0xfffffc0000000000", "kasan_shadow_end = 0xfffffc0000000100")],
        "kasan_shadow_end",
        "not page aligned",
    ),
    (
        [("kernel_image_start = 0xffffffff82600000", "kernel_image_start = 0x82600000")],
        "kasan_shadow_offset",
        "kasan_mem_to_shadow(kernel_image_start 0x82600000)",
    ),
    (
        [("kernel_image_phys = 0x02600000", "kernel_image_phys = 0x80000000")],
        "kernel_image_phys",
        "is not in RAM",
    ),
    ([("end = 0x9f000", "end = 0x9f001")], "end = 0x9f001", "not page aligned"),
    ([("end = 0x9f000", "end = 0x1000")], "end = 0x1000", "must not be empty"),
    ([("start = 0x100000", "start = 0x9e000")], "start = 0x9e000", "sorted and disjoint"),
    (
        [("end = 0x9f000", 'end = 0x9f000\nsize = "4K"')],
        "[[memory.range]]",
        "exactly one of 'end' and 'size'",
    ),
    (
        [("start = 0x1000\n", "begin = 0x1000\n")],
        "begin",
        "unknown key 'begin' in [[memory.range]] #1",
    ),
    (
        [("end = 0x3ffdf000", 'end = "65T"')],
        'end = "65T"',
        "beyond the 46-bit physical address space",
    ),
    (
        [
            (
                "[[memory.range]]\nstart = 0x1000\n",
                "[memory]\nlowmem_limit = 0x40000000\n\n[[memory.range]]\nstart = 0x1000\n",
            )
        ],
        "lowmem_limit",
        "32-bit HIGHMEM",
    ),
    ([('name = "DMA32"', 'name = "DMA31"')], 'name = "DMA31"', "unknown zone 'DMA31'"),
    ([('name = "Normal"', 'name  = "DMA32"')], 'name  = "DMA32"', "appears twice"),
    ([('name = "Normal"', 'name = "Normal"\nend = "8G"')], 'end = "8G"', "leave out 'end'"),
    ([('end = "4G"\n', "")], "[[zone]]", "needs an 'end'"),
    ([('end = "4G"', "end = 0")], "end = 0", "increasing"),
    ([('name = "Normal"', 'name = "HighMem"')], 'name = "HighMem"', "needs lowmem_limit"),
    ([("bits = 64", "bits = = 64")], "bits", "Invalid value"),
]


@pytest.mark.parametrize(
    "edits, marker, message",
    X86_ERRORS,
    ids=[f"{i}-{m or 'top'}" for i, (_, m, _) in enumerate(X86_ERRORS)],
)
def test_x86_64_error_positions(tmp_path, edits, marker, message):
    path, text = _write(tmp_path, "x86_64", edits)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    error = info.value
    assert error.path == path
    assert message in error.message
    if marker is None:
        assert (error.line, error.col) == (1, 1)
    elif message == "Invalid value":  # tomllib's own position: the second '='
        assert (error.line, error.col) == (_position(text, marker)[0], len("bits = ="))
    else:
        assert (error.line, error.col) == _position(text, marker)
    assert str(error) == f"{path}:{error.line}:{error.col}: {error.message}"


ARM32_ERRORS = [
    (
        [("lowmem_limit = 0x70000000", "lowmem_limit = 0x60000000")],
        "lowmem_limit",
        "must end at lowmem_limit",
    ),
    (
        [("lowmem_limit = 0x70000000\n", "")],
        'name = "HighMem"',
        "a HighMem zone needs lowmem_limit",
    ),
    (
        [
            ("lowmem_limit = 0x70000000", "lowmem_limit = 0x78000000"),
            ("end = 0x70000000", "end = 0x78000000"),
        ],
        'size = "1G"',
        "runs into the vmalloc area",
    ),
    (
        [("page_offset = 0xc0000000", "page_offset = 0x1c0000000")],
        "page_offset",
        "does not fit in 32 bits",
    ),
    ([('size = "1G"', 'size = "4G"')], 'size = "4G"', "beyond the 32-bit physical address space"),
    ([("start = 0x40000000", "start = 0x3ffff000")], "start = 0x3ffff000", "below PHYS_OFFSET"),
]


@pytest.mark.parametrize("edits, marker, message", ARM32_ERRORS)
def test_arm32_error_positions(tmp_path, edits, marker, message):
    path, text = _write(tmp_path, "arm32", edits)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert message in info.value.message
    assert (info.value.path, info.value.line, info.value.col) == (path, *_position(text, marker))


def test_zone_written_inline_is_rejected(tmp_path):
    text = (PROFILES_DIR / "x86_64.toml").read_text(encoding="utf-8")
    text = text[: text.index("[[zone]]")].replace("[cpu]", 'zone = "DMA32"\n\n[cpu]')
    path = tmp_path / "inline-zone.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError, match=r"write one \[\[zone\]\] table per entry") as info:
        load_profile(str(path))
    assert (info.value.line, info.value.col) == _position(text, "zone")


def test_toml_error_at_end_of_document(tmp_path):
    path = tmp_path / "eof.toml"
    path.write_text('description = "x"\nkernel_release = "6.12', encoding="utf-8")
    with pytest.raises(ProfileError, match="Unterminated string") as info:
        load_profile(str(path))
    assert (info.value.path, info.value.line) == (str(path), 2)


def test_unreadable_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'description = "caf\xe9"\n')
    with pytest.raises(ProfileError, match="cannot read profile") as info:
        load_profile(str(path))
    assert info.value.path == str(path)


def test_find_profile_path(tmp_path):
    assert find_profile_path("arm32") == str(PROFILES_DIR / "arm32.toml")
    with pytest.raises(ProfileError, match="unknown profile .*arm32.*x86_64") as info:
        find_profile_path("vax")
    assert info.value.path == "vax"
    with pytest.raises(ProfileError, match="no such profile file"):
        find_profile_path(str(tmp_path / "missing.toml"))
