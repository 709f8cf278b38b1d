"""``kinspect tui --vmcore DUMP --vmlinux VMLINUX``: the inspector's page map on a real
kernel's memory (a crash dump), read through :class:`kinspect.vmcore.reader.DumpReader`.

* the page map of all RAM (kinspect/widgets/page_map.py, the same widget as the simulated
  machine's), one cell per page, from the real struct pages: slab, free, reserved, in use;
* for the page or address under the cursor: the struct page as ``dump_page()`` prints it,
  its slab and the object there (with its tracks and the quarantine's hold), where its
  shadow page is, and the five shadow rows around the address in the kernel's "Memory state
  around the buggy address" format;
* the real kernel's shadow bill (``footprint("generic")``);
* ``c``: the 2017 comparison on this dump, the bills of the four simulated schemes for the
  dump's memory beside the real kernel's (kinspect/vmcore/costs.py), computed on first view
  (about half a second of CPU) and shown above the address's state until ``c`` again;
* ``g``: go to an address (hex), a pfn (``pfn 0x1234``) or a symbol; ``n``/``p``: the
  next/previous poisoned granule (real shadow byte not 0); up/down and h/l move in the page
  map.
"""

from __future__ import annotations

import numpy as np
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Input, Static

from kinspect.engine.errors import KinspectError
from kinspect.engine.profile import format_size
from kinspect.vmcore.command import dump_header_lines, memory_state, state_lines
from kinspect.vmcore.costs import SchemeBills, bill_lines, scheme_bills
from kinspect.vmcore.kernel import Kernel
from kinspect.vmcore.reader import REAL_SCHEME, DumpReader
from kinspect.widgets.page_map import PageMap, merge_cells
from kinspect.widgets.palette import PAGE_PAINTS

__all__ = ["DumpPages", "VmcoreApp", "parse_target"]


class DumpPages:
    """The page map's PageSource over a dump: every pfn up to the kernel's max_pfn."""

    def __init__(self, reader: DumpReader) -> None:
        self.reader = reader
        self.first_pfn = 0
        self.end_pfn = reader.end_pfn

    def cells(self, first: int, ncells: int, ppc: int) -> tuple[np.ndarray, np.ndarray]:
        codes = self.reader.page_states(first, ncells * ppc)
        if ppc > 1:
            codes = merge_cells(codes, ncells, ppc)
        return codes, np.zeros(ncells, dtype=bool)

    def describe(self, pfn: int) -> str:
        return PAGE_PAINTS[int(self.reader.page_states(pfn, 1)[0])].meaning


def parse_target(k: Kernel, text: str) -> tuple[int | None, int | None, str | None]:
    """(address, pfn, error) of what ``g`` was given: a hex address, ``pfn N`` (hex with
    0x), or a symbol of the vmlinux (at its run-time address)."""
    t = text.strip()
    low = t.lower()
    try:
        if low.startswith("pfn"):
            n = low[3:].strip(" :=")
            pfn = int(n, 0)
            return k.page_offset_base + pfn * 4096, pfn, None
        if low.startswith("0x") or (len(low) >= 8 and all(c in "0123456789abcdef" for c in low)):
            return int(low, 16), None, None
    except ValueError:
        return None, None, f"not a number: {t!r}"
    if t in k.symbols:
        return k.symbols[t], None, None
    hits = k.sym.find_symbols(t)
    if hits:
        return hits[0].addr + k.kaslr_offset, None, None
    return None, None, f"no symbol {t!r} in the vmlinux (give 0xADDRESS, pfn N or a symbol)"


