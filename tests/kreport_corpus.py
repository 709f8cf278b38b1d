"""The shared KASAN report corpus (tests/data/kasan-reports, indexed by its index.tsv) and the
score of the parser over it (the issue's "Done when"): used by tests/test_kreport.py and by
benchmarks/symbolize.py, which puts this folder on its path (this module needs kinspect only).
"""

from __future__ import annotations

import csv
from pathlib import Path

from kinspect.reports.kreport import KasanReport, LogScan, iter_reports

CORPUS = Path(__file__).parent / "data" / "kasan-reports"


def corpus_rows() -> list[dict[str, str]]:
    """The rows of the corpus's index.tsv (file, category, syz_title, ...)."""
    with open(CORPUS / "index.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def syz_log(path: Path) -> list[str]:
    """The console log of a syzkaller report test file: without its TITLE:/TYPE:/... header
    and without the REPORT: section at its end (syzkaller's own test harness does the same)."""
    lines = path.read_text(errors="replace").splitlines()
    if path.name.startswith("syz-"):
        lines = lines[lines.index("") + 1 :]
        for i, line in enumerate(lines):
            if line.startswith("REPORT:"):
                lines = lines[:i]
                break
    return lines


def scan_log(path: Path) -> tuple[list[KasanReport], LogScan]:
    scan = LogScan()
    reps = list(iter_reports(syz_log(path), path=str(path), partial=True, scan=scan))
    return reps, scan


def corpus_score() -> dict[str, tuple[int, int]]:
    """(agreeing, total) per check of the issue's "Done when" over the shared corpus."""
    score: dict[str, list[int]] = {
        k: [0, 0]
        for k in (
            "kasan-console-title",
            "kasan-other-title",
            "not-first-first-crash",
            "negative-no-report",
            "negative-crash-named",
            "corrupted-flag",
            "non-x86-memory-state",
        )
    }

    def count(key: str, ok: bool) -> None:
        score[key][0] += ok
        score[key][1] += 1

    for row in corpus_rows():
        path = CORPUS / row["file"]
        reps, scan = scan_log(path)
        first = scan.first_crash
        cat = row["category"]
        if cat == "kasan":
            key = (
                "kasan-console-title" if row["provenance"] == "console log" else "kasan-other-title"
            )
            count(key, bool(reps) and reps[0].title == row["syz_title"])
        elif cat == "kasan-not-first":
            count("not-first-first-crash", first is not None and first.title == row["syz_title"])
        elif cat == "negative":
            count("negative-no-report", reps == [])
            count(
                "negative-crash-named",
                first is not None and not first.kasan and first.title == row["syz_title"],
            )
        if row["file"].startswith("syz-"):
            count(
                "corrupted-flag",
                first is not None and bool(first.corrupted) == (row["syz_corrupted"] == "Y"),
            )
        if (
            row["arch"]
            and not row["arch"].startswith("x86_64")
            and row["kasan_report"] == "yes"
            and row["memory_state"] == "yes"
        ):
            # (ext-11's dump was cut short by a second fault: the index counts 0 rows)
            rows = int(row["shadow_rows"] or 0)
            count(
                "non-x86-memory-state",
                bool(reps)
                and len(reps[0].memory_rows) == rows
                and (rows == 0 or reps[0].caret_index is not None),
            )
    return {k: (v[0], v[1]) for k, v in score.items()}
