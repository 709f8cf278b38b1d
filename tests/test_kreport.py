"""Tests of the KASAN report parser (kinspect.reports.kreport) against real kernel output.

Data: tests/data/kernel-run/ (Linux 6.12.117 KUnit kasan suite, gcc and clang builds) and
tests/data/kasan-reports/ (syzkaller's report-parser corpus and mailing-list reports), both
copied unmodified from the shared data (see tests/data/kernel-run/SOURCE.md).
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinspect.engine.errors import KinspectError, ReportParseError
from kinspect.reports.explain import (
    ReplayUnsupported,
    explain,
    format_explanation,
    headline,
    replay_workload,
    run_replay,
)
from kinspect.reports.kreport import (
    KasanReport,
    LogScan,
    StackTrace,
    find_oops,
    first_crash,
    iter_reports,
    parse_report_text,
    parse_reports,
    sanitize_title,
)
from kreport_corpus import CORPUS, corpus_rows, corpus_score, scan_log

DATA = Path(__file__).parent / "data"
KRUN = DATA / "kernel-run"

RUNS = {
    "gcc": (KRUN / "reports", KRUN / "kunit-results.tsv"),
    "clang": (KRUN / "reports-x86_64-clang", KRUN / "kunit-results-x86_64-clang.tsv"),
}


def _stack(stack: StackTrace | None) -> StackTrace:
    """A stack the report must have."""
    assert stack is not None
    return stack


def _tsv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {row["test"]: row for row in csv.DictReader(fh, delimiter="\t")}


def _report_files() -> list[tuple[str, Path]]:
    out = []
    for run, (d, _) in RUNS.items():
        out += [(run, p) for p in sorted(d.glob("*.txt"))]
    return out


# --------------------------------------------------------------------------- kernel-run


@pytest.mark.parametrize(
    "run,path", _report_files(), ids=lambda v: v if isinstance(v, str) else v.stem
)
def test_kernel_run_file_matches_results_table(run: str, path: Path) -> None:
    table = _tsv(RUNS[run][1])
    row = table[path.stem]
    reps = parse_reports(path)
    assert len(reps) == int(row["n_reports"])
    assert ";".join(r.bug_type for r in reps) == row["bug_types"]
    assert ";".join(str(r.access) for r in reps) == row["accesses"]
    assert ";".join("-" if r.size is None else str(r.size) for r in reps) == row["sizes"]
    for r in reps:
        assert r.complete, "closing ===== line not seen"
        assert r.task is not None
        assert r.task == "kunit_try_catch" or r.task.startswith("swapper/")
        assert len(r.memory_rows) == 5 and r.guilty_row == 2
        assert r.caret_index is not None and r.granule_size == 8
        # kasan_find_first_bad_addr walks from the access address in granule steps, so the
        # caret's granule is never below the access address' granule (free reports: the ptr).
        assert r.first_bad_addr is not None and r.addr is not None
        assert r.first_bad_addr >= r.addr & ~7
        if r.object_addr is not None:
            assert r.region_start == r.object_addr
            assert r.cache_name and r.cache_object_size
            assert r.state in ("allocated", "freed", "")


@pytest.mark.parametrize("run", sorted(RUNS))
def test_every_case_with_reports_has_a_file(run: str) -> None:
    d, tsv = RUNS[run]
    with_reports = {t for t, row in _tsv(tsv).items() if int(row["n_reports"]) > 0}
    files = {p.stem for p in d.glob("*.txt")}
    assert with_reports == files


def test_kmalloc_oob_right_fields() -> None:
    reps = parse_reports(KRUN / "reports" / "kmalloc_oob_right.txt")
    r = reps[0]
    assert r.line == 1
    assert (r.bug_type, r.function, r.access, r.size) == (
        "slab-out-of-bounds",
        "kmalloc_oob_right+0x604/0x690",
        "Write",
        1,
    )
    assert r.addr == 0xFFFF8880056E5A73
    assert (r.task, r.pid) == ("kunit_try_catch", 37)
    assert r.alloc_stack is not None and r.alloc_stack.pid == 37
    assert r.alloc_stack.frames[:3] == [
        "kasan_save_stack+0x2f/0x50",
        "kasan_save_track+0x10/0x30",
        "__kasan_kmalloc+0x83/0x90",
    ]
    assert r.free_stack is None and r.aux_stacks == []
    assert (r.object_addr, r.cache_name, r.cache_object_size) == (
        0xFFFF8880056E5A00,
        "kmalloc-128",
        128,
    )
    assert (r.rel_bytes, r.direction, r.state, r.region_size) == (
        0,
        "to the right",
        "allocated",
        115,
    )
    assert (r.region_start, r.region_end) == (0xFFFF8880056E5A00, 0xFFFF8880056E5A73)
    assert r.page_lines[0].startswith("page: refcount:1 mapcount:0")
    assert r.page_lines[-1] == "page dumped because: kasan: bad access detected"
    assert [row.addr for row in r.memory_rows] == [0xFFFF8880056E5900 + 0x80 * i for i in range(5)]
    assert r.memory_rows[2].values[12:16] == (0x00, 0x00, 0x03, 0xFC)
    assert r.memory_state[2] == (0xFFFF8880056E5A00, [0] * 14 + [0x03, 0xFC])
    assert r.caret_index == 14 and r.caret_value == 0x03
    assert r.first_bad_addr == 0xFFFF8880056E5A70
    assert r.metadata_byte(0xFFFF8880056E5A78) == 0xFC
    assert r.metadata_byte(0xFFFF8880056E5C00) is None
    # the second report starts where the first one's ===== line ends
    assert r.end_line is not None and reps[1].line == r.end_line + 1
    assert reps[2].access == "Read" and reps[2].addr == 0xFFFF8880056E5A80


def test_stack_frame_and_variable_fields() -> None:
    (s,) = parse_reports(KRUN / "reports" / "kasan_stack_oob.txt")
    assert (s.stack_task, s.stack_pid, s.frame_offset) == ("kunit_try_catch", 150, 106)
    assert s.frame_function == "kasan_stack_oob+0x0/0x280"
    assert s.frame_objects is not None
    assert [(o.start, o.end, o.name) for o in s.frame_objects] == [
        (48, 49, "__assertion"),
        (64, 72, "array"),
        (96, 106, "stack_array"),
        (128, 144, "__assertion"),
    ]
    assert s.object_addr is None and s.variable is None
    (g,) = parse_reports(KRUN / "reports" / "kasan_global_oob_right.txt")
    assert g.variable == "global_array+0xd/0x40"
    assert g.stack_task is None and g.frame_objects is None
    (a,) = parse_reports(KRUN / "reports" / "kasan_alloca_oob_left.txt")
    assert (a.stack_task, a.stack_pid) == ("kunit_try_catch", 152)
    assert a.frame_offset is None and a.frame_objects is None
    assert a.caret_value == 0xCA


def test_aux_and_free_stacks() -> None:
    (r,) = parse_reports(KRUN / "reports" / "rcu_uaf.txt")
    assert (r.task, r.pid) == ("swapper/0", 0)
    assert r.function == "rcu_uaf_reclaim+0x3c/0x40"
    assert _stack(r.alloc_stack).pid == 97 and _stack(r.free_stack).pid == 0
    assert "rcu_uaf_reclaim+0x11/0x40" in _stack(r.free_stack).frames
    assert len(r.aux_stacks) == 1
    assert r.aux_stacks[0].header == "Last potentially related work creation:"
    assert "rcu_uaf+0x13e/0x2e0" in r.aux_stacks[0].frames
    assert (r.direction, r.state, r.region_size) == ("inside", "freed", 32)
    (w,) = parse_reports(KRUN / "reports" / "workqueue_uaf.txt")
    assert _stack(w.free_stack).pid == 35


def test_free_reports_and_page_reports() -> None:
    (d,) = parse_reports(KRUN / "reports" / "kmem_cache_double_free.txt")
    assert (d.bug_type, d.access, d.size) == ("double-free", "Free", None)
    assert d.addr == d.object_addr
    (p,) = parse_reports(KRUN / "reports" / "kmalloc_large_oob_right.txt")
    assert p.object_addr is None and p.cache_name is None and p.region_size is None
    assert any(line.startswith("head: order:2") for line in p.page_lines)
    assert (p.caret_index, p.caret_value) == (1, 0x02)


def test_negative_size_and_regions_without_state_word() -> None:
    (r,) = parse_reports(KRUN / "reports-x86_64-clang" / "kmalloc_memmove_negative_size.txt")
    assert r.bug_type == "out-of-bounds"
    assert r.size == 18446744073709551614
    assert (r.direction, r.state, r.region_size) == ("inside", "", 64)


def _prefixed(path: Path, fmt: str) -> list[str]:
    out = []
    for i, line in enumerate(path.read_text().splitlines()):
        ts = f"{2 + i / 1000:12.6f}"  # printk's "[%5lu.%06lu]" field
        out.append(fmt.format(ts=ts, line=line) + "\n")
    return out


def _key(r: KasanReport) -> tuple:
    return (
        r.bug_type,
        r.function,
        r.access,
        r.size,
        r.addr,
        r.task,
        r.pid,
        r.object_addr,
        r.cache_name,
        r.cache_object_size,
        r.rel_bytes,
        r.direction,
        r.state,
        r.region_size,
        r.variable,
        r.frame_offset,
        r.frame_objects,
        r.memory_rows and [(x.addr, x.values, x.guilty) for x in r.memory_rows],
        r.caret_index,
        r.alloc_stack and r.alloc_stack.frames,
        r.free_stack and r.free_stack.frames,
        [a.frames for a in r.aux_stacks],
        r.page_lines,
        r.complete,
    )


@pytest.mark.parametrize(
    "fmt",
    [
        "[{ts}] {line}",
        "[{ts}][ T1234] {line}",
        "[{ts}][    C0] {line}",
        "\t[{ts}] {line}",
        "[{ts}] [4:     netbpfload:  825] {line}",
    ],
)
def test_console_prefixes_are_stripped(fmt: str) -> None:
    for name in ("kmalloc_oob_right", "kasan_stack_oob", "rcu_uaf", "kmalloc_large_invalid_free"):
        bare = parse_reports(KRUN / "reports" / f"{name}.txt")
        logged = parse_reports(_prefixed(KRUN / "reports" / f"{name}.txt", fmt))
        assert [_key(r) for r in logged] == [_key(r) for r in bare]


def test_other_callers_lines_are_filtered_and_wrapped_lines_joined() -> None:
    src = (KRUN / "reports" / "kmalloc_uaf.txt").read_text().splitlines()
    bare = parse_reports(src)
    lines = []
    for i, line in enumerate(src):
        lines.append(f"[    3.{i:06d}][   T83] {line}")
        if i % 3 == 0:  # another task prints meanwhile
            lines.append(f"[    3.{i:06d}][   T12] Read of size 8 at addr ffff0000 by task x/12")
    assert [_key(r) for r in parse_reports(lines)] == [_key(r) for r in bare]
    # a mail client wrapped the BUG line, the access line and a dump row
    wrapped = []
    for line in [f"[    3.{i:06d}] {x}" for i, x in enumerate(src)]:
        if line.endswith("slab-use-after-free in kmalloc_uaf+0x2e7/0x340"):
            wrapped += [line[: -len(" kmalloc_uaf+0x2e7/0x340")], "kmalloc_uaf+0x2e7/0x340"]
        elif "by task kunit_try_catch/83" in line:
            wrapped += [line[: -len(" kunit_try_catch/83")], "kunit_try_catch/83"]
        elif line.endswith(">ffff888004e52700: fa fb fc fc fa fb fc fc fa fb fc fc fc fc fc fc"):
            wrapped += [line[:-12], "fc fc fc fc"]
        else:
            wrapped.append(line)
    (w,) = parse_reports(wrapped)
    assert _key(w) == _key(bare[0])


def test_streaming_from_a_generator_and_line_numbers() -> None:
    text = (KRUN / "reports" / "kasan_strings.txt").read_text().splitlines()
    noise = ["[    1.000000] Linux version 6.12.117", "random: crng init done", ""]

    def gen():
        yield from noise
        for line in text:
            yield line + "\n"
        yield "[    5.000000] reboot: Power down\n"

    it = iter_reports(gen(), path="console.log")
    first = next(it)
    assert first.line == len(noise) + 1 and first.path == "console.log"
    rest = list(it)
    assert len(rest) == 5
    assert all(r.function is not None and r.function.startswith("str") for r in [first] + rest)


def test_parse_report_text_and_leading_separator() -> None:
    body = (KRUN / "reports" / "kmalloc_oob_left.txt").read_text()
    (r,) = parse_report_text("=" * 66 + "\n" + body)
    assert r.line == 2 and r.complete


# --------------------------------------------------------------------------- malformed input

_GOOD = (KRUN / "reports" / "kmalloc_oob_right.txt").read_text().splitlines()[:64]


def _mutate(idx: int, new: str | None) -> list[str]:
    lines = list(_GOOD)
    if new is None:
        del lines[idx]
    else:
        lines[idx] = new
    return lines


def _line_of(prefix: str) -> int:
    return next(i for i, line in enumerate(_GOOD) if line.startswith(prefix))


@pytest.mark.parametrize(
    "idx_prefix,new,errline,msg",
    [
        (
            "Write of size",
            "Write of sise 1 at addr ffff8880056e5a73 by task kunit_try_catch/37",
            2,
            "Read|Write of size N",
        ),
        ("BUG: KASAN", "BUG: KASAN: slab-out-of-bounds", 1, "BUG: KASAN"),
        (
            " which belongs",
            " which belongs to the cache kmalloc-128",
            45,
            "which belongs to the cache",
        ),
        (
            " allocated 115-byte",
            " allocated 115-byte region [ffff8880056e5a00, ffff8880056e5a74)",
            47,
            "not 115 bytes",
        ),
        (" allocated 115-byte", " allocated 115-byte region ffff8880056e5a00", 47, "N-byte region"),
        (
            ">ffff8880056e5a00",
            ">ffff8880056e5a00: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03",
            60,
            "15 bytes",
        ),
        (
            ">ffff8880056e5a00",
            ">ffff8880056e5a00: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03 zz",
            60,
            "malformed memory-state row",
        ),
        ("                  ", "                    ^", 61, "not under a byte"),
        ("                  ", None, 61, "'^' line"),
        (
            " ffff8880056e5a80",
            " ffff8880056e5a90: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc",
            62,
            "evenly spaced",
        ),
        (
            " ffff8880056e5b00",
            "==================================================================",
            63,
            "row 5 of 5 is missing",
        ),
    ],
)
def test_broken_reports_raise_with_the_line(
    idx_prefix: str, new: str | None, errline: int, msg: str
) -> None:
    lines = _mutate(_line_of(idx_prefix), new)
    with pytest.raises(ReportParseError) as ei:
        parse_reports(lines, path="bad.txt")
    err = ei.value
    assert err.path == "bad.txt"
    assert err.line == errline, str(err)
    assert msg in err.message, str(err)
    assert str(err).startswith(f"bad.txt:{errline}")


def test_broken_report_at_end_of_input() -> None:
    with pytest.raises(ReportParseError) as ei:
        parse_reports(["BUG: KASAN: slab-out-of-bounds in f+0x1/0x2"], path="x")
    assert ei.value.line == 1
    with pytest.raises(ReportParseError) as ei:
        parse_reports(_GOOD[:60], path="x")  # ends inside the memory state
    assert ei.value.line == 60


def test_non_strict_mode_skips_broken_reports() -> None:
    broken = ["BUG: KASAN: slab-out-of-bounds in f+0x1/0x2", "garbage", "=" * 66]
    lines = broken + list(_GOOD) + broken
    errors: list[ReportParseError] = []
    reps = parse_reports(lines, strict=False, errors=errors)
    assert len(reps) == 1 and reps[0].line == 4
    assert [e.line for e in errors] == [2, 69]


# --------------------------------------------------------------------------- public corpus

# Files whose report cannot be parsed, and why.  Each must raise ReportParseError (strict) rather
# than be half-read silently.
CORPUS_UNPARSABLE = {
    "syz-77-slab-out-of-bounds-in-ip6_fragment-at-addr-addr.txt": (
        "syzkaller fragment: only the 4.x 'BUG: KASAN ... at addr' line (1 log line)"
    ),
    "syz-79-use-after-free-in-do_con_write.part.num-at-addr-addr.txt": (
        "syzkaller fragment: only the 4.x 'BUG: KASAN ... at addr' line (1 log line)"
    ),
    "syz-104-slab-out-of-bounds-in-gup_huge_pmd-at-addr-addr.txt": (
        "syzkaller fragment: BUG line without its access line (2 log lines)"
    ),
    "syz-106-use-after-free-read-in-consume_skb.txt": (
        "syzkaller fragment (9 log lines): ends right after 'Memory state around the buggy "
        "address:'"
    ),
    "syz-107-slab-out-of-bounds-in-do_raw_write_lock-at-addr-addr.txt": (
        "4.9 fragment with '** N printk messages dropped **': the access line was dropped"
    ),
    "syz-132-info-freed-in-fasync_free_rcu-age-num-cpu-num-pid-num.txt": (
        "4.4 log with '** N printk messages dropped **': the access line was dropped"
    ),
    "syz-164-slab-out-of-bounds-in-native_queued_spin_lock_slowpath-at-ad.txt": (
        "4.4 log with '** N printk messages dropped **': the access line was dropped"
    ),
    "syz-214-wild-memory-access-in-sg_read.txt": (
        "4.9 inline instrumentation: the BUG line is followed by a general protection fault, "
        "the report body never came"
    ),
    "syz-652-invalid-free-in-xt_free_table_info.txt": (
        "hand-edited copy of file 216: title changed to 'double-free' but the 4.16 body has no "
        "'Free of addr' line (6.x reports with that title always print it)"
    ),
    "syz-653-invalid-free-in-xt_free_table_info.txt": (
        "hand-edited copy of file 216: title changed to 'invalid-free' but the 4.16 body has no"
        " 'Free of addr' line (6.x reports with that title always print it)"
    ),
    "ext-11-arm64-swtags-invalid-access-pcpu_alloc-in-dmesg.txt": (
        "the report is cut short by a second fault while the tag dump was being printed"
    ),
}

# index.tsv columns are hints made by a script (SOURCE.md says so).  Where they take a value from
# elsewhere than the KASAN report itself, the parser rightly differs:
CORPUS_INDEX_DIFFERENCES = {
    # 4.12-5.x "double-free or invalid-free" reports print no access line; the index took the
    # task and pid from the "CPU: ... PID: ... Comm: ..." line, and left the access empty.
    ("syz-5-invalid-free-in-selinux_tun_dev_free_security.txt", "access"): ("Free", ""),
    ("syz-5-invalid-free-in-selinux_tun_dev_free_security.txt", "task"): (None, "syz-executor5"),
    ("syz-5-invalid-free-in-selinux_tun_dev_free_security.txt", "pid"): (None, "11514"),
    ("syz-216-invalid-free-in-xt_free_table_info.txt", "access"): ("Free", ""),
    ("syz-216-invalid-free-in-xt_free_table_info.txt", "task"): (None, "syz-executor4"),
    ("syz-216-invalid-free-in-xt_free_table_info.txt", "pid"): (None, "4260"),
    ("ext-10-arm64-swtags-double-free-virtblk_request_done.txt", "access"): ("Free", ""),
    ("ext-10-arm64-swtags-double-free-virtblk_request_done.txt", "task"): (None, "syz-executor.0"),
    ("ext-10-arm64-swtags-double-free-virtblk_request_done.txt", "pid"): (None, "19116"),
}


def _major(kernel: str) -> int | None:
    try:
        return int(kernel.split(".")[0])
    except ValueError:
        return None


def test_corpus_index_covers_every_file() -> None:
    assert {r["file"] for r in corpus_rows()} == {p.name for p in CORPUS.glob("*.txt")}
    assert set(CORPUS_UNPARSABLE) <= {p.name for p in CORPUS.glob("*.txt")}


@pytest.mark.parametrize("row", corpus_rows(), ids=lambda r: r["file"][:40])
def test_corpus_file(row: dict[str, str]) -> None:
    path = CORPUS / row["file"]
    if row["file"] in CORPUS_UNPARSABLE:
        with pytest.raises(ReportParseError):
            parse_reports(path)
        errors: list[ReportParseError] = []
        parse_reports(path, strict=False, errors=errors)
        assert errors and all(e.path == str(path) and e.line for e in errors)
        return
    reps = parse_reports(path)
    if row["kasan_report"] != "yes":
        assert reps == [], "a look-alike negative was taken for a KASAN report"
        return
    assert reps, "no report found"
    r = reps[0]
    got = {
        "bug_type": r.bug_type,
        "function": (r.function or "").split("+")[0],
        "access": r.access or "",
        "size": "" if r.size is None else str(r.size),
        "address": r.addr,
        "task": r.task,
        "pid": None if r.pid is None else r.pid,
        "cache": r.cache_name or "",
        "object_size": "" if r.cache_object_size is None else str(r.cache_object_size),
    }
    expected = {
        "bug_type": row["bug_type"],
        "function": row["function"],
        "access": row["access"],
        "size": row["size"],
        "address": 0
        if row["address"] == "(null)"
        else (int(row["address"], 16) if row["address"] else None),
        "task": row["task"] or None,
        "pid": int(row["pid"]) if row["pid"] else None,
        "cache": row["cache"],
        "object_size": row["object_size"],
    }
    for key in got:
        known = CORPUS_INDEX_DIFFERENCES.get((row["file"], key))
        if known is not None:
            assert (got[key], row[key]) == known
            continue
        assert got[key] == expected[key], key
    if row["memory_state"] == "yes" and row["shadow_rows"] == "5":
        assert len(r.memory_rows) == 5 and r.caret_index is not None
        stride = {"generic": 0x80}.get(row["kasan_mode"])
        if stride:
            assert r.row_stride == stride


def test_corpus_6x_generic_reports_parse_completely() -> None:
    """The 6.x-format generic reports (the layout kinspect prints) parse with every section."""
    rows = [
        r
        for r in corpus_rows()
        if r["kasan_report"] == "yes"
        and r["kasan_mode"] == "generic"
        and (_major(r["kernel"]) or 0) >= 6
    ]
    names = {r["file"] for r in rows}
    assert {
        "syz-658-stack-out-of-bounds-read-in-ntfs_fill_super.txt",
        "syz-704-slab-use-after-free-read-in-btrfs_evict_inode.txt",
        "syz-737-slab-use-after-free-read-in-mptcp_pm_del_add_timer.txt",
        "syz-740-slab-use-after-free-read-in-chrdev_open.txt",
        "ext-03-arm32-stack-out-of-bounds-refresh_cpu_vm_stats.txt",
    } <= names
    assert not names & set(CORPUS_UNPARSABLE)
    for row in rows:
        r = parse_reports(CORPUS / row["file"])[0]
        assert r.access and r.addr is not None
        if row["file"].startswith("syz-698"):
            continue  # syzkaller cut the log right after the dump
        assert r.complete and len(r.memory_rows) == 5 and r.caret_index is not None
    r = parse_reports(CORPUS / "syz-740-slab-use-after-free-read-in-chrdev_open.txt")[0]
    assert (r.rel_bytes, r.direction, r.state, r.region_size) == (1696, "inside", "freed", 1752)
    assert _stack(r.free_stack).pid == 15 and len(r.aux_stacks) == 1
    assert r.first_bad_addr == 0xFFFF888012ACFC20 and r.caret_value == 0xFB
    arm = parse_reports(
        CORPUS / "ext-12-arm64-generic-slab-use-after-free-drm_connector_cleanup-wrapped.txt"
    )[0]
    assert arm.function == "drm_connector_cleanup+0x30/0x488" and arm.task == "kunit_try_catch"
    assert len(arm.memory_rows) == 5 and arm.caret_index == 5 and arm.caret_value == 0xFB
    ppc = parse_reports(CORPUS / "ext-05-ppc32-vmalloc-out-of-bounds-vmalloc_oob-x2.txt")
    assert [x.caret_value for x in ppc] == [0x03, 0xF8]
    assert ppc[0].row_stride == 0x80 and ppc[0].first_bad_addr == 0xF10457F0


def test_corpus_syzbot_inline_bug_lines_are_one_report() -> None:
    lines = [
        "BUG: KASAN: slab-use-after-free in fwnode_is_primary drivers/base/core.c:5105 [inline]",
        "BUG: KASAN: slab-use-after-free in set_secondary_fwnode+0x89/0xd0 "
        "drivers/base/core.c:5167",
        "Read of size 8 at addr ffff8880358f0440 by task syz.0.19/6201",
        "",
        "The buggy address belongs to the object at ffff8880358f0400",
        " which belongs to the cache kmalloc-512 of size 512",
        "The buggy address is located 64 bytes inside of",
        " freed 512-byte region [ffff8880358f0400, ffff8880358f0600)",
        "",
        "Memory state around the buggy address:",
        " ffff8880358f0300: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc",
        " ffff8880358f0380: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc",
        ">ffff8880358f0400: fa fb fb fb fb fb fb fb fb fb fb fb fb fb fb fb",
        "                                           ^",
        " ffff8880358f0480: fb fb fb fb fb fb fb fb fb fb fb fb fb fb fb fb",
        " ffff8880358f0500: fb fb fb fb fb fb fb fb fb fb fb fb fb fb fb fb",
        "=" * 66,
    ]
    (r,) = parse_reports(lines)
    assert r.function == "set_secondary_fwnode+0x89/0xd0"
    assert r.source_location == "drivers/base/core.c:5167"
    assert (r.task, r.pid) == ("syz.0.19", 6201)
    assert r.caret_index == 8 and r.first_bad_addr == 0xFFFF8880358F0440


# --------------------------------------------------------------------------- titles (syzkaller)


@pytest.mark.parametrize(
    "row", [r for r in corpus_rows() if r["category"] != "external"], ids=lambda r: r["file"][:40]
)
def test_corpus_title_is_syzkallers(row: dict[str, str]) -> None:
    reps, scan = scan_log(CORPUS / row["file"])
    first = scan.first_crash
    assert first is not None
    assert first.title == row["syz_title"]
    assert bool(first.corrupted) == (row["syz_corrupted"] == "Y"), first.corrupted
    if row["category"] == "kasan":
        assert reps[0].title == row["syz_title"] and first.kasan
        assert first.line == reps[0].line
    elif row["category"] == "kasan-not-first":
        assert reps and not first.kasan and first.line < reps[0].line
    else:
        assert reps == [] and not first.kasan


def test_corpus_score(capsys) -> None:
    score = corpus_score()
    with capsys.disabled():
        print("\ncorpus score: " + ", ".join(f"{k} {a}/{n}" for k, (a, n) in score.items()))
    for key in (
        "kasan-console-title",
        "not-first-first-crash",
        "negative-no-report",
        "negative-crash-named",
        "corrupted-flag",
        "non-x86-memory-state",
    ):
        agree, total = score[key]
        assert total and agree == total, (key, agree, total)
    assert score["kasan-console-title"][1] == 69
    assert score["non-x86-memory-state"][1] >= 20


def test_titles_of_the_kunit_reports() -> None:
    # kmalloc_oob_right is a skipped frame for syzkaller ("kmalloc"): the next one names it
    r = parse_reports(KRUN / "reports" / "kmalloc_oob_right.txt")[0]
    assert (r.title, r.title_corrupted) == (
        "KASAN: slab-out-of-bounds Write in kunit_try_run_case",
        None,
    )
    (d,) = parse_reports(KRUN / "reports" / "kmem_cache_double_free.txt")
    assert d.title is not None and d.title.startswith("KASAN: invalid-free in ")
    (g,) = parse_reports(KRUN / "reports" / "kasan_global_oob_right.txt")
    # ... and so is every "kasan" function
    assert g.title == "KASAN: global-out-of-bounds Read in kunit_try_run_case"


def test_find_oops_and_sanitize_title() -> None:
    assert find_oops("BUG: KASAN: slab-out-of-bounds in f+0x1/0x2") == "BUG:"
    assert (
        find_oops("general protection fault, probably for non-canonical address")
        == "general protection fault"
    )
    assert find_oops("ODEBUG: object is on stack, but not annotated BUG:") is None
    assert find_oops("random: crng init done") is None
    assert (
        sanitize_title(
            "KASAN: use-after-free in do_con_write.part.23+0x1/0x2 at addr ffff88003a6bd110"
        )
        == "KASAN: use-after-free in do_con_write.part.NUM at addr ADDR"
    )


# --------------------------------------------------------------------------- partial reports


@pytest.mark.parametrize("name", sorted(CORPUS_UNPARSABLE))
def test_unparsable_files_give_partial_reports(name: str) -> None:
    reps = parse_reports(CORPUS / name, partial=True)
    assert reps, "partial mode must still return the report"
    r = reps[0]
    assert r.bug_type and r.problems
    assert all(p.path == str(CORPUS / name) and p.line for p in r.problems)


def test_truncated_report_keeps_what_was_read() -> None:
    full = (KRUN / "reports" / "kmalloc_oob_right.txt").read_text().splitlines()
    first = full[: full.index("=" * 66) + 1]
    whole = parse_reports(first)[0]
    for n in range(1, len(first)):
        (r,) = parse_reports(first[:n], partial=True)
        assert r.bug_type == "slab-out-of-bounds" and r.function == whole.function
        if n >= 2:
            assert (r.access, r.size, r.addr, r.task, r.pid) == (
                whole.access,
                whole.size,
                whole.addr,
                whole.task,
                whole.pid,
            )
        else:
            assert r.access is None and r.problems
        if r.cache_name is not None:
            assert (r.cache_name, r.cache_object_size) == (
                whole.cache_name,
                whole.cache_object_size,
            )
        assert not r.complete
        assert len(r.memory_rows) <= 5
        for a, b in zip(r.memory_rows, whole.memory_rows):
            assert a == b
    garbled = [ln.replace("fc", "zz") if ln.startswith(">") else ln for ln in first]
    (g,) = parse_reports(garbled, partial=True)
    assert g.cache_name == "kmalloc-128" and g.caret_index is None
    assert any("malformed memory-state row" in p.message for p in g.problems)


def test_malformed_bug_line_in_partial_mode() -> None:
    (r,) = parse_reports(["BUG: KASAN: slab-out-of-bounds", "garbage", "=" * 66], partial=True)
    assert (r.bug_type, r.function, r.access) == ("slab-out-of-bounds", None, None)
    assert r.problems and r.title == "KASAN: slab-out-of-bounds"


def test_interrupted_report_ends_at_the_next_oops() -> None:
    lines = (KRUN / "reports" / "kmalloc_oob_right.txt").read_text().splitlines()[:20]
    lines += [
        "general protection fault, probably for non-canonical address 0xdead: 0000 [#1]",
        "Call Trace:",
        " other_function+0x1/0x2",
    ]
    (r,) = parse_reports(lines, partial=True)
    assert r.access_stack is not None and "other_function+0x1/0x2" not in r.access_stack.frames
    scan = LogScan()
    list(iter_reports(lines, partial=True, scan=scan))
    assert scan.first_crash is not None and scan.first_crash.kasan


# --------------------------------------------------------------------------- modes, arches


def test_modes_bits_and_kernel_releases() -> None:
    def first(name: str) -> KasanReport:
        return parse_reports(CORPUS / name, partial=True)[0]

    hw = first("ext-09-arm64-hwtags-out-of-bounds-scan_block.txt")
    assert (hw.mode, hw.bits, hw.granule_size, hw.ptr_tag, hw.mem_tag) == (
        "hw-tags",
        64,
        16,
        0xF7,
        0xFE,
    )
    sw = first("ext-08-arm64-swtags-invalid-access-bpf_patch_insn_data.txt")
    assert (sw.mode, sw.row_stride) == ("sw-tags", 0x100)
    old = first("ext-10-arm64-swtags-double-free-virtblk_request_done.txt")
    assert old.mode == "sw-tags" and old.kernel_version == (5, 3)
    arm = first("ext-01-arm32-global-out-of-bounds-load_module.txt")
    assert (arm.mode, arm.bits, arm.kernel_release) == ("generic", 32, "5.15.0")
    assert _stack(arm.access_stack).frames[0].startswith("[<c010f968>] (unwind_backtrace) from")
    assert "(print_address_description+0x58/0x384)" in _stack(arm.access_stack).frames[1]
    ppc = first("ext-04-ppc32-vmalloc-out-of-bounds-pcpu_alloc.txt")
    assert (ppc.bits, ppc.first_bad_addr) == (32, 0xF57F3BE0)
    x86 = parse_reports(KRUN / "reports" / "kmalloc_oob_right.txt")[0]
    assert (x86.mode, x86.bits, x86.kernel_release) == ("generic", 64, "6.12.117")
    assert _stack(x86.access_stack).header == "Call Trace:"
    assert "kmalloc_oob_right+0x604/0x690" in _stack(x86.access_stack).frames
    assert x86.region_line == (
        "0 bytes to the right of allocated 115-byte region [ffff8880056e5a00, ffff8880056e5a73)"
    )


def test_to_json_has_every_field() -> None:
    import json

    r = parse_reports(KRUN / "reports" / "rcu_uaf.txt")[0]
    d = json.loads(json.dumps(r.to_json()))
    assert d["title"] == r.title and d["addr"] == f"{r.addr:#x}"
    assert d["aux_stacks"][0]["frames"] == r.aux_stacks[0].frames
    assert len(d["memory_rows"]) == 5 and d["memory_rows"][2]["guilty"]
    assert d["problems"] == [] and d["mode"] == "generic"


# --------------------------------------------------------------------------- kinspect's fields


def test_kunit_reports_parse_back_to_kinspects_fields() -> None:
    """Every field kinspect's own report (BadAccess) carries is read from the real reports,
    and kinspect's own report text parses back to its BadAccess values."""
    from kinspect.engine.machine import Machine
    from kinspect.engine.profile import load_profile
    from kinspect.engine.report import format_report
    from kinspect.engine.workload import WorkloadRunner, parse_workload

    kw_dir = Path(__file__).resolve().parent.parent / "samples" / "workloads" / "kasan_test"
    checked = 0
    for real_path in sorted((KRUN / "reports").glob("*.txt")):
        kw = kw_dir / f"{real_path.stem}.kw"
        if not kw.exists():
            continue
        machine = Machine(load_profile("x86_64"))
        WorkloadRunner(machine, parse_workload(str(kw))).run()
        real = parse_reports(real_path)
        assert len(real) == len(machine.reports), real_path.name
        for bad, rep in zip(machine.reports, real):
            own = parse_report_text(format_report(bad))[0]
            for parsed in (rep, own):
                assert parsed.bug_type == bad.bug_type and parsed.access == bad.kind
                assert parsed.size == (bad.size or None) and parsed.task and parsed.pid is not None
                assert parsed.first_bad_addr is not None and len(parsed.memory_rows) == 5
                assert (parsed.cache_name is None) == (bad.cache_name is None)
                assert (parsed.variable is None) == (bad.variable is None)
                assert (parsed.stack_task is None) == (bad.stack_comm is None)
                assert (parsed.alloc_stack is None) == (bad.alloc_track is None)
                assert (parsed.free_stack is None) == (bad.free_track is None)
                assert len(parsed.aux_stacks) == len(bad.aux_stacks)
                assert bool(parsed.page_lines) == bool(bad.page_lines)
            # kinspect's own text gives back exactly its values
            assert (own.addr, own.pid, own.task) == (bad.addr, bad.pid, bad.comm)
            assert own.first_bad_addr == bad.first_bad_addr - bad.first_bad_addr % 8
            assert own.memory_rows[0].addr == bad.meta_row_start
            assert [bytes(r.values) for r in own.memory_rows] == [bytes(r) for r in bad.meta_rows]
            if bad.cache_name is not None:
                assert (
                    own.cache_name,
                    own.cache_object_size,
                    own.object_addr,
                    own.region_size,
                ) == (bad.cache_name, bad.cache_object_size, bad.object_addr, bad.alloc_size)
            checked += 1
    assert checked >= 40