class VmcoreApp(App):
    """The dump inspector (see the module's docstring)."""

    TITLE = "kinspect vmcore"
    CSS = """
    #head { height: auto; color: $text-muted; }
    #body { height: 1fr; }
    #vm-pagemap { width: 1fr; min-width: 40; }
    #detail-scroll { width: 1fr; }
    #costs { display: none; margin-bottom: 1; }
    #costs.shown { display: block; }
    #goto { dock: bottom; display: none; }
    #goto.shown { display: block; }
    """
    BINDINGS = [
        Binding("g", "goto", "go to"),
        Binding("n", "poisoned(1)", "next poisoned"),
        Binding("p", "poisoned(-1)", "previous poisoned"),
        Binding("c", "costs", "scheme costs"),
        Binding("escape", "cancel", "cancel", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.k = kernel
        self.reader = DumpReader(kernel)
        self.addr = kernel.page_offset_base
        self.message = ""
        self.detail_text = ""
        self.bills: SchemeBills | None = None  # made on the first ``c``

    def compose(self) -> ComposeResult:
        fp = self.reader.footprint(REAL_SCHEME)
        head = dump_header_lines(self.k, None) + [
            f"the real shadow ({REAL_SCHEME}): {format_size(fp.static_bytes)} of shadow pages "
            f"mapped for the RAM, a {format_size(fp.virtual_range_bytes)} virtual range"
        ]
        yield Static("\n".join(head), id="head", markup=False)
        with Horizontal(id="body"):
            yield PageMap(DumpPages(self.reader), id="vm-pagemap")
            with VerticalScroll(id="detail-scroll"):
                yield Static("", id="costs", markup=False)
                yield Static("", id="detail", markup=False)
        yield Input(placeholder="0xADDRESS, pfn N or a symbol", id="goto")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(PageMap).focus()
        self.show(self.addr)

    # -- what is shown

    def show(self, addr: int, pfn: int | None = None) -> None:
        """The state at ``addr`` (its pfn selected in the page map when it has one)."""
        self.addr = addr
        r = self.reader
        if pfn is None:
            pfn = r.addr_to_pfn(addr)
        pm = self.query_one(PageMap)
        if pfn is not None and 0 <= pfn < r.end_pfn:
            pm.select(pfn)
        try:
            self.detail_text = "\n".join(self.detail_lines(addr, pfn))
        except KinspectError as e:  # a damaged page of the dump, read now: said
            self.detail_text = f"address {addr:#x}: {e}"
        self.query_one("#detail", Static).update(self.detail_text)

    def detail_lines(self, addr: int, pfn: int | None) -> list[str]:
        r = self.reader
        out = [self.message] if self.message else []
        self.message = ""
        out.append(
            f"address {addr:#x}"
            + (f" · pfn {pfn:#x}" if pfn is not None else " · not mapped in the dump")
        )
        if pfn is not None and 0 <= pfn < r.end_pfn:
            out.append(f"page: {PAGE_PAINTS[int(r.page_states(pfn, 1)[0])].meaning}")
            slab = r.find_slab(pfn)
            if slab is not None:
                out.append(
                    f"slab of {slab.cache} (head pfn {slab.pfn:#x}, {slab.pages} "
                    f"page(s), {slab.inuse}/{slab.objects} objects in use, object "
                    f"{slab.object_size} in a {slab.slot_size}-byte slot"
                    f"{', the CPU slab' if slab.frozen else ''})"
                )
            link = r.shadow_link(REAL_SCHEME, pfn)
            out.append(f"shadow: {link or 'not mapped in the dump'}")
        st = memory_state(self.k, addr)
        out += [""] + state_lines(st, indent="")
        return out

    def on_page_map_pfn_selected(self, event: PageMap.PfnSelected) -> None:
        self.show(self.reader.page_address(event.pfn), event.pfn)

    # -- actions

    def action_goto(self) -> None:
        box = self.query_one("#goto", Input)
        box.add_class("shown")
        box.value = ""
        box.focus()

    def action_cancel(self) -> None:
        box = self.query_one("#goto", Input)
        box.remove_class("shown")
        self.query_one(PageMap).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_cancel()
        addr, pfn, error = parse_target(self.k, event.value)
        if error is not None:
            self.message = error
            self.show(self.addr)
            return
        assert addr is not None  # (no error: an address)
        self.show(addr, pfn)

    def action_costs(self) -> None:
        """Show (or hide) the schemes' bills for the dump, computed the first time."""
        pane = self.query_one("#costs", Static)
        if pane.has_class("shown"):
            pane.remove_class("shown")
            return
        if self.bills is None:
            try:
                self.bills = scheme_bills(self.reader, self.reader.footprint(REAL_SCHEME))
                text = "\n".join(bill_lines(self.bills))
            except (KinspectError, MemoryError) as e:
                text = f"the schemes' bills: {e}"
            pane.update(text)
        pane.add_class("shown")
        self.query_one("#detail-scroll", VerticalScroll).scroll_home(animate=False)

    def action_poisoned(self, direction: int) -> None:
        found = self.reader.next_poisoned(self.addr, direction)
        if found is None:
            self.message = (
                f"no poisoned granule {'after' if direction > 0 else 'before'} "
                f"{self.addr:#x} in the RAM's shadow"
            )
            self.show(self.addr)
            return
        self.show(found)


def run_vmcore_ui(dump: str, vmlinux: str) -> int:
    """``kinspect tui --vmcore``: bad input is the one-line error (exit 2) before the UI."""
    from kinspect.vmcore.kernel import open_kernel

    k = open_kernel(dump, vmlinux)
    try:
        VmcoreApp(k).run()
    finally:
        k.close()
    return 0
