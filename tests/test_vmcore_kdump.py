"""makedumpfile's compressed ``KDUMP`` format on small files built here (the layout of
makedumpfile's diskdump_mod.h): pages read back, filtered page frames read as not in the
dump (None, never zeros), and damaged files refused with one line (exit 2).  The shared
dumps converted by makedumpfile itself are in tests/test_vmcore.py."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from kinspect.cli import main
from kinspect.vmcore.core import VmcoreError, open_core
from kinspect.vmcore.diskdump import DiskDump

BS = 4096


def make_kdump(
    path: Path,
    pages: dict[int, bytes],
    *,
    max_mapnr: int = 64,
    raw: frozenset = frozenset(),
    flags: int | None = None,
    machine: bytes = b"x86_64",
    vmcoreinfo: bytes = b"",
    version: int = 6,
    memory: set[int] | None = None,
    desc_offset: dict[int, int] | None = None,
    zdata: dict[int, bytes] | None = None,
    cut: int | None = None,
) -> Path:
    """A KDUMP file holding ``pages`` (pfn -> 4096 bytes), zlib-compressed but for the pfns
    of ``raw``; ``memory``: the first bitmap (default: every pfn); ``flags`` forces every
    descriptor's flags; ``desc_offset``/``zdata`` override a page's offset/data."""
    uts = b"".join(
        f.ljust(65, b"\0") for f in (b"Linux", b"test", b"6.12.118", b"#1", machine, b"")
    )
    bitmap_blocks = 2
    # signature, header_version, utsname, padding, timestamp; status, block_size,
    # sub_hdr_size, bitmap_blocks, max_mapnr, ..., nr_cpus
    hdr = (
        b"KDUMP   "
        + struct.pack("<i", version)
        + uts
        + bytes(6)
        + bytes(16)
        + struct.pack("<IiiIIIIIIi", 1, BS, 1, bitmap_blocks, max_mapnr, 0, 0, 0, 0, 1)
    )
    hdr = hdr.ljust(BS, b"\0")
    vi_at = 2 * BS - 1024
    sub = struct.pack(
        "<QiiQQqQqQqQQQQ",
        0,
        31,
        0,
        0,
        0,
        vi_at if vmcoreinfo else 0,
        len(vmcoreinfo),
        0,
        0,
        0,
        0,
        0,
        0,
        max_mapnr,
    )
    sub = sub.ljust(BS - 1024, b"\0") + vmcoreinfo.ljust(1024, b"\0")
    first = bytearray(bitmap_blocks * BS // 2)
    second = bytearray(bitmap_blocks * BS // 2)
    for pfn in memory if memory is not None else range(max_mapnr):
        first[pfn // 8] |= 1 << pfn % 8
    for pfn in pages:
        second[pfn // 8] |= 1 << pfn % 8
    pd_at = (1 + 1 + bitmap_blocks) * BS
    data_at = pd_at + 24 * len(pages)
    descs, blob = b"", b""
    for pfn in sorted(pages):
        data = pages[pfn] if pfn in raw else zlib.compress(pages[pfn])
        if zdata and pfn in zdata:
            data = zdata[pfn]
        f = 0 if pfn in raw else 1
        off = (desc_offset or {}).get(pfn, data_at + len(blob))
        descs += struct.pack("<qIIQ", off, len(data), f if flags is None else flags, 0)
        blob += data
    out = hdr + sub + bytes(first) + bytes(second) + descs + blob
    path.write_bytes(out[:cut] if cut is not None else out)
    return path


def _page(pfn: int) -> bytes:
    return bytes((pfn * 7 + i) % 251 for i in range(BS))


def test_pages_read_back_and_filtered_frames_are_unknown(tmp_path) -> None:
    pages = {pfn: _page(pfn) for pfn in (0, 1, 2, 9, 17, 63)}
    p = make_kdump(
        tmp_path / "dump",
        pages,
        raw=frozenset({9}),
        vmcoreinfo=b"OSRELEASE=6.12.118\nKERNELOFFSET=1e000000\nNUMBER(phys_base)=-1048576\n",
    )
    with open_core(p) as d:
        assert isinstance(d, DiskDump)
        assert d.ram_end == 64 * BS and d.pages_in_dump == 6 and d.dump_level == 31
        for pfn, data in pages.items():
            assert d.read_phys(pfn * BS, BS) == data, pfn
        # across two frames in the file (1 and 2), and a u64
        assert d.read_phys(2 * BS - 8, 16) == pages[1][-8:] + pages[2][:8]
        assert d.read_phys_u64(17 * BS + 8) == int.from_bytes(pages[17][8:16], "little")
        # a frame the file does not hold (filtered, or past max_mapnr): None, not zeros
        for paddr in (3 * BS, 3 * BS + 100, 9 * BS - 4, 64 * BS, 1 << 40):
            assert d.read_phys(paddr, 8) is None, hex(paddr)
        assert d.read_phys(63 * BS, 2 * BS) is None
        assert d.vmcoreinfo["KERNELOFFSET"] == "1e000000"
        assert d.vmcoreinfo["NUMBER(phys_base)"] == "-1048576"


@pytest.mark.parametrize(
    "case, message",
    [
        ("cut-header", "truncated: 300 bytes, shorter than a makedumpfile header"),
        ("cut-bitmap", "truncated: the header, sub-header and bitmaps need"),
        ("cut-descs", "page descriptors at file offset 0x4000 run past the end of the file"),
        ("cut-data", "bad page descriptor 0 (file offset 0x4000): page data at 0x4048, 309 bytes"),
        ("bitmap", "bad bitmap: page frame 0x5 is in the file but not in memory"),
        ("mapnr", "bad bitmap: 100000 page frames, but the bitmaps hold 32768 bits each"),
        ("offset", "bad page descriptor 1 (file offset 0x4018): page data at 0x10"),
        ("lzo", "pages compressed with lzo (makedumpfile -l/-p/-z): kinspect inflates zlib only"),
        ("zstd", "pages compressed with zstd"),
        ("incomplete", "an incomplete dump"),
        ("arm64", "a dump of another machine (aarch64)"),
        ("vmcoreinfo", "VMCOREINFO line 2 is not KEY=VALUE"),
        ("split", "one part of a split dump (makedumpfile --split)"),
        ("flattened", "makedumpfile's flattened format (makedumpfile -F, for a pipe)"),
    ],
)
def test_bad_kdump_files_are_one_line_exit_2(tmp_path, capsys, case, message) -> None:
    pages = {pfn: _page(pfn) for pfn in (1, 5, 6)}
    p = tmp_path / "dump"
    kw: dict = {}
    if case == "cut-header":
        kw["cut"] = 300
    elif case == "cut-bitmap":
        kw["cut"] = 3 * BS
    elif case == "cut-descs":
        kw["cut"] = 4 * BS + 30
    elif case == "cut-data":
        kw["cut"] = 4 * BS + 3 * 24 + 20
    elif case == "bitmap":
        kw["memory"] = {1, 6}
    elif case == "mapnr":
        kw["max_mapnr"], kw["memory"] = 100000, {1, 5, 6}
    elif case == "offset":
        kw["desc_offset"] = {5: 0x10}
    elif case == "lzo":
        kw["flags"] = 0x2
    elif case == "zstd":
        kw["flags"] = 0x21
    elif case == "incomplete":
        kw["flags"] = 0x9
    elif case == "arm64":
        kw["machine"] = b"aarch64"
    elif case == "vmcoreinfo":
        kw["vmcoreinfo"] = b"OSRELEASE=6.12\nthis line has no equals sign\n"
    make_kdump(p, pages, **kw)
    data = bytearray(p.read_bytes())
    if case == "split":
        data[BS + 12 : BS + 16] = (1).to_bytes(4, "little")  # kdump_sub_header.split
    elif case == "flattened":
        data[:16] = b"makedumpfile\0\0\0\0"
    p.write_bytes(data)
    with pytest.raises(VmcoreError) as e:
        open_core(p)
    assert message in str(e.value) and str(e.value).startswith(f"{p}: "), str(e.value)
    assert "\n" not in str(e.value)
    assert main(["vmcore", str(p), "--vmlinux", str(tmp_path / "no-vmlinux")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == [f"kinspect: {e.value}"]


def test_a_corrupt_zlib_page_is_an_error_when_read(tmp_path) -> None:
    """The stream of one page is damaged: the other pages read, that one is one clear line."""
    pages = {pfn: _page(pfn) for pfn in (1, 5, 6)}
    good = zlib.compress(pages[5])
    bad = good[:10] + bytes(len(good) - 10)
    short = zlib.compress(pages[6][:100])  # inflates, but not to a whole page
    p = make_kdump(tmp_path / "dump", pages, zdata={5: bad, 6: short})
    with open_core(p) as d:
        assert d.read_phys(BS, 16) == pages[1][:16]
        for pfn in (5, 6):
            with pytest.raises(VmcoreError) as e:
                d.read_phys(pfn * BS, 8)
            assert f"page frame {pfn:#x} (descriptor {pfn - 4}" in str(e.value)
            assert "does not inflate to one page" in str(e.value)


def test_tui_and_replay_refuse_bad_input_in_one_line(tmp_path, capsys) -> None:
    """``kinspect tui --vmcore`` opens the dump before the UI starts: a damaged one is the
    one-line error (exit 2); ``--replay`` with ``--addr`` (nothing to replay) too."""
    p = make_kdump(tmp_path / "dump", {1: _page(1)}, machine=b"aarch64")
    assert main(["tui", "--vmcore", str(p), "--vmlinux", str(tmp_path / "vmlinux")]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err
        == f"kinspect: {p}: a dump of another machine (aarch64): kinspect reads x86_64 dumps\n"
        and captured.out == ""
    )
    assert main(["vmcore", str(p), "--vmlinux", "v", "--addr", "0x1000", "--replay"]) == 2
    assert (
        capsys.readouterr().err
        == "kinspect: --replay: replays the dump's reports: not with --addr\n"
    )
