"""Ranges of pfns or addresses as (first, count) pairs: merged, and asked whether they hold one.

The session names what a step changed as pfn ranges (kinspect.session.recording), the state
fingerprint hashes the address ranges it saw allocated (fingerprint.py): both merge them here.
"""

from __future__ import annotations

from collections.abc import Sequence


def merge_ranges(ranges: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """(first, count) ranges sorted and merged where they touch or overlap."""
    if not ranges:
        return ()
    out: list[list[int]] = []
    for first, count in sorted(ranges):
        if count <= 0:
            continue
        if out and first <= out[-1][0] + out[-1][1]:
            end = max(out[-1][0] + out[-1][1], first + count)
            out[-1][1] = end - out[-1][0]
        else:
            out.append([first, count])
    return tuple((a, n) for a, n in out)


def ranges_contain(ranges: tuple[tuple[int, int], ...] | None, pfn: int) -> bool:
    """Whether ``pfn`` is in one of ``ranges`` (None: every pfn)."""
    if ranges is None:
        return True
    return any(a <= pfn < a + n for a, n in ranges)
