"""``kinspect vmcore DUMP --vmlinux VMLINUX``: the KASAN reports of a crash dump's printk ring
buffer, each as ``kinspect report`` explains it, then the state **in the dump** around its
address: the shadow rows in the kernel's "Memory state around the buggy address" format
(``print_memory_metadata()`` in mm/kasan/report.c), read from the dump's own shadow through its
page tables, the slab object holding the address as ``describe_object_addr()`` prints it, and
the struct page of a direct-map address as ``dump_page()`` prints it.  ``--addr ADDR``: the
same state for any address.  ``--format json``.  ``--costs``: the bills of the four simulated
shadow schemes for the dump's memory, beside the real kernel's (:mod:`.costs`).

Exit status: 0, reports (or the address) shown; 1, no KASAN report in the ring buffer; 2, a
dump or vmlinux kinspect cannot use (one line: ``kinspect: FILE: what``).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys

from kinspect.engine.errors import KinspectError
from kinspect.engine.kasan import KASAN_GRANULE_SIZE, kasan_find_first_bad_addr, round_down
from kinspect.engine.profile import load_profile
from kinspect.engine.report import META_BYTES_PER_ROW, META_ROWS_AROUND_ADDR, format_memory_state
from kinspect.reports.explain import explain, format_explanation, headline
from kinspect.reports.kreport import KasanReport, LogScan, iter_reports

from .kernel import Kernel, open_kernel
from .objects import find_object, object_tracks
from .page import dump_page_lines, pfn_of
from .printk import RingBuffer, console_lines, read_ringbuffer
from .quarantine import QuarantineHold, object_hold, quarantine_of

__all__ = ["add_command", "run", "MemoryState", "memory_state", "NO_REPORT"]

NO_REPORT = "no KASAN report found in the dump's printk ring buffer"
#: the longest access whose first bad granule is searched (kasan_find_first_bad_addr steps
#: 8 bytes at a time; the KASAN reports of bigger accesses are rare and bounded here)
_MAX_SEARCH = 1 << 20
_ROW_MEM = META_BYTES_PER_ROW * KASAN_GRANULE_SIZE  # META_MEM_BYTES_PER_ROW


def add_command(subparsers) -> None:
    vp = subparsers.add_parser(
        "vmcore",
        help="the KASAN reports of a crash dump (ELF core, makedumpfile -c) with "
        "the real shadow around their addresses",
        description="Read an x86_64 crash dump (QEMU dump-guest-memory, kdump's /proc/vmcore, "
        "makedumpfile's ELF or compressed KDUMP file) with its vmlinux: the KASAN "
        "reports in its printk ring "
        "buffer, and the shadow memory and struct page around each address, read "
        "from the dump. Exit 0: shown; 1: no report; 2: unusable input.",
    )
    vp.add_argument("dump", metavar="DUMP", help="the dump (ELF core or makedumpfile's KDUMP)")
    vp.add_argument(
        "--vmlinux",
        metavar="PATH",
        required=True,
        help="the dump's unstripped vmlinux (its build ID is checked)",
    )
    vp.add_argument(
        "--addr",
        metavar="ADDR",
        type=_address,
        help="show the dump's state around this kernel address instead",
    )
    vp.add_argument("--format", choices=("text", "json"), default="text")
    vp.add_argument(
        "--costs",
        action="store_true",
        help="the 2017 comparison on this dump: what each simulated shadow scheme "
        "(flat, pshadow, pageptr, pageext) would cost for the dump's memory, "
        "beside the real kernel's shadow",
    )
    vp.add_argument(
        "--replay",
        action="store_true",
        help="replay each report in kinspect's engine and list where the "
        "simulated shadow of the object's slot differs from the dump's",
    )


def _address(text: str) -> int:
    t = text.strip().lower()
    if not re.fullmatch(r"(0x)?[0-9a-f]{1,16}", t):
        raise argparse.ArgumentTypeError(f"{text!r} is not a 64-bit hex address")
    return int(t, 16)


# --------------------------------------------------------------------------- the state


class MemoryState:
    """What the dump holds around one address: the five shadow rows (None: not mapped or
    not in the dump), and the struct page of a direct-map address."""

    def __init__(self, k: Kernel, addr: int, size: int = 0, bug_type: str | None = None) -> None:
        self.addr = addr
        self.bug_type = bug_type
        self.notes: list[str] = []
        prof = _x86_64()
        self.shadow_addr = prof.kasan_mem_to_shadow(addr)
        if not prof.addr_has_metadata(addr):
            self.first_bad_addr = addr
            self.row_start = None
            self.rows: list[bytes | None] = []
            self.notes.append(f"{addr:#x} has no shadow (below KASAN_SHADOW_START's range)")
        else:
            self.first_bad_addr = self._first_bad(k, prof, addr, size)
            self.row_start = (
                round_down(self.first_bad_addr, _ROW_MEM) - META_ROWS_AROUND_ADDR * _ROW_MEM
            )
            self.rows = [
                k.read(prof.kasan_mem_to_shadow(self.row_start + i * _ROW_MEM), META_BYTES_PER_ROW)
                for i in range(2 * META_ROWS_AROUND_ADDR + 1)
            ]
            if any(r is None for r in self.rows):
                self.notes.append("some shadow rows are not mapped in the dump (shown ??)")
        self.page = _page_of(k, addr)
        self.object = find_object(k, addr, _shadow_reader(k, prof))
        self.tracks = (
            [] if self.object is None else object_tracks(k, self.object, _shadow_reader(k, prof))
        )
        self.quarantine: QuarantineHold | None = None
        self.quarantine_line: str | None = None  # (a str when there is an object)
        if self.object is not None:
            self.quarantine, self.quarantine_line = object_hold(k, self.object)

    def _first_bad(self, k: Kernel, prof, addr: int, size: int) -> int:
        if size > _MAX_SEARCH:
            self.notes.append(
                f"an access of {size} bytes: the first bad granule searched in "
                f"its first {_MAX_SEARCH} only"
            )
            size = _MAX_SEARCH
        shadow_byte = _shadow_reader(k, prof)
        try:
            return kasan_find_first_bad_addr(shadow_byte, addr, size)
        except _Unreadable:
            self.notes.append(
                "the shadow of the access is not in the dump: the row shown is the access address's"
            )
            return addr

    def memory_lines(self) -> list[str]:
        """``print_memory_metadata()``'s rows ('?? ' for bytes the dump does not have)."""
        if self.row_start is None:
            return []
        lines = format_memory_state(
            self.row_start,
            [r or bytes(META_BYTES_PER_ROW) for r in self.rows],
            self.first_bad_addr,
            64,
        )
        out, i = [], 0
        for ln in lines:
            if ln.strip() == "^":
                out.append(ln)
                continue
            if self.rows[i] is None:
                ln = ln.split(": ")[0] + ": " + " ".join(["??"] * META_BYTES_PER_ROW)
            out.append(ln)
            i += 1
        return out

    def to_json(self) -> dict:
        return {
            "addr": f"{self.addr:#x}",
            "shadow_addr": f"{self.shadow_addr:#x}",
            "first_bad_addr": f"{self.first_bad_addr:#x}",
            "row_start": None if self.row_start is None else f"{self.row_start:#x}",
            "rows": [None if r is None else r.hex() for r in self.rows],
            "memory_state": self.memory_lines(),
            "object": None if self.object is None else self.object.to_json(),
            "object_lines": []
            if self.object is None
            else self.object.lines(self.addr, self.bug_type),
            "tracks": [{"title": t, "frames": f} for t, f in self.tracks],
            "quarantine": None if self.quarantine is None else self.quarantine.to_json(),
            "quarantine_line": self.quarantine_line,
            "page": self.page,
            "notes": self.notes,
        }


