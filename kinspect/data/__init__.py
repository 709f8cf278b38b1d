"""kinspect's built-in data, shipped inside the package so that an installed wheel finds it:
the architecture profiles (``profiles/*.toml``), the workloads a command can name without a
path (``workloads/*.kw``: ``demo``, which a bare ``kinspect`` opens and whose reports
``kinspect run demo`` prints), and the page ``kinspect serve`` serves
(``templates/``).

Found through ``importlib.resources``, never through the repository layout. In the repository,
``samples/profiles`` and ``samples/workloads/demo.kw`` are symlinks to these files.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from ..engine.errors import WorkloadError


def _package_dir(name: str) -> Path:
    # A package on disk (pip, pipx, editable) gives a pathlib.Path. kinspect's readers open files
    # by name, so a zipped install fails here, at import, rather than half working.
    resource = files(__name__) / name
    if not isinstance(resource, Path):
        raise ImportError(f"kinspect's data must be files on disk, not {resource!r}")
    return resource


PROFILES_DIR = _package_dir("profiles")
"""The built-in architecture profiles, one ``NAME.toml`` each."""

WORKLOADS_DIR = _package_dir("workloads")
"""The built-in workloads, one ``NAME.kw`` each."""

TEMPLATES_DIR = _package_dir("templates")
"""The page ``kinspect serve`` serves (a jinja2 template for textual-serve)."""


def builtin_workloads() -> list[str]:
    """The names of the built-in workloads, sorted."""
    return sorted(p.stem for p in WORKLOADS_DIR.glob("*.kw"))


def shown_path(path: Path) -> str:
    """A file's path as a user would type it: relative when under the current directory."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def find_workload_path(name_or_path: str) -> str:
    """The workload (or trace) a command argument names: ``name_or_path`` itself when it is a
    file or looks like a path (a directory part or a suffix), else the built-in workload of that
    name, as ``shown_path`` shows it."""
    if "/" in name_or_path or Path(name_or_path).suffix or os.path.lexists(name_or_path):
        return name_or_path
    path = WORKLOADS_DIR / f"{name_or_path}.kw"
    if not path.is_file():
        known = ", ".join(builtin_workloads())
        raise WorkloadError(
            f"no such file, nor a built-in workload (built-in: {known})", path=name_or_path
        )
    return shown_path(path)


@lru_cache(maxsize=8)
def workload_name(path: str) -> str:
    """What the UI calls a workload: a built-in one by its name (``demo (built-in)``, not a
    path into site-packages), any other by the path it was given."""
    if path and Path(path).resolve().parent == WORKLOADS_DIR.resolve():
        return f"{Path(path).stem} (built-in)"
    return path
