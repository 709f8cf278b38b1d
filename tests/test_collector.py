"""The inspector's use of the cyclic collector (kinspect/engine/collector.py): a collection of
the young objects frees their garbage cycles, but a crowd of them (a machine just made by a
jump) is frozen as it is, not traversed, within a piece of idle work."""

from __future__ import annotations

import gc
import weakref

from kinspect.engine import collector


class Node:
    pass


def cycle() -> weakref.ref:
    node = Node()
    node.cycle = node
    return weakref.ref(node)


def collections_made(action) -> int:
    seen = []

    def callback(phase, info):
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(callback)
    try:
        action()
    finally:
        gc.callbacks.remove(callback)
    return len(seen)


def test_a_few_young_objects_are_collected_and_a_crowd_frozen_as_it_is():
    was_enabled = collector.pause_for_ui()
    try:
        dead = cycle()  # garbage among a few young objects: collected
        assert collections_made(collector.collect_young) == 1 and dead() is None
        frozen = gc.get_freeze_count()
        crowd = [[i] for i in range(2 * collector.YOUNG_MAX)]  # a machine just made
        dead = cycle()
        assert collections_made(collector.collect_young) == 0  # not traversed: frozen
        assert gc.get_freeze_count() >= frozen + len(crowd) and dead() is not None
        assert collections_made(collector.collect_all) == 1 and dead() is None
    finally:
        collector.resume_after_ui(was_enabled)
