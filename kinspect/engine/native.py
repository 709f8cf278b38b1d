"""Which engine runs: the compiled core or the Python reference (issue 12).

``KINSPECT_ENGINE=python|native`` chooses. ``native`` is the default when the compiled core is
built (``pip install -e .`` compiles it, setup.py): the Cython extension modules beside this
file. The Python engine stays as the reference, as CPython keeps ``_pydecimal`` beside
``_decimal``; without the extension (no C compiler at install time) kinspect runs on it and
says so once on stderr.

Compiled so far (the extension modules of setup.py): the ftrace kmem scanner
(``_ftrace_scan``, used by ftrace.TraceReader), the buddy allocator's zones (``_buddy``)
and page path (``_page_alloc``: alloc_pages, free_pages), SLUB with KASAN's slab hooks and
the quarantine (``_slab``), used by machine.Machine, the trace replayer (``_replay``, used
by replay.replay_trace), and the shadow schemes' hot paths in lockstep (``_schemes``, used by
shadow.lockstep.LockstepShadow). The native engine needs them all.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from types import ModuleType

from .buddy import BuddyZone
from .errors import KinspectError
from .slab import SlubAllocator

ENGINES = ("native", "python")
VARIABLE = "KINSPECT_ENGINE"
COMPILED = (
    "_ftrace_scan",
    "_buddy",
    "_page_alloc",
    "_slab",
    "_replay",
    "_schemes",
    "_runner",
    "_buffers",
)  # beside this file
ENGINE_NOTES = {  # what each engine is, for `kinspect profiles`
    "native": "the compiled core; KINSPECT_ENGINE=python for the reference",
    "python": "the reference; KINSPECT_ENGINE=native for the compiled core",
}

_compiled: dict[str, ModuleType] | None = None
_not_built: str | None = None  # why the compiled core cannot run: "is not built", ...
_fallback_said = False


class EngineError(KinspectError):
    """An engine asked for that cannot run."""


def compiled(name: str) -> ModuleType | None:
    """A module of the compiled core (one of COMPILED), or None when the core is not built or
    a module of it will not import."""
    global _compiled, _not_built
    if _compiled is None and _not_built is None:
        try:
            _compiled = {module: import_module(f"{__package__}.{module}") for module in COMPILED}
        except ModuleNotFoundError:
            _not_built = "is not built"
        except ImportError as e:
            _not_built = f"will not load ({e})"
    return _compiled[name] if _compiled is not None else None


def compiled_for_native(name: str) -> ModuleType:
    """A module of the compiled core, for code that runs on the native engine only (which
    engine() lets run only when the core is built): EngineError if it is not."""
    module = compiled(name)
    if module is None:
        raise EngineError(f"the native engine {_not_built}", "engine")
    return module


def buddy_zone_class(engine_name: str) -> type:
    """The buddy allocator's zone of an engine: buddy.BuddyZone or its compiled twin."""
    return compiled_for_native("_buddy").BuddyZone if engine_name == "native" else BuddyZone


def slub_allocator_class(engine_name: str) -> type:
    """The slab allocator of an engine: slab.SlubAllocator or its compiled twin."""
    if engine_name == "native":
        return compiled_for_native("_slab").SlubAllocator
    return SlubAllocator


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
    if compiled(COMPILED[0]) is not None:
        return "native"
    if asked == "native":
        raise EngineError(
            f"the native engine {_not_built}: 'pip install -e .' builds it "
            f"(with a C compiler), or set {VARIABLE}=python",
            where,
        )
    if not _fallback_said:
        _fallback_said = True
        print(
            f"kinspect: the native engine {_not_built}: running on the Python engine "
            "('pip install -e .' builds it, with a C compiler)",
            file=sys.stderr,
        )
    return "python"
