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
    reason="the project's real vmcore dumps (the shared data, docs/vmcore.md) are not here")
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
        if doc == {"xz": str(xz), "key": key, "size": out.stat().st_size,
                   "edges": _edges_digest(out)}:
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
    marker.write_text(json.dumps({"xz": str(xz), "key": key, "size": out.stat().st_size,
                                  "edges": _edges_digest(out)}))
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
    assert first.page_offset_base == 0xffff888000000000
    assert first.vmemmap_base == 0xffffea0000000000
    banner = first.read(first.symbols["linux_banner"], 20)
    assert banner == b"Linux version 6.12.1"
    # the kernel image through the walk and its physical place (phys_base 0) agree
    stext = first.symbols["_stext"]
    assert first.pt.translate(stext) == stext - 0xffffffff80000000
    # a user-space address is not mapped in the kernel's page tables: None, no exception
    assert first.read(0x1000, 8) is None


def test_the_ring_buffer_is_the_console_log(first, after) -> None:
    """The records, printed as the console prints them, are the console log's last lines,
    byte for byte (the first line of the first log begins with the firmware's escapes)."""
    for k, name in ((first, "first-report"), (after, "after-kunit")):
        ring = read_ringbuffer(k)
        got = console_lines(ring.records)
        con = _console(name)
        tail = con[len(con) - len(got):]
        assert got[1:] == tail[1:], name
        assert tail[0].endswith(got[0]), name


def test_first_report_shadow_rows_read_from_the_dump(first) -> None:
    """The five shadow rows read from the dump's shadow (through its page tables) equal the
    five rows the kernel printed in its console log."""
    (rep,) = list(iter_reports(str(SHARED / "console-first-report.log")))
    assert rep.function == "kmalloc_oob_right+0x632/0x6d0" and rep.addr == 0xffff888006578e73
    st = memory_state(first, rep.addr, rep.size)
    assert st.first_bad_addr == rep.addr           # (shadow 03: the access itself is bad)
    assert [(st.row_start + i * 128, tuple(r)) for i, r in enumerate(st.rows)] == \
        [(row.addr, row.values) for row in rep.memory_rows]
    printed = [ln.split("] ", 1)[1] for ln in _console("first-report")
               if re.match(r"\[ *[0-9.]+\] [ >]ffff8880065", ln)]
    assert st.memory_lines()[:3] + st.memory_lines()[4:] == printed
    # the alloc track, from KASAN's alloc meta and the stack depot, as print_track() did
    assert st.tracks == [(f"Allocated by task {rep.alloc_stack.pid}:",
                          list(rep.alloc_stack.frames))]
    assert rep.alloc_stack.frames[0] == "kasan_save_stack+0x33/0x60"
    # the object, as describe_object_addr() printed it
    assert st.object.lines(rep.addr, rep.bug_type) == [
        f"The buggy address belongs to the object at {rep.object_addr:016x}",
        f" which belongs to the cache {rep.cache_name} of size {rep.cache_object_size}",
        f"The buggy address is located {rep.rel_bytes} bytes {rep.direction} of",
        f" {rep.state} {rep.region_size}-byte region [{rep.region_start:016x}, "
        f"{rep.region_end:016x})"]
    assert [ln.split("] ", 1)[1] for ln in _console("first-report")
            if re.match(r"\[ *[0-9.]+\] ( which belongs|The buggy address (belongs to the "
                        r"obj|is located)| allocated)", ln)] == st.object.lines(rep.addr,
                                                                              rep.bug_type)
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
    assert [same(r) for r in got] == [same(r) for r in con[-len(got):]]


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
        assert st.tracks[0] == (f"Allocated by task {r.alloc_stack.pid}:",
                                list(r.alloc_stack.frames))


def test_the_command(first, vmlinux, capsys) -> None:
    dump = first.core.path
    assert main(["vmcore", dump, "--vmlinux", str(vmlinux)]) == 0
    out = capsys.readouterr().out
    assert "KASAN: slab-out-of-bounds Write in kunit_try_run_case" in out
    assert ">ffff888006578e00: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03 fc" in out
    assert main(["vmcore", dump, "--vmlinux", str(vmlinux), "--format", "json",
                 "--addr", "ffff888006578e00"]) == 0
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
    st = memory_state(first, 0xffffffff81000000)           # the kernel image's first bytes
    assert st.rows[0] is None and st.rows[2] == bytes(16)   # (its shadow starts there)
    assert st.memory_lines()[0] == " ffffffff80ffff00: " + " ".join(["??"] * 16)
    assert st.page is None                                  # not in the direct map
    beyond = memory_state(first, 0xffff888000000000 + (256 << 20))     # past the 256 MiB
    assert beyond.page is None and all(r is None for r in beyond.rows)
    assert main(["vmcore", first.core.path, "--vmlinux", str(vmlinux), "--addr", "0x1000"]) == 0
    assert "0x1000 has no shadow" in capsys.readouterr().out


def test_a_dump_without_this_kernel(vmlinux, tmp_path, capsys) -> None:
    """A core whose memory holds no kernel: nothing tells it is the vmlinux's, refused."""
    from test_vmcore_bad_input import make_core            # (tests/ is on sys.path)
    dump = make_core(tmp_path / "core", [(0, bytes(8192))])
    assert main(["vmcore", str(dump), "--vmlinux", str(vmlinux)]) == 2
    assert capsys.readouterr().err == \
        f"kinspect: {dump}: cannot tell whether the vmlinux is this dump's: neither its " \
        ".notes (build ID) nor linux_banner is readable in the dump\n"


def test_the_layout_cache_is_checked(vmlinux, tmp_path, monkeypatch) -> None:
    """Cold and warm give the same layouts; a damaged cache entry is rebuilt, not trusted."""
    from kinspect.reports.symbols import CACHE_ENV, ElfSymbolizer
    from kinspect.vmcore.types import load_layouts
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with ElfSymbolizer(vmlinux) as sym:
        cold = load_layouts(sym)
    (entry,) = tmp_path.rglob("vmcore-layouts-*.entry")
    data = bytearray(entry.read_bytes())
    data[-20] ^= 0x01                                       # one bit of a layout's JSON
    entry.write_bytes(data)
    with ElfSymbolizer(vmlinux) as sym:
        assert load_layouts(sym) == cold
    assert entry.read_bytes() != data                       # rewritten
    assert cold["printk_ringbuffer"]["desc_ring.count_bits"].size == 4
    assert cold["slab"]["inuse"].bit_size == 16
