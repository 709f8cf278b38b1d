"""A dump paired with its vmlinux: symbols, struct layouts and virtual reads.

The pairing is checked before anything is read: the build ID of the vmlinux's
``.note.gnu.build-id`` must be in the kernel's ``.notes`` section as loaded in the dump's
memory (read at the vmlinux's address of ``.notes``); when that cannot be read, the
``linux_banner`` string in the dump must equal the vmlinux's.

Virtual addresses: the direct map (``page_offset_base``, read from the dump) by subtraction,
everything else through :class:`PageTables` from CPU 0's CR3 (QEMU's note), or from
``init_top_pgt`` when the dump has no CR3.
"""

from __future__ import annotations

import os
import re

import numpy as np

from kinspect.engine.errors import KinspectError, SymbolizationError
from kinspect.reports.symbols import ElfSymbolizer

from .core import VmcoreError, open_core
from .pagetable import PAGE_SIZE, START_KERNEL_MAP, X86_CR4_LA57, PageTables
from .types import Layout, load_enums, load_layouts

__all__ = ["Kernel", "open_kernel"]

#: data symbols read by name (the symbolizer's index holds functions only)
DATA_SYMBOLS = (
    "prb",
    "page_offset_base",
    "vmemmap_base",
    "init_top_pgt",
    "phys_base",
    "linux_banner",
    "_stext",
    "_end",
    "pageflag_names",
    "page_type_names",
    "pff",
    "no_hash_pointers",
    "cma_areas",
    "slub_debug_enabled",
    "stack_pools",
    "pools_num",
    "global_quarantine",
    "quarantine_head",
    "quarantine_tail",
    "cpu_quarantine",
    "__per_cpu_offset",
    "nr_cpu_ids",
    "max_pfn",
)
_SYMBOLS_ENTRY = "vmcore-data-symbols-6"
#: arch/x86/include/asm/page_64_types.h: 1 GiB with CONFIG_RANDOMIZE_BASE, the room KASLR
#: moves the kernel image in
KERNEL_IMAGE_SIZE = 1 << 30
_NT_GNU_BUILD_ID = 3


def data_symbols(sym: ElfSymbolizer, names=DATA_SYMBOLS) -> dict[str, list[list[int]]]:
    """Every [address, size] of each named symbol of ``.symtab`` (any type: static ones can
    repeat), from the symbolizer's cache when there (a name absent from the file is left
    out)."""
    cached = sym.load_cached(_SYMBOLS_ENTRY)
    if cached is not None and isinstance(cached.get("symbols"), dict):
        found = cached["symbols"]
        if all(
            isinstance(v, list)
            and v
            and all(
                isinstance(x, list) and len(x) == 2 and all(isinstance(i, int) for i in x)
                for x in v
            )
            for v in found.values()
        ):
            return found
    found = {}
    with sym.reading(".symtab (data symbols)"):
        sec = sym.sections.get(".symtab")
        if sec is None or sec.header["sh_type"] == "SHT_NOBITS":
            raise VmcoreError("the vmlinux has no .symtab: give the unstripped vmlinux", sym.path)
        h = sec.header
        dt = np.dtype(
            [
                ("name", "<u4"),
                ("info", "u1"),
                ("other", "u1"),
                ("shndx", "<u2"),
                ("value", "<u8"),
                ("size", "<u8"),
            ]
        )
        n = h["sh_size"] // dt.itemsize
        data = sym.section_data(".symtab")
        assert data is not None  # (a .symtab with contents, checked above)
        syms = np.frombuffer(data[: n * dt.itemsize], dt)
        strtab = bytes(sym.section_data(sym.elf.get_section(h["sh_link"]).name) or b"")
        for name in names:
            key = name.encode() + b"\0"
            # every place the name's bytes end a string (a linker may share a suffix)
            offs = [m.start() for m in re.finditer(re.escape(key), strtab)]
            if not offs:
                continue
            hit = np.nonzero(
                np.isin(syms["name"], np.array(offs, np.uint32)) & (syms["shndx"] != 0)
            )[0]
            if len(hit):
                found[name] = [[int(syms["value"][i]), int(syms["size"][i])] for i in hit]
    sym.store_cached(_SYMBOLS_ENTRY, {"symbols": found})
    return found