class _Unreadable(LookupError):
    """A shadow byte the dump does not hold (a LookupError: what the readers of
    ``shadow_byte`` catch; a damaged dump's VmcoreError is not one, and ends the command)."""


def _shadow_reader(k: Kernel, prof):
    """``shadow_byte(addr)``: the dump's shadow byte of ``addr`` (_Unreadable when the dump
    does not have it)."""

    def shadow_byte(a: int) -> int:
        b = k.read(prof.kasan_mem_to_shadow(a), 1)
        if b is None:
            raise _Unreadable
        return b[0]

    return shadow_byte


@functools.lru_cache(maxsize=1)
def _x86_64():
    """The x86_64 profile: KASAN_SHADOW_OFFSET (arch/x86/Kconfig) and the shadow's range."""
    return load_profile("x86_64")


def _page_of(k: Kernel, addr: int) -> dict | None:
    """The struct page of a direct-map address, as ``dump_page()`` prints it (:mod:`.page`)."""
    pfn = pfn_of(k, addr)
    if pfn is None or "page" not in k.layouts:
        return None
    lines, notes = dump_page_lines(k, pfn)
    return {
        "pfn": pfn,
        "struct_page": f"{k.vmemmap_base + pfn * k.layouts['page'].size:#x}",
        "lines": lines,
        "notes": notes,
    }


def memory_state(k: Kernel, addr: int, size: int = 0, bug_type: str | None = None) -> MemoryState:
    return MemoryState(k, addr, size, bug_type)


def state_lines(st: MemoryState, indent: str = "  ") -> list[str]:
    out = []
    for title, frames in st.tracks:  # describe_object_stacks()
        out += [indent + title] + [f"{indent} {f}" for f in frames] + [""]
    if st.object is not None:
        out += [indent + ln for ln in st.object.lines(st.addr, st.bug_type)]
        out += [f"{indent}note: {n}" for n in st.object.notes]
        if st.quarantine_line is not None:
            out.append(indent + st.quarantine_line)
    if st.page is not None:
        out.append(f"{indent}the physical page (struct page at {st.page['struct_page']}):")
        out += [indent + ln for ln in st.page["lines"]]
        out += [f"{indent}note: {n}" for n in st.page["notes"]]
    if st.row_start is not None:
        out.append(
            f"{indent}Memory state around the buggy address (the dump's shadow at "
            f"{st.shadow_addr:#x}):"
        )
        out += [indent + ln for ln in st.memory_lines()]
    out += [f"{indent}note: {n}" for n in st.notes]
    return out


