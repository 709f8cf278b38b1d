"""A state fingerprint of a simulated machine, for comparing the two engines (issue 12).

Both engines must leave a machine in the same state after the same events; a fingerprint
holds that state in a few digests, one per part, so a differential test (tests/
test_differential.py) can compare two machines every N events and say which part differs:

- ``struct pages``: every touched memmap section (``struct mem_section``) that is not all
  free pages, with its first pfn;
- ``shadow``: the reference scheme's shadow (the first of the machine's schemes) of every
  range allocated now or at an earlier fingerprint of the same ``Fingerprinter``: page
  blocks, vmalloc areas, globals (Machine.allocated_ranges()), so a range freed since keeps
  being compared (its shadow must now say free);
- ``free areas``: each zone's free pages and ``free_area[order].nr_free``;
- ``slab objects``: objects in use per kmem_cache;
- ``reports``: the text of every report, as the kernel would print it;
- ``failures``: allocations that failed (NULL, -ENOMEM), by call;
- ``summary``: Machine.summary() (pages in use, slabs, quarantine, shadow footprint).

Read through the machine's public methods only (and MemMap.for_each_section()), so it holds
whatever either engine keeps inside. Cost: a hash of the struct page store and of the shadow
of the touched ranges, about 0.13 s of CPU at 1 GiB after the whole real x86_64 trace (27 211
ranges seen allocated); tests/test_differential.py takes one every 25 000 events.
"""

from __future__ import annotations

from hashlib import blake2b

import numpy as np

from .memory import FREE_PAGE, PAGE_DTYPE
from .report import format_report
from .session import merge_ranges

PARTS = ("struct pages", "shadow", "free areas", "slab objects", "reports", "failures",
         "summary")


def _digest(*chunks: bytes) -> str:
    h = blake2b(digest_size=16)
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def _text_digest(value) -> str:
    return _digest(repr(value).encode())


class Fingerprinter:
    """Fingerprints of one machine as it runs: ``take()`` after any event. Remembers every
    range it has seen allocated, whose shadow it goes on hashing after it is freed."""

    def __init__(self, machine) -> None:
        self.machine = machine
        self._touched: set[tuple[int, int]] = set()     # (address, bytes) seen allocated
        self._free_section: bytes | None = None         # a section of free pages, as bytes

    def _struct_pages(self) -> str:
        h = blake2b(digest_size=16)
        for first_pfn, section in self.machine.memmap.for_each_section():
            raw = section.tobytes()
            if raw != self._free_section_bytes(len(section)):   # untouched reads as free
                h.update(first_pfn.to_bytes(8, "little"))
                h.update(raw)
        return h.hexdigest()

    def _free_section_bytes(self, pages: int) -> bytes:
        """A memmap section of ``pages`` free struct pages, as bytes."""
        if self._free_section is None or len(self._free_section) != pages * PAGE_DTYPE.itemsize:
            section = np.empty(pages, dtype=PAGE_DTYPE)
            section[:] = FREE_PAGE
            self._free_section = section.tobytes()
        return self._free_section

    def _shadow(self) -> str:
        m = self.machine
        self._touched.update(m.allocated_ranges())
        read = m.schemes[0].read
        h = blake2b(digest_size=16)
        for start, size in merge_ranges(tuple(self._touched)):
            h.update(start.to_bytes(8, "little"))
            h.update(read(start, size))
        return h.hexdigest()

    def take(self) -> dict[str, str]:
        """The machine's fingerprint now: a digest per part (PARTS)."""
        m = self.machine
        return {
            "struct pages": self._struct_pages(),
            "shadow": self._shadow(),
            "free areas": _text_digest(m.free_area_counts()),
            "slab objects": _text_digest(m.slab_objects_in_use()),
            "reports": _digest(*(format_report(r).encode() for r in m.reports)),
            "failures": _text_digest(sorted(m.failed.items())),
            "summary": _text_digest(m.summary()),
        }


def fingerprint(machine) -> dict[str, str]:
    """A machine's fingerprint, taken once (the shadow of what is allocated now)."""
    return Fingerprinter(machine).take()