class Kernel:
    """The dump's kernel: ``read(vaddr, size)`` (None: unmapped or not in the dump),
    ``symbols`` (data symbols), ``layouts`` (structs from DWARF), ``sym`` (the
    symbolizer, for stacks)."""

    def __init__(self, dump: str, vmlinux: str) -> None:
        self.core = open_core(dump)
        try:
            self.sym = ElfSymbolizer(vmlinux)
        except SymbolizationError:
            self.core.close()
            raise
        try:
            self._setup(vmlinux)
        except KinspectError:
            self.close()
            raise

    def close(self) -> None:
        self.sym.close()
        self.core.close()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _need(self, name: str) -> int:
        addr = self.symbols.get(name)
        if addr is None:
            raise VmcoreError(f"the vmlinux has no symbol {name}", self.sym.path)
        return addr

    def _setup(self, vmlinux: str) -> None:
        if self.sym.machine != "EM_X86_64":
            raise VmcoreError(f"not an x86_64 vmlinux ({self.sym.machine})", vmlinux)
        self._read_vmcoreinfo()
        #: name -> every [address, size] of that name, at run time (the link address plus
        #: the KASLR offset); ``symbols``: the first address
        #: (a per-CPU variable's zero-based address, below __START_KERNEL_map, is not moved)
        self.symbol_candidates = {
            n: [[a + self.kaslr_offset if a >= START_KERNEL_MAP else a, size] for a, size in v]
            for n, v in data_symbols(self.sym).items()
        }
        self.symbols = {n: v[0][0] for n, v in self.symbol_candidates.items()}
        cpu = next((c for c in self.core.cpus if c.cr3), None)
        if cpu is not None:
            self.la57 = bool(cpu.cr4 & X86_CR4_LA57)
            self.root_source = f"CR3 of CPU {cpu.index}"
            self.pt = PageTables(self.core, cpu.cr3, self.la57)
        else:
            # no CR3 in the notes (kdump's): init_top_pgt, by __pa_symbol() (its run-time
            # address less __START_KERNEL_map, plus phys_base: arch/x86/include/asm/page_64.h)
            top = self.vmcoreinfo_symbol("init_top_pgt") or self._need("init_top_pgt")
            self.la57 = self.vmcoreinfo_number("pgtable_l5_enabled") == 1
            self.root_source = (
                f"init_top_pgt (no CR3 in the dump; phys_base {self.phys_base:#x}"
                f" from {self.phys_base_source})"
            )
            self.pt = PageTables(self.core, top - START_KERNEL_MAP + self.phys_base, self.la57)
        self.build_id_match = self._check_match()
        page_offset_base = self._read_u64_via_pt(self._need("page_offset_base"))
        vmemmap_base = self._read_u64_via_pt(self._need("vmemmap_base"))
        if page_offset_base is None or vmemmap_base is None:
            raise VmcoreError(
                "cannot read page_offset_base/vmemmap_base in the dump: its "
                "page tables do not map the kernel image",
                self.core.path,
            )
        self.page_offset_base: int = page_offset_base
        self.vmemmap_base: int = vmemmap_base
        self.layouts: dict[str, Layout] = load_layouts(self.sym)
        self.enums: dict[str, dict[str, int]] = load_enums(self.sym)

    def _read_vmcoreinfo(self) -> None:
        """KASLR's offset and phys_base from the dump's VMCOREINFO (arch/x86/kernel/
        vmcore_info_64.c ``arch_crash_save_vmcoreinfo()``: ``KERNELOFFSET=%lx``,
        ``NUMBER(phys_base)=%ld``), else makedumpfile's sub-header's phys_base, else 0 (a
        kernel run at its link address: ``nokaslr``)."""
        info = self.core.vmcoreinfo or {}
        self.vmcoreinfo = info
        try:
            self.kaslr_offset = int(info.get("KERNELOFFSET", "0"), 16)
        except ValueError:
            raise VmcoreError(
                f"VMCOREINFO's KERNELOFFSET is not hexadecimal: {info['KERNELOFFSET'][:40]!r}",
                self.core.path,
            ) from None
        if not 0 <= self.kaslr_offset < KERNEL_IMAGE_SIZE:
            raise VmcoreError(
                f"VMCOREINFO's KERNELOFFSET {self.kaslr_offset:#x} is beyond "
                "the kernel image's 1 GiB (KERNEL_IMAGE_SIZE)",
                self.core.path,
            )
        pb = self.vmcoreinfo_number("phys_base")
        if pb is not None:
            self.phys_base, self.phys_base_source = pb % (1 << 64), "VMCOREINFO"
        elif getattr(self.core, "phys_base", None) is not None:
            self.phys_base, self.phys_base_source = self.core.phys_base, "the dump's header"
        else:
            self.phys_base, self.phys_base_source = 0, "nothing: 0 assumed"

    def vmcoreinfo_number(self, name: str) -> int | None:
        """VMCOREINFO's ``NUMBER(name)=%ld``, or None."""
        return self._vmcoreinfo_int(f"NUMBER({name})", 10, "a number")

    def vmcoreinfo_symbol(self, name: str) -> int | None:
        """VMCOREINFO's ``SYMBOL(name)=%lx`` (a run-time address), or None."""
        return self._vmcoreinfo_int(f"SYMBOL({name})", 16, "an address")

    def _vmcoreinfo_int(self, key: str, base: int, what: str) -> int | None:
        v = self.vmcoreinfo.get(key)
        if v is None:
            return None
        try:
            return int(v, base)
        except ValueError:
            raise VmcoreError(
                f"VMCOREINFO's {key} is not {what}: {v[:40]!r}", self.core.path
            ) from None

    def _read_u64_via_pt(self, vaddr: int) -> int | None:
        phys = self.pt.translate(vaddr)
        return None if phys is None else self.core.read_phys_u64(phys)

    def _check_match(self) -> str:
        """How the pairing was established ("build ID ..." or "linux_banner"); a mismatch or
        nothing to compare is a VmcoreError."""
        want = self.sym.build_id
        notes = self.sym.sections.get(".notes")
        if notes is not None and notes.header["sh_type"] == "SHT_NOTE":
            h = notes.header
            if want is None:  # (a vmlinux keeps its build ID in .notes, not in a
                #                     .note.gnu.build-id section of its own)
                ids = _build_ids(bytes(self.sym.section_data(".notes") or b""))
                want = ids[0] if ids else None
        if want and notes is not None:
            h = notes.header
            data = self.read_via_pt(h["sh_addr"] + self.kaslr_offset, h["sh_size"])
            if data is not None:
                ids = _build_ids(data)
                if want in ids:
                    return f"build ID {want}"
                if ids:
                    raise VmcoreError(
                        f"the dump's kernel has build ID {ids[0]}, the vmlinux "
                        f"{want}: not the vmlinux of this dump",
                        self.core.path,
                    )
        banner = self.symbols.get("linux_banner")
        if banner is not None:
            text = _section_bytes_at(self.sym, banner - self.kaslr_offset, 256)
            mem = self.read_via_pt(banner, 256)
            if text is not None and mem is not None:
                text, mem = text.split(b"\0")[0], mem.split(b"\0")[0]
                if text == mem:
                    return "linux_banner"
                raise VmcoreError(
                    f"the dump's linux_banner is {mem[:80]!r}, the vmlinux's "
                    f"{text[:80]!r}: not the vmlinux of this dump",
                    self.core.path,
                )
        raise VmcoreError(
            "cannot tell whether the vmlinux is this dump's: neither its "
            ".notes (build ID) nor linux_banner is readable in the dump",
            self.core.path,
        )

    # -- reads ----------------------------------------------------------------------

    def virt_to_phys(self, vaddr: int) -> int | None:
        """The direct map by subtraction (``__pa()``), everything else by the walk."""
        off = vaddr - self.page_offset_base
        if 0 <= off < self.core.ram_end:
            return off
        return self.pt.translate(vaddr)

    def read_via_pt(self, vaddr: int, size: int) -> bytes | None:
        return self._read(vaddr, size, self.pt.translate)

    def read(self, vaddr: int, size: int) -> bytes | None:
        """``size`` bytes at kernel virtual ``vaddr``, or None when a page of them is not
        mapped or not in the dump."""
        return self._read(vaddr, size, self.virt_to_phys)

    def _read(self, vaddr: int, size: int, translate) -> bytes | None:
        if size < 0 or not 0 <= vaddr < 1 << 64 or vaddr + size > 1 << 64:
            return None
        out = []
        while size > 0:
            n = min(size, PAGE_SIZE - (vaddr & (PAGE_SIZE - 1)))
            phys = translate(vaddr)
            if phys is None:
                return None
            chunk = self.core.read_phys(phys, n)
            if chunk is None:
                return None
            out.append(chunk)
            vaddr += n
            size -= n
        return b"".join(out)

    def u64(self, vaddr: int) -> int | None:
        b = self.read(vaddr, 8)
        return None if b is None else int.from_bytes(b, "little")

    def field(self, struct: str, base: int, path: str) -> int | None:
        """The integer member ``path`` of the ``struct`` at ``base`` (None: unreadable)."""
        m = self.layouts[struct][path] if struct in self.layouts else None
        if m is None:
            raise VmcoreError(f"the vmlinux's DWARF has no struct {struct}", self.sym.path)
        first, n = m.span()
        b = self.read(base + first, n)
        return None if b is None else m.get(b, -first)


