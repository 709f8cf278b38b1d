"""Fixtures shared by the test files: the engine a test runs on, the repository's root, the
demo workload and sessions built on it (or on a few lines of workload).

``engine``: a test that takes it runs once per engine (issue 12, docs/engine.md "How both
engines are tested"): ``python``, the reference, and ``native``, the compiled core, skipped
with its reason only when the compiled core is not built. Pass it on as
``Machine(..., engine=engine)``, ``TraceReader(..., engine=engine)``, or as KINSPECT_ENGINE
in the environment of a ``kinspect`` run. Session-scoped (a name, nothing to rebuild), so
hypothesis's @given tests can take it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kinspect.engine import native
from kinspect.engine.profile import load_profile
from kinspect.engine.workload import parse_workload
from kinspect.session import Session

ROOT = Path(__file__).resolve().parent.parent
# the demo workload of the docs and the golden files (the UI's built-in demo is kinspect/data's)
DEMO = ROOT / "samples" / "workloads" / "demo.kw"


def native_missing() -> str | None:
    """Why the native engine cannot run here (native.engine()'s own words), or None when it
    is built and loads."""
    try:
        native.engine("native")
    except native.EngineError as e:
        return str(e)
    return None


@pytest.fixture(scope="session", params=["python", "native"])
def engine(request) -> str:
    """The engine a test runs on: ``python`` (the reference) or ``native``."""
    if request.param == "native":
        why = native_missing()
        if why is not None:
            pytest.skip(why)
    return request.param


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository's root (samples/, tests/golden/ are under it)."""
    return ROOT


@pytest.fixture
def make_session(monkeypatch):
    """``make_session(lines=None, engine=None, profile="x86_64", **options)``: a Session over
    the demo workload, or over ``lines`` (a workload named small.kw), on ``engine`` (set as
    KINSPECT_ENGINE for the test; None: the environment's); ``options`` go to Session
    (``shown=``, ``schemes=``...)."""

    def make(
        lines: list[str] | None = None,
        engine: str | None = None,
        profile: str = "x86_64",
        **options,
    ) -> Session:
        if engine is not None:
            monkeypatch.setenv(native.VARIABLE, engine)
        workload = parse_workload(str(DEMO)) if lines is None else parse_workload("small.kw", lines)
        return Session(load_profile(profile), workload, **options)

    return make