def test_reports_stream_out_before_the_rest_of_the_log_is_read() -> None:
    report = (KRUN / "reports" / "kmalloc_uaf.txt").read_text().splitlines()
    pulled = []

    def log():
        for i, line in enumerate(report):
            pulled.append(i)
            yield f"[    3.{i:06d}] {line}\n"
        for i in range(100_000):
            pulled.append(i)
            yield f"[    4.{i:06d}] noise {i}\n"

    scan = LogScan()
    it = iter_reports(log(), partial=True, scan=scan)
    first = next(it)
    assert first.complete and len(pulled) <= len(report) + 1
    assert list(it) == [] and len(pulled) == len(report) + 100_000
    assert scan.first_crash is not None
    assert scan.first_crash.kasan and scan.first_crash.line == 1


def test_a_report_without_its_end_line_ends_in_other_output() -> None:
    head = (KRUN / "reports" / "kmalloc_oob_right.txt").read_text().splitlines()[:30]
    lines = [f"[    3.{i:06d}] {x}" for i, x in enumerate(head)]
    lines += [f"[    4.{i:06d}] unrelated driver output {i}" for i in range(600)]
    lines += [
        f"[    5.{i:06d}] {x}"
        for i, x in enumerate((KRUN / "reports" / "kmalloc_uaf.txt").read_text().splitlines())
    ]
    first, second = parse_reports(lines, partial=True)
    assert not first.complete and first.end_line is None and first.cache_name is None
    assert second.complete and second.line == 631


