"""``kinspect vmcore --replay``: a report of the dump re-enacted in kinspect's engine
(``kinspect report``'s replay: kinspect/engine/explain.py ``replay_workload()`` and
``run_replay()``), and the simulated shadow of the object's slot held against the real one.

The engine's report of the replay (its last ``BadAccess``) carries the five shadow rows
``print_memory_metadata()`` prints around its first bad address, and the simulated object's
address.  The slot compared is the real object's: ``cache->size`` bytes from the object's
start (``nearest_obj()``'s slot, its redzone included), granule by granule at the same
offset from each object's start: the simulated byte from the engine's rows (the granules
they cover), the real byte from the dump's shadow.  A difference is listed as (offset,
simulated, real); a granule the engine's rows do not cover, or the dump does not hold, is
not compared (counted).  For a dump taken at the report's panic (``kasan.fault=panic``) the
two should agree; for a dump taken later the object may since have been freed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kinspect.engine.kasan import KASAN_GRANULE_SIZE
from kinspect.reports.explain import ReplayUnsupported, replay_workload, run_replay

__all__ = ["SlotComparison", "compare_replay"]


@dataclass
class SlotComparison:
    """The replay of one report against the dump."""

    unsupported: str | None = None  # why there is no replay
    engine_type: str | None = None
    type_matches: bool | None = None
    sim_object: int | None = None
    real_object: int | None = None
    cache: str | None = None
    slot_size: int = 0
    compared: int = 0  # granules compared
    not_compared: int = 0
    differences: list[tuple[int, int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        if self.unsupported is not None:
            return [f"replay: not possible: {self.unsupported}"]
        out = [
            f"replay: the engine reports {self.engine_type}"
            f" ({'the same bug type' if self.type_matches else 'not the report bug type'})"
        ]
        if self.real_object is None or self.sim_object is None:
            return out + [f"replay: {n}" for n in self.notes]
        out.append(
            f"replay: the simulated object at {self.sim_object:#x} against the dump's "
            f"at {self.real_object:#x} ({self.cache}, a {self.slot_size}-byte slot): "
            f"{self.compared} granules compared"
            + (
                f", {self.not_compared} not (outside the engine's rows or the dump)"
                if self.not_compared
                else ""
            )
        )
        if not self.differences:
            out.append("replay: the simulated shadow of the slot equals the real one")
        else:
            out.append(
                f"replay: {len(self.differences)} granule(s) differ (offset in the "
                "slot: simulated, real):"
            )
            out += [f"  +{off:#06x}: {sim:02x} {real:02x}" for off, sim, real in self.differences]
        return out + [f"replay: {n}" for n in self.notes]

    def to_json(self) -> dict:
        return {
            "unsupported": self.unsupported,
            "engine_type": self.engine_type,
            "type_matches": self.type_matches,
            "sim_object": None if self.sim_object is None else f"{self.sim_object:#x}",
            "real_object": None if self.real_object is None else f"{self.real_object:#x}",
            "cache": self.cache,
            "slot_size": self.slot_size,
            "compared": self.compared,
            "not_compared": self.not_compared,
            "differences": [
                {"offset": o, "simulated": s, "real": r} for o, s, r in self.differences
            ],
            "notes": self.notes,
        }


def compare_replay(rep, state, shadow_byte) -> SlotComparison:
    """The replay of report ``rep`` against the dump's ``state`` (command.MemoryState of
    the report's address); ``shadow_byte(addr)`` reads the dump's shadow (raises when it
    does not hold it)."""
    try:
        plan = replay_workload(rep)
    except ReplayUnsupported as e:
        return SlotComparison(unsupported=str(e))
    result = run_replay(plan)
    last = result.reports[-1] if result.reports else None
    cmp = SlotComparison(engine_type=result.engine_type, type_matches=result.type_matches)
    if last is None:
        cmp.notes.append("the replay made no report")
        return cmp
    if state.object is None or last.object_addr is None:
        cmp.notes.append("no slab object to compare (the dump's or the engine's)")
        return cmp
    cmp.sim_object, cmp.real_object = last.object_addr, state.object.object_addr
    cmp.cache, cmp.slot_size = state.object.cache_name, state.object.cache_size
    row_bytes = b"".join(last.meta_rows)
    for g in range(cmp.slot_size // KASAN_GRANULE_SIZE):
        off = g * KASAN_GRANULE_SIZE
        i = (cmp.sim_object + off - last.meta_row_start) // KASAN_GRANULE_SIZE
        try:
            real = shadow_byte(cmp.real_object + off)
        except LookupError:  # (shadow_byte: not in the dump)
            real = None
        if not 0 <= i < len(row_bytes) or real is None:
            cmp.not_compared += 1
            continue
        cmp.compared += 1
        if row_bytes[i] != real:
            cmp.differences.append((off, row_bytes[i], real))
    return cmp
