"""The command line: golden output, exit statuses, one-line errors. The golden runs are made
on both engines (KINSPECT_ENGINE in the environment of a `kinspect` process), against the
same golden files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kinspect.cli import main
from kinspect.engine import native

GOLDEN = Path(__file__).resolve().parent / "golden"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("KINSPECT_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"output differs from {path} (KINSPECT_UPDATE_GOLDEN=1)"


def _kinspect(root: Path, engine: str, *args: str) -> str:
    """``kinspect ARGS`` in a process of its own on ``engine`` (KINSPECT_ENGINE), from the
    repository's root: its standard output, once it is checked that it ran on that engine
    (``kinspect --version`` in the same environment names it)."""
    env = dict(os.environ, **{native.VARIABLE: engine})
    code = "import sys; from kinspect.cli import main; sys.exit(main(sys.argv[1:]))"
    version = subprocess.run(
        [sys.executable, "-c", code, "--version"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.endswith(f"({engine} engine)\n")
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == ""
    return done.stdout


def test_demo_is_the_default_and_matches_golden(root, engine):
    out = _kinspect(root, engine, "run", "samples/workloads/demo.kw")
    _golden("demo.txt", out)
    assert out.count("BUG: KASAN: ") == 7


def test_run_json(root, engine):
    doc = json.loads(
        _kinspect(root, engine, "run", "samples/workloads/demo.kw", "--format", "json")
    )
    assert [r["bug_type"] for r in doc["reports"]][:2] == ["slab-out-of-bounds"] * 2
    assert doc["summary"]["events"] > 10 and doc["expect_failures"] == []


def test_profiles_lists_every_profile(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for name in ("x86_64", "arm32", "arm64-4k-48", "arm64-64k-42", "riscv64-sv39", "ppc32"):
        assert name in out


def test_failed_expect_exits_1(tmp_path, capsys):
    wl = tmp_path / "w.kw"
    wl.write_text("p = kmalloc 8\nread p+8 1\nexpect none\n")
    assert main(["run", str(wl)]) == 1
    assert f"kinspect: {wl}:3: expected none, got slab-out-of-bounds" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content,args,message",
    [
        ("p = kmalloc\n", [], ":1:12: missing operand"),
        ("p = kmalloc 8\n", ["--mem", "12Q"], "kinspect: --mem: "),
        ("p = kmalloc 8\n", ["--profile", "no-such-arch"], "kinspect: "),
        (b"\xff\xfe\n", [], "not UTF-8"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, args, message):
    wl = tmp_path / "w.kw"
    wl.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["run", str(wl), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_missing_file_is_bad_input(capsys):
    assert main(["run", "/nonexistent.kw"]) == 2
    assert "cannot read workload" in capsys.readouterr().err
