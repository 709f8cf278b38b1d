"""`kinspect compare`: golden tables on three profiles, and the figures' formats."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest

from conftest import ROOT
from kinspect.cli import main
from kinspect.engine.compare import COLUMNS
from kinspect.engine.shadow import SCHEMES

GOLDEN = Path(__file__).resolve().parent / "golden"

CASES = [
    ("sparse-slab.kw", "x86_64"),
    ("arm32-kernel-space.kw", "arm32"),
    ("churn.kw", "arm64-64k-42"),
]


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("KINSPECT_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"output differs from {path} (KINSPECT_UPDATE_GOLDEN=1)"


@pytest.mark.parametrize("workload,profile", CASES)
def test_compare_table_golden(workload, profile, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["compare", f"samples/workloads/{workload}", "--profile", profile]) == 0
    _golden(f"compare-{profile}-{workload.removesuffix('.kw')}.txt", capsys.readouterr().out)


def test_compare_csv_and_json_carry_every_figure(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    timeline = tmp_path / "t.csv"
    assert (
        main(
            [
                "compare",
                "samples/workloads/sparse-slab.kw",
                "--format",
                "csv",
                "--timeline",
                str(timeline),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["scheme"] for r in rows] == ["flat"] + [s for s in SCHEMES if s != "flat"]
    flat = rows[0]
    assert int(flat["static_bytes"]) == int(flat["total_peak_bytes"]) > 0
    events = list(csv.DictReader(timeline.open()))
    assert len(events) == 205 * len(SCHEMES)  # every event, every scheme
    assert set(events[0]) == {"event", "line", "scheme"} | {k for k, _, _ in COLUMNS}
    # yes/no figures are 1/0 in both CSVs, the same cells for the same machine at the end
    last = {e["scheme"]: e for e in events[-len(SCHEMES) :]}
    for r in rows:
        assert {k: last[r["scheme"]][k] for k, _, _ in COLUMNS if k != "total_peak_bytes"} == {
            k: r[k] for k, _, _ in COLUMNS if k != "total_peak_bytes"
        }
    assert {r["inline_possible"] for r in rows} == {"1", "0"}
    assert (
        main(
            [
                "compare",
                "samples/workloads/sparse-slab.kw",
                "--schemes",
                "pageptr",
                "--format",
                "json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["schemes"]) == ["flat", "pageptr"]
    assert doc["schemes"]["pageptr"]["blocks_in_use"] > 0


def test_compare_table_fits_80_columns(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["compare", "samples/workloads/churn.kw", "--profile", "x86_64"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert out.startswith("916 events, 1 report, identical under every scheme\n")
    # every column of COLUMNS is in exactly one block, after the scheme
    headers = [line for line in out.splitlines() if line.startswith("scheme ")]
    assert len(headers) == 3
    shown = [cell for h in headers for cell in re.split(r"\s{2,}", h.strip())[1:]]
    assert shown == [h for _, h, _ in COLUMNS]


def test_unknown_scheme_is_bad_input(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["compare", "samples/workloads/demo.kw", "--schemes", "flat,nope"]) == 2
    assert "unknown shadow scheme 'nope'" in capsys.readouterr().err
