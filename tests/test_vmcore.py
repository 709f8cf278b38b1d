"""``kinspect vmcore`` on the real dumps of the shared data (issue 15): a 6.12.118 generic-KASAN
x86_64 kernel stopped at its first KASAN report, and after the whole KUnit ``kasan`` suite.

The ``.xz`` files are decompressed once into ``<cache>/vmcore-data`` (``<cache>``:
``$XDG_CACHE_HOME/kinspect`` or ``~/.cache/kinspect``), keyed by each ``.xz``'s size and
mtime; a cached file is used only when its marker (written after a complete decompression)
names the same ``.xz`` and its size and the hash of its first and last MiB agree.  Skipped,
with the reason, when the shared data is absent.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from kinspect.cli import main
from kinspect.reports.kreport import iter_reports
from kinspect.vmcore import Kernel, VmcoreError
from kinspect.vmcore.command import memory_state
from kinspect.vmcore.printk import console_lines, read_ringbuffer

ROOT = Path(__file__).resolve().parent.parent
_CANDIDATES = [Path("/work/shared/data/vmcore"), ROOT.parent / "shared" / "data" / "vmcore"]
SHARED = next((p for p in _CANDIDATES if (p / "vmlinux.xz").is_file()), None)
pytestmark = pytest.mark.skipif(
    SHARED is None,
    reason="the project's real vmcore dumps (the shared data, docs/vmcore.md) are not here",
)
_MIB = 1 << 20


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kinspect" / "vmcore-data"


def _edges_digest(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as fh:
        h.update(fh.read(_MIB))
        fh.seek(max(size - _MIB, 0))
        h.update(fh.read(_MIB))
    return h.hexdigest()


def unpacked(name: str) -> Path:
    """``SHARED/name.xz`` decompressed (once per .xz size and mtime)."""
    xz = SHARED / f"{name}.xz"
    st = xz.stat()
    key = f"{st.st_size}-{st.st_mtime_ns}"
    out = _cache_root() / key / name
    marker = out.with_name(name + ".ok")
    try:
        doc = json.loads(marker.read_text())
        if doc == {
            "xz": str(xz),
            "key": key,
            "size": out.stat().st_size,
            "edges": _edges_digest(out),
        }:
            return out
    except (OSError, ValueError):
        pass
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as dst, lzma.open(xz) as src:
            shutil.copyfileobj(src, dst, 4 * _MIB)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    marker.write_text(
        json.dumps(
            {"xz": str(xz), "key": key, "size": out.stat().st_size, "edges": _edges_digest(out)}
        )
    )
    return out


@pytest.fixture(scope="module")
def vmlinux() -> Path:
    return unpacked("vmlinux")


@pytest.fixture(scope="module")
def first(vmlinux):
    with Kernel(str(unpacked("vmcore-first-report.elf")), str(vmlinux)) as k:
        yield k


@pytest.fixture(scope="module")
def after(vmlinux):
    with Kernel(str(unpacked("vmcore-after-kunit.elf")), str(vmlinux)) as k:
        yield k


def _console(name: str) -> list[str]:
    text = (SHARED / f"console-{name}.log").read_text(errors="replace")
    return [ln.rstrip("\r") for ln in text.splitlines()]


def test_the_pairing_and_the_memory(first) -> None:
    assert first.build_id_match == "build ID 9499bdc535f311ab78cf1a61d0e0609096deb801"
    assert first.root_source == "CR3 of CPU 0" and not first.la57
    assert len(first.core.cpus) == 2 and all(c.prstatus for c in first.core.cpus)
    # read from the dump, not assumed: the x86_64 defaults of a nokaslr 4-level kernel
    assert first.page_offset_base == 0xFFFF888000000000
    assert first.vmemmap_base == 0xFFFFEA0000000000
    banner = first.read(first.symbols["linux_banner"], 20)
    assert banner == b"Linux version 6.12.1"
    # the kernel image through the walk and its physical place (phys_base 0) agree
    stext = first.symbols["_stext"]
    assert first.pt.translate(stext) == stext - 0xFFFFFFFF80000000
    # a user-space address is not mapped in the kernel's page tables: None, no exception
    assert first.read(0x1000, 8) is None


def test_the_ring_buffer_is_the_console_log(first, after) -> None:
    """The records, printed as the console prints them, are the console log's last lines,
    byte for byte (the first line of the first log begins with the firmware's escapes)."""
    for k, name in ((first, "first-report"), (after, "after-kunit")):
        ring = read_ringbuffer(k)
        got = console_lines(ring.records)
        con = _console(name)
        tail = con[len(con) - len(got) :]
        assert got[1:] == tail[1:], name
        assert tail[0].endswith(got[0]), name


def test_first_report_shadow_rows_read_from_the_dump(first) -> None:
    """The five shadow rows read from the dump's shadow (through its page tables) equal the
    five rows the kernel printed in its console log."""
    (rep,) = list(iter_reports(str(SHARED / "console-first-report.log")))
    assert rep.function == "kmalloc_oob_right+0x632/0x6d0" and rep.addr == 0xFFFF888006578E73
    st = memory_state(first, rep.addr, rep.size)
    assert st.first_bad_addr == rep.addr  # (shadow 03: the access itself is bad)
    assert [(st.row_start + i * 128, tuple(r)) for i, r in enumerate(st.rows)] == [
        (row.addr, row.values) for row in rep.memory_rows
    ]
    printed = [
        ln.split("] ", 1)[1]
        for ln in _console("first-report")
        if re.match(r"\[ *[0-9.]+\] [ >]ffff8880065", ln)
    ]
    assert st.memory_lines()[:3] + st.memory_lines()[4:] == printed
    # the alloc track, from KASAN's alloc meta and the stack depot, as print_track() did
    assert st.tracks == [
        (f"Allocated by task {rep.alloc_stack.pid}:", list(rep.alloc_stack.frames))
    ]
    assert rep.alloc_stack.frames[0] == "kasan_save_stack+0x33/0x60"
    # the object, as describe_object_addr() printed it
    assert st.object.lines(rep.addr, rep.bug_type) == [
        f"The buggy address belongs to the object at {rep.object_addr:016x}",
        f" which belongs to the cache {rep.cache_name} of size {rep.cache_object_size}",
        f"The buggy address is located {rep.rel_bytes} bytes {rep.direction} of",
        f" {rep.state} {rep.region_size}-byte region [{rep.region_start:016x}, "
        f"{rep.region_end:016x})",
    ]
    assert [
        ln.split("] ", 1)[1]
        for ln in _console("first-report")
        if re.match(
            r"\[ *[0-9.]+\] ( which belongs|The buggy address (belongs to the "
            r"obj|is located)| allocated)",
            ln,
        )
    ] == st.object.lines(rep.addr, rep.bug_type)
    # the struct page, decoded as __dump_folio() printed it
    assert st.page["lines"] == [ln for ln in rep.page_lines if not ln.startswith("page dumped")]
    assert st.page["notes"] == [] and len(st.page["lines"]) == 5


def test_after_kunit_reports_equal_the_console_logs(after) -> None:
    """Every report in the ring buffer equals the console log's report (its last ones: the
    128 KiB ring, CONFIG_LOG_BUF_SHIFT=17, holds only the end of the 600 KB log)."""
    ring = read_ringbuffer(after)
    assert ring.data_size == 1 << 17
    got = list(iter_reports(console_lines(ring.records), path="ring"))
    con = list(iter_reports(str(SHARED / "console-after-kunit.log")))
    assert len(con) == 152
    assert len(got) == 36

    def same(r):
        d = r.to_json()
        for key in ("path", "line", "end_line"):
            d.pop(key)
        for s in [d["access_stack"], d["alloc_stack"], d["free_stack"], *d["aux_stacks"]]:
            if s is not None:
                s.pop("line")
        return d

    assert [same(r) for r in got] == [same(r) for r in con[-len(got) :]]


def test_after_kunit_objects_in_the_dump(after) -> None:
    """The dump was taken after the suite: its objects are freed since (shadow fa fb ...),
    but each reported slab object is still found, in the same cache, with the alloc track the
    report printed (34 of the ring's 36 reports are of slab objects)."""
    reps = list(iter_reports(console_lines(read_ringbuffer(after).records), path="ring"))
    slab = [r for r in reps if r.object_addr is not None]
    assert len(slab) == 34 and all(r.alloc_stack is not None for r in slab)
    for r in slab:
        st = memory_state(after, r.addr, r.size or 0, r.bug_type)
        assert (st.object.object_addr, st.object.cache_name) == (r.object_addr, r.cache_name)
        assert st.tracks[0] == (
            f"Allocated by task {r.alloc_stack.pid}:",
            list(r.alloc_stack.frames),
        )


def test_the_command(first, vmlinux, capsys) -> None:
    dump = first.core.path
    assert main(["vmcore", dump, "--vmlinux", str(vmlinux)]) == 0
    out = capsys.readouterr().out
    assert "KASAN: slab-out-of-bounds Write in kunit_try_run_case" in out
    assert ">ffff888006578e00: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03 fc" in out
    assert (
        main(
            [
                "vmcore",
                dump,
                "--vmlinux",
                str(vmlinux),
                "--format",
                "json",
                "--addr",
                "ffff888006578e00",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["address"]["rows"][2] == "0000000000000000000000000000" + "03fc"
    assert doc["address"]["page"]["pfn"] == 0x6578


def test_a_mismatched_vmlinux_is_refused(first, tmp_path, capsys) -> None:
    """The other dump's kernel is the same build; a vmlinux whose .notes build ID differs is
    refused (a copy of the vmlinux with one byte of its build ID changed)."""
    src = Path(first.sym.path)
    bad = tmp_path / "vmlinux"
    data = bytearray(src.read_bytes())
    at = data.find(bytes.fromhex("9499bdc535f311ab78cf1a61d0e0609096deb801"))
    data[at] ^= 0xFF
    bad.write_bytes(data)
    with pytest.raises(VmcoreError, match="build ID 9499bdc5.*not the vmlinux of this dump"):
        Kernel(first.core.path, str(bad))
    assert main(["vmcore", first.core.path, "--vmlinux", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"kinspect: {first.core.path}: ")


def test_any_address(first, vmlinux, capsys) -> None:
    """--addr: rows whose shadow the page tables do not map are '??', never an error."""
    st = memory_state(first, 0xFFFFFFFF81000000)  # the kernel image's first bytes
    assert st.rows[0] is None and st.rows[2] == bytes(16)  # (its shadow starts there)
    assert st.memory_lines()[0] == " ffffffff80ffff00: " + " ".join(["??"] * 16)
    assert st.page is None  # not in the direct map
    beyond = memory_state(first, 0xFFFF888000000000 + (256 << 20))  # past the 256 MiB
    assert beyond.page is None and all(r is None for r in beyond.rows)
    assert main(["vmcore", first.core.path, "--vmlinux", str(vmlinux), "--addr", "0x1000"]) == 0
    assert "0x1000 has no shadow" in capsys.readouterr().out


def test_a_dump_without_this_kernel(vmlinux, tmp_path, capsys) -> None:
    """A core whose memory holds no kernel: nothing tells it is the vmlinux's, refused."""
    from test_vmcore_bad_input import make_core  # (tests/ is on sys.path)

    dump = make_core(tmp_path / "core", [(0, bytes(8192))])
    assert main(["vmcore", str(dump), "--vmlinux", str(vmlinux)]) == 2
    assert (
        capsys.readouterr().err
        == f"kinspect: {dump}: cannot tell whether the vmlinux is this dump's: neither its "
        ".notes (build ID) nor linux_banner is readable in the dump\n"
    )


def test_the_layout_cache_is_checked(vmlinux, tmp_path, monkeypatch) -> None:
    """Cold and warm give the same layouts; a damaged cache entry is rebuilt, not trusted."""
    from kinspect.reports.symbols import CACHE_ENV, ElfSymbolizer
    from kinspect.vmcore.types import load_layouts

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with ElfSymbolizer(vmlinux) as sym:
        cold = load_layouts(sym)
    (entry,) = tmp_path.rglob("vmcore-layouts-*.entry")
    data = bytearray(entry.read_bytes())
    data[-20] ^= 0x01  # one bit of a layout's JSON
    entry.write_bytes(data)
    with ElfSymbolizer(vmlinux) as sym:
        assert load_layouts(sym) == cold
    assert entry.read_bytes() != data  # rewritten
    assert cold["printk_ringbuffer"]["desc_ring.count_bits"].size == 4
    assert cold["slab"]["inuse"].bit_size == 16


# -- makedumpfile's compressed format, made from the shared ELF dump -----------------------

#: makedumpfile's VMCOREINFO for the shared vmlinux (build ID 9499bdc535f3...), made by
#: ``makedumpfile -g FILE -x vmlinux`` (2 CPU minutes: too slow for each run); the shared
#: dumps have no VMCOREINFO of their own, and makedumpfile needs one to filter (-d 31)
VMCOREINFO = ROOT / "tests" / "data" / "vmcore" / "vmcoreinfo-9499bdc535f3.txt"


def kdumped(name: str, level: int) -> Path:
    """The shared ELF dump ``name`` converted by ``makedumpfile -c -d LEVEL`` (zlib pages;
    a filtering level with :data:`VMCOREINFO`), made once next to its decompressed copy.
    makedumpfile reads the program headers right after the ELF header (its
    ``get_elf64_phdr()``), where QEMU put its section headers: it is given a copy with the
    program headers moved there (the copy is removed after)."""
    if shutil.which("makedumpfile") is None:
        pytest.skip("makedumpfile is not installed (apt-get install makedumpfile)")
    src = unpacked(name)
    out = src.with_name(f"{name}.d{level}.kdump")
    marker = out.with_name(out.name + ".ok")
    st = src.stat()
    doc = {"src": str(src), "size": st.st_size, "mtime": st.st_mtime_ns, "level": level}
    try:
        if json.loads(marker.read_text()) == doc and out.is_file():
            return out
    except (OSError, ValueError):
        pass
    fixed = out.with_name(".tmp-" + name)
    part = out.with_name(".tmp-" + out.name)
    try:
        shutil.copyfile(src, fixed)
        with open(fixed, "r+b") as fh:
            ehdr = bytearray(fh.read(64))
            (phoff,) = struct.unpack_from("<Q", ehdr, 32)
            (phnum,) = struct.unpack_from("<H", ehdr, 56)
            fh.seek(phoff)
            phdrs = fh.read(56 * phnum)
            # e_phoff 64, no section headers
            struct.pack_into("<QQIHHHHHH", ehdr, 32, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
            fh.seek(0)
            fh.write(ehdr + phdrs)
        part.unlink(missing_ok=True)
        info = ["-i", str(VMCOREINFO)] if level else []
        subprocess.run(
            ["makedumpfile", "-c", "-d", str(level), *info, str(fixed), str(part)],
            check=True,
            capture_output=True,
        )
        os.replace(part, out)
    finally:
        fixed.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    marker.write_text(json.dumps(doc))
    return out


def _text(capsys, *argv: str) -> list[str]:
    assert main(list(argv)) == 0
    return capsys.readouterr().out.splitlines()


def test_makedumpfile_dumps_read_as_the_elf_dump(first, vmlinux, capsys) -> None:
    """``makedumpfile -c -d 0`` (every page) and ``-d 31`` (zero, cache, user and free pages
    left out): the same reports, objects, struct pages and shadow rows as the ELF dump they
    were made from."""
    elf = first.core.path
    want = _text(capsys, "vmcore", elf, "--vmlinux", str(vmlinux))
    assert want[0].startswith(f"dump: {elf}: x86_64 ELF core, 2 CPUs")
    for level in (0, 31):
        kd = str(kdumped("vmcore-first-report.elf", level))
        got = _text(capsys, "vmcore", kd, "--vmlinux", str(vmlinux))
        assert got[0].startswith(
            f"dump: {kd}: x86_64 makedumpfile compressed dump (header "
            f"version 6, dump level {level}, "
        )
        if level == 0:
            assert [ln.replace(kd, elf) for ln in got[1:]] == want[1:]
            continue
        # -d 31: makedumpfile 1.7.2 (which calls 6.12 "not supported") leaves out some slab
        # pages of quarantined objects: those lists are cut short and said so (a makedumpfile
        # that keeps them gives the ELF dump's lines); every other line is the ELF dump's
        quarantine = [ln for ln in got if "quarantine" in ln]
        if quarantine != [ln for ln in want if "quarantine" in ln]:
            assert re.fullmatch(
                r"KASAN's quarantine: .*; \d+ of its lists cut short", quarantine[0]
            )
            assert any(
                re.fullmatch(
                    r"  note: \S+ .*: a link at 0x[0-9a-f]+ is not in the "
                    r"dump: its walk stopped after \d+ objects",
                    ln,
                )
                for ln in quarantine
            )
        assert [ln.replace(kd, elf) for ln in got[1:] if "quarantine" not in ln] == [
            ln for ln in want[1:] if "quarantine" not in ln
        ]


def test_makedumpfile_filtered_pages_are_not_in_the_dump(first) -> None:
    """With ``-d 31`` makedumpfile leaves out zero, cache, user and free pages: each reads
    as not in the dump (None: unknown), never as zeros, through the dump and through the
    kernel's direct map; every page kept is the ELF dump's, byte for byte."""
    from kinspect.vmcore.diskdump import DiskDump

    with DiskDump(kdumped("vmcore-first-report.elf", 31)) as kd:
        assert kd.dump_level == 31 and kd.max_mapnr == 0x10000  # max_pfn of 256 MiB
        left_out, kept = [], 0
        for pfn in range(0, kd.max_mapnr, 3):
            ours = kd.read_phys(pfn * 4096, 4096)
            theirs = first.core.read_phys(pfn * 4096, 4096)
            if ours is None:
                left_out.append(pfn)
            else:
                assert ours == theirs, hex(pfn)
                kept += 1
        assert kept > 5000 and len(left_out) > 5000, (kept, len(left_out))
        # some left out were not zero-filled (free or cache pages): not read as zeros
        assert any(first.core.read_phys(p * 4096, 4096) != bytes(4096) for p in left_out)
    with Kernel(str(kdumped("vmcore-first-report.elf", 31)), first.sym.path) as k:
        pfn = left_out[len(left_out) // 2]
        assert k.read(k.page_offset_base + pfn * 4096, 8) is None
        assert first.read(first.page_offset_base + pfn * 4096, 8) is not None


# -- KASLR: a small ELF core with a VMCOREINFO note, the kernel image moved -----------------


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    n = name + b"\0"
    return (
        struct.pack("<III", len(n), len(desc), ntype)
        + n.ljust((len(n) + 3) & ~3, b"\0")
        + desc.ljust((len(desc) + 3) & ~3, b"\0")
    )


def test_a_kaslr_kernel_is_read_at_its_offset(vmlinux, tmp_path, capsys) -> None:
    """A dump of a KASLR kernel, without CR3 (kdump's): the image runs at its link address
    plus VMCOREINFO's KERNELOFFSET, physically at __pa_symbol() with phys_base; the walk
    starts at init_top_pgt found that way, and the dump is paired and read there."""
    from kinspect.reports.symbols import ElfSymbolizer
    from kinspect.vmcore.kernel import data_symbols
    from test_vmcore_bad_input import make_core

    offset, phys_base = 0x1E000000, 0x3600000
    start = 0xFFFFFFFF80000000  # __START_KERNEL_map
    with ElfSymbolizer(vmlinux) as sym:
        link = {n: v[0][0] for n, v in data_symbols(sym).items()}
        notes_at = sym.sections[".notes"].header["sh_addr"]
        notes = bytes(sym.section_data(".notes"))
    mem: dict[int, bytearray] = {}  # physical page -> its bytes

    def page(paddr: int) -> bytearray:
        return mem.setdefault(paddr & ~0xFFF, bytearray(4096))

    def poke(vaddr: int, data: bytes) -> None:  # at the image's place, through __pa_symbol
        pa = vaddr + offset - start + phys_base
        assert pa >> 12 == (pa + len(data) - 1) >> 12
        page(pa)[pa & 0xFFF : (pa & 0xFFF) + len(data)] = data

    banner = b"Linux version 6.12.118 (a KASLR test)\0"
    poke(link["page_offset_base"], (0xFF11000000000000).to_bytes(8, "little"))
    poke(link["vmemmap_base"], (0xFFD4000000000000).to_bytes(8, "little"))
    poke(link["linux_banner"], banner)
    poke(notes_at, notes)
    top = link["init_top_pgt"] + offset - start + phys_base
    page(top)
    free = iter(range(0x100000, 0x200000, 0x1000))  # page-table pages
    for pa in [p for p in list(mem) if p != top]:
        va = pa - phys_base + start
        table = top
        for shift in (39, 30, 21):
            e = table + 8 * ((va >> shift) & 511)
            entry = int.from_bytes(page(e)[e & 0xFFF : (e & 0xFFF) + 8], "little")
            if not entry:
                entry = next(free) | 0x63  # present, rw, accessed, dirty
                page(entry & ~0xFFF)
                page(e)[e & 0xFFF : (e & 0xFFF) + 8] = entry.to_bytes(8, "little")
            table = entry & 0x000FFFFFFFFFF000
        e = table + 8 * ((va >> 12) & 511)
        page(e)[e & 0xFFF : (e & 0xFFF) + 8] = (pa | 0x63).to_bytes(8, "little")
    info = (
        f"OSRELEASE=6.12.118\nNUMBER(phys_base)={phys_base}\n"
        f"KERNELOFFSET={offset:x}\nNUMBER(pgtable_l5_enabled)=0\n"
    ).encode()
    core = make_core(
        tmp_path / "kaslr.core",
        sorted((p, bytes(d)) for p, d in mem.items()),
        notes=_note(b"VMCOREINFO", 0, info),
    )
    with Kernel(str(core), str(vmlinux)) as k:
        assert (k.kaslr_offset, k.phys_base) == (offset, phys_base)
        assert k.root_source.startswith("init_top_pgt (no CR3 in the dump; phys_base 0x3600000")
        assert k.build_id_match == "build ID 9499bdc535f311ab78cf1a61d0e0609096deb801"
        assert k.symbols["linux_banner"] == link["linux_banner"] + offset
        assert k.read(k.symbols["linux_banner"], len(banner)) == banner
        assert (k.page_offset_base, k.vmemmap_base) == (0xFF11000000000000, 0xFFD4000000000000)
        # at the link address there is nothing: the image moved
        assert k.read(link["linux_banner"], 8) is None
    # the header says where the kernel was found
    assert (
        main(
            [
                "vmcore",
                str(core),
                "--vmlinux",
                str(vmlinux),
                "--addr",
                hex(link["linux_banner"] + offset),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "kernel image: KASLR offset 0x1e000000, phys_base 0x3600000 (from VMCOREINFO)" in out
    # a VMCOREINFO that does not say a number is refused in one line
    for bad, what in (
        (b"KERNELOFFSET=zz\n", "VMCOREINFO's KERNELOFFSET is not hexadecimal: 'zz'"),
        (
            b"KERNELOFFSET=40000000\n",
            "VMCOREINFO's KERNELOFFSET 0x40000000 is "
            "beyond the kernel image's 1 GiB (KERNEL_IMAGE_SIZE)",
        ),
        (b"NUMBER(phys_base)=0x10\n", "VMCOREINFO's NUMBER(phys_base) is not a number: '0x10'"),
    ):
        p = make_core(tmp_path / "bad.core", [(0, bytes(4096))], notes=_note(b"VMCOREINFO", 0, bad))
        assert main(["vmcore", str(p), "--vmlinux", str(vmlinux)]) == 2
        assert capsys.readouterr().err == f"kinspect: {p}: {what}\n"


def test_the_quarantine_holds_the_after_kunit_objects(first, after) -> None:
    """Every quarantine list walked from the dump adds up, object by object (each one's
    cache->size, as qlist_put() counted it), to the bytes its qlist_head says; the freed
    objects of the after-KUnit reports are in CPU 0's list; the first report's object,
    allocated, is in none."""
    from kinspect.vmcore.quarantine import object_hold, quarantine_of

    q = quarantine_of(after)
    assert q.readable and q.notes == [] and q.batches == 1024  # QUARANTINE_BATCHES
    walked = {name: (n, want, got) for name, n, want, got in q.checked if n or want}
    assert walked == {
        "global_quarantine[11]": (1428, 1049600, 1049600),
        "global_quarantine[12]": (856, 1049040, 1049040),
        "cpu_quarantine of CPU 0": (629, 479232, 479232),
        "cpu_quarantine of CPU 1": (73, 102592, 102592),
    }
    assert (q.head, q.tail, q.objects) == (11, 13, 1428 + 856 + 629 + 73)
    ring = read_ringbuffer(after)
    reports = list(iter_reports(console_lines(ring.records), partial=True))
    holds = set()
    for rep in reports:
        st = memory_state(after, rep.addr, rep.size or 0, rep.bug_type)
        if st.object is not None:
            holds.add((st.object.object_addr, st.quarantine_line))
    assert holds == {
        (
            0xFFFF8880061E5A80,
            "in KASAN's quarantine: cpu_quarantine of CPU 0 (not "
            "yet moved to the global quarantine), object 598 of 629 (0: the oldest)",
        )
    }
    st = memory_state(first, 0xFFFF888006578E73)  # kmalloc_oob_right's object
    assert st.object.object_addr == 0xFFFF888006578E00
    assert object_hold(first, st.object) == (None, "not in KASAN's quarantine")
    assert st.quarantine_line == "not in KASAN's quarantine"
    fq = quarantine_of(first)
    assert fq.notes == [] and all(want == got for _, _, want, got in fq.checked)


def test_replay_against_the_dump(first, after, vmlinux, capsys) -> None:
    """``--replay``: the engine's replay of kmalloc_oob_right gives the same shadow over the
    whole 256-byte slot as the dump taken at that report; an after-KUnit report's object was
    freed since the report, and the comparison says where (fa fb ... against 00)."""
    assert (
        main(["vmcore", first.core.path, "--vmlinux", str(vmlinux), "--replay", "--format", "json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    rp = doc["reports"][0]["replay"]
    assert rp["type_matches"] and rp["engine_type"] == "slab-out-of-bounds"
    assert (rp["real_object"], rp["cache"], rp["slot_size"]) == (
        "0xffff888006578e00",
        "kmalloc-128",
        256,
    )
    assert (rp["compared"], rp["not_compared"], rp["differences"]) == (32, 0, [])
    from kinspect.vmcore.command import _shadow_reader, _x86_64
    from kinspect.vmcore.replay import compare_replay

    rep = next(
        r
        for r in iter_reports(console_lines(read_ringbuffer(after).records), partial=True)
        if r.addr == 0xFFFF8880061E5AB0
    )
    st = memory_state(after, rep.addr, rep.size or 0, rep.bug_type)
    cmp = compare_replay(rep, st, _shadow_reader(after, _x86_64()))
    assert cmp.compared == 16 and cmp.differences[:2] == [(0, 0x00, 0xFA), (8, 0x00, 0xFB)]
    assert "replay: 8 granule(s) differ (offset in the slot: simulated, real):" in cmp.lines()
