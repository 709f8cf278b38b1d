"""The UI's command line: `kinspect`, `kinspect tui`, `kinspect serve`. Bad input is the
one-line error and exit 2 before any UI starts."""

from __future__ import annotations

import pytest

import kinspect.app
from conftest import ROOT
from kinspect.cli import main


@pytest.fixture
def no_ui(monkeypatch):
    """KinspectApp.run records the session instead of taking over the terminal."""
    started = []
    monkeypatch.setattr(
        kinspect.app.KinspectApp, "run", lambda self, *a, **k: started.append(self.session)
    )
    return started


def test_no_arguments_opens_the_ui_on_the_demo(no_ui, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main([]) == 0
    (session,) = no_ui
    assert session.path == "kinspect/data/workloads/demo.kw"
    assert session.profile.name == "x86_64" and session.position == 0


def test_tui_takes_a_workload_profile_mem_and_scheme(no_ui, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert (
        main(
            [
                "tui",
                "samples/workloads/demo.kw",
                "--profile",
                "arm64-4k-48",
                "--mem",
                "256M",
                "--scheme",
                "flat",
            ]
        )
        == 0
    )
    (session,) = no_ui
    assert session.shown == "flat" and session.profile.mem_total == 256 << 20


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tui", "no/such.kw"], "no/such.kw: cannot read workload"),
        (["tui", "samples/workloads/demo.kw", "--profile", "vax"], "vax: unknown profile"),
        (["tui", "samples/workloads/demo.kw", "--mem", "lots"], "--mem: bad size"),
        (["tui", "samples/workloads/demo.kw", "--scheme", "nope"], "--scheme: scheme 'nope'"),
        (["serve", "no/such.kw"], "no/such.kw: cannot read workload"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_the_ui(no_ui, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(ROOT)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kinspect: {message}") and err.count("\n") == 1
    assert not no_ui


def test_a_workload_syntax_error_names_file_line_and_column(no_ui, tmp_path, capsys):
    bad = tmp_path / "bad.kw"
    bad.write_text("buf = kmalloc 16\nkfree bug\n")
    assert main(["tui", str(bad)]) == 2
    assert capsys.readouterr().err == f"kinspect: {bad}:2:7: 'bug' is not defined\n"
    assert not no_ui
