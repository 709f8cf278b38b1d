"""Several schemes in lockstep on one machine: every write goes to all, every read is checked.

The first scheme (normally ``flat``) is the reference: reads return its byte, and every other
scheme must return the same byte for the same address, or ``ShadowDivergence`` is raised with
the address and both bytes. Allocators run once, so the figures of each scheme are those of the
same machine in the same state.
"""

from __future__ import annotations

from ..errors import KinspectError
from .base import Footprint, PageUse, ShadowScheme


class ShadowDivergence(KinspectError):
    """Two schemes disagree on a shadow byte: an engine bug, never bad input."""


class LockstepShadow(ShadowScheme):
    name = "lockstep"

    def __init__(self, schemes: list[ShadowScheme]) -> None:
        self.schemes = schemes
        self.reference = schemes[0]
        self.others = schemes[1:]

    def boot(self) -> None:
        for s in self.schemes:
            s.boot()

    def poison(self, addr: int, size: int, value: int) -> None:
        for s in self.schemes:
            s.poison(addr, size, value)

    def write(self, addr: int, data: bytes) -> None:
        for s in self.schemes:
            s.write(addr, data)

    def set_byte(self, addr: int, value: int) -> None:
        for s in self.schemes:
            s.set_byte(addr, value)

    def shadow_byte(self, addr: int) -> int:
        want = self.reference.shadow_byte(addr)
        for s in self.others:
            got = s.shadow_byte(addr)
            if got != want:
                raise ShadowDivergence(
                    f"shadow of {addr:#x}: {self.reference.name} has {want:02x}, "
                    f"{s.name} has {got:02x}")
        return want

    def read(self, addr: int, size: int) -> bytes:
        want = self.reference.read(addr, size)
        for s in self.others:
            got = s.read(addr, size)
            if got != want:
                i = next(i for i in range(len(want)) if got[i] != want[i])
                raise ShadowDivergence(
                    f"shadow of {addr + 8 * i:#x}: {self.reference.name} has {want[i]:02x}, "
                    f"{s.name} has {got[i]:02x}")
        return want

    def page_alloc(self, pfn: int, order: int, use: PageUse) -> bool:
        """All schemes attach, or none: those that did are told to detach again."""
        done = []
        for s in self.schemes:
            if not s.page_alloc(pfn, order, use):
                for t in done:
                    t.page_free(pfn, order)
                return False
            done.append(s)
        return True

    def page_free(self, pfn: int, order: int) -> None:
        for s in self.schemes:
            s.page_free(pfn, order)

    def footprint(self) -> Footprint:
        return self.reference.footprint()
