"""Fixtures shared by the test files: the engine a test runs on, the repository's root.

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

ROOT = Path(__file__).resolve().parent.parent


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
