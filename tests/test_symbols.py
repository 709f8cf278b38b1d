"""kinspect.engine.symbols against binutils' addr2line, on ELF files built by gcc in a fixture.

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
from pathlib import Path

import pytest

from kinspect.engine.errors import SymbolizationError
from kinspect.engine.symbols import (CACHE_ENV, ElfSymbolizer, ModuleSymbolizers, SourceFrame,
                                     default_cache_dir, parse_frame)

SRC = Path(__file__).parent / "data" / "symbols" / "kasan_like.c"
FUNCS = ("kasan_stack_helper", "kasan_stack_oob", "kmalloc_oob_right", "kmalloc_uaf", "run_all",
         "main")

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("addr2line") is None
                                or shutil.which("nm") is None,
                                reason="needs gcc and binutils (addr2line, nm)")


def _build(out: Path, *flags: str) -> Path:
    subprocess.run(["gcc", "-g", "-O1", *flags, "-o", str(out), str(SRC)], check=True,
                   cwd=out.parent, capture_output=True)
    return out


@pytest.fixture(scope="module")
def elfs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("elf")
    return {
        "dwarf5": _build(d / "kasan_like"),
        "dwarf4": _build(d / "kasan_like_dw4", "-gdwarf-4"),
        "module": _build(d / "kasan_like.ko", "-c"),
    }


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


def _functions(elf: Path) -> dict[str, tuple[int, int]]:
    out = subprocess.run(["nm", "-S", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    funcs = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[3] in FUNCS:
            funcs[p[3]] = (int(p[0], 16), int(p[1], 16))
    return funcs


def _addr2line(elf: Path, addrs: list[int]) -> list[list[tuple[str, str]]]:
    """addr2line -a -f -i: per address, (function, file:line) innermost first."""
    out = subprocess.run(["addr2line", "-a", "-f", "-i", "-e", str(elf)]
                         + [hex(a) for a in addrs], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    groups: list[list[str]] = []
    for line in out:
        if re.fullmatch(r"0x[0-9a-f]+", line):
            groups.append([])
        else:
            groups[-1].append(re.sub(r" \(discriminator \d+\)$", "", line))
    return [[(g[i], g[i + 1]) for i in range(0, len(g), 2)] for g in groups]


def _ours(frames: list[SourceFrame]) -> list[tuple[str, str]]:
    return [(f.function or "??", f.location()) for f in frames]


@pytest.mark.parametrize("kind", ["dwarf5", "dwarf4", "module"])
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
        assert cold.frame_address("kmalloc_oob_right+0x10/0x35", return_address=True) == \
            start + 0xf
        assert cold.frame_address("no_such_function+0x10/0x20") is None
        assert cold.symbol_at(start + 3).name == "kmalloc_oob_right"
        assert cold.find_symbols("kmalloc_uaf")[0].addr == funcs["kmalloc_uaf"][0]
    assert [_ours(g) for g in got_cold] == expected
    files = sorted(p.name for p in _cache.rglob("*") if p.is_file())
    assert "symtab.json" in files and "aranges.json" in files
    assert any(f.startswith("cu-") and f.endswith(".json") for f in files)
    with ElfSymbolizer(elf) as warm:                       # from the cache, same answers
        assert warm.symbolize_frames(frames) == got_cold
    # a damaged cache file is rebuilt, not fatal
    for p in _cache.rglob("cu-*.json"):
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
    assert parse_frame("kmalloc_oob_right+0x604/0x690") == ("kmalloc_oob_right", 0x604, 0x690,
                                                           None)
    assert parse_frame(" ? vmalloc_oob+0xcc/0x17c [test_kasan]") == ("vmalloc_oob", 0xcc, 0x17c,
                                                                    "test_kasan")
    assert parse_frame("[<ffffffff81cac64d>] dump_stack+0xc1/0x124") == ("dump_stack", 0xc1,
                                                                         0x124, None)
    assert parse_frame("rcu_uaf_reclaim.cold+0x3c") == ("rcu_uaf_reclaim.cold", 0x3c, None,
                                                         None)
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
    assert outcomes == {"error"}                 # a truncated file is never read as whole


def test_bit_flipped_copies(elfs, tmp_path) -> None:
    src = elfs["dwarf5"].read_bytes()
    funcs = _functions(elfs["dwarf5"])
    rng = random.Random(20261125)                # deterministic
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
    for name, data in (("empty", b""), ("text", b"BUG: KASAN: not an ELF\n" * 10),
                       ("magic-only", b"\x7fELF" + b"\0" * 60)):
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
    subprocess.run(["objcopy", "--remove-section", ".debug_aranges", str(elfs["dwarf5"]),
                    str(noar)], check=True)
    funcs = _functions(noar)
    addrs = [a for start, size in funcs.values() for a in range(start, start + size, 3)]
    with ElfSymbolizer(noar) as sym:
        assert ".debug_aranges" not in sym.sections
        assert [_ours(g) for g in sym.symbolize_many(addrs)] == _addr2line(noar, addrs)


def test_no_debug_info_falls_back_to_the_symbol_table(elfs, tmp_path) -> None:
    stripped = tmp_path / "nodebug"
    subprocess.run(["objcopy", "--strip-debug", str(elfs["dwarf5"]), str(stripped)],
                   check=True)
    funcs = _functions(stripped)
    start, _ = funcs["kmalloc_uaf"]
    with ElfSymbolizer(stripped) as sym:
        (f,) = sym.symbolize(start + 5)
    assert (f.function, f.file, f.line, f.location()) == ("kmalloc_uaf", None, None, "??:?")
    assert _addr2line(stripped, [start + 5]) == [[("kmalloc_uaf", "??:?")]]
    assert os.environ[CACHE_ENV]
