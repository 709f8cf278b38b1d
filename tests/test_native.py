"""Which engine runs (native.py): KINSPECT_ENGINE, the fallback to the Python engine when the
compiled core is missing, and the CLI naming the engine in use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kinspect.cli import main
from kinspect.engine import native
from kinspect.engine.errors import KinspectError


@pytest.fixture
def not_built(monkeypatch):
    """The compiled core as if it were not built."""
    monkeypatch.setattr(native, "_compiled", None)
    monkeypatch.setattr(native, "_not_built", "is not built")
    monkeypatch.setattr(native, "_fallback_said", False)


def test_the_variable_chooses(monkeypatch):
    monkeypatch.setenv(native.VARIABLE, "python")
    assert native.engine() == "python"
    if native.compiled("_ftrace_scan") is not None:  # asked for by name: it wins
        assert native.engine("native") == "native"
    monkeypatch.setenv(native.VARIABLE, "cython")
    with pytest.raises(KinspectError, match="unknown engine 'cython'"):
        native.engine()


def test_native_asked_for_but_not_built_is_one_line_exit_2(monkeypatch, not_built, capsys):
    monkeypatch.setenv(native.VARIABLE, "native")
    assert main(["profiles"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kinspect: KINSPECT_ENGINE: the native engine is not built")
    assert err.count("\n") == 1


def test_not_built_falls_back_and_says_so_once(monkeypatch, not_built, capsys):
    monkeypatch.delenv(native.VARIABLE, raising=False)
    assert [native.engine(), native.engine()] == ["python", "python"]
    err = capsys.readouterr().err
    assert err == (
        "kinspect: the native engine is not built: running on the Python engine "
        "('pip install -e .' builds it, with a C compiler)\n"
    )
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.endswith("(python engine)\n")


def test_a_missing_extension_is_not_built():
    """In a fresh process whose import of the extension fails as when it was never built."""
    code = (
        "import sys; sys.modules['kinspect.engine._ftrace_scan'] = None; "
        "from kinspect.cli import main; sys.exit(main(['profiles']))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""}, check=True
    )
    assert run.stdout.rstrip().endswith(
        "engine: python (the reference; KINSPECT_ENGINE=native for the compiled core)"
    )
    assert run.stderr.count("\n") == 1 and "not built" in run.stderr


def test_profiles_and_version_name_the_engine(monkeypatch, capsys):
    monkeypatch.setenv(native.VARIABLE, "python")
    assert main(["profiles"]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("engine: python (")
    monkeypatch.delenv(native.VARIABLE)
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.endswith(f"({native.engine()} engine)\n")