# --------------------------------------------------------------------------- real logs (issue 11)


def test_decoded_frames_interleaved_lines_and_wrapped_cpu_line_of_a_real_log() -> None:
    # ext-12: decode_stacktrace.sh output ("func (file:line)", module frames "f+0x30/0x488
    # drm"), a serial noise byte before a timestamp ("r[ 210.701824]"), locations and the CPU
    # line wrapped to unprefixed lines, other drivers printing in between (no caller ids).
    (r,) = parse_reports(
        CORPUS / "ext-12-arm64-generic-slab-use-after-free-drm_connector_cleanup-wrapped.txt",
        partial=True,
    )
    assert r.kernel_release == "6.6.0-rc5-next-20231011"
    acc = _stack(r.access_stack).frames
    alloc, free = _stack(r.alloc_stack).frames, _stack(r.free_stack).frames
    assert acc[0] == "dump_backtrace (arch/arm64/kernel/stacktrace.c:235)"
    assert "drm_connector_cleanup+0x30/0x488 drm" in acc
    assert "device_release_driver_internal (drivers/base/dd.c:1280 drivers/base/dd.c:1295)" in acc
    assert acc[-1] == "ret_from_fork (arch/arm64/kernel/entry.S:858)" and len(acc) == 29
    assert len(alloc) == 14 and len(free) == 13
    assert (
        "__kmalloc (include/linux/kasan.h:198 mm/slab_common.c:1004 mm/slab_common.c:1017)" in alloc
    )
    assert "kfree (mm/slab_common.c:1054)" in free
    every = acc + alloc + free + r.page_lines
    assert not [x for x in every if "Bluetooth" in x or "X.509" in x or "regulatory" in x]
    assert r.page_lines[0] == (
        "page:00000000a86866c3 refcount:1 mapcount:0 "
        "mapping:0000000000000000 index:0x0 pfn:0x113a88"
    )
    assert r.page_lines[-1] == "page dumped because: kasan: bad access detected"
    assert len(r.page_lines) == 7 and r.complete and not r.problems