# --------------------------------------------------------------------------- the command


def _reports(k: Kernel, ring: RingBuffer) -> list[KasanReport]:
    name = f"{k.core.path} (printk ring buffer)"
    return list(iter_reports(console_lines(ring.records), path=name, partial=True, scan=LogScan()))


def _access_size(rep: KasanReport) -> int:
    return rep.size or 0


def dump_header_lines(k: Kernel, ring: RingBuffer | None) -> list[str]:
    cpus = len(k.core.cpus)
    lines = [
        f"dump: {k.core.path}: {k.core.kind}, {cpus} CPU{'s' if cpus != 1 else ''}, "
        f"physical memory up to {k.core.ram_end:#x}",
        f"vmlinux: {k.sym.path}: matched by {k.build_id_match}",
        f"page tables: {k.root_source}, {5 if k.la57 else 4}-level; direct map at "
        f"{k.page_offset_base:#x}, vmemmap at {k.vmemmap_base:#x}",
        f"kernel image: KASLR offset {k.kaslr_offset:#x}, phys_base {k.phys_base:#x} "
        f"({'from VMCOREINFO' if k.vmcoreinfo else 'no VMCOREINFO in the dump'})",
    ]
    q = quarantine_of(k)
    lines.append(q.summary())
    lines += [f"  note: {n}" for n in q.notes]
    if ring is not None:
        seqs = f" (seq {ring.records[0].seq}..{ring.records[-1].seq})" if ring.records else ""
        lines.append(
            f"printk ring buffer: {len(ring.records)} records{seqs}, "
            f"{ring.count} descriptors, {ring.data_size} bytes of text"
        )
        lines += [f"  note: {n}" for n in ring.notes]
    return lines


def run(args) -> int:
    if args.replay and args.addr is not None:
        raise KinspectError("replays the dump's reports: not with --addr", "--replay")
    k = open_kernel(args.dump, args.vmlinux)
    try:
        return _run(k, args)
    finally:
        k.close()


def _run(k: Kernel, args) -> int:
    doc: dict = {
        "dump": k.core.path,
        "vmlinux": k.sym.path,
        "match": k.build_id_match,
        "page_tables": k.root_source,
        "la57": k.la57,
        "kaslr_offset": k.kaslr_offset,
        "phys_base": k.phys_base,
        "page_offset_base": f"{k.page_offset_base:#x}",
        "vmemmap_base": f"{k.vmemmap_base:#x}",
    }
    bills = _costs(k) if args.costs else None
    if bills is not None:
        doc["costs"] = bills.to_json()
    if args.addr is not None:
        st = memory_state(k, args.addr)
        if args.format == "json":
            doc["address"] = st.to_json()
            _dump_json(doc)
        else:
            print("\n".join(dump_header_lines(k, None)))
            _print_costs(bills)
            print(f"\naddress {args.addr:#x}:")
            print("\n".join(state_lines(st)))
        return 0
    ring = read_ringbuffer(k)
    reports = _reports(k, ring)
    if args.format == "json":
        doc["printk"] = {
            "records": len(ring.records),
            "descriptors": ring.count,
            "text_bytes": ring.data_size,
            "notes": ring.notes,
        }
        out = []
        for rep in reports:
            d = rep.to_json()
            d["headline"] = headline(rep)
            d["explanation"] = explain(rep).to_json()
            in_dump = (
                None
                if rep.addr is None
                else memory_state(k, rep.addr, _access_size(rep), rep.bug_type)
            )
            d["in_dump"] = None if in_dump is None else in_dump.to_json()
            if args.replay:
                d["replay"] = None if in_dump is None else _replay(k, rep, in_dump).to_json()
            out.append(d)
        doc["reports"] = out
        if not reports:
            doc["message"] = NO_REPORT
        _dump_json(doc)
        return 0 if reports else 1
    print("\n".join(dump_header_lines(k, ring)))
    _print_costs(bills)
    for rep in reports:
        print()
        print(headline(rep))
        print(format_explanation(rep, explain(rep)))
        print("  in the dump (memory as it was when the dump was taken):")
        if rep.addr is None:
            print("    (the report names no address)")
        else:
            st = memory_state(k, rep.addr, _access_size(rep), rep.bug_type)
            print("\n".join(state_lines(st, "    ")))
            if args.replay:
                print("\n".join("    " + ln for ln in _replay(k, rep, st).lines()))
    if not reports:
        print(NO_REPORT)
        return 1
    return 0


def _costs(k: Kernel):
    from .costs import scheme_bills
    from .reader import DumpReader

    return scheme_bills(DumpReader(k))


def _print_costs(bills) -> None:
    if bills is not None:
        from .costs import bill_lines

        print()
        print("\n".join(bill_lines(bills)))


def _replay(k: Kernel, rep: KasanReport, st: MemoryState):
    from .replay import compare_replay

    return compare_replay(rep, st, _shadow_reader(k, _x86_64()))


def _dump_json(doc: dict) -> None:
    json.dump(doc, sys.stdout, indent=1)
    print()
