"""A state fingerprint of a simulated machine, for comparing the two engines (issue 12).

Both engines must leave a machine in the same state after the same events; a fingerprint
holds that state in a few digests, one per part, so a differential test (tests/
test_differential.py) can compare two machines every N events and say which part differs:

- ``struct pages``: every touched memmap section (``struct mem_section``) that is not all
  free pages, with its first pfn;
- ``shadow``: the reference scheme's shadow (the first of the machine's schemes) of every
  range allocated now or at an earlier fingerprint of the same ``Fingerprinter``: page
  blocks (lowmem ones, at their direct-map address), vmalloc areas, globals with their
  redzones, so a range freed since keeps being compared (its shadow must now say free);
- ``free areas``: each zone's free pages and ``free_area[order].nr_free``;
- ``slab objects``: objects in use per kmem_cache;
- ``reports``: the text of every report, as the kernel would print it;
- ``failures``: allocations that failed (NULL, -ENOMEM), by call;
- ``summary``: Machine.summary() (pages in use, slabs, quarantine, shadow footprint).

Read through the read API of both engines (kinspect/engine/view.py: allocated pages, caches,
globals, shadow bytes), plus what it does not cover yet: ``Machine.free_area_counts()``,
``Machine.summary()``, ``machine.vm_areas``, ``machine.reports``, ``machine.failed`` and the
whole struct page records (``MemMap.for_each_section()``), so it holds whatever either engine
keeps inside. Cost: a hash of the struct page store and of the shadow
of the touched ranges, about 0.13 s of CPU at 1 GiB after the whole real x86_64 trace (27 211
ranges seen allocated); tests/test_differential.py takes one every 25 000 events.
"""

from __future__ import annotations

from hashlib import blake2b

import numpy as np

from .memory import FREE_PAGE, PAGE_DTYPE
from .ranges import merge_ranges
from .report import format_report
from .view import MachineReader

PARTS = ("struct pages", "shadow", "free areas", "slab objects", "reports", "failures", "summary")


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
        self.view = MachineReader(machine)
        self._touched: set[tuple[int, int]] = set()  # (address, bytes) seen allocated
        self._free_section: bytes | None = None  # a section of free pages, as bytes

    def _struct_pages(self) -> str:
        h = blake2b(digest_size=16)
        for first_pfn, section in self.machine.memmap.for_each_section():
            raw = section.tobytes()
            if raw != self._free_section_bytes(len(section)):  # untouched reads as free
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

    def allocated_ranges(self) -> list[tuple[int, int]]:
        """(kernel address, bytes) of the memory handed out now: every lowmem page block
        (slab, large kmalloc, stacks, plain pages) at its direct-map address, every vmalloc
        area, every global with its redzone."""
        m, view = self.machine, self.view
        is_lowmem_pfn, page_size = m.profile.is_lowmem_pfn, m.page_size
        ranges = [
            (view.page_address(b.pfn), page_size << b.order)
            for b in view.allocated_pages()
            if is_lowmem_pfn(b.pfn)
        ]
        ranges += [(area.addr, area.size) for area in m.vm_areas]
        ranges += [(g.addr, g.size_with_redzone) for g in view.global_variables()]
        return ranges

    def _shadow(self) -> str:
        self._touched.update(self.allocated_ranges())
        read = self.view.shadow_reader(self.machine.schemes[0].name)
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
            "slab objects": _text_digest(
                [(c.name, c.object_size, c.objects_in_use) for c in self.view.caches()]
            ),
            "reports": _digest(*(format_report(r).encode() for r in m.reports)),
            "failures": _text_digest(sorted(m.failed.items())),
            "summary": _text_digest(m.summary()),
        }


def fingerprint(machine) -> dict[str, str]:
    """A machine's fingerprint, taken once (the shadow of what is allocated now)."""
    return Fingerprinter(machine).take()
