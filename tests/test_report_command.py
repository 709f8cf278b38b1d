"""``kinspect report`` and ``kinspect symbolize`` (kinspect/commands/reports.py), end to end.

Exit statuses: 0 a report was found, 1 none ("no KASAN report found"), 2 unreadable input or
vmlinux (one line on stderr, ``kinspect: FILE[:LINE]: what is wrong``, never a traceback).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kinspect.cli import main
from kinspect.reports.explain import (
    decode_shadow_byte,
    decode_tag,
    explain,
    pick_profile,
    replay_workload,
    report_arch,
    report_era,
    run_replay,
)
from kinspect.reports.kreport import parse_reports
from kinspect.reports.symbols import CACHE_ENV

DATA = Path(__file__).parent / "data"
KRUN = DATA / "kernel-run" / "reports"
CORPUS = DATA / "kasan-reports"
SRC = DATA / "symbols" / "kasan_like.c"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# --------------------------------------------------------------------------- report


def test_report_text(capsys) -> None:
    rc, out, err = _run(capsys, "report", str(KRUN / "kmalloc_oob_right.txt"))
    assert rc == 0 and err == ""
    blocks = out.split("\n\n")
    assert len(blocks) == 3  # three reports in that file
    # syzkaller's title, and the test function the BUG line names (syzkaller skips it)
    assert blocks[0].startswith(
        "KASAN: slab-out-of-bounds Write in kunit_try_run_case (the BUG line: kmalloc_oob_right)\n"
    )
    assert "  access: Write of 1 byte at 0xffff8880056e5a73 by task kunit_try_catch/37" in out
    assert "    03  first 3 bytes of the granule accessible" in out
    assert "    fc  KASAN_SLAB_REDZONE: slab object redzone" in out
    assert "past the 115 bytes that were asked for but inside the 128-byte slot" in out
    assert "  first bad granule: 0xffff8880056e5a70 (the '^'), 03:" in out
    assert "== == == == == == == == == == == == == == ^^ .." in out
    assert "decoded for Linux 5.8 and later (6.12 names); kernel 6.12.117 in the CPU: line" in out


def test_report_json_and_stdin(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((KRUN / "kmalloc_uaf.txt").read_text()))
    rc, out, _ = _run(capsys, "report", "-", "--format", "json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["input"] == "<stdin>" and len(doc["reports"]) == 1
    r = doc["reports"][0]
    assert r["title"] == "KASAN: slab-use-after-free Read in kunit_try_run_case"
    assert r["cache_name"] == "kmalloc-16" and r["state"] == "freed"
    legend = {b["value"]: b for b in r["explanation"]["shadow_legend"]}
    assert legend["fa"]["name"] == "KASAN_SLAB_FREE_META"
    assert legend["fb"]["meaning"] == "freed slab object"
    assert doc["first_crash"]["kasan"] is True


def test_no_report_and_non_kasan_crash(capsys, tmp_path) -> None:
    rc, out, err = _run(
        capsys,
        "report",
        str(
            CORPUS / "syz-451-neg-general-protection-fault-in-deliberately_dereference_bad_add.txt"
        ),
    )
    assert rc == 1 and err == ""
    assert out.splitlines() == [
        "the log's first crash is not a KASAN report: general protection fault in "
        "deliberately_dereference_bad_address (line 5)",
        "no KASAN report found",
    ]
    quiet = tmp_path / "boot.log"
    quiet.write_text("[    0.000000] Linux version 6.12.117\n[    1.0] random: crng init done\n")
    assert _run(capsys, "report", str(quiet)) == (1, "no KASAN report found\n", "")
    rc, out, _ = _run(capsys, "report", str(quiet), "--format", "json")
    assert rc == 1 and json.loads(out)["message"] == "no KASAN report found"
    binary = tmp_path / "garbage.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    assert _run(capsys, "report", str(binary))[0] == 1


def test_kasan_not_first(capsys) -> None:
    rc, out, _ = _run(
        capsys, "report", str(CORPUS / "syz-696-warning-in-ext4_expand_extra_isize_ea.txt")
    )
    assert rc == 0
    assert out.startswith(
        "KASAN: invalid-free in ext4_expand_extra_isize_ea (the BUG line: kfree)\n"
    )
    assert out.rstrip().endswith(
        "the log's first crash is not a KASAN report: WARNING in "
        "ext4_expand_extra_isize_ea (line 8)"
    )


@pytest.mark.parametrize("target", ["missing.txt", "."])
def test_unreadable_input(capsys, tmp_path, target) -> None:
    path = tmp_path / target
    rc, out, err = _run(capsys, "report", str(path))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"kinspect: {path}: cannot read the file: ")


def test_garbled_report_reads_what_it_can(capsys, tmp_path) -> None:
    lines = (KRUN / "kmalloc_oob_right.txt").read_text().splitlines()[:62]
    lines[1] = "Write of sise 1 at addr ffff8880056e5a73 by task kunit_try_catch/37"
    p = tmp_path / "garbled.txt"
    p.write_text("\n".join(lines) + "\n")
    rc, out, err = _run(capsys, "report", str(p))
    assert rc == 0 and err == ""
    assert "  access: the access: unknown (the report's access line is missing)" in out
    assert "the object: kmalloc-128 object at 0xffff8880056e5a00" in out
    assert "  unknown: line 2: expected 'Read|Write of size N" in out
    assert "row 5 of 5 is missing" in out


def test_eras_and_tags() -> None:
    old = parse_reports(CORPUS / "syz-195-wild-memory-access-read-in-sg_read.txt", partial=True)[0]
    era = report_era(old)
    assert (era.key, era.version) == ("4.x", (4, 9))
    assert decode_shadow_byte(0xFA, era).name == "KASAN_GLOBAL_REDZONE"
    assert decode_shadow_byte(0xFB, era).name == "KASAN_KMALLOC_FREE"
    assert decode_shadow_byte(0xF8, era).name == "KASAN_USE_AFTER_SCOPE"
    assert decode_shadow_byte(0xFA).name == "KASAN_SLAB_FREE_META"
    unknown = report_era(
        parse_reports(
            [
                "BUG: KASAN: out-of-bounds in f+0x1/0x2",
                "Read of size 1 at addr ffff888000000000 by task t/1",
            ],
            partial=True,
        )[0]
    )
    assert unknown.key == "unknown"
    note = decode_shadow_byte(0xFA, unknown).era_note
    assert note is not None and "KASAN_GLOBAL_REDZONE" in note
    assert decode_shadow_byte(0x05).accessible == 5
    tags = parse_reports(CORPUS / "ext-09-arm64-hwtags-out-of-bounds-scan_block.txt")[0]
    exp = explain(tags)
    assert exp.mode == "hw-tags" and exp.granule == 16
    assert decode_tag(0xF7, 0xF7).meaning.endswith("matches the pointer tag")
    assert decode_tag(0xFE, 0xF7).name == "KASAN_TAG_INVALID"
    assert {b.value for b in exp.legend} >= {0xFE, 0xF7}
    # the access address carries the pointer tag (f7ff...), the object's does not (ffff...)
    assert "the access: inside the 256-byte region, at offset 176" in exp.where


def test_report_32bit_and_stack(capsys) -> None:
    rc, out, _ = _run(
        capsys, "report", str(CORPUS / "ext-03-arm32-stack-out-of-bounds-refresh_cpu_vm_stats.txt")
    )
    assert rc == 0
    assert "32-bit, kernel 6.1.25-mainline" in out
    assert "the access falls in 'global_node_diff' [112, 276)" in out
    assert "  >c1d03d00: 00 04 f2 f2" in out


# --------------------------------------------------------------------------- replay


def test_replay(capsys, tmp_path) -> None:
    kw = tmp_path / "uaf.kw"
    rc, out, _ = _run(
        capsys, "report", str(KRUN / "kmalloc_uaf.txt"), "--replay", "--workload-out", str(kw)
    )
    assert rc == 0
    assert "  replay (profile x86_64), the workload:" in out
    assert "    p = kmalloc 16" in out and "    read p+0x8 1" in out
    assert (
        "  engine: slab-use-after-free (same bug type; region line 8 bytes inside of "
        "freed 16-byte region: same as the report's)"
    ) in out
    assert "    BUG: KASAN: slab-use-after-free in kmalloc_uaf+" in out
    # the written workload runs on its own, and its expect lines hold
    assert main(["run", str(kw)]) == 0
    capsys.readouterr()


def test_replay_of_the_kunit_reports() -> None:
    """The replay reaches the report's bug type and region line for every real report with
    an object (and is refused, with a reason, for tag-based ones)."""
    tried = matched = 0
    for path in sorted(KRUN.glob("*.txt")):
        for rep in parse_reports(path):
            plan = replay_workload(rep)
            res = run_replay(plan)
            tried += 1
            matched += res.matches
            assert res.type_matches, (path.name, rep.line, res.engine_type)
    assert tried >= 60 and matched == tried
    tags = parse_reports(CORPUS / "ext-09-arm64-hwtags-out-of-bounds-scan_block.txt")[0]
    with pytest.raises(Exception, match="generic KASAN only"):
        replay_workload(tags)
    arm = parse_reports(CORPUS / "ext-01-arm32-global-out-of-bounds-load_module.txt")[0]
    assert pick_profile(arm) == "arm32"


def test_replay_json(capsys) -> None:
    rc, out, _ = _run(
        capsys,
        "report",
        str(CORPUS / "syz-740-slab-use-after-free-read-in-chrdev_open.txt"),
        "--replay",
        "--format",
        "json",
    )
    r = json.loads(out)["reports"][0]["replay"]
    assert r["type_matches"] and r["region_matches"]
    assert "c = kmem_cache_create ntfs_inode_cache 1752" in r["workload"]
    assert r["engine_region"] == [1696, "inside", "freed", 1752]


# --------------------------------------------------------------------------- symbolization

needs_gcc = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("nm") is None, reason="needs gcc and binutils"
)


@pytest.fixture(scope="module")
def vmlinux(tmp_path_factory) -> Path:
    """The fixture ELF, built as a kernel is: sources named relative to the build directory
    (so the default --strip, the vmlinux's directory, leaves 'kasan_like.c')."""
    d = tmp_path_factory.mktemp("vmlinux")
    shutil.copy(SRC, d / SRC.name)
    out = d / "vmlinux"
    subprocess.run(
        ["gcc", "-g", "-O1", "-o", str(out), SRC.name], check=True, cwd=d, capture_output=True
    )
    return out


def _sizes(elf: Path) -> dict[str, tuple[int, int]]:
    out = subprocess.run(["nm", "-S", str(elf)], capture_output=True, text=True).stdout
    return {
        p[3]: (int(p[0], 16), int(p[1], 16))
        for p in (ln.split() for ln in out.splitlines())
        if len(p) == 4
    }


@needs_gcc
def test_symbolize_command(capsys, vmlinux) -> None:
    start, size = _sizes(vmlinux)["kmalloc_oob_right"]
    rc, out, err = _run(
        capsys,
        "symbolize",
        "--vmlinux",
        str(vmlinux),
        f"kmalloc_oob_right+0x10/{size:#x}",
        f"{start + 0x10:#x}",
    )
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"kmalloc_oob_right+0x10/{size:#x} ({start + 0x10:#x}):"
    assert lines[-1].startswith("  kmalloc_oob_right kasan_like.c:")
    assert any(ln.endswith("[inline]") for ln in lines)
    # both inputs name the same address: the same frames
    half = len(lines) // 2
    assert lines[1:half] == lines[half + 1 :]
    rc, out, _ = _run(
        capsys,
        "symbolize",
        "--vmlinux",
        str(vmlinux),
        "--format",
        "json",
        "no_such_function+0x1/0x2",
    )
    assert rc == 1 and json.loads(out)["results"][0]["error"].startswith("no symbol")


@needs_gcc
def test_report_with_vmlinux(capsys, tmp_path, vmlinux) -> None:
    sizes = _sizes(vmlinux)
    text = (KRUN / "kmalloc_oob_right.txt").read_text().splitlines()[:80]
    text = [
        ln.replace(
            "kmalloc_oob_right+0x87/0x690",
            f"kmalloc_oob_right+0x10/{sizes['kmalloc_oob_right'][1]:#x}",
        )
        for ln in text
    ]
    p = tmp_path / "report.txt"
    p.write_text("\n".join(text) + "\n")
    rc, out, err = _run(capsys, "report", str(p), "--vmlinux", str(vmlinux))
    assert rc == 0 and err == ""
    alloc = out[out.index("  allocated by task 37:") :]
    assert "    poison_redzone kasan_like.c:" in alloc and "[inline]" in alloc
    assert f"    kmalloc_oob_right+0x10/{sizes['kmalloc_oob_right'][1]:#x} kasan_like.c:" in alloc
    # frames not in this ELF stay as they were
    assert "    kasan_save_stack+0x2f/0x50\n" in alloc


@pytest.mark.parametrize("damage", ["truncated", "flipped-header", "not-elf"])
def test_bad_vmlinux_is_one_line_and_exit_2(capsys, tmp_path, damage) -> None:
    bad = tmp_path / "vmlinux"
    if damage == "not-elf":
        bad.write_text("this is not an ELF file\n")
    else:
        # Any ELF will do for damaging: the running Python interpreter is one.
        data = bytearray(Path(os.path.realpath(sys.executable)).read_bytes())
        assert data[:4] == b"\x7fELF"
        if damage == "truncated":
            data = data[: len(data) // 2]
        else:
            data[0x28:0x30] = b"\xff" * 8  # e_shoff far past the end
        bad.write_bytes(data)
    for argv in (
        ["report", str(KRUN / "kmalloc_uaf.txt"), "--vmlinux", str(bad)],
        ["symbolize", "--vmlinux", str(bad), "kmalloc_uaf+0x1/0x2"],
    ):
        rc, out, err = _run(capsys, *argv)
        assert rc == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith(f"kinspect: {bad}: ")
        assert "Traceback" not in err


# --------------------------------------------------------------------------- issue 11


def _cli(*argv: str, stdin=None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kinspect.cli", *argv],
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=120,
    )


def test_old_layout_access_inside_the_object_and_a_free_placed_by_the_region_line() -> None:
    # syz-106 (4.x: "Object at A, in cache C size: 248", no region line): a 4-byte read at
    # offset 244 is inside the object (it said "-4 bytes past the end of the 248-byte slot")
    (uaf,) = parse_reports(CORPUS / "syz-106-use-after-free-read-in-consume_skb.txt", partial=True)
    where = explain(uaf).where
    assert "the access: inside the 248-byte object, at offset 244" in where
    assert not [w for w in where if "past the end" in w]
    # syz-216 (4.16 "double-free or invalid-free": no access line): the region line places
    # the freed pointer ("0 bytes inside of 32-byte region [ffff8801c95e2880, ...)")
    (free,) = parse_reports(CORPUS / "syz-216-invalid-free-in-xt_free_table_info.txt", partial=True)
    assert free.addr is None and free.buggy_addr == 0xFFFF8801C95E2880
    exp = explain(free)
    assert exp.access == "free of 0xffff8801c95e2880 (placed by the region line)"
    assert "the free: a second free of the object" in exp.where
    res = run_replay(replay_workload(free))
    assert res.engine_type == "double-free" and res.region_matches


def test_replay_runs_on_the_reports_architecture(capsys) -> None:
    (arm64,) = parse_reports(
        CORPUS / "ext-12-arm64-generic-slab-use-after-free-drm_connector_cleanup-wrapped.txt",
        partial=True,
    )
    assert report_arch(arm64)[0] == "arm64" and pick_profile(arm64) == "arm64-4k-48"
    rc, out, _ = _run(
        capsys,
        "report",
        "--replay",
        str(CORPUS / "ext-12-arm64-generic-slab-use-after-free-drm_connector_cleanup-wrapped.txt"),
    )
    assert rc == 0 and "replay (profile arm64-4k-48)" in out
    assert (
        "engine: slab-use-after-free (same bug type; region line 168 bytes inside of "
        "freed 2048-byte region: same as the report's)" in out
    )
    riscv = parse_reports(
        CORPUS / "ext-13-riscv64-slab-oob-and-vmalloc-oob-kunit-wrapped.txt", partial=True
    )[1]
    assert pick_profile(riscv) == "riscv64-sv39"
    ppc = parse_reports(CORPUS / "ext-04-ppc32-vmalloc-out-of-bounds-pcpu_alloc.txt", partial=True)[
        0
    ]
    assert report_arch(ppc)[0] == "powerpc" and pick_profile(ppc) == "ppc32"
    (s390,) = parse_reports(CORPUS / "ext-06-s390x-out-of-bounds-set_pte_range.txt", partial=True)
    assert report_arch(s390)[0] == "s390"
    # x86 reports that say so in their stacks stay on x86 (an arm64 profile was picked for
    # 4.x syzkaller reports whose objects lay beyond the simulated memory)
    (x86,) = parse_reports(
        CORPUS / "syz-105-slab-out-of-bounds-read-in-ip6_fragment.txt", partial=True
    )
    assert pick_profile(x86) == "x86_64"


def test_replay_without_the_engine_printing_a_region_line(capsys, tmp_path) -> None:
    # the access moved to address 0: the engine reports a null-ptr-deref without a region
    # line while the report has one (a TypeError traceback before)
    text = (KRUN / "mempool_kmalloc_invalid_free.txt").read_text()
    log = tmp_path / "at0.txt"
    log.write_text(re.sub(r"(Free of|at) addr [0-9a-f]+", r"\1 addr 0000000000000000", text))
    rc, out, err = _run(capsys, "report", "--replay", str(log))
    assert rc == 0 and err == ""
    assert "no region line, the report has one" in out


def test_workload_out_never_writes_over_an_input(capsys, tmp_path) -> None:
    log = tmp_path / "log.txt"
    shutil.copy(KRUN / "kmalloc_oob_right.txt", log)
    before = log.read_bytes()
    (tmp_path / "alias.txt").symlink_to(log)
    for out in (log, tmp_path / "alias.txt", tmp_path / "." / "log.txt"):
        rc, stdout, err = _run(capsys, "report", "--replay", "--workload-out", str(out), str(log))
        assert rc == 2 and stdout == "" and err.count("\n") == 1
        assert err.startswith(f"kinspect: {out}: --workload-out would write over the input")
        assert log.read_bytes() == before
    # the second report's workload would be FILE-2.kw: that name is checked too
    second = tmp_path / "w-2.kw"
    shutil.copy(KRUN / "kmalloc_oob_right.txt", second)
    rc, _, err = _run(
        capsys, "report", "--replay", "--workload-out", str(tmp_path / "w.kw"), str(second)
    )
    assert rc == 2 and "would write over the input" in err
    assert second.read_text() == log.read_text()


def test_closed_or_full_stdout_is_a_clean_exit(tmp_path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("".join(p.read_text() for p in sorted(CORPUS.glob("*.txt"))))
    head = subprocess.Popen(
        [sys.executable, "-m", "kinspect.cli", "report", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert head.stdout is not None and head.stderr is not None  # (both piped)
    head.stdout.readline()
    head.stdout.close()  # `| head -1`
    err = head.stderr.read()
    assert head.wait(timeout=120) == 0 and err == b""
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            r = _cli("report", str(big), stdout=full)
        assert r.returncode == 2
        assert r.stderr.decode() == (
            "kinspect: <stdout>: cannot write the output: No space left on device\n"
        )


def test_endless_and_binary_inputs(tmp_path) -> None:
    if os.path.exists("/dev/zero"):
        r = _cli("report", "/dev/zero")
        assert r.returncode == 2 and r.stdout == b""
        assert r.stderr.decode() == (
            "kinspect: /dev/zero:1: a line longer than 65536 "
            "characters: not a console log (printk lines are about "
            "1 KiB)\n"
        )
    binary = bytes(range(256)) * 64 + b"\nBUG: KASAN: \xff\xfe in f\n"
    (tmp_path / "bin").write_bytes(binary)
    with open(tmp_path / "bin", "rb") as piped:
        for argv, stdin in ((["report", str(tmp_path / "bin")], None), (["report", "-"], piped)):
            r = _cli(*argv, stdin=stdin)
            assert r.returncode in (0, 1, 2) and b"Traceback" not in r.stderr
            assert r.returncode != 2 or r.stderr.count(b"\n") == 1
