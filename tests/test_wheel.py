"""kinspect as a user installs it (issue 11, A2): the built-in profiles, the demo workloads and
the UI's style live inside the package (kinspect/data, read through importlib.resources), so a
wheel built from the checkout and run from elsewhere, with nothing of the checkout on its path,
lists its profiles, runs its demo by name, opens its UI and has the page ``serve`` serves. And
the names themselves: ``kinspect run demo`` from anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT
from kinspect.cli import main
from kinspect.data import (
    PROFILES_DIR,
    TEMPLATES_DIR,
    WORKLOADS_DIR,
    builtin_workloads,
    workload_name,
)
from kinspect.engine import native
from kinspect.engine.profile import format_profiles_table, list_profiles

GOLDEN_DEMO = Path(__file__).resolve().parent / "golden" / "demo.txt"
GOLDEN_DEMO_PATH = "samples/workloads/demo.kw"
"""The demo's path as tests/golden/demo.txt shows it (test_cli runs it by that path)."""


def _golden_demo(shown: Path | str) -> str:
    """The golden demo output with the demo's path as a run by name shows it."""
    return GOLDEN_DEMO.read_text().replace(GOLDEN_DEMO_PATH, str(shown))


# --- the built-in names, in the checkout --------------------------------------------------


def test_the_demo_runs_by_name(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["run", "demo"]) == 0
    assert capsys.readouterr().out == _golden_demo("kinspect/data/workloads/demo.kw")


def test_the_demo_runs_by_name_from_any_directory(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "demo"]) == 0
    assert capsys.readouterr().out == _golden_demo(WORKLOADS_DIR / "demo.kw")


def test_a_file_of_that_name_wins_over_the_built_in(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text("buf = kmalloc 16\nkfree buf\n")
    assert main(["run", "demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kinspect: 2 events, 0 reports;")


def test_an_unknown_name_is_one_line_and_exit_2(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "dmeo"]) == 2
    known = ", ".join(builtin_workloads())
    assert capsys.readouterr().err == (
        f"kinspect: dmeo: no such file, nor a built-in workload (built-in: {known})\n"
    )


def test_the_repository_paths_are_links_to_the_package_files():
    """One copy: samples/profiles and the demos in samples/workloads are the package's files."""
    assert (ROOT / "samples" / "profiles").resolve() == PROFILES_DIR.resolve()
    assert (ROOT / "samples" / "workloads" / "demo.kw").resolve() == (
        WORKLOADS_DIR / "demo.kw"
    ).resolve()


def test_the_ui_names_a_built_in_workload_by_its_name(tmp_path):
    """Not by a path into site-packages: the title and the event log say ``demo (built-in)``."""
    assert workload_name(str(WORKLOADS_DIR / "demo.kw")) == "demo (built-in)"
    assert workload_name("samples/workloads/demo.kw") == "demo (built-in)"  # the link
    own = tmp_path / "demo.kw"
    own.write_text("kmalloc 8\n")
    assert workload_name(str(own)) == str(own)
    assert workload_name("samples/workloads/churn.kw") == "samples/workloads/churn.kw"


# --- a wheel, installed outside the checkout ----------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the directory it is installed in). Built from a copy of the checkout's
    sources, so that the build writes nothing into the shared checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(
        ROOT / "kinspect",
        src / "kinspect",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.c"),
    )
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (whl,) = (tmp / "dist").glob("kinspect-*.whl")
    site = tmp / "site"
    subprocess.run(
        pip + ["install", "--no-deps", "--target", str(site), str(whl)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return whl, site


def _run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """A command of the installed wheel, run from ``cwd``; its dependencies come from this
    interpreter's site-packages, kinspect from ``site`` (ahead of the checkout's editable
    install, which only answers after the path)."""
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_the_wheel_holds_the_style_and_the_built_in_data(wheel):
    whl, _ = wheel
    names = set(zipfile.ZipFile(whl).namelist())
    assert "kinspect/kinspect.tcss" in names
    for path in [
        *PROFILES_DIR.glob("*.toml"),
        *WORKLOADS_DIR.glob("*.kw"),
        *TEMPLATES_DIR.glob("*.html"),
    ]:
        assert f"kinspect/data/{path.parent.name}/{path.name}" in names
    # the compiled engine, built by the package's own build, and not Cython's C beside it
    assert any(n.startswith("kinspect/engine/_ftrace_scan.") and n.endswith(".so") for n in names)
    assert not any(n.endswith(".c") for n in names)


@pytest.mark.slow
def test_the_installed_wheel_is_what_runs(wheel, tmp_path):
    _, site = wheel
    done = _run_installed(
        site, tmp_path, sys.executable, "-P", "-c", "import kinspect; print(kinspect.__file__)"
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == site / "kinspect" / "__init__.py"


@pytest.mark.slow
def test_profiles_from_the_wheel(wheel, tmp_path):
    _, site = wheel
    done = _run_installed(site, tmp_path, str(site / "bin" / "kinspect"), "profiles")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == (
        format_profiles_table(list_profiles())
        + f"\n\nengine: native ({native.ENGINE_NOTES['native']})\n"
    )


@pytest.mark.slow
def test_the_demo_from_the_wheel(wheel, tmp_path):
    _, site = wheel
    done = _run_installed(site, tmp_path, str(site / "bin" / "kinspect"), "run", "demo")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == _golden_demo(site / "kinspect" / "data" / "workloads" / "demo.kw")


UI_CHECK = """
import asyncio, sys
from kinspect.app import KinspectApp
from kinspect.cli import main

async def opened(app):
    async with app.run_test() as pilot:
        await pilot.pause()
        print(app.session.path)
        print(*(path for path, _ in app.stylesheet.source if path.endswith(".tcss")))

KinspectApp.run = lambda self, *args, **kwargs: asyncio.run(opened(self))
sys.exit(main([]))
"""


@pytest.mark.slow
def test_the_ui_opens_on_its_demo_with_its_style_from_the_wheel(wheel, tmp_path):
    _, site = wheel
    done = _run_installed(site, tmp_path, sys.executable, "-P", "-c", UI_CHECK)
    assert done.returncode == 0, done.stderr
    workload, style = done.stdout.splitlines()
    assert workload == str(site / "kinspect" / "data" / "workloads" / "demo.kw")
    assert style == str(site / "kinspect" / "kinspect.tcss")
