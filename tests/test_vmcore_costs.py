"""The 2017 comparison on the first-report dump (kinspect/vmcore/costs.py): the four schemes'
bills for the dump's memory, checked against what can be counted by hand from the dump's
struct pages and shadow (skipped when the shared dumps are absent, as tests/test_vmcore.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kinspect.cli import main
from kinspect.engine.shadow.base import BYTE_GRANULAR_USES, PageUse
from kinspect.vmcore import Kernel
from kinspect.vmcore.costs import PAGE_SIZE, SHADOW_PER_PAGE, bill_lines, scheme_bills
from kinspect.vmcore.reader import DumpReader
from test_vmcore import pytestmark, unpacked  # noqa: F401  (the same skip)

OBJ_PFN = 0x6578  # kmalloc_oob_right's kmalloc-128 slab


@pytest.fixture(scope="module")
def bills():
    with Kernel(str(unpacked("vmcore-first-report.elf")), str(unpacked("vmlinux"))) as k:
        yield scheme_bills(DumpReader(k), engine="python")


def test_both_engines_bill_alike(bills, engine) -> None:
    with Kernel(str(unpacked("vmcore-first-report.elf")), str(unpacked("vmlinux"))) as k:
        other = scheme_bills(DumpReader(k), engine=engine)
    assert other.machine.engine == engine
    assert {n: f.as_dict() for n, f in other.bills.items()} == {
        n: f.as_dict() for n, f in bills.bills.items()
    }
    assert other.blocks.blocks == bills.blocks.blocks


def test_the_dump_blocks_from_its_struct_pages(bills) -> None:
    b = bills.blocks
    assert (OBJ_PFN, 0, PageUse.SLAB) in b.blocks
    c = b.counts
    # every page of the RAM up to max_pfn is in exactly one kind
    assert (
        c["free"]
        + c["reserved"]
        + c["not in the dump"]
        + c["slab"]
        + c["large_kmalloc"]
        + c["stack"]
        + c["page_alloc"]
        == 0xFFDF
    )
    assert c["slab"] == 3102 and c["large_kmalloc"] == 12
    # blocks are disjoint and in pfn order
    ends = [p + (1 << o) for p, o, _ in b.blocks]
    assert all(e <= p for e, (p, _, _) in zip(ends, b.blocks[1:]))
    # a large kmalloc: a compound block whose real shadow holds KASAN_PAGE_REDZONE
    for pfn, order, use in b.blocks:
        if use == PageUse.LARGE_KMALLOC:
            assert order > 0 and (b.shadow[pfn : pfn + (1 << order)] == 0xFE).any()


def test_each_scheme_bill_against_counts_by_hand(bills) -> None:
    b, f, booted = bills.blocks, bills.bills, bills.booted
    byte_granular = sum(1 << o for _, o, u in b.blocks if u in BYTE_GRANULAR_USES)
    assert set(f) == {"flat", "pshadow", "pageptr", "pageext"}
    # flat: 1/8 of the simulated RAM, static; the real kernel's maps as many shadow pages
    ram = sum(r.end - r.start for r in bills.memory)
    assert f["flat"].static_bytes == ram // 8 and f["flat"].total_bytes() == ram // 8
    assert abs(bills.real.static_bytes - f["flat"].static_bytes) <= 64 * PAGE_SIZE
    # pshadow: a byte per lowmem page plus the zero and black pages; a real shadow page per
    # 8-page window holding a byte-granular page (at boot: the simulated kernel's own slabs)
    assert f["pshadow"].static_bytes == ram // PAGE_SIZE + 2 * PAGE_SIZE
    used = {
        p >> 3
        for pfn, o, u in b.blocks
        if u in BYTE_GRANULAR_USES
        for p in range(pfn, pfn + (1 << o))
    }
    assert (
        len(used)
        <= f["pshadow"].shadow_pages_mapped
        <= len(used) + booted["pshadow"].shadow_pages_mapped
    )
    # pageptr: one PAGE_SIZE/8 block per byte-granular page, a pointer per page of RAM
    blocks = f["pageptr"].blocks_in_use - booted["pageptr"].blocks_in_use
    assert blocks == byte_granular
    assert (
        f["pageptr"].blocks_capacity * SHADOW_PER_PAGE // PAGE_SIZE
        == f["pageptr"].shadow_slab_pages
    )
    assert f["pageptr"].dynamic_bytes == f["pageptr"].shadow_slab_pages * PAGE_SIZE
    assert f["pageptr"].metadata_bytes == 8 * (ram // PAGE_SIZE)
    # pageext: the same blocks, the pointers in page_ext
    assert f["pageext"].blocks_in_use == f["pageptr"].blocks_in_use
    assert f["pageext"].dynamic_bytes == f["pageptr"].dynamic_bytes
    lines = bill_lines(bills)
    assert lines[2].startswith("generic (dump)") and len(lines) == 8


def test_the_flat_shadow_of_byte_granular_pages_is_the_dumps(bills) -> None:
    m, b = bills.machine, bills.blocks
    flat = next(s for s in m.schemes if s.name == "flat")
    slabs = [p for p, o, u in b.blocks if u in BYTE_GRANULAR_USES]
    for pfn in slabs[::97] + [OBJ_PFN]:
        assert flat.read(m.page_address(pfn), PAGE_SIZE) == b.shadow[pfn].tobytes()
    # and the object's slot: 14 accessible granules, 3 bytes of the 15th, the redzone
    assert b.shadow[OBJ_PFN][0xE00 // 8 : 0xE00 // 8 + 16].tobytes() == bytes(14) + b"\x03\xfc"
    assert not np.array_equal(b.shadow[OBJ_PFN], np.zeros(SHADOW_PER_PAGE, np.uint8))


def test_vmcore_costs_json(capsys) -> None:
    assert (
        main(
            [
                "vmcore",
                str(unpacked("vmcore-first-report.elf")),
                "--vmlinux",
                str(unpacked("vmlinux")),
                "--addr",
                "0xffff888006578e73",
                "--costs",
                "--format",
                "json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    costs = doc["costs"]
    assert set(costs["schemes"]) == {"flat", "pshadow", "pageptr", "pageext"}
    assert costs["pages"]["slab"] == 3102
    assert (
        costs["schemes"]["pageptr"]["dump"]["blocks_in_use"]
        == 3102 + 12 + costs["schemes"]["pageptr"]["booted"]["blocks_in_use"]
    )