def _build_ids(data: bytes) -> list[str]:
    """The NT_GNU_BUILD_ID descriptors of a notes section's bytes, in hex."""
    out = []
    i = 0
    while i + 12 <= len(data):
        namesz, descsz, ntype = (
            int.from_bytes(data[i + k : i + k + 4], "little") for k in (0, 4, 8)
        )
        name_at = i + 12
        desc_at = name_at + ((namesz + 3) & ~3)
        if desc_at + descsz > len(data):
            break
        if ntype == _NT_GNU_BUILD_ID and data[name_at : name_at + namesz].rstrip(b"\0") == b"GNU":
            out.append(data[desc_at : desc_at + descsz].hex())
        i = desc_at + ((descsz + 3) & ~3)
    return out


def _section_bytes_at(sym: ElfSymbolizer, vaddr: int, size: int) -> bytes | None:
    """The vmlinux file's bytes at link address ``vaddr`` (from the section holding it)."""
    for sec in sym.sections.values():
        h = sec.header
        if (
            h["sh_type"] != "SHT_NOBITS"
            and h["sh_flags"] & 0x2
            and h["sh_addr"] <= vaddr < h["sh_addr"] + h["sh_size"]
        ):
            n = min(size, h["sh_addr"] + h["sh_size"] - vaddr)
            off = vaddr - h["sh_addr"]
            data = sym.section_data(sec.name)
            return None if data is None else bytes(data[off : off + n])
    return None


def open_kernel(dump: str, vmlinux: str) -> Kernel:
    for p, what in ((dump, "the dump"), (vmlinux, "the vmlinux")):
        if os.path.isdir(p):
            raise VmcoreError(f"{what} is a directory", p)
    return Kernel(dump, vmlinux)
