"""Conformance: kinspect's KASAN reports against the real Linux 6.12 kernel's.

Every ``samples/workloads/kasan_test/<case>.kw`` re-enacts one KUnit case of
mm/kasan/kasan_test_c.c.  Where the real kernel's reports for that case are in tests/data/
kernel-run/ (gcc 12 build in ``reports/``, clang 16 build in ``reports-x86_64-clang/``), the
workload is run in-process (``kinspect run CASE.kw --format text``), kinspect's output is parsed
with the same parser as the real text (kinspect.reports.kreport), and the two are compared field by
field.

Compared per report: bug type, access and size, cache name and object size, the region line
(bytes, direction, allocated/freed, region size), the stack-frame description lines, whether a
"belongs to the variable" line is there, and in the memory-state dump: the shadow of the guilty
object (its granules, then its fc redzone up to the next non-fc byte of the real dump), the bad
granule (under the '^') and the next one, and the '^' position both relative to the object and
relative to its dump row.  Neighbouring slots are not compared: KUnit's own allocations are not
modelled.  The object shadow is compared on the granules both dumps show (each dump is a 5-row
window around the bad address).

The gcc run is the primary reference (the workloads use its PIDs, functions and frame layout).
A case that also ran under clang is checked against clang too, but only on the fields where the
two real runs agree.  Where they differ, KNOWN_COMPILER_DIFFERENCES says why, field by field, and
whether the field is compared with gcc only (the workload models the gcc run) or not at all (it
depends on the run: the '^' column within its row follows where the allocator happened to put
the object); a test recomputes the differences and keeps that table exact.  For the two
clang-only cases the same run-dependent field is listed in SINGLE_RUN_NOT_COMPARED.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import ROOT
from kinspect.engine.shadow import SCHEMES
from kinspect.reports.kreport import KasanReport, parse_report_text, parse_reports

KW_DIR = ROOT / "samples" / "workloads" / "kasan_test"
KRUN = Path(__file__).resolve().parent / "data" / "kernel-run"
REF_DIRS = {"gcc": KRUN / "reports", "clang": KRUN / "reports-x86_64-clang"}
REF_TABLES = {"gcc": KRUN / "kunit-results.tsv", "clang": KRUN / "kunit-results-x86_64-clang.tsv"}
GRANULE = 8

# Workloads of report-producing 6.12 cases whose real output is not in tests/data: the capture
# kept them aside for independent checking (their expect lines are derived from the rules and are
# checked later against the hidden output).  Listed so that coverage cannot shrink silently.
KEPT_ASIDE = {
    "kmalloc_big_oob_right",
    "krealloc_less_oob",
    "krealloc_large_more_oob",
    "kmalloc_uaf_16",
    "kmalloc_oob_memset_4",
    "kmalloc_uaf2",
    "kmalloc_double_kzfree",
    "ksize_uaf",
    "kmem_cache_invalid_free",
    "vmalloc_oob",
}

# Cases the engine cannot model yet: case -> reason.  Each becomes a strict xfail, so it turns
# into a failure the day the engine gets it right (then remove it from here).
NOT_MODELLED: dict[str, str] = {}

# Fields on which the real gcc and clang runs differ, what is done about it, and why.
#   "skip": not compared at all (it depends on the run, not on anything a workload states);
#   "gcc":  compared with the gcc run only (the workload models the gcc run's version).
# test_known_compiler_differences_are_exact() recomputes the differences and keeps this exact.
_ROW_PLACEMENT = (
    "the object (or stack slot, or global) sits at another offset inside its "
    "128-byte dump row in the two runs (allocation history and image layout), so "
    "the '^' column differs; the '^' relative to the object is still compared"
)
KNOWN_COMPILER_DIFFERENCES: dict[str, dict[str, tuple[str, str]]] = {
    "kasan_alloca_oob_left": {"caret_in_row": ("skip", _ROW_PLACEMENT)},
    "kasan_alloca_oob_right": {"caret_in_row": ("skip", _ROW_PLACEMENT)},
    "kasan_bitops_generic": {"caret_in_row": ("skip", _ROW_PLACEMENT)},
    "kasan_global_oob_right": {"caret_in_row": ("skip", _ROW_PLACEMENT)},
    "kasan_strings": {"caret_in_row": ("skip", _ROW_PLACEMENT)},
    "kmalloc_uaf": {"caret_in_row": ("skip", _ROW_PLACEMENT)},
    "kmem_cache_double_destroy": {"caret_in_row": ("skip", _ROW_PLACEMENT)},
    "rcu_uaf": {"caret_in_row": ("skip", _ROW_PLACEMENT)},
    "kasan_stack_oob": {
        "caret_in_row": ("skip", _ROW_PLACEMENT),
        "stack_frame": (
            "gcc",
            "clang lays out kasan_stack_oob's frame differently (3 objects, "
            "stack_array at [32, 42), offset 42) from gcc (4 objects, "
            "stack_array at [96, 106), offset 106); the workload uses gcc's",
        ),
    },
    "kmalloc_oob_left": {
        "caret_in_row": ("skip", _ROW_PLACEMENT),
        "rel_bytes": (
            "gcc",
            "the guilty object is the previous slot's, a kworker-name "
            "kvasprintf() allocation: 13 bytes in the gcc run, 12 in the clang "
            "run; the workload models gcc's",
        ),
        "region_size": ("gcc", "as rel_bytes"),
        "object_shadow": ("gcc", "as rel_bytes: 00 05 under gcc, 00 04 under clang"),
    },
}

# Cases with a single real run (clang only) where a field is run-dependent by the evidence above
# and so is not compared.
SINGLE_RUN_NOT_COMPARED: dict[str, dict[str, str]] = {
    "kasan_global_oob_left": {
        "caret_in_row": "where a global sits in its dump row depends on the kernel image layout "
        "(kasan_global_oob_right's '^' column differs between gcc and clang)"
    },
    "kmalloc_oob_16": {
        "caret_in_row": "a kmalloc-16 object (32-byte slots) can sit at any of 4 offsets of a "
        "128-byte row (kmalloc_uaf's '^' column differs between gcc and clang)"
    },
}


def _not_compared(case: str) -> set[str]:
    out = {
        f for f, (policy, _) in KNOWN_COMPILER_DIFFERENCES.get(case, {}).items() if policy == "skip"
    }
    return out | set(SINGLE_RUN_NOT_COMPARED.get(case, {}))


def _tsv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {row["test"]: row for row in csv.DictReader(fh, delimiter="\t")}


def _cases_with_data() -> set[str]:
    out: set[str] = set()
    for table in REF_TABLES.values():
        out |= {t for t, row in _tsv(table).items() if int(row["n_reports"]) > 0}
    return out


def _workloads() -> list[str]:
    return sorted(p.stem for p in KW_DIR.glob("*.kw"))


def _references(case: str) -> list[tuple[str, list[KasanReport]]]:
    """[(run, reports)], the primary reference first (gcc if the case ran there)."""
    refs = []
    for run in ("gcc", "clang"):
        path = REF_DIRS[run] / f"{case}.txt"
        if path.exists():
            refs.append((run, parse_reports(path)))
    return refs


# --------------------------------------------------------------------------- field extraction


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def _object_shadow_span(r: KasanReport) -> tuple[list[int], list[int]] | None:
    """Granule offsets (from the object start) of the guilty object's shadow in this report:
    the object's own granules [object, object + round_up(region size, 8)) that the dump shows,
    and the fc granules that follow them up to the next non-fc byte of the dump."""
    if r.object_addr is None or r.region_size is None or not r.memory_rows:
        return None
    dump_start = r.memory_rows[0].addr
    dump_end = r.memory_rows[-1].addr + GRANULE * len(r.memory_rows[-1].values)
    start, end = r.object_addr, r.object_addr + _round_up(r.region_size, GRANULE)
    own, redzone = [], []
    a = max(start, dump_start)  # both granule aligned
    while a < end and a < dump_end:
        own.append(a - start)
        a += GRANULE
    while a < dump_end and r.metadata_byte(a) == 0xFC:
        redzone.append(a - start)
        a += GRANULE
    return own, redzone


def object_shadow_diff(other: KasanReport, ref: KasanReport) -> tuple[object, object] | None:
    """(real, other) object shadows where they differ, else None.

    The granules are those of ``ref``'s span (its object and the fc after it).  The object's own
    granules must all be in ``other``'s dump too; of the fc run only the granules that ``other``'s
    dump shows are compared (the two dumps are windows of 5 rows around the bad address, which
    may sit at another offset from the object)."""
    span = _object_shadow_span(ref)
    if span is None or ref.object_addr is None:  # (a span is made only with an object)
        return None if other.object_addr is None else (None, "an object")
    if other.object_addr is None or not other.memory_rows:
        return ("an object", None)
    own, redzone = span
    want, got = [], []
    for off in own:
        want.append((off, ref.metadata_byte(ref.object_addr + off)))
        got.append((off, other.metadata_byte(other.object_addr + off)))
    for off in redzone:
        v = other.metadata_byte(other.object_addr + off)
        if v is not None:
            want.append((off, 0xFC))
            got.append((off, v))
    if want == got:
        return None
    return (
        " ".join(f"+{o}:{v:02x}" if v is not None else f"+{o}:--" for o, v in want),
        " ".join(f"+{o}:{v:02x}" if v is not None else f"+{o}:--" for o, v in got),
    )


def fields(r: KasanReport) -> dict[str, object]:
    """The compared fields of one report (the object shadow is compared separately)."""
    fba = r.first_bad_addr
    return {
        "bug_type": r.bug_type,
        "access": r.access,
        "size": r.size,
        "cache_name": r.cache_name,
        "cache_object_size": r.cache_object_size,
        "rel_bytes": r.rel_bytes,
        "direction": r.direction,
        "state": r.state,
        "region_size": r.region_size,
        "stack_frame": tuple(r.stack_lines) if r.stack_lines else None,
        "variable": r.variable is not None,
        "bad_granule": r.caret_value,
        "next_granule": None if fba is None else r.metadata_byte(fba + GRANULE),
        "caret_in_row": r.caret_index,
        "caret_in_object": (
            None if fba is None or r.object_addr is None else (fba - r.object_addr) // GRANULE
        ),
    }


FIELDS = tuple(fields(KasanReport(bug_type="", function="", line=0))) + ("object_shadow",)


def compare(
    other: KasanReport, ref: KasanReport, only: set[str] | None = None
) -> list[tuple[str, object, object]]:
    """(field, real, other) for every compared field that differs (only those in ``only``)."""
    want, got = fields(ref), fields(other)
    diff = [(k, want[k], got[k]) for k in want if (only is None or k in only) and want[k] != got[k]]
    if only is None or "object_shadow" in only:
        sd = object_shadow_diff(other, ref)
        if sd is not None:
            diff.append(("object_shadow", *sd))
    return diff


def agreeing_fields(a: KasanReport, b: KasanReport) -> set[str]:
    """The fields on which two real reports of the same access agree."""
    return set(FIELDS) - {k for k, _, _ in compare(b, a)}


# --------------------------------------------------------------------------- running kinspect


def run_kinspect(
    path: Path, capsys: pytest.CaptureFixture[str], scheme: str = "flat"
) -> tuple[int, str, list[KasanReport]]:
    # the engine; imported here so a broken engine fails per case
    from kinspect.cli import main

    capsys.readouterr()
    rc = main(["run", str(path), "--format", "text", "--scheme", scheme])
    captured = capsys.readouterr()
    return rc, captured.err, parse_report_text(captured.out, path=f"kinspect run {path.name}")


def _describe(diff: list[tuple[str, object, object]]) -> str:
    out = []
    for k, want, got in diff:
        if isinstance(want, tuple) and isinstance(got, tuple) and len(want) == len(got):
            lines = [f"{w!r} != {g!r}" for w, g in zip(want, got) if w != g]
            out.append(f"{k}: real/kinspect differ in " + ", ".join(lines))
        else:
            out.append(f"{k}: real {want!r}, kinspect {got!r}")
    return "; ".join(out)


def _conformance_params() -> list:
    params = []
    data = _cases_with_data()
    for case in _workloads():
        if case not in data:
            continue
        marks = []
        if case in NOT_MODELLED:
            marks.append(pytest.mark.xfail(reason=NOT_MODELLED[case], strict=True))
        params.append(pytest.param(case, marks=marks, id=case))
    return params


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("case", _conformance_params())
def test_conformance(
    case: str,
    scheme: str,
    engine: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every shadow scheme, run alone, on each engine, must print what the real kernel
    printed."""
    monkeypatch.setenv("KINSPECT_ENGINE", engine)
    refs = _references(case)
    assert refs, f"no real reports for {case}"
    rc, err, kin = run_kinspect(KW_DIR / f"{case}.kw", capsys, scheme)
    assert rc == 0, f"kinspect run exited {rc} (an expect failed?): {err.strip()}"
    (primary_run, primary), *secondary = refs
    problems = []
    for run, reps in refs:
        if len(kin) != len(reps):
            problems.append(f"{run}: {len(reps)} real reports, kinspect printed {len(kin)}")
    if problems:
        pytest.fail("; ".join(problems))
    skip = _not_compared(case)
    for i, k in enumerate(kin):
        diff = compare(k, primary[i], set(FIELDS) - skip)
        if diff:
            pytest.fail(f"report {i + 1} of {len(kin)} vs {primary_run}: {_describe(diff)}")
        for run, reps in secondary:
            only = agreeing_fields(primary[i], reps[i]) - skip
            diff = compare(k, reps[i], only)
            if diff:
                pytest.fail(f"report {i + 1} of {len(kin)} vs {run}: {_describe(diff)}")


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("case", sorted(KEPT_ASIDE))
def test_kept_aside_workloads_hold_their_expects(
    case: str,
    scheme: str,
    engine: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No real output here to compare with: the expects (derived from the rules) must hold and
    every report must be complete, with its memory state (on each engine)."""
    monkeypatch.setenv("KINSPECT_ENGINE", engine)
    rc, err, kin = run_kinspect(KW_DIR / f"{case}.kw", capsys, scheme)
    assert rc == 0, f"kinspect run exited {rc}: {err.strip()}"
    assert kin and all(
        r.complete and len(r.memory_rows) == 5 and r.caret_index is not None for r in kin
    )


# --------------------------------------------------------------------------- data-only checks


def test_every_report_producing_case_has_a_workload() -> None:
    missing = _cases_with_data() - set(_workloads())
    assert not missing, f"cases with real reports but no workload: {sorted(missing)}"


def test_workloads_without_data_are_the_kept_aside_cases() -> None:
    without = set(_workloads()) - _cases_with_data()
    assert without == KEPT_ASIDE
    assert not KEPT_ASIDE & _cases_with_data()


def test_not_modelled_entries_are_real_cases() -> None:
    for case, reason in NOT_MODELLED.items():
        assert case in _workloads() and reason.strip()
    for case, compared in SINGLE_RUN_NOT_COMPARED.items():
        assert [run for run, _ in _references(case)] == ["clang"] and set(compared) <= set(FIELDS)
    for policies in KNOWN_COMPILER_DIFFERENCES.values():
        assert all(policy in ("skip", "gcc") and reason for policy, reason in policies.values())


def _expects_and_pids(case: str, profile: str) -> tuple[list[str], set[int]]:
    """The bug types the workload's expect lines name, in order, and its task PIDs, as the
    workload reads on ``profile`` (its if/else/endif decided), without running the engine."""
    from kinspect.engine.profile import load_profile
    from kinspect.engine.workload import parse_workload

    events = parse_workload(str(KW_DIR / f"{case}.kw"), profile=load_profile(profile)).events
    expects = [t for ev in events if ev.op == "expect" for t in ev.args]
    return expects, {ev.args[1] for ev in events if ev.op == "task"}


@pytest.mark.parametrize("case", _workloads())
def test_workload_expects_and_tasks_match_the_real_run(case: str) -> None:
    """Without running the engine: the expect lines (as read on x86_64) name exactly the real
    bug types in order, every report's task PID has a `task` line, and the file starts with its
    header comment."""
    text = (KW_DIR / f"{case}.kw").read_text()
    assert text.startswith(f"# kasan_test: {case} "), "header comment missing"
    assert "Expected reports:" in text
    expects, pids = _expects_and_pids(case, "x86_64")
    refs = _references(case)
    if not refs:
        assert case in KEPT_ASIDE and expects
        return
    for run, reps in refs:
        assert expects == [r.bug_type for r in reps], run
    run, reps = refs[0]
    got = {r.pid for r in reps}
    assert got <= pids, f"{run} report PIDs {sorted(got, key=str)}"


def test_known_compiler_differences_are_exact() -> None:
    """Recompute where the real gcc and clang runs differ; it must be what the table says."""
    found: dict[str, set[str]] = {}
    for case in sorted(_cases_with_data()):
        refs = dict(_references(case))
        if "gcc" not in refs or "clang" not in refs:
            continue
        g, c = refs["gcc"], refs["clang"]
        assert len(g) == len(c), case
        for a, b in zip(g, c):
            diff = {k for k, _, _ in compare(b, a)}
            if diff:
                found.setdefault(case, set()).update(diff)
    documented = {case: set(d) for case, d in KNOWN_COMPILER_DIFFERENCES.items()}
    assert found == documented


# --------------------------------------------------------------- every profile (issue 14)
#
# Every kasan_test workload runs under every profile. No real run of the other architectures is
# in this repository: what each KUnit case reports there follows from mm/kasan/kasan_test_c.c
# and the architecture's headers (docs/kunit.md, case by case, and kinspect/engine/workload.py
# ARCH_DEFINES). A case reports on every architecture what it reports on x86_64 (the real run;
# the derived expects for the kept-aside cases) unless ARCH_REPORTS lists it: arch -> case ->
# the number of reports there (every report of these cases has the x86_64 case's bug type), and
# why.
_BITOPS_WHY = (
    "no instrumented-non-atomic.h: __set_bit()... and test_bit() are generic C, one "
    "compiler-checked load each (test_bit: no instrument_atomic_read() besides)"
)
ARCH_REPORTS: dict[str, dict[str, tuple[int, str]]] = {
    "arm": {
        "kasan_memchr": (0, "memchr() is arch/arm/lib/memchr.S (__HAVE_ARCH_MEMCHR): unchecked"),
        "kasan_strings": (
            4,
            "strchr() and strrchr() are arm assembly (__HAVE_ARCH_STRCHR, "
            "__HAVE_ARCH_STRRCHR): 6 - 2",
        ),
        "kasan_bitops_generic": (
            12,
            "SMP set_bit()... are _set_bit() assembly (no "
            "instrumented-atomic.h): 6 fewer; " + _BITOPS_WHY + "; "
            "asm-generic/bitops/lock.h's READ_ONCE() adds a read to "
            "__clear_bit_unlock() and test_and_set_bit_lock(): "
            "6 + 6",
        ),
        "kasan_atomics": (
            62,
            "arch_atomic_fetch_add_unless() is arm assembly: atomic_add_unless, "
            "atomic_inc_not_zero and their atomic_long_ twins (atomic_t on "
            "32-bit) lose the fallback's raw_atomic_read(): 66 - 4",
        ),
    },
    "arm64": {
        "kasan_bitops_generic": (
            18,
            _BITOPS_WHY + "; lock.h's READ_ONCE() adds 2: 15 + 2 + 1 - 1 "
            "+ 1 (test_bit: 1 instead of 2)",
        ),
        "kasan_atomics": (
            65,
            "arch_atomic64_dec_if_positive() is arm64's own: "
            "atomic_long_dec_if_positive reports once",
        ),
    },
    "riscv64": {
        "kasan_bitops_generic": (16, _BITOPS_WHY + ": 15 + 1"),
        "kasan_atomics": (
            56,
            "riscv has its own fetch_add_unless, dec_if_positive, "
            "inc_unless_negative and dec_unless_positive (atomic and atomic64): "
            "the 10 fallback reads of those five, int and long, are gone",
        ),
    },
    "powerpc": {
        "kasan_bitops_generic": (16, _BITOPS_WHY + ": 15 + 1"),
        "kasan_atomics": (
            60,
            "powerpc (32-bit) has its own arch_atomic_fetch_add_unless and "
            "arch_atomic_dec_if_positive: add_unless, inc_not_zero, "
            "dec_if_positive and their atomic_long_ twins report once",
        ),
    },
}


def _profiles() -> list[str]:
    from kinspect.engine.profile import list_profiles

    return sorted(p.name for p in list_profiles())


@pytest.mark.parametrize("profile", _profiles())
@pytest.mark.parametrize("case", _workloads())
def test_every_workload_under_every_profile(case: str, profile: str, engine: str) -> None:
    """No failed expect, every scheme in lockstep (a divergence raises), and the reports are
    the ones the C test makes on that architecture: the x86_64 case's, or ARCH_REPORTS' (on
    each engine)."""
    from kinspect.engine.machine import Machine
    from kinspect.engine.profile import load_profile
    from kinspect.engine.report import format_report
    from kinspect.engine.workload import WorkloadRunner, parse_workload

    p = load_profile(profile)
    machine = Machine(p, schemes=sorted(SCHEMES, key=lambda s: s != "flat"), engine=engine)
    runner = WorkloadRunner(machine, parse_workload(str(KW_DIR / f"{case}.kw")))
    assert runner.run() == []
    got = [r.bug_type for r in machine.reports]
    x86, _ = _expects_and_pids(case, "x86_64")
    count, why = ARCH_REPORTS.get(p.arch, {}).get(case, (len(x86), ""))
    assert len(got) == count, why or "as on x86_64"
    assert set(got) <= set(x86)
    for r in machine.reports:  # each report whole, with its memory state
        parsed = parse_report_text(format_report(r))[0]
        assert parsed.bug_type == r.bug_type and parsed.complete
        assert len(parsed.memory_rows) == 5 and parsed.caret_index is not None


def test_arch_reports_name_real_cases_and_differ_from_x86_64() -> None:
    from kinspect.engine.workload import ARCH_DEFINES

    for arch, cases in ARCH_REPORTS.items():
        assert arch in ARCH_DEFINES
        for case, (count, why) in cases.items():
            assert case in _workloads() and why
            assert count != len(_expects_and_pids(case, "x86_64")[0]), (arch, case)