def test_frame_names_wrapped_after_their_pc_and_module_tails() -> None:
    # ext-13 (riscv, 5.11): "[<ffffffe000188926>]" then the name on an unprefixed line;
    # "kunit_try_run_case+0x80/0x11a" then "[kunit]"; the CPU line's release wrapped.
    first, second = parse_reports(
        CORPUS / "ext-13-riscv64-slab-oob-and-vmalloc-oob-kunit-wrapped.txt", partial=True
    )
    assert first.kernel_release == second.kernel_release == "5.11.0-rc3-13940-gb0bb4cd86282-dirty"
    frames = _stack(second.access_stack).frames
    assert "[<ffffffe000188926>] print_address_description.constprop.0+0x88/0x362" in frames
    assert "[<ffffffdf81f91e8e>] kunit_try_run_case+0x80/0x11a [kunit]" in frames
    assert "[<ffffffdf81f92e16>] kunit_generic_run_threadfn_adapter+0x2c/0x4e [kunit]" in frames
    assert len(frames) == 11


def test_a_second_memory_state_starts_over() -> None:
    # A garbled log repeats the dump's header: the '>' row of the first dump must not index
    # the second (it raised IndexError in first_bad_addr).
    lines = (KRUN / "reports" / "kmalloc_oob_right.txt").read_text().splitlines()
    lines = lines[: lines.index("=" * 66) + 1]
    k = lines.index("Memory state around the buggy address:")
    lines[-1:-1] = [lines[k], lines[k + 1], lines[k + 2]]
    (r,) = parse_reports(lines, partial=True)
    assert len(r.memory_rows) == 2 and r.guilty_row is None
    assert r.first_bad_addr is None and r.caret_value is None
    assert any("memory state ends early" in p.message for p in r.problems)


