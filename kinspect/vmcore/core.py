"""An ELF core file (QEMU's ``dump-guest-memory``, kdump's ``/proc/vmcore``), mapped, never read
whole: its PT_LOAD segments (physical memory) and its notes (``NT_PRSTATUS`` per CPU, QEMU's
CPU state with the control registers).

Every fault of the file (not ELF, not a core, another machine, truncated, a segment or note
past the end of the file) is one :class:`VmcoreError` naming the file and what is wrong.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Self

from kinspect.engine.errors import KinspectError

__all__ = ["VmcoreError", "ElfCore", "Segment", "CpuState", "open_core"]

EM_X86_64 = 62  # include/uapi/linux/elf-em.h
ET_CORE = 4  # include/uapi/linux/elf.h
PT_LOAD = 1
PT_NOTE = 4
NT_PRSTATUS = 1
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_NHDR = struct.Struct("<III")
# QEMU's target/i386/arch_dump.c, struct QEMUCPUState: version, size, 18 general registers
# (rax..r15, rip, rflags), 10 QEMUCPUSegment of 24 bytes (cs ds es fs gs ss ldt tr gdt idt),
# then cr[5]
_QEMU_CR_OFFSET = 8 + 18 * 8 + 10 * 24
_MAX_NOTES = 4096


class VmcoreError(KinspectError):
    """A crash dump (or the vmlinux paired with it) that kinspect cannot use."""


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD: physical ``[paddr, paddr + filesz)`` at file offset ``offset``."""

    paddr: int
    vaddr: int
    offset: int
    filesz: int
    memsz: int


@dataclass
class CpuState:
    """What the notes say of one CPU (control registers from QEMU's note, when present)."""

    index: int
    prstatus: bool = False
    cr: tuple[int, ...] | None = None  # CR0..CR4

    @property
    def cr3(self) -> int | None:
        return None if self.cr is None else self.cr[3]

    @property
    def cr4(self) -> int | None:
        return None if self.cr is None else self.cr[4]


@dataclass
class Note:
    name: bytes
    type: int
    desc: memoryview = field(repr=False)


def parse_notes(
    view, off: int, size: int, out: list[Note], error, area: str = "its PT_NOTE segment"
) -> None:
    """The ELF notes of ``view[off:off + size]`` appended to ``out`` (a PT_NOTE segment, or
    the note area a makedumpfile header copies); ``error(message)`` makes the exception."""
    i, end = off, off + size
    while i + _NHDR.size <= end:
        if len(out) >= _MAX_NOTES:
            raise error(f"more than {_MAX_NOTES} notes: not a dump kinspect knows")
        namesz, descsz, ntype = _NHDR.unpack_from(view, i)
        name_at = i + _NHDR.size
        desc_at = name_at + ((namesz + 3) & ~3)
        nxt = desc_at + ((descsz + 3) & ~3)
        if desc_at + descsz > end:
            raise error(
                f"the note at file offset {i:#x} claims {namesz} + {descsz} "
                f"bytes, past the end of {area}"
            )
        name = bytes(view[name_at : name_at + namesz]).rstrip(b"\0")
        out.append(Note(name, ntype, view[desc_at : desc_at + descsz]))
        i = nxt


def cpus_from_notes(notes: list[Note]) -> list[CpuState]:
    """One CpuState per CPU: ``NT_PRSTATUS`` notes, and QEMU's CPU state (CR0..CR4)."""
    cpus: list[CpuState] = []
    pr = [n for n in notes if n.name == b"CORE" and n.type == NT_PRSTATUS]
    qemu = [n for n in notes if n.name == b"QEMU"]
    for i in range(max(len(pr), len(qemu))):
        cpu = CpuState(i, prstatus=i < len(pr))
        if i < len(qemu) and len(qemu[i].desc) >= _QEMU_CR_OFFSET + 40:
            cpu.cr = struct.unpack_from("<5Q", qemu[i].desc, _QEMU_CR_OFFSET)
        cpus.append(cpu)
    return cpus


