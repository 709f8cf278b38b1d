"""The process's cyclic garbage collector, as kinspect uses it: the engine holds millions of
long-lived records and frees its own by reference counting, so a collection over them costs
more than the events themselves.  The engine pauses the collector around its long loops
(:func:`gc_paused`); the inspector keeps it off while it is up and collects in its idle time,
young objects only, freezing the survivors out of the way (:func:`pause_for_ui`,
:func:`collect_young`, :func:`collect_all`, :func:`resume_after_ui`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: the engine frees its objects by reference counting,
    and collections over millions of live records cost more than the events themselves."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def pause_for_ui() -> bool:
    """No automatic collections from now on, and the objects alive now left out of the
    collections to come; returns whether the collector was on (for :func:`resume_after_ui`)."""
    was_enabled = gc.isenabled()
    gc.disable()
    gc.freeze()
    return was_enabled


def resume_after_ui(was_enabled: bool) -> None:
    """Undo :func:`pause_for_ui`."""
    gc.unfreeze()
    if was_enabled:
        gc.enable()


def freeze() -> None:
    """Leave every object alive now out of the collections to come (long-lived: read events)."""
    gc.freeze()


# Young objects a collection traverses in a piece of idle work (~1 µs each). A crowd frozen
# keeps its garbage until collect_all: at 20 000, cycles frozen so kept a machine's buffers
# (benchmarks/ui.py --only jump: peak RSS 784 MiB against 625 at 50 000).
YOUNG_MAX = 50_000


def collect_young() -> None:
    """Collect the garbage among the objects made since the last freeze, and freeze the rest:
    milliseconds. More than ``YOUNG_MAX`` of them (a machine just made by a jump or a run:
    hundreds of thousands, nearly all alive, a traversal of a fifth of a second) are frozen
    as they are: their garbage, if any, waits for :func:`collect_all`. (Counted, not taken
    from ``gc.get_count()``, which the frees of older objects lower.)"""
    if len(gc.get_objects(0)) < YOUNG_MAX:
        gc.collect(1)
    gc.freeze()


def collect_all() -> None:
    """Collect the cycles that became garbage after they were frozen: a scan of everything
    (45-50 ms late in the real trace at 1 TiB), for after a pause."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