@pytest.mark.parametrize("digits", [21, 4301, 20000])
def test_numbers_too_long_for_a_kernel_are_a_broken_line(digits: int) -> None:
    # Python's int() refuses more than 4300 decimal digits (ValueError): every number of a
    # report is read with a bounded number of digits, a longer one breaks its line.
    lines = (KRUN / "reports" / "kmalloc_oob_right.txt").read_text().splitlines()
    lines = lines[: lines.index("=" * 66) + 1]
    huge = "9" * digits
    for i, ln in enumerate(lines):
        lines[i] = (
            ln.replace("of size 1 ", f"of size {huge} ")
            .replace("of size 128", f"of size {huge}")
            .replace("115-byte", f"{huge}-byte")
            .replace("/37", f"/{huge}")
        )
    (r,) = parse_reports(lines, partial=True)
    assert (r.access, r.size, r.pid, r.cache_object_size, r.region_size) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert len(r.problems) >= 3
    with pytest.raises(ReportParseError, match="expected 'Read|Write of size N"):
        parse_reports(lines)


def test_an_over_long_line_and_an_endless_log_are_refused(tmp_path, monkeypatch) -> None:
    from kinspect.reports import kreport

    zeros = tmp_path / "zeros"
    zeros.write_text("BUG: KASAN: x in f\n" + "\0" * (kreport.MAX_LINE_CHARS + 1))
    with pytest.raises(kreport.LogReadError, match="longer than 65536 characters") as e:
        parse_reports(zeros, partial=True)
    assert (e.value.path, e.value.line) == (str(zeros), 2)
    exact = tmp_path / "exact"
    exact.write_text("x" * kreport.MAX_LINE_CHARS + "\n")
    assert parse_reports(exact) == []
    monkeypatch.setattr(kreport, "MAX_LOG_LINES", 50)
    lines = (KRUN / "reports" / "kmalloc_oob_right.txt").read_text().splitlines()
    with pytest.raises(kreport.LogReadError, match="more than 50 lines") as e:
        list(iter_reports(lines * 3, path="log", partial=True, strict=False))
    assert (e.value.path, e.value.line) == ("log", 51)


