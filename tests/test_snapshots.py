"""A few SVG snapshots of the inspector at 80x24, 120x40 and 160x48 (pytest-textual-snapshot):
the layout changes with the width (kinspect.tcss), so the main screen at its first report, the
report screen and a dialog are taken at each of the three.

Deterministic: a fixed workload and profile, relative paths, no clock in the header, no
notifications, the background work off. Accept changes with ``pytest --snapshot-update`` only
after reading the HTML report.
"""

from __future__ import annotations

import pytest

from conftest import ROOT
from kinspect.app import KinspectApp, ReportApp
from kinspect.engine.profile import load_profile
from kinspect.engine.workload import parse_workload
from kinspect.reports.reading import read_reports
from kinspect.session import Session


@pytest.fixture
def demo_app(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("COLUMNS", "80")

    def make(shown="pageptr"):
        session = Session(
            load_profile("x86_64"), parse_workload("samples/workloads/demo.kw"), shown=shown
        )
        return KinspectApp(session)

    return make


async def _quiet(pilot):
    pilot.app.main.idle_work_enabled = False
    await pilot.pause()


def test_demo_at_its_first_report_160x48(snap_compare, demo_app):
    assert snap_compare(demo_app(), terminal_size=(160, 48), run_before=_quiet, press=["space"] * 5)


def test_demo_at_its_first_report_120x40(snap_compare, demo_app):
    assert snap_compare(demo_app(), terminal_size=(120, 40), run_before=_quiet, press=["space"] * 5)


def test_demo_at_its_first_report_80x24(snap_compare, demo_app):
    assert snap_compare(demo_app(), terminal_size=(80, 24), run_before=_quiet, press=["space"] * 5)


def test_demo_first_attach_80x24(snap_compare, demo_app):
    assert snap_compare(demo_app(), terminal_size=(80, 24), run_before=_quiet, press=["space"] * 3)


def test_struct_page_of_a_large_kmalloc_160x48(snap_compare, demo_app):
    assert snap_compare(
        demo_app(), terminal_size=(160, 48), run_before=_quiet, press=["space"] * 7 + ["t"]
    )


def test_report_screen_of_a_real_report_160x48(snap_compare, monkeypatch):
    """`kinspect tui --report` on the real 6.12 KUnit report of kmalloc_oob_right (three
    reports; the second shown: 5 bytes to the right of the object's 115-byte region)."""
    monkeypatch.chdir(ROOT)
    path = "tests/data/kernel-run/reports/kmalloc_oob_right.txt"
    reports, _ = read_reports(path)
    assert snap_compare(ReportApp(reports, path), terminal_size=(160, 48), press=["n"])


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_report_screen_of_a_real_report_at(snap_compare, monkeypatch, size):
    """The same report at the narrower sizes: stacked panes below 120 columns, the stacks
    folded to their pane at 120."""
    monkeypatch.chdir(ROOT)
    path = "tests/data/kernel-run/reports/kmalloc_oob_right.txt"
    reports, _ = read_reports(path)
    assert snap_compare(ReportApp(reports, path), terminal_size=size, press=["n"])


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_goto_prompt_hint_wraps(snap_compare, demo_app, size):
    assert snap_compare(demo_app(), terminal_size=size, run_before=_quiet, press=["space", "g"])