def parse_vmcoreinfo(text: bytes, error) -> dict[str, str]:
    """VMCOREINFO's ``KEY=VALUE`` lines (kernel/vmcore_info.c ``vmcoreinfo_append_str()``)."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.rstrip(b"\0").split(b"\n"), 1):
        if not line:
            continue
        key, eq, value = line.partition(b"=")
        if not eq or not key:
            raise error(f"VMCOREINFO line {n} is not KEY=VALUE: {line[:60]!r}")
        out[key.decode("ascii", "replace")] = value.decode("ascii", "replace")
    return out


def vmcoreinfo_from_notes(notes: list[Note], error) -> dict[str, str] | None:
    """The ``VMCOREINFO`` note's fields (kdump's /proc/vmcore, QEMU's ``-device vmcoreinfo``
    when the guest published it), or None when the dump has none."""
    note = next((n for n in notes if n.name == b"VMCOREINFO"), None)
    return None if note is None else parse_vmcoreinfo(bytes(note.desc), error)


class DumpFile:
    """A dump file mapped read-only, the one way both formats open, check, map and close
    it: a subclass names its header size (``_MIN_SIZE``) and says why a shorter file is
    not a dump (``_too_short``), then parses the mapping."""

    _MIN_SIZE = 0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._mm: mmap.mmap | None = None
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < self._MIN_SIZE:
                    raise self._too_short(fh, size)
                self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise VmcoreError(f"cannot read the file: {e.strerror}", self.path) from None
        self.size = size
        self._view = memoryview(self._mm)

    def _too_short(self, fh: BinaryIO, size: int) -> VmcoreError:
        raise NotImplementedError

    @property
    def _map(self) -> mmap.mmap:
        """The mapping; reading a closed dump is a bug in the caller."""
        assert self._mm is not None, "read after close()"
        return self._mm

    def error(self, message: str) -> VmcoreError:
        return VmcoreError(message, self.path)

    def close(self) -> None:
        self._view.release()
        if self._mm is not None:
            with contextlib.suppress(BufferError):  # a view still alive: the GC closes it
                self._mm.close()
            self._mm = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ElfCore(DumpFile):
    """The dump, mapped read-only.  ``read_phys(paddr, size)`` gives bytes, or None when any
    byte of the range is in no PT_LOAD (not in the dump)."""

    _MIN_SIZE = _EHDR.size

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._parse()

    def _too_short(self, fh: BinaryIO, size: int) -> VmcoreError:
        if fh.read(4) != b"\x7fELF":
            return self.error("not an ELF file (no \\x7fELF magic)")
        return self.error(f"truncated: {size} bytes, shorter than an ELF header")

    # -- the headers ----------------------------------------------------------------

    def _parse(self) -> None:
        m = self._map
        (
            ident,
            e_type,
            e_machine,
            _ver,
            _entry,
            e_phoff,
            _shoff,
            _flags,
            _ehsize,
            e_phentsize,
            e_phnum,
            _shentsize,
            _shnum,
            _shstrndx,
        ) = _EHDR.unpack_from(m, 0)
        if ident[:4] != b"\x7fELF":
            raise self.error("not an ELF file (no \\x7fELF magic)")
        if ident[4] != 2 or ident[5] != 1:
            raise self.error(
                f"not a 64-bit little-endian ELF file (class {ident[4]}, data "
                f"{ident[5]}): kinspect reads x86_64 dumps"
            )
        if e_type != ET_CORE:
            raise self.error(
                f"not a core dump: ELF type {e_type}, not ET_CORE ({ET_CORE}); "
                "give the dump, and the vmlinux with --vmlinux"
            )
        if e_machine != EM_X86_64:
            raise self.error(
                f"a dump of another machine (e_machine {e_machine}): kinspect "
                f"reads x86_64 dumps (e_machine {EM_X86_64})"
            )
        if e_phnum == 0 or e_phentsize != _PHDR.size:
            raise self.error(f"no usable program headers ({e_phnum} of {e_phentsize} bytes)")
        if e_phoff + e_phnum * _PHDR.size > self.size:
            raise self.error(
                f"the program headers lie past the end of the file ({self.size} bytes): truncated?"
            )
        self.segments: list[Segment] = []
        notes: list[tuple[int, int]] = []
        for i in range(e_phnum):
            p_type, _pf, off, vaddr, paddr, filesz, memsz, _align = _PHDR.unpack_from(
                m, e_phoff + i * _PHDR.size
            )
            if p_type not in (PT_LOAD, PT_NOTE):
                continue
            if off + filesz > self.size:
                kind = "PT_LOAD" if p_type == PT_LOAD else "PT_NOTE"
                raise self.error(
                    f"program header {i} ({kind} at file offset {off:#x}, "
                    f"{filesz:#x} bytes) runs "
                    f"past the end of the file ({self.size:#x} bytes): truncated?"
                )
            if p_type == PT_NOTE:
                notes.append((off, filesz))
            elif filesz:
                self.segments.append(Segment(paddr, vaddr, off, filesz, memsz))
        if not self.segments:
            raise self.error("no PT_LOAD segment: no memory in this dump")
        self.segments.sort(key=lambda s: s.paddr)
        for a, b in zip(self.segments, self.segments[1:]):
            if a.paddr + a.filesz > b.paddr:
                raise self.error(f"PT_LOAD segments overlap at physical {b.paddr:#x}")
        self._seg_start = [s.paddr for s in self.segments]
        self.notes: list[Note] = []
        for off, size in notes:
            parse_notes(self._view, off, size, self.notes, self.error)
        self.cpus = cpus_from_notes(self.notes)
        self.vmcoreinfo = vmcoreinfo_from_notes(self.notes, self.error)

    @property
    def kind(self) -> str:
        return "x86_64 ELF core"

    # -- physical memory -------------------------------------------------------------

    @property
    def ram_end(self) -> int:
        """One past the highest physical address the dump holds."""
        s = self.segments[-1]
        return s.paddr + s.filesz

    def _segment(self, paddr: int) -> Segment | None:
        i = bisect.bisect_right(self._seg_start, paddr) - 1
        if i < 0:
            return None
        s = self.segments[i]
        return s if paddr < s.paddr + s.filesz else None

    def read_phys(self, paddr: int, size: int) -> bytes | None:
        """``size`` bytes at physical ``paddr``, or None when not all of them are in the dump
        (a read across two adjacent segments is joined)."""
        out = []
        while size > 0:
            s = self._segment(paddr)
            if s is None:
                return None
            n = min(size, s.paddr + s.filesz - paddr)
            at = s.offset + paddr - s.paddr
            out.append(self._map[at : at + n])
            paddr += n
            size -= n
        return out[0] if len(out) == 1 else b"".join(out)

    def read_phys_u64(self, paddr: int) -> int | None:
        s = self._segment(paddr)
        if s is None or paddr + 8 > s.paddr + s.filesz:
            return None
        return int.from_bytes(
            self._map[s.offset + paddr - s.paddr : s.offset + paddr - s.paddr + 8], "little"
        )


def open_core(path: str | os.PathLike[str]):
    """The dump at ``path``: an ELF core (:class:`ElfCore`) or makedumpfile's compressed
    ``KDUMP`` file (:class:`kinspect.vmcore.diskdump.DiskDump`), told by the first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise VmcoreError(f"cannot read the file: {e.strerror}", os.fspath(path)) from None
    from .diskdump import KDUMP_SIGNATURE, DiskDump

    if head == KDUMP_SIGNATURE:
        return DiskDump(path)
    if head == b"makedump":  # MAKEDUMPFILE_SIGNATURE "makedumpfile"
        raise VmcoreError(
            "makedumpfile's flattened format (makedumpfile -F, for a pipe): "
            "rearrange it first with makedumpfile -R",
            os.fspath(path),
        )
    return ElfCore(path)