# --------------------------------------------------------------------------- mutated reports

_MUTATED = {
    p.name: p.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    for p in sorted(CORPUS.glob("*.txt")) + sorted((KRUN / "reports").glob("*.txt"))
}
_MUTATIONS = ("truncate", "delete", "duplicate", "digits", "flip", "wrap", "long")
_KEY_LINE_RE = re.compile(
    r"BUG: KASAN|of size|at addr|byte region|belongs to|located|by task|"
    r"Memory state|^\S*\s*[ >][0-9a-f]{8,16}: |\^$|CPU: |={20}"
)


@st.composite
def _mutated_log(draw) -> tuple[str, list[str]]:
    """A real report (syzkaller's corpus, the mailing-list reports, the KUnit run) with one
    to four mutations: cut short, a line deleted or duplicated, a number blown up to
    thousands of digits, a character changed, a line wrapped (its tail unprefixed), a line
    grown to 60000 characters (near MAX_LINE_CHARS)."""
    name = draw(st.sampled_from(sorted(_MUTATED)))
    lines = list(_MUTATED[name])
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        # half of the time a line the parser reads closely
        key = [k for k, x in enumerate(lines) if _KEY_LINE_RE.search(x)]
        i = draw(
            st.sampled_from(key) if key and draw(st.booleans()) else st.integers(0, len(lines) - 1)
        )
        ln = lines[i]
        op = draw(st.sampled_from(_MUTATIONS))
        if op == "truncate":
            lines = lines[:i] + [ln[: draw(st.integers(0, len(ln)))]]
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, ln)
        elif op == "digits":
            runs = list(re.finditer(r"\b[0-9a-f]+\b", ln))
            if runs:
                m = draw(st.sampled_from(runs))
                digit = "9" if m.group(0).isdigit() else draw(st.sampled_from("9f0"))
                lines[i] = (
                    ln[: m.start()]
                    + digit * draw(st.sampled_from([17, 21, 4301, 20000]))
                    + ln[m.end() :]
                )
        elif op == "flip" and ln:
            j = draw(st.integers(0, len(ln) - 1))
            ch = draw(
                st.sampled_from(
                    [
                        "\0",
                        "0",
                        "f",
                        " ",
                        ">",
                        "^",
                        "[",
                        "]",
                        "(",
                        ")",
                        "\t",
                        "\u00e9",
                        "\ufffd",
                        "-",
                        ":",
                        "\n",
                        "\r",
                        "+",
                        "/",
                    ]
                )
            )
            lines[i] = ln[:j] + ch + ln[j + 1 :]
        elif op == "wrap" and ln:
            j = draw(st.integers(0, len(ln)))
            lines[i : i + 1] = [ln[:j] + "\n", ln[j:].lstrip()]
        elif op == "long" and ln.strip():
            body = ln.rstrip("\n")
            lines[i] = (body * (60000 // len(body) + 1))[:60000] + "\n"
    return name, lines


@settings(
    max_examples=100,
    deadline=3000,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_mutated_log())
def test_mutated_real_reports_raise_only_kinspect_errors(case) -> None:
    # Whatever the damage: a parse result, or a KinspectError (strict mode's
    # ReportParseError); then explaining, titling, the JSON and the replay never fail.  The
    # deadline (3 s, where a report takes milliseconds) catches quadratic work on the long
    # lines (sanitize_title took 33 s on a 64 KiB BUG line).
    name, lines = case
    with contextlib.suppress(KinspectError):
        list(iter_reports(lines, path=name))
    scan = LogScan()
    try:
        reports = list(iter_reports(lines, path=name, partial=True, scan=scan))
    except KinspectError:
        return
    for rep in reports:
        exp = explain(rep)
        format_explanation(rep, exp)
        json.dumps([rep.to_json(), exp.to_json(), headline(rep)])
        try:
            plan = replay_workload(rep)
        except ReplayUnsupported:
            continue
        with contextlib.suppress(KinspectError):
            run_replay(plan)


_SYZ_FUNC_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+")


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.lists(
        st.sampled_from(
            ["a", "Z", "0", "x", "1", "_", ".", "+0x", "/0x", "+", "/", " ", "-", "f+0x1/0x2"]
        ),
        max_size=24,
    )
)
def test_frame_offsets_are_stripped_as_syzkallers_regexp_does(parts: list[str]) -> None:
    from kinspect.reports.kreport import _strip_frame_offsets

    text = "".join(parts)
    assert _strip_frame_offsets(text) == _SYZ_FUNC_RE.sub(r"\g<1>", text)


@settings(max_examples=30, deadline=2000, derandomize=True)
@given(st.sampled_from(["a", ".a", "0x", "a1", "_"]), st.sampled_from(["+0x", "+0x1/", " 1", ""]))
def test_sanitize_title_of_a_long_line_is_linear(unit: str, tail: str) -> None:
    # A backtracking regexp retried from every character of a 64 KiB run took 33 s.
    title = sanitize_title("BUG: KASAN: " + unit * (65000 // len(unit)) + tail)
    assert title.startswith("BUG: KASAN: ") and len(title) <= 120


@settings(max_examples=4, deadline=2000, derandomize=True)
@given(
    st.sampled_from(
        [
            "BUG: KASAN: double-free in f+0x1/0x2 ",
            "BUG: KASAN: x on address ",
            "BUG: held lock freed! ",
        ]
    )
)
def test_a_long_oops_line_is_titled_in_linear_time(unit: str) -> None:
    # syzkaller's "BUG: KASAN: ... in f(?:.*\n)+?.*(Read|Write) of size" retried from each of
    # the 5000 "BUG: KASAN:" of a 64 KiB line, every try reading the rest of the report: 33 s
    bug = (unit * (65000 // len(unit)))[:65000]
    lines = [bug] + [f"line {i} of other output without an access line " * 4 for i in range(1500)]
    crash = first_crash(lines)
    assert crash is not None and crash.line == 1 and len(crash.title) <= 120
