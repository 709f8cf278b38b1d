"""kinspect.reports.symbols against binutils' addr2line, on ELF files built by gcc in a fixture.

The C source is tests/data/symbols/kasan_like.c (written for these tests): inlined helpers
three deep, noinline functions, a loop.  It is compiled with ``gcc -g -O1`` (DWARF 5), with
``-gdwarf-4``, and with ``-c`` (a relocatable file, standing in for a module ``.ko``).  Every
address of its functions is symbolized by kinspect and by ``addr2line -f -i``, and the two must
agree.  Damaged copies (truncated, bit-flipped, not an ELF) must give one SymbolizationError,
quickly, and nothing else.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinspect.engine.errors import KinspectError, SymbolizationError
from kinspect.reports.symbols import (
    CACHE_ENV,
    ElfSymbolizer,
    ModuleSymbolizers,
    SourceFrame,
    default_cache_dir,
    parse_frame,
)

SRC = Path(__file__).parent / "data" / "symbols" / "kasan_like.c"
FUNCS = (
    "kasan_stack_helper",
    "kasan_stack_oob",
    "kmalloc_oob_right",
    "kmalloc_uaf",
    "run_all",
    "main",
)

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("addr2line") is None or shutil.which("nm") is None,
    reason="needs gcc and binutils (addr2line, nm)",
)


def _build(out: Path, *flags: str) -> Path:
    subprocess.run(
        ["gcc", "-g", "-O1", *flags, "-o", str(out), str(SRC)],
        check=True,
        cwd=out.parent,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def elfs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("elf")
    return {
        "dwarf5": _build(d / "kasan_like"),
        "dwarf4": _build(d / "kasan_like_dw4", "-gdwarf-4"),
        "module": _build(d / "kasan_like.ko", "-c"),
        "zlib": _build(d / "kasan_like_gz", "-gz=zlib"),  # SHF_COMPRESSED .debug_*
    }


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


def _functions(elf: Path) -> dict[str, tuple[int, int]]:
    out = subprocess.run(["nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    funcs = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[3] in FUNCS:
            funcs[p[3]] = (int(p[0], 16), int(p[1], 16))
    return funcs


def _addr2line(elf: Path, addrs: list[int]) -> list[list[tuple[str, str]]]:
    """addr2line -a -f -i: per address, (function, file:line) innermost first."""
    out = subprocess.run(
        ["addr2line", "-a", "-f", "-i", "-e", str(elf)] + [hex(a) for a in addrs],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    groups: list[list[str]] = []
    for line in out:
        if re.fullmatch(r"0x[0-9a-f]+", line):
            groups.append([])
        else:
            groups[-1].append(re.sub(r" \(discriminator \d+\)$", "", line))
    return [[(g[i], g[i + 1]) for i in range(0, len(g), 2)] for g in groups]


def _ours(frames: list[SourceFrame]) -> list[tuple[str, str]]:
    return [(f.function or "??", f.location()) for f in frames]


@pytest.mark.parametrize("kind", ["dwarf5", "dwarf4", "module", "zlib"])
def test_every_address_agrees_with_addr2line(elfs, kind) -> None:
    elf = elfs[kind]
    funcs = _functions(elf)
    assert set(funcs) >= set(FUNCS) - ({"main"} if kind == "module" else set())
    addrs = [a for start, size in funcs.values() for a in range(start, start + size)]
    expected = _addr2line(elf, addrs)
    with ElfSymbolizer(elf) as sym:
        got = sym.symbolize_many(addrs)
    assert [_ours(g) for g in got] == expected
    # the inlined helpers were found (three deep in kmalloc_oob_right)
    assert max(len(g) for g in got) >= 3
    assert any(f.inlined and f.function == "poison_byte" for g in got for f in g)


def test_frames_and_the_warm_cache(elfs, _cache) -> None:
    elf = elfs["dwarf5"]
    funcs = _functions(elf)
    start, size = funcs["kmalloc_oob_right"]
    frames = [f"kmalloc_oob_right+{off:#x}/{size:#x}" for off in range(size)]
    expected = _addr2line(elf, [start + off for off in range(size)])
    with ElfSymbolizer(elf) as cold:
        got_cold = cold.symbolize_frames(frames)
        assert cold.frame_address("kmalloc_oob_right+0x10/0x35") == start + 0x10
        assert cold.frame_address("kmalloc_oob_right+0x10/0x35", return_address=True) == start + 0xF
        assert cold.frame_address("no_such_function+0x10/0x20") is None
        assert cold.symbol_at(start + 3).name == "kmalloc_oob_right"
        assert cold.find_symbols("kmalloc_uaf")[0].addr == funcs["kmalloc_uaf"][0]
    assert [_ours(g) for g in got_cold] == expected
    files = sorted(p.name for p in _cache.rglob("*") if p.is_file())
    assert "symtab.entry" in files and "aranges.entry" in files
    assert any(f.startswith("cu-") and f.endswith(".entry") for f in files)
    with ElfSymbolizer(elf) as warm:  # from the cache, same answers
        assert warm.symbolize_frames(frames) == got_cold
    # a damaged cache file is rebuilt, not fatal
    for p in _cache.rglob("cu-*.entry"):
        p.write_text("{not json")
    with ElfSymbolizer(elf) as again:
        assert again.symbolize_frames(frames) == got_cold
    with ElfSymbolizer(elf, cache_dir=False) as nocache:
        assert nocache.symbolize_frames(frames[:3]) == got_cold[:3]


def test_cache_location(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "kinspect"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "kinspect"


def test_module_frames(elfs, tmp_path) -> None:
    mods = tmp_path / "lib" / "modules" / "kernel"
    mods.mkdir(parents=True)
    shutil.copy(elfs["module"], mods / "test_kasan.ko")
    funcs = _functions(elfs["module"])
    start, size = funcs["kmalloc_uaf"]
    ms = ModuleSymbolizers(tmp_path / "lib")
    try:
        assert ms.path_of("test_kasan") == str(mods / "test_kasan.ko")
        assert ms.get("no_such_module") is None
        sym = ms.get("test_kasan")
        got = sym.symbolize_frame(f"kmalloc_uaf+0x8/{size:#x} [test_kasan]")
        assert _ours(got) == _addr2line(elfs["module"], [start + 8])[0]
    finally:
        ms.close()
    with pytest.raises(SymbolizationError):
        ModuleSymbolizers(tmp_path / "missing")


def test_parse_frame() -> None:
    assert parse_frame("kmalloc_oob_right+0x604/0x690") == ("kmalloc_oob_right", 0x604, 0x690, None)
    assert parse_frame(" ? vmalloc_oob+0xcc/0x17c [test_kasan]") == (
        "vmalloc_oob",
        0xCC,
        0x17C,
        "test_kasan",
    )
    assert parse_frame("[<ffffffff81cac64d>] dump_stack+0xc1/0x124") == (
        "dump_stack",
        0xC1,
        0x124,
        None,
    )
    assert parse_frame("rcu_uaf_reclaim.cold+0x3c") == ("rcu_uaf_reclaim.cold", 0x3C, None, None)
    assert parse_frame("<TASK>") is None
    assert parse_frame("RIP: 0033:0x446179") is None


# --------------------------------------------------------------------------- damaged files


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout


def _try(path: Path, funcs: dict[str, tuple[int, int]]) -> str:
    """'ok' or 'error' (a SymbolizationError); anything else fails the test."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        with ElfSymbolizer(path, cache_dir=False) as sym:
            sym.symbolize_many([s + 4 for s, _ in funcs.values()])
            sym.symbolize_frames([f"{n}+0x4/{z:#x}" for n, (_, z) in funcs.items()])
        return "ok"
    except SymbolizationError as e:
        assert str(e).startswith(str(path) + ": ")
        assert "\n" not in str(e)
        return "error"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_truncated_copies(elfs, tmp_path) -> None:
    src = elfs["dwarf5"].read_bytes()
    funcs = _functions(elfs["dwarf5"])
    bad = tmp_path / "truncated.elf"
    outcomes = set()
    for n in list(range(0, 64, 7)) + list(range(64, len(src), max(len(src) // 60, 1))):
        bad.write_bytes(src[:n])
        outcomes.add(_try(bad, funcs))
    assert outcomes == {"error"}  # a truncated file is never read as whole


def test_bit_flipped_copies(elfs, tmp_path) -> None:
    src = elfs["dwarf5"].read_bytes()
    funcs = _functions(elfs["dwarf5"])
    rng = random.Random(20261125)  # deterministic
    bad = tmp_path / "flipped.elf"
    outcomes = {"ok": 0, "error": 0}
    for _ in range(250):
        data = bytearray(src)
        for _ in range(rng.choice((1, 1, 4, 32))):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        bad.write_bytes(data)
        outcomes[_try(bad, funcs)] += 1
    assert outcomes["error"] > 0 and outcomes["ok"] > 0


def test_not_an_elf(tmp_path) -> None:
    for name, data in (
        ("empty", b""),
        ("text", b"BUG: KASAN: not an ELF\n" * 10),
        ("magic-only", b"\x7fELF" + b"\0" * 60),
    ):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(SymbolizationError) as ei:
            ElfSymbolizer(p, cache_dir=False)
        assert str(ei.value).startswith(f"{p}: ")
    with pytest.raises(SymbolizationError, match="No such file"):
        ElfSymbolizer(tmp_path / "missing", cache_dir=False)
    with pytest.raises(SymbolizationError, match="directory"):
        ElfSymbolizer(tmp_path, cache_dir=False)


def test_without_debug_aranges(elfs, tmp_path) -> None:
    """clang emits no .debug_aranges by default: the CUs' top DIEs give the ranges."""
    noar = tmp_path / "noaranges"
    subprocess.run(
        ["objcopy", "--remove-section", ".debug_aranges", str(elfs["dwarf5"]), str(noar)],
        check=True,
    )
    funcs = _functions(noar)
    addrs = [a for start, size in funcs.values() for a in range(start, start + size, 3)]
    with ElfSymbolizer(noar) as sym:
        assert ".debug_aranges" not in sym.sections
        assert [_ours(g) for g in sym.symbolize_many(addrs)] == _addr2line(noar, addrs)


def test_no_debug_info_falls_back_to_the_symbol_table(elfs, tmp_path) -> None:
    stripped = tmp_path / "nodebug"
    subprocess.run(["objcopy", "--strip-debug", str(elfs["dwarf5"]), str(stripped)], check=True)
    funcs = _functions(stripped)
    start, _ = funcs["kmalloc_uaf"]
    with ElfSymbolizer(stripped) as sym:
        (f,) = sym.symbolize(start + 5)
    assert (f.function, f.file, f.line, f.location()) == ("kmalloc_uaf", None, None, "??:?")
    assert _addr2line(stripped, [start + 5]) == [[("kmalloc_uaf", "??:?")]]
    assert os.environ[CACHE_ENV]


# --------------------------------------------------------------------------- the cache


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    from kinspect.cli import main

    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _symbolize_argv(elf: Path) -> list[str]:
    """Every function's frames at a few offsets, and raw addresses (the whole fixture)."""
    funcs = _functions(elf)
    argv = ["symbolize", "--vmlinux", str(elf)]
    for name, (start, size) in sorted(funcs.items()):
        argv += [f"{name}+{off:#x}/{size:#x}" for off in range(0, size, max(size // 5, 1))]
        argv.append(f"{start + size // 2:#x}")
    return argv


def _entries(cache: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(cache.rglob("*.entry"))}


def _damages(name: str, data: bytes, others: dict[str, bytes]) -> Iterator[tuple[str, object]]:
    """(what, damage) pairs: damage is the bytes to write in the entry's place, or a
    function of its path that puts something else there."""
    n = len(data)
    for k in sorted({0, 1, 8, 31, 62, 63, 64, 72, n // 2, n - 1}):
        yield f"truncated to {k}", data[:k]
    for off in sorted(set(range(0, n, max(n // 40, 1))) | {n - 1}):
        flipped = bytearray(data)
        flipped[off] ^= 1 << (off % 8)
        yield f"bit flipped at {off}", bytes(flipped)
    yield "zeroed", bytes(n)
    yield "garbage appended", data + b"\0" * 8
    for other, odata in others.items():
        yield f"replaced by {other}", odata
    yield "empty file", b""

    def directory(p: Path) -> None:
        p.mkdir()
        (p / "inside").write_bytes(data)

    yield "a directory", directory

    def unreadable(p: Path) -> None:
        p.write_bytes(data)
        p.chmod(0)

    yield "unreadable", unreadable

    def dangling(p: Path) -> None:
        p.symlink_to(p.parent / "no-such-entry")

    yield "a dangling symlink", dangling

    def fifo(p: Path) -> None:
        os.mkfifo(p)

    yield "a fifo (never read: no hang)", fifo


def test_a_damaged_cache_entry_is_rebuilt(elfs, _cache, capsys) -> None:
    """Every entry, damaged every way: the same answers, exit 0, and the entry rewritten
    (byte for byte what a cold run writes); never a SymbolizationError blaming the ELF."""
    argv = _symbolize_argv(elfs["dwarf5"])
    rc, intact, err = _cli(capsys, *argv)
    assert rc == 0 and err == "" and "??" not in intact
    good = _entries(_cache)
    assert set(good) == {"symtab.entry", "aranges.entry", "cu-0.entry"}
    (cache_dir,) = {p.parent for p in _cache.rglob("*.entry")}
    # an entry of the same name made for another ELF: a valid file, the wrong key
    with ElfSymbolizer(elfs["dwarf4"]) as other:
        other.symbolize_many([0])
    foreign = {
        f"dwarf-4 {p.name}": p.read_bytes()
        for p in _cache.rglob("*.entry")
        if p.parent != cache_dir
    }
    assert len(foreign) == 2
    cases = 0
    for name, data in good.items():
        others = {n: d for n, d in good.items() if n != name}
        others.update(foreign)
        for what, damage in _damages(name, data, others):
            for n, d in good.items():  # the intact cache...
                p = cache_dir / n
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                elif p.exists() or p.is_symlink():
                    p.unlink()
                p.write_bytes(d)
                p.chmod(0o600)
            target = cache_dir / name  # ... but for this entry
            target.unlink()
            if callable(damage):
                damage(target)
            else:
                target.write_bytes(damage)
                target.chmod(0o600)
            rc, out, err = _cli(capsys, *argv)
            assert (rc, err) == (0, ""), f"{name} {what}"
            assert out == intact, f"{name} {what}"
            assert target.is_file() and not target.is_symlink(), f"{name} {what}"
            assert target.stat().st_mode & 0o777 == 0o600, f"{name} {what}"
            assert target.read_bytes() == data, f"{name} {what}: not rebuilt"
            cases += 1
    assert cases > 150
    assert not list(cache_dir.glob(".tmp-*"))  # no temporary file left behind


def test_a_damaged_copy_does_not_share_the_cache(elfs, _cache, tmp_path, capsys) -> None:
    """A copy with the same build-id but other section bytes gets its own cache entries,
    whichever of the two runs first."""
    intact = elfs["dwarf5"]
    data = intact.read_bytes()
    assert data.count(b"kmalloc_uaf") >= 2  # .strtab and .debug_str
    damaged = tmp_path / "damaged"
    damaged.write_bytes(data.replace(b"kmalloc_uaf", b"kmalloc_uaX"))
    start, size = _functions(intact)["kmalloc_uaf"]
    argv = [f"kmalloc_uaf+0x4/{size:#x}", f"{start + 4:#x}"]
    with ElfSymbolizer(intact) as a, ElfSymbolizer(damaged) as b:
        assert a.build_id and a.build_id == b.build_id
    answers = {}
    for order in ((intact, damaged), (damaged, intact)):
        shutil.rmtree(_cache, ignore_errors=True)
        for elf in order:
            answers[elf, order] = _cli(capsys, "symbolize", "--vmlinux", str(elf), *argv)
        assert len({p.parent for p in _cache.rglob("*.entry")}) == 2
    for elf in (intact, damaged):
        shutil.rmtree(_cache, ignore_errors=True)
        alone = _cli(capsys, "symbolize", "--vmlinux", str(elf), *argv)
        assert answers[elf, (intact, damaged)] == answers[elf, (damaged, intact)] == alone
    rc, out, _ = answers[intact, (damaged, intact)]
    assert rc == 0 and "  kmalloc_uaf " in out and "kmalloc_uaX" not in out
    rc, out, _ = answers[damaged, (intact, damaged)]
    assert rc == 1 and "no symbol 'kmalloc_uaf'" in out and "  kmalloc_uaX " in out


# --------------------------------------------------------------------------- lengths and numbers


def test_frame_numbers_beyond_64_bits(elfs, capsys) -> None:
    """int() refuses more than 4300 decimal digits: such an offset is no frame (it is
    checked by length before int() runs), and an address beyond 64 bits is one line, exit 2."""
    assert parse_frame("main+" + "1" * 5000) is None
    assert parse_frame("main+0x" + "f" * 5000) is None
    assert parse_frame("main+0x4/" + "9" * 5000) is None
    assert parse_frame("main+18446744073709551616") is None  # 2**64
    assert parse_frame("main+0xffffffffffffffff") == ("main", 2**64 - 1, None, None)
    assert parse_frame("main+0x00000000000000000010/0x20") == ("main", 16, 32, None)
    assert parse_frame("main+010") == ("main", 10, None, None)  # int("010", 0) refused it
    elf = str(elfs["dwarf5"])
    for arg in (
        "main+" + "1" * 5000,
        "0x" + "f" * 5000,
        "main+0xffffffffffffffff",
        "0x10000000000000000",
    ):
        rc, out, err = _cli(capsys, "symbolize", "--vmlinux", elf, arg)
        assert rc == 2 and out == "", arg[:20]
        assert err.startswith("kinspect: <command line>: ") and err.count("\n") == 1
        assert len(err) < 200 and "64 bits" in err
    with ElfSymbolizer(elf) as sym:
        assert sym.symbolize_many([2**64, -1]) == [[SourceFrame(None, None, None)]] * 2
        assert sym.symbol_at(2**70) is None and sym.cu_offset_at(2**70) is None


def test_leb128_longer_than_64_bits_is_refused() -> None:
    """A run of continuation bytes would make an ever larger int (quadratic time)."""
    from kinspect.reports.symbols import _sleb, _uleb

    assert _uleb(b"\xe5\x8e\x26", 0) == (624485, 3)
    assert _sleb(b"\xc0\xbb\x78", 0) == (-123456, 3)
    assert _uleb(b"\xff" * 9 + b"\x01", 0) == (2**64 - 1, 10)
    for f in (_uleb, _sleb):
        with pytest.raises(ValueError, match="longer than 10 bytes"):
            f(b"\xff" * 20000 + b"\x01", 0)


def _patched(src: Path, dst: Path, section: str, at: int, value: bytes) -> Path:
    """A copy of ``src`` with ``value`` written ``at`` bytes into ``section``."""
    with ElfSymbolizer(src, cache_dir=False) as sym:
        off = sym.sections[section].header["sh_offset"]
    data = bytearray(src.read_bytes())
    data[off + at : off + at + len(value)] = value
    dst.write_bytes(data)
    return dst


def test_a_damaged_build_id_note_is_bounded_by_its_section(elfs, tmp_path, capsys) -> None:
    """n_descsz 0xfffffff0: pyelftools would read (allocate) 4 GiB; the size is checked
    against the section first."""
    bad = _patched(
        elfs["dwarf5"],
        tmp_path / "vmlinux",
        ".note.gnu.build-id",
        4,
        (0xFFFFFFF0).to_bytes(4, "little"),
    )
    with pytest.raises(SymbolizationError, match=r"\.note\.gnu\.build-id.*4294967280"):
        ElfSymbolizer(bad)
    rc, out, err = _cli(capsys, "symbolize", "--vmlinux", str(bad), "main+0x4")
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"kinspect: {bad}: cannot read .note.gnu.build-id")


def test_a_section_count_bigger_than_the_file(elfs, tmp_path) -> None:
    """e_shnum 0 sends pyelftools to section 0's sh_size for the count: that count, not
    e_shnum, is checked against the file size before any section is read."""
    data = bytearray(elfs["dwarf5"].read_bytes())
    shoff = int.from_bytes(data[0x28:0x30], "little")
    data[shoff + 32 : shoff + 40] = (2**64 - 1).to_bytes(8, "little")  # section 0's sh_size
    data[0x3C:0x3E] = b"\0\0"  # e_shnum
    bad = tmp_path / "vmlinux"
    bad.write_bytes(data)
    with pytest.raises(SymbolizationError, match="section header table lies past the end"):
        ElfSymbolizer(bad, cache_dir=False)


def test_a_line_header_count_is_bounded(elfs, tmp_path) -> None:
    """DWARF 5: an empty directory entry format and directories_count 2**35 - 1 made
    pyelftools build empty entries for ever; the count is checked against header_length."""
    elf = elfs["dwarf5"]
    with ElfSymbolizer(elf, cache_dir=False) as sym:
        off = sym.sections[".debug_line"].header["sh_offset"]
    data = elf.read_bytes()
    assert int.from_bytes(data[off + 4 : off + 6], "little") == 5  # DWARF 5, 32-bit
    opcode_base = data[off + 17]
    at = 18 + opcode_base - 1  # directory_entry_format_count
    bad = _patched(elf, tmp_path / "vmlinux", ".debug_line", at, b"\0\xff\xff\xff\xff\x7f")
    funcs = _functions(elf)
    assert _try(bad, funcs) == "error"
    with (
        pytest.raises(SymbolizationError, match="claims 34359738367 directories"),
        ElfSymbolizer(bad, cache_dir=False) as sym,
    ):
        sym.symbolize(funcs["main"][0])


# --------------------------------------------------------------------------- fuzzing the reader

_FUZZ_VALUES = (
    b"\0",
    b"\xff",
    b"\0\0\0\0",
    b"\xff\xff\xff\xff",
    b"\xf0\xff\xff\xff",
    b"\xff\xff\xff\x7f",
    b"\x80\x80\x80\x80\x80",
    b"\xff" * 8,
)


def _fuzz_regions(elf: Path) -> list[tuple[int, int]]:
    """Where a damage is most likely to reach a length or an offset: the ELF header, the
    section header table, the start of the note, symbol and DWARF sections."""
    with ElfSymbolizer(elf, cache_dir=False) as sym:
        hdr = sym.elf.header
        table = sym.elf.num_sections() * hdr["e_shentsize"]
        regions = [(0, 64), (hdr["e_shoff"], hdr["e_shoff"] + table)]
        for name, sec in sym.sections.items():
            h = sec.header
            if (
                name.startswith((".debug", ".rela.debug", ".symtab", ".strtab", ".dynsym", ".note"))
                and h["sh_type"] != "SHT_NOBITS"
                and h["sh_size"]
            ):
                regions.append((h["sh_offset"], h["sh_offset"] + min(h["sh_size"], 512)))
    return regions


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_damaged_elf_raises_only_kinspect_errors(elfs, tmp_path_factory, data) -> None:
    """Bit flips, extreme values and truncations of real ELFs (the fixture, its relocatable
    .ko, the running Python interpreter): the reader answers or raises a KinspectError,
    within 10 s; nothing else gets out (no MemoryError, no pyelftools exception)."""
    sources = {
        "dwarf5": elfs["dwarf5"],
        "module": elfs["module"],
        "python": Path(os.path.realpath(sys.executable)),
    }
    kind = data.draw(st.sampled_from(sorted(sources)), label="elf")
    src = sources[kind]
    raw = bytearray(src.read_bytes())
    regions = _FUZZ_REGIONS.setdefault(kind, _fuzz_regions(src))
    for _ in range(data.draw(st.integers(1, 4), label="damages")):
        lo, hi = data.draw(st.sampled_from(regions + [(0, len(raw))]), label="region")
        at = data.draw(st.integers(lo, max(lo, hi - 1)), label="offset")
        if data.draw(st.booleans(), label="flip"):
            raw[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        else:
            value = data.draw(st.sampled_from(_FUZZ_VALUES), label="value")
            raw[at : at + len(value)] = value
    if data.draw(st.integers(0, 9), label="truncate?") == 0:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    work = tmp_path_factory.mktemp("fuzz")
    bad = work / "vmlinux"
    bad.write_bytes(raw)
    funcs = _FUZZ_FUNCS.setdefault(kind, _functions(src) if kind != "python" else {})
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        with ElfSymbolizer(bad, cache_dir=work / "cache") as sym:
            sym.symbolize_many([s + 4 for s, _ in funcs.values()] + [0, 2**64 - 1])
            sym.symbolize_frames(
                [f"{n}+0x4/{z:#x}" for n, (_, z) in funcs.items()] + ["main+0x1", "_start+0x2"]
            )
    except KinspectError as e:
        assert "\n" not in str(e)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_FUZZ_REGIONS: dict[str, list[tuple[int, int]]] = {}
_FUZZ_FUNCS: dict[str, dict[str, tuple[int, int]]] = {}


def test_compressed_sections_inflate_when_read_and_refuse_a_corrupt_stream(elfs, tmp_path) -> None:
    """A zlib-compressed DWARF section is inflated on first read only (the symbol table and
    a type's CU need no .debug_line), and a corrupt or short stream is one clear error."""
    elf = elfs["zlib"]
    with ElfSymbolizer(elf, cache_dir=False) as sym:
        assert sym.sections[".debug_line"].header["sh_flags"] & 0x800  # SHF_COMPRESSED
        wanted = {("struct", "never_defined_here")}
        cu = sym.cu_offset_at(sym.find_symbols("kmalloc_oob_right")[0].addr)
        assert list(sym.type_definitions(cu, wanted)) == []
        assert ".debug_info" in sym._inflated_secs
        assert ".debug_line" not in sym._inflated_secs
        plain = bytes(sym.section_data(".debug_line"))
    with ElfSymbolizer(elfs["dwarf5"], cache_dir=False) as sym:
        assert plain == bytes(sym.section_data(".debug_line"))
    funcs = _functions(elf)
    h = ElfSymbolizer(elf, cache_dir=False)
    sh = h.sections[".debug_info"].header
    off, size = sh["sh_offset"], sh["sh_size"]
    h.close()
    src = bytearray(elf.read_bytes())
    for what, data in (
        ("corrupt", src[: off + 24 + 2] + bytes(size - 26) + src[off + size :]),
        ("short", src[: off + size - 8] + bytes(8) + src[off + size :]),
    ):
        bad = tmp_path / f"{what}.elf"
        bad.write_bytes(bytes(data))
        with pytest.raises(SymbolizationError) as e, ElfSymbolizer(bad, cache_dir=False) as sym:
            sym.symbolize_many([s + 4 for s, _ in funcs.values()])
        assert "compressed section .debug_info" in str(e.value), (what, str(e.value))
        assert "\n" not in str(e.value)
