"""``kinspect tui --vmcore``: the page map and the state of an address on the first-report
dump (skipped when the shared dumps are absent, as tests/test_vmcore.py), and the read API
over the dump (kinspect/vmcore/reader.py)."""

from __future__ import annotations

import numpy as np
import pytest

from kinspect.cli import main
from kinspect.engine.memory import PageState
from kinspect.screens.vmcore import VmcoreApp, parse_target
from kinspect.vmcore import Kernel
from kinspect.vmcore.reader import DumpReader
from kinspect.widgets.page_map import PageMap
from test_vmcore import SHARED, pytestmark, unpacked  # noqa: F401  (the same skip)

OBJ = 0xFFFF888006578E00  # kmalloc_oob_right's kmalloc(115) object


@pytest.fixture(scope="module")
def first():
    with Kernel(str(unpacked("vmcore-first-report.elf")), str(unpacked("vmlinux"))) as k:
        yield k


def test_the_read_api_over_the_dump(first) -> None:
    r = DumpReader(first)
    assert r.end_pfn == first.u64(first.symbols["max_pfn"]) == 0xFFDF  # 256 MiB
    states = r.page_states(0, r.end_pfn)
    counts = np.bincount(states, minlength=9)
    assert counts[PageState.SLAB] > 1000 and counts[PageState.FREE] > 10000
    assert counts[PageState.RESERVED] > 8192  # the shadow of 256 MiB (memblock) and more
    pfn = r.addr_to_pfn(OBJ)
    assert pfn == 0x6578 and states[pfn] == PageState.SLAB
    slab = r.find_slab(pfn)
    assert (slab.cache, slab.objects, slab.object_size, slab.slot_size) == (
        "kmalloc-128",
        16,
        128,
        256,
    )
    page = r.page(pfn)
    assert page.PageSlab() and page.refcount == 1 and not page.PageTail()
    # the object's shadow: 14 accessible granules, 3 bytes of the 15th, the redzone
    assert r.shadow_bytes("generic", OBJ, 128) == bytes(14) + b"\x03\xfc"
    assert r.next_poisoned(OBJ) == OBJ + 14 * 8
    assert r.next_poisoned(OBJ + 15 * 8, -1) == OBJ + 15 * 8 - 8
    free = int(np.flatnonzero(states == PageState.FREE)[0])
    block = r.find_free_block(free)
    assert block is not None and block.pfn <= free < block.pfn + (1 << block.order)
    fp = r.footprint("generic")
    # kasan_init() maps a shadow page for each 32 KiB of RAM (bar a few not mapped)
    assert 0.95 * (0xFFDF // 8) <= fp.static_bytes // 4096 <= 0x10000 // 8
    with pytest.raises(KeyError):
        r.shadow_bytes("pageptr", OBJ, 8)


def test_go_to_symbols_and_pfns(first) -> None:
    assert parse_target(first, "0xffff888006578e73") == (OBJ + 0x73, None, None)
    assert parse_target(first, "pfn 0x6578") == (first.page_offset_base + 0x6578000, 0x6578, None)
    assert (
        parse_target(first, "kmalloc_oob_right")[0]
        == first.sym.find_symbols("kmalloc_oob_right")[0].addr
    )
    assert parse_target(first, "no_such_symbol_here")[2].startswith("no symbol")


async def test_the_screen_on_the_first_report_dump(first) -> None:
    console = (SHARED / "console-first-report.log").read_text(errors="replace").splitlines()
    row = next(ln.rstrip("\r").split("] ", 1)[1] for ln in console if "] >ffff888006578e00:" in ln)
    app = VmcoreApp(first)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("g", *"0xffff888006578e73", "enter")
        await pilot.pause()
        pm = app.query_one(PageMap)
        assert pm.cursor == 0x6578
        line = pm.row_text(pm.row_of(0x6578))
        assert line[pm.gutter_width + pm.col_of(0x6578)] == "s"  # a slab page
        assert pm.row_text(pm.row_of(0x6578) + 1)[pm.gutter_width :].strip() != ""
        text = app.detail_text.splitlines()
        assert (
            "slab of kmalloc-128 (head pfn 0x6578, 1 page(s), 16/16 objects in use, "
            "object 128 in a 256-byte slot, the CPU slab)" in text
        )
        assert row in text  # the kernel's own row
        assert "page_type: f5(slab)" in text
        await pilot.press("l")  # the next page, in the page map
        await pilot.pause()
        assert pm.cursor == 0x6579
        assert app.detail_text.startswith("address 0xffff888006579000 · pfn 0x6579")
        await pilot.press("g", *"0xffff888006578e73", "enter")
        await pilot.press("n")
        await pilot.pause()
        assert app.addr == OBJ + 0x78
        await pilot.press("p")
        await pilot.pause()
        assert app.addr == OBJ + 0x70  # the 03: partly accessible
        await pilot.press("p")
        await pilot.pause()
        assert app.addr == OBJ - 8  # the previous slot's redzone
        await pilot.press("g", *"nonsense", "enter")
        await pilot.pause()
        assert app.detail_text.startswith("no symbol 'nonsense' in the vmlinux")


def test_tui_vmcore_needs_its_vmlinux(tmp_path, capsys) -> None:
    assert main(["tui", "--vmcore", str(tmp_path / "dump")]) == 2
    assert capsys.readouterr().err == "kinspect: --vmcore: needs --vmlinux VMLINUX (the dump's)\n"


async def test_the_schemes_bills_pane(first) -> None:
    """``c``: the four schemes' bills for the dump beside the real kernel's, made on the first
    view only, hidden and shown again by ``c``."""
    app = VmcoreApp(first)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert app.bills is None
        await pilot.press("c")
        await pilot.pause()
        pane = app.query_one("#costs")
        text = str(pane.render())
        assert pane.has_class("shown") and app.bills is not None
        for name in ("generic (dump)", "flat", "pshadow", "pageptr", "pageext"):
            assert f"\n{name} " in text
        made = app.bills
        await pilot.press("c")
        await pilot.pause()
        assert not pane.has_class("shown")
        await pilot.press("c")
        await pilot.pause()
        assert pane.has_class("shown") and app.bills is made
