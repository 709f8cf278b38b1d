"""makedumpfile's compressed dump format (``KDUMP   `` signature: kdump users' usual
``makedumpfile -c`` output), mapped, never read whole, a page inflated when read.

The layout, as makedumpfile's diskdump_mod.h writes it (block = the dumped kernel's page
size, ``block_size``):

* block 0, ``struct disk_dump_header``: the signature, ``header_version``, the kernel's
  ``new_utsname`` (its ``machine`` must be x86_64), ``block_size``, ``sub_hdr_size`` (in
  blocks), ``bitmap_blocks``, ``max_mapnr``, ``nr_cpus``;
* block 1, ``struct kdump_sub_header`` (``sub_hdr_size`` blocks): ``phys_base``,
  ``dump_level``, the file offsets and sizes of a copy of the VMCOREINFO text and of the ELF
  notes (``NT_PRSTATUS`` per CPU, QEMU's CPU state when the source was QEMU's core),
  ``max_mapnr_64`` (``header_version`` >= 6);
* ``bitmap_blocks`` blocks of two bitmaps of equal size, bit ``pfn`` of a byte counted from
  its least significant bit: the first says which page frames are memory, the second which
  of them are **in the file** (makedumpfile's ``-d`` filtering clears the rest);
* one ``struct page_desc`` (offset, size, flags, page_flags: 24 bytes) per set bit of the
  second bitmap, in pfn order, then the pages: ``flags`` names the compression
  (``DUMP_DH_COMPRESSED_ZLIB`` 0x1; lzo 0x2, snappy 0x4 and zstd 0x20 are refused with one
  line: kinspect inflates zlib only), no flag a raw page of ``block_size`` bytes.

A page frame whose bit is clear in the second bitmap (filtered out, or beyond ``max_mapnr``)
is **not in the dump**: ``read_phys`` gives None (shown as unknown), never zeros.  Every fault
of the file (truncated, a bitmap that names more pages than it has descriptors for, a
descriptor pointing outside the file, a page that does not inflate to a page) is one
:class:`VmcoreError` naming the file.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import OrderedDict
from typing import BinaryIO

import numpy as np

from .core import (
    CpuState,
    DumpFile,
    Note,
    VmcoreError,
    cpus_from_notes,
    parse_notes,
    parse_vmcoreinfo,
    vmcoreinfo_from_notes,
)

__all__ = ["DiskDump", "KDUMP_SIGNATURE"]

KDUMP_SIGNATURE = b"KDUMP   "
_UTS_LEN = 65  # include/uapi/linux/utsname.h __NEW_UTS_LEN + 1
# struct disk_dump_header after signature, header_version and utsname (6 * 65 bytes), the
# struct timeval aligned to 8: status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr,
# total_ram_blocks, device_blocks, written_blocks, current_cpu, nr_cpus
_HDR_AT = 8 + 4 + 6 * _UTS_LEN + 6 + 16
_HDR = struct.Struct("<IiiIIIIIIi")
# struct kdump_sub_header: phys_base, dump_level, split, start_pfn, end_pfn,
# offset_vmcoreinfo, size_vmcoreinfo, offset_note, size_note, offset_eraseinfo,
# size_eraseinfo, start_pfn_64, end_pfn_64, max_mapnr_64
_SUB = struct.Struct("<QiiQQqQqQqQQQQ")
_PAGE_DESC = np.dtype([("offset", "<i8"), ("size", "<u4"), ("flags", "<u4"), ("page_flags", "<u8")])
DUMP_DH_COMPRESSED_ZLIB = 0x1
_REFUSED = {0x2: "lzo", 0x4: "snappy", 0x20: "zstd"}
DUMP_DH_COMPRESSED_INCOMPLETE = 0x8
_X86_64_PAGE_SIZE = 4096
_CACHED_PAGES = 256


class DiskDump(DumpFile):
    """The dump, mapped read-only: ``read_phys(paddr, size)`` gives bytes, or None when any
    byte of the range is in a page frame the file does not hold."""

    _MIN_SIZE = _HDR_AT + _HDR.size

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._pages: OrderedDict[int, bytes] = OrderedDict()
        self._parse()

    def _too_short(self, fh: BinaryIO, size: int) -> VmcoreError:
        return self.error(f"truncated: {size} bytes, shorter than a makedumpfile header")

    @property
    def kind(self) -> str:
        return (
            f"x86_64 makedumpfile compressed dump (header version {self.header_version}, "
            f"dump level {self.dump_level}, {self.pages_in_dump} of {self.max_mapnr} page "
            f"frames in the file)"
        )

    # -- the headers ----------------------------------------------------------------

    def _parse(self) -> None:
        m = self._view
        if bytes(m[:8]) != KDUMP_SIGNATURE:
            raise self.error("not a makedumpfile dump (no KDUMP signature)")
        self.header_version = struct.unpack_from("<i", m, 8)[0]
        machine = bytes(m[12 + 4 * _UTS_LEN : 12 + 5 * _UTS_LEN]).split(b"\0")[0]
        if machine and machine != b"x86_64":
            raise self.error(
                f"a dump of another machine ({machine.decode('ascii', 'replace')}"
                "): kinspect reads x86_64 dumps"
            )
        (_status, bs, sub_blocks, bitmap_blocks, max_mapnr, _ram, _dev, _written, _cur, nr_cpus) = (
            _HDR.unpack_from(m, _HDR_AT)
        )
        if bs != _X86_64_PAGE_SIZE:
            raise self.error(
                f"block size {bs}, not the x86_64 page size "
                f"({_X86_64_PAGE_SIZE}): not an x86_64 dump, or a damaged header"
            )
        self.block_size = bs
        if sub_blocks < 1 or bitmap_blocks < 2 or bitmap_blocks % 2:
            raise self.error(
                f"a damaged header: sub-header of {sub_blocks} blocks, bitmaps of "
                f"{bitmap_blocks} blocks"
            )
        if (1 + sub_blocks + bitmap_blocks) * bs > self.size:
            raise self.error(
                f"truncated: the header, sub-header and bitmaps need "
                f"{(1 + sub_blocks + bitmap_blocks) * bs} bytes, the file has "
                f"{self.size}"
            )
        sub = _SUB.unpack_from(m, bs)
        self.phys_base = sub[0]
        self.dump_level = sub[1]
        if self.header_version >= 2 and sub[2]:
            raise self.error(
                "one part of a split dump (makedumpfile --split): join the parts "
                "first with makedumpfile --reassemble"
            )
        if self.header_version >= 6 and sub[13]:
            max_mapnr = sub[13]  # max_mapnr_64
        half = bitmap_blocks * bs // 2
        if max_mapnr > half * 8:
            raise self.error(
                f"bad bitmap: {max_mapnr} page frames, but the bitmaps hold {half * 8} bits each"
            )
        self.max_mapnr = max_mapnr
        self.nr_cpus = nr_cpus
        # the ELF notes and VMCOREINFO copied into the sub-header area (header_version >= 3/4)
        self.notes: list[Note] = []
        if self.header_version >= 4 and sub[8]:
            self._check_area("the notes", sub[7], sub[8])
            parse_notes(m, sub[7], sub[8], self.notes, self.error, "the notes of the sub-header")
        self.cpus: list[CpuState] = cpus_from_notes(self.notes)
        self.vmcoreinfo = vmcoreinfo_from_notes(self.notes, self.error)
        if self.header_version >= 3 and sub[6]:
            self._check_area("VMCOREINFO", sub[5], sub[6])
            self.vmcoreinfo = parse_vmcoreinfo(bytes(m[sub[5] : sub[5] + sub[6]]), self.error)
        # the bitmaps: the second (in the file) must be a subset of the first (memory)
        at = (1 + sub_blocks) * bs
        nbytes = (max_mapnr + 7) // 8
        first = np.frombuffer(m[at : at + nbytes], np.uint8)
        second = np.frombuffer(m[at + half : at + half + nbytes], np.uint8).copy()
        if max_mapnr % 8:
            second[-1] &= (1 << (max_mapnr % 8)) - 1
        stray = np.nonzero(second & ~first)[0]
        if len(stray):
            byte = int(stray[0])
            bit = (int(second[byte]) & ~int(first[byte])).bit_length() - 1
            raise self.error(
                f"bad bitmap: page frame {byte * 8 + bit:#x} is in the file "
                "but not in memory (the two bitmaps disagree)"
            )
        self._bitmap = second
        # rank: how many page frames are in the file before each byte of the bitmap
        counts = np.unpackbits(second).reshape(-1, 8).sum(axis=1, dtype=np.int64)
        self._rank = np.concatenate(([0], np.cumsum(counts)))
        self.pages_in_dump = int(self._rank[-1])
        # the page descriptors: each inside the file, of a size a page can have
        pd_at = (1 + sub_blocks + bitmap_blocks) * bs
        if pd_at + self.pages_in_dump * _PAGE_DESC.itemsize > self.size:
            raise self.error(
                f"truncated: {self.pages_in_dump} page descriptors at file offset "
                f"{pd_at:#x} run past the end of the file ({self.size} bytes)"
            )
        self._desc = np.frombuffer(
            m[pd_at : pd_at + self.pages_in_dump * _PAGE_DESC.itemsize], _PAGE_DESC
        )
        d = self._desc
        data_at = pd_at + self.pages_in_dump * _PAGE_DESC.itemsize
        raw = (d["flags"] & (DUMP_DH_COMPRESSED_ZLIB | sum(_REFUSED))) == 0
        bad = (
            (d["offset"] < data_at)
            | (d["size"] == 0)
            | (d["size"] > bs)
            | (raw & (d["size"] != bs))
            | (d["offset"] > self.size - d["size"].astype(np.int64))
        )
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            raise self.error(
                f"bad page descriptor {i} (file offset "
                f"{pd_at + i * _PAGE_DESC.itemsize:#x}): page data at "
                f"{int(d['offset'][i]):#x}, {int(d['size'][i])} bytes, outside the "
                "file's page data or larger than a page: truncated or damaged"
            )
        flags = int(np.bitwise_or.reduce(d["flags"])) if len(d) else 0
        for bit, name in _REFUSED.items():
            if flags & bit:
                raise self.error(
                    f"pages compressed with {name} (makedumpfile -l/-p/-z): "
                    "kinspect inflates zlib only; make the dump with "
                    "makedumpfile -c, or convert it with makedumpfile -E"
                )
        if flags & DUMP_DH_COMPRESSED_INCOMPLETE:
            raise self.error(
                "an incomplete dump (DUMP_DH_COMPRESSED_INCOMPLETE: makedumpfile "
                "ran out of space): its pages cannot be trusted"
            )

    def _check_area(self, what: str, off: int, size: int) -> None:
        if off < 0 or size < 0 or off + size > self.size:
            raise self.error(
                f"{what} of the sub-header (file offset {off:#x}, {size} bytes) "
                "run past the end of the file: truncated?"
            )

    # -- physical memory -------------------------------------------------------------

    @property
    def ram_end(self) -> int:
        """One past the highest physical address the dump describes."""
        return self.max_mapnr * self.block_size

    def _page(self, pfn: int) -> bytes | None:
        """Page frame ``pfn`` (inflated), or None when the file does not hold it."""
        if not 0 <= pfn < self.max_mapnr:
            return None
        byte, bit = divmod(pfn, 8)
        b = int(self._bitmap[byte])
        if not b >> bit & 1:
            return None
        page = self._pages.get(pfn)
        if page is not None:
            self._pages.move_to_end(pfn)
            return page
        i = int(self._rank[byte]) + (b & ((1 << bit) - 1)).bit_count()
        off, size, flags = (
            int(self._desc["offset"][i]),
            int(self._desc["size"][i]),
            int(self._desc["flags"][i]),
        )
        data = self._map[off : off + size]
        if flags & DUMP_DH_COMPRESSED_ZLIB:
            try:
                d = zlib.decompressobj()
                data = d.decompress(data, self.block_size + 1)
                ok = d.eof and len(data) == self.block_size
            except zlib.error:
                ok = False
            if not ok:
                raise self.error(
                    f"page frame {pfn:#x} (descriptor {i}, file offset {off:#x}): "
                    "its zlib stream does not inflate to one page: damaged"
                )
        self._pages[pfn] = data
        if len(self._pages) > _CACHED_PAGES:
            self._pages.popitem(last=False)
        return data

    def read_phys(self, paddr: int, size: int) -> bytes | None:
        """``size`` bytes at physical ``paddr``, or None when not all of them are in the
        file."""
        out = []
        bs = self.block_size
        while size > 0:
            page = self._page(paddr // bs)
            if page is None:
                return None
            at = paddr % bs
            n = min(size, bs - at)
            out.append(page[at : at + n])
            paddr += n
            size -= n
        return out[0] if len(out) == 1 else b"".join(out)

    def read_phys_u64(self, paddr: int) -> int | None:
        data = self.read_phys(paddr, 8)
        return None if data is None else int.from_bytes(data, "little")
