"""Which engine runs: the compiled core or the Python reference (issue 12).

``KINSPECT_ENGINE=python|native`` chooses. ``native`` is the default when the compiled core is
built (``pip install -e .`` compiles it, setup.py): the Cython extension modules beside this
file. The Python engine stays as the reference, as CPython keeps ``_pydecimal`` beside
``_decimal``; without the extension (no C compiler at install time) kinspect runs on it and
says so once on stderr.

Compiled so far: the ftrace kmem scanner (``_ftrace_scan``, used by ftrace.TraceReader).
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from types import ModuleType

from .errors import KinspectError

ENGINES = ("native", "python")
VARIABLE = "KINSPECT_ENGINE"
ENGINE_NOTES = {                # what each engine is, for `kinspect profiles`
    "native": "compiled: the ftrace scanner; KINSPECT_ENGINE=python for the reference",
    "python": "the reference; KINSPECT_ENGINE=native for the compiled core",
}

_compiled: ModuleType | None = None
_not_built: str | None = None         # why the compiled core cannot run: "is not built", ...
_fallback_said = False


class EngineError(KinspectError):
    """An engine asked for that cannot run."""


def compiled_ftrace_scanner() -> ModuleType | None:
    """The compiled ftrace scanner module, or None when it is not built or will not import."""
    global _compiled, _not_built
    if _compiled is None and _not_built is None:
        try:
            _compiled = import_module(f"{__package__}._ftrace_scan")
        except ModuleNotFoundError:
            _not_built = "is not built"
        except ImportError as e:
            _not_built = f"will not load ({e})"
    return _compiled


def engine(asked: str | None = None) -> str:
    """The engine to run, ``native`` or ``python``: ``asked``, else $KINSPECT_ENGINE, else
    native when built. Raises EngineError for an unknown name or native asked for but not
    built; falling back to python unasked says so on stderr, once per process."""
    global _fallback_said
    where = "engine" if asked is not None else VARIABLE
    if asked is None:
        asked = os.environ.get(VARIABLE) or None
    if asked is not None and asked not in ENGINES:
        raise EngineError(f"unknown engine {asked!r} (expected native or python)", where)
    if asked == "python":
        return "python"
    if compiled_ftrace_scanner() is not None:
        return "native"
    if asked == "native":
        raise EngineError(f"the native engine {_not_built}: 'pip install -e .' builds it "
                          f"(with a C compiler), or set {VARIABLE}=python", where)
    if not _fallback_said:
        _fallback_said = True
        print(f"kinspect: the native engine {_not_built}: running on the Python engine "
              "('pip install -e .' builds it, with a C compiler)", file=sys.stderr)
    return "python"
