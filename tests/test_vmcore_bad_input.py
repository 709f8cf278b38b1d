"""Small ELF cores built here: the page-table walk (4- and 5-level, 2M and 1G pages, not-present
and corrupt entries), a looped or torn printk ring, and dumps kinspect must refuse with one
line (exit 2): truncated, not ELF, not a core, another machine, a segment past the end."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kinspect.cli import main
from kinspect.vmcore.core import ElfCore, VmcoreError
from kinspect.vmcore.kernel import Kernel
from kinspect.vmcore.pagetable import PageTables
from kinspect.vmcore.printk import DESC_FLAGS_SHIFT, read_ringbuffer
from kinspect.vmcore.types import Layout, Member

P, PS = 1, 1 << 7  # _PAGE_PRESENT, _PAGE_PSE


def make_core(
    path: Path,
    segments: list[tuple[int, bytes]],
    *,
    e_type: int = 4,
    machine: int = 62,
    notes: bytes = b"",
    cut: int | None = None,
    lie: int = 0,
) -> Path:
    """An ELF64 core: a PT_NOTE (when ``notes``) and one PT_LOAD per (paddr, bytes);
    ``cut`` truncates the file, ``lie`` adds to the last segment's p_filesz."""
    phdrs = ([(4, notes)] if notes else []) + [(1, data) for _, data in segments]
    off = 64 + 56 * len(phdrs)
    body = b""
    table = b""
    paddrs = ([0] if notes else []) + [p for p, _ in segments]
    for i, ((kind, data), paddr) in enumerate(zip(phdrs, paddrs)):
        size = len(data) + (lie if i == len(phdrs) - 1 else 0)
        table += struct.pack("<IIQQQQQQ", kind, 0, off + len(body), paddr, paddr, size, size, 0)
        body += data
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    ehdr = struct.pack(
        "<16sHHIQQQIHHHHHH", ident, e_type, machine, 1, 0, 64, 0, 0, 64, 56, len(phdrs), 0, 0, 0
    )
    data = ehdr + table + body
    path.write_bytes(data[:cut] if cut is not None else data)
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "not an ELF file"),
        ("text", "not an ELF file"),
        ("short", "truncated"),
        ("exec", "not a core dump: ELF type 2"),
        ("arm64", "a dump of another machine (e_machine 183)"),
        ("cut", "runs past the end of the file"),
        ("lie", "runs past the end of the file"),
        ("noload", "no PT_LOAD segment"),
    ],
)
def test_bad_dumps_are_one_line_exit_2(tmp_path, capsys, case, message) -> None:
    p = tmp_path / "vmcore"
    page = [(0, bytes(4096))]
    if case == "empty":
        p.write_bytes(b"")
    elif case == "text":
        p.write_text("this is a console log, not a dump\n" * 10)
    elif case == "short":
        p.write_bytes(b"\x7fELF\x02\x01")
    elif case == "exec":
        make_core(p, page, e_type=2)
    elif case == "arm64":
        make_core(p, page, machine=183)
    elif case == "cut":
        make_core(p, page, cut=64 + 56 + 100)
    elif case == "lie":
        make_core(p, page, lie=1)
    elif case == "noload":
        make_core(p, [], notes=struct.pack("<III", 5, 0, 1) + b"CORE\0\0\0\0")
    with pytest.raises(VmcoreError) as e:
        ElfCore(p)
    assert message in str(e.value) and str(e.value).startswith(f"{p}: ")
    assert main(["vmcore", str(p), "--vmlinux", str(tmp_path / "no-vmlinux")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"kinspect: {e.value}"]


def test_a_note_past_its_segment(tmp_path) -> None:
    note = struct.pack("<III", 5, 4096, 1) + b"CORE\0\0\0\0"
    with pytest.raises(VmcoreError, match="past the end of its PT_NOTE segment"):
        ElfCore(make_core(tmp_path / "c", [(0, bytes(4096))], notes=note))


def test_qemu_note_gives_cr3_and_cr4(tmp_path) -> None:
    desc = (
        struct.pack("<II", 1, 440)
        + bytes(8 * 18 + 24 * 10)
        + struct.pack("<5Q", 0x80050033, 0, 0, 0x2A64000, 0x1000)
        + bytes(8)
    )
    note = struct.pack("<III", 5, len(desc), 0) + b"QEMU\0\0\0\0" + desc
    core = ElfCore(make_core(tmp_path / "c", [(0, bytes(4096))], notes=note))
    assert core.cpus[0].cr3 == 0x2A64000 and core.cpus[0].cr4 == 0x1000
    assert not core.cpus[0].prstatus
    core.close()


def _tables(levels: int) -> tuple[bytes, int]:
    """Physical memory 0..0x10000 with page tables rooted at 0x1000 mapping (top-level index
    511, then 0 below): a 4K page at va+0 -> 0x8000, a 2M page at va+2M -> 0x200000, a 1G
    page at va+1G -> 0x40000000, a not-present PTE at va+4K, and a PTE at va+8K whose table
    would be at 0x7f000000 (not in the dump)."""
    mem = bytearray(0x10000)

    def put(table: int, index: int, value: int) -> None:
        struct.pack_into("<Q", mem, table + 8 * index, value)

    t = [0x1000 * (i + 1) for i in range(levels)]  # top, ..., PT
    put(t[0], 511, t[1] | P)
    for a, b in zip(t[1:-1], t[2:]):
        put(a, 0, b | P)
    pud, pmd, pte = t[-3], t[-2], t[-1]
    put(pud, 1, 0x40000000 | P | PS)  # 1G
    put(pmd, 1, 0x200000 | P | PS)  # 2M
    put(pmd, 2, 0x7F000000 | P)  # a PT outside the dump
    put(pte, 0, 0x8000 | P)
    put(pte, 1, 0x9000)  # not present
    mem[0x8000:0x8004] = b"4kB!"
    top_shift = 48 if levels == 5 else 39
    va = (0xFFFF << 48 if levels == 4 else 0xFF << 56) | (511 << top_shift)
    return bytes(mem), va


@pytest.mark.parametrize("levels", [4, 5])
def test_page_table_walk(tmp_path, levels) -> None:
    mem, va = _tables(levels)
    core = ElfCore(make_core(tmp_path / "c", [(0, mem)]))
    pt = PageTables(core, 0x1000 | 0x5, la57=levels == 5)  # (CR3's low bits: PCID)
    assert pt.translate(va + 0x123) == 0x8123
    assert core.read_phys(pt.translate(va), 4) == b"4kB!"
    assert pt.mapping(va + (2 << 20) + 5) == (0x200000, 2 << 20)
    assert pt.translate(va + (1 << 30) + 0x1234) == 0x40001234
    assert pt.translate(va + 0x1000) is None  # not present
    assert pt.translate(va + (4 << 20)) is None  # its table is not in the dump
    assert pt.translate(0x1000) is None  # no top-level entry
    core.close()


# --------------------------------------------------------------------------- the ring


class _FakeKernel(Kernel):
    """A Kernel over a dict of virtual memory, with given layouts (no dump, no vmlinux)."""

    def __init__(self, mem: dict[int, bytes], layouts: dict[str, Layout]) -> None:
        self.mem = mem
        self.layouts = layouts
        self.symbols = {"prb": 0x1000}

        class _P:
            path = "<test>"

        self.core = self.sym = _P()

    def read(self, vaddr: int, size: int) -> bytes | None:
        for base, data in self.mem.items():
            if base <= vaddr and vaddr + size <= base + len(data):
                return data[vaddr - base : vaddr - base + size]
        return None


def _ring(records: list[tuple[int, int, bytes]], head: int, tail: int, count_bits: int = 2):
    """A ring of 2**count_bits descriptors; ``records``: (id, seq, text) each finalized."""
    L = {
        "printk_ringbuffer": Layout(
            "printk_ringbuffer",
            88,
            {
                "desc_ring.count_bits": Member(0, 4),
                "desc_ring.descs": Member(8, 8),
                "desc_ring.infos": Member(16, 8),
                "desc_ring.head_id": Member(24, 8),
                "desc_ring.tail_id": Member(32, 8),
                "text_data_ring.size_bits": Member(48, 4),
                "text_data_ring.data": Member(56, 8),
            },
        ),
        "prb_desc": Layout(
            "prb_desc",
            24,
            {
                "state_var": Member(0, 8),
                "text_blk_lpos.begin": Member(8, 8),
                "text_blk_lpos.next": Member(16, 8),
            },
        ),
        "printk_info": Layout(
            "printk_info",
            88,
            {
                "seq": Member(0, 8),
                "ts_nsec": Member(8, 8),
                "text_len": Member(16, 2),
                "level": Member(0, 1, 157, 3),
                "caller_id": Member(20, 4),
            },
        ),
        "prb_data_block": Layout("prb_data_block", 8, {"id": Member(0, 8), "data": Member(8, 0)}),
    }
    count = 1 << count_bits
    descs, infos, data = bytearray(24 * count), bytearray(88 * count), bytearray(1024)
    lpos = 0
    for did, seq, text in records:
        i = did & (count - 1)
        blk = struct.pack("<Q", did) + text
        blk += bytes(-len(blk) % 8)
        data[lpos : lpos + len(blk)] = blk
        struct.pack_into(
            "<QQQ", descs, 24 * i, (2 << DESC_FLAGS_SHIFT) | did, lpos, lpos + len(blk)
        )
        struct.pack_into("<QQH", infos, 88 * i, seq, seq * 1000, len(text))
        lpos += len(blk)
    rb = bytearray(88)
    struct.pack_into("<I", rb, 0, count_bits)
    struct.pack_into("<QQQQ", rb, 8, 0x2000, 0x3000, head, tail)
    struct.pack_into("<IxxxxQ", rb, 48, 10, 0x4000)
    mem = {
        0x1000: struct.pack("<Q", 0x1100),
        0x1100: bytes(rb),
        0x2000: bytes(descs),
        0x3000: bytes(infos),
        0x4000: bytes(data),
    }
    return _FakeKernel(mem, L)


def test_ring_in_order() -> None:
    k = _ring([(4, 10, b"a"), (5, 11, b"bb\nc"), (6, 12, b"")], head=6, tail=4)
    rb = read_ringbuffer(k)
    assert [(r.seq, r.text) for r in rb.records] == [(10, "a"), (11, "bb\nc"), (12, "")]
    assert rb.records[1].console_lines() == ["[    0.000011] bb", "[    0.000011] c"]
    assert rb.notes == []


def test_a_looped_or_torn_ring_ends_the_walk() -> None:
    # head far past tail: the walk reads the ring's 4 descriptors at most, with a note
    k = _ring([(4, 10, b"a"), (5, 11, b"b")], head=(1 << 62) - 1 + 4, tail=5)
    rb = read_ringbuffer(k)
    assert any("corrupt" in n for n in rb.notes) and len(rb.records) <= 4
    # a sequence number going back: the ring is torn there, the walk stops
    k = _ring([(4, 10, b"a"), (5, 3, b"b"), (6, 12, b"c")], head=6, tail=4)
    rb = read_ringbuffer(k)
    assert [r.text for r in rb.records] == ["a"] and any("torn" in n for n in rb.notes)


def test_a_corrupt_ring_header_is_refused() -> None:
    k = _ring([(4, 10, b"a")], head=4, tail=4, count_bits=2)
    rb = bytearray(k.mem[0x1100])
    struct.pack_into("<I", rb, 0, 63)  # count_bits 63
    k.mem[0x1100] = bytes(rb)
    with pytest.raises(VmcoreError, match="corrupt: count_bits 63"):
        read_ringbuffer(k)
