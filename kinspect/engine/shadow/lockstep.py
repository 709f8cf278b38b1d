"""Several schemes in lockstep on one machine: every write goes to all, every read is checked.

The first scheme (normally ``flat``) is the reference: reads return its byte, and every other
scheme must return the same byte for the same address, or ``ShadowDivergence`` is raised with
the address and both bytes. Allocators run once, so the figures of each scheme are those of the
same machine in the same state.
"""

from __future__ import annotations

from ..errors import KinspectError
from ..kasan import KASAN_SHADOW_SCALE_SHIFT
from .base import Footprint, PageUse, ShadowScheme
from .flat import FlatShadow
from .pageext import PageExtShadow
from .pageptr import PagePtrShadow
from .pshadow import PerPageShadow

_FILL = [bytes([v]) for v in range(256)]


def _fan_out(writes):
    """One function calling every scheme's write(): no loop on the hottest path."""
    if len(writes) == 1:
        return writes[0]
    if len(writes) == 2:
        w1, w2 = writes

        def write2(addr: int, data: bytes) -> None:
            w1(addr, data)
            w2(addr, data)

        return write2
    if len(writes) == 3:
        w1, w2, w3 = writes

        def write3(addr: int, data: bytes) -> None:
            w1(addr, data)
            w2(addr, data)
            w3(addr, data)

        return write3

    def write_all(addr: int, data: bytes) -> None:
        for w in writes:
            w(addr, data)

    return write_all


def _poison_all(schemes):
    """One function calling every scheme's poison(): the schemes after the first whose
    poison() is ShadowScheme's, a write of the value into each granule's byte, get that write
    through _fan_out, its bytes made once for all of them."""
    first, rest = schemes[0], schemes[1:]
    if rest and all(type(s).poison is ShadowScheme.poison for s in rest):
        poison_first, write_rest = first.poison, _fan_out([s.write for s in rest])

        def poison_fan_out(addr: int, size: int, value: int) -> None:
            poison_first(addr, size, value)
            write_rest(addr, _FILL[value] * (size >> KASAN_SHADOW_SCALE_SHIFT))

        return poison_fan_out
    poisons = [s.poison for s in schemes]

    def poison_each(addr: int, size: int, value: int) -> None:
        for p in poisons:
            p(addr, size, value)

    return poison_each


def _checked_read(reference, others, diverged):
    """One function reading the reference's shadow byte and checking every other scheme's
    (each counts its own loads): unrolled like _fan_out, for the check on every free."""
    if len(others) == 1:
        (r1,) = others

        def byte2(addr: int) -> int:
            want = reference(addr)
            if r1(addr) != want:
                diverged(addr, want)
            return want

        return byte2
    if len(others) == 2:
        r1, r2 = others

        def byte3(addr: int) -> int:
            want = reference(addr)
            if r1(addr) != want or r2(addr) != want:
                diverged(addr, want)
            return want

        return byte3

    def byte_all(addr: int) -> int:
        want = reference(addr)
        if [r(addr) for r in others].count(want) != len(others):
            diverged(addr, want)
        return want

    return byte_all


def _compiled_counter(name: str) -> property:
    """A counter of shadow reads (``checks``, ``loads``) kept by the compiled twin."""
    return property(
        lambda self: getattr(self._compiled, name),
        lambda self, value: setattr(self._compiled, name, value),
        doc=f"ShadowScheme.{name}, kept by the compiled twin (_schemes.Scheme)",
    )


def _compiled_counters_state(self) -> dict:
    """The pickled state: the counters as plain attributes, taken back by the compiled twin
    made on unpickling (Machine._bind_shadow)."""
    state = dict(super(type(self), self).__getstate__())  # the scheme's own
    compiled = state.pop("_compiled")
    state["checks"], state["loads"] = compiled.checks, compiled.loads
    return state


# A scheme of a compiled lockstep (the native engine, _schemes.pyx) becomes its class's
# _counted() twin: its counters of shadow reads, checks and loads, are its compiled twin's
# (_compiled), bumped in C on every check, and read and written as ShadowScheme's plain
# attributes are.


def _counted(scheme: type) -> type:
    """The class a scheme of a compiled lockstep is switched to: the same scheme, its counters
    its compiled twin's."""
    return type(
        f"{scheme.__name__}Counted",
        (scheme,),
        {
            "__doc__": f"{scheme.__name__} in a compiled lockstep.",
            "__module__": __name__,
            "checks": _compiled_counter("checks"),
            "loads": _compiled_counter("loads"),
            "__getstate__": _compiled_counters_state,
        },
    )


# Named here, so that a pickle of a scheme (a checkpoint) finds its class again.
FlatShadowCounted, PerPageShadowCounted, PagePtrShadowCounted, PageExtShadowCounted = (
    _counted(scheme) for scheme in (FlatShadow, PerPageShadow, PagePtrShadow, PageExtShadow)
)
COMPILED_COUNTERS = {
    FlatShadow: FlatShadowCounted,
    PerPageShadow: PerPageShadowCounted,
    PagePtrShadow: PagePtrShadowCounted,
    PageExtShadow: PageExtShadowCounted,
}


def bind_engine(shadow: ShadowScheme, engine: str) -> None:
    """A machine's shadow on its engine: a lockstep, or one wrapped (a session's recording
    wrapper holds the machine's shadow as ``inner``), gets its compiled twin on the native
    engine (LockstepShadow.bind_engine)."""
    found: ShadowScheme | None = shadow
    while not isinstance(found, LockstepShadow):
        found = getattr(found, "inner", None)
        if found is None:
            return
    found.bind_engine(engine)


# LockstepShadow's methods that the native engine's compiled Lockstep replaces.
_COMPILED_METHODS = ("poison", "write", "set_byte", "shadow_byte", "page_alloc", "page_free")


class ShadowDivergence(KinspectError):
    """Two schemes disagree on a shadow byte: an engine bug, never bad input."""


class LockstepShadow(ShadowScheme):
    name = "lockstep"

    def __init__(self, schemes: list[ShadowScheme]) -> None:
        self.schemes = schemes
        self.reference = schemes[0]
        # pageext beside pageptr with the same attach policy stores the same blocks: it
        # mirrors pageptr's copy instead of keeping its own (see PageExtShadow.mirror).
        twins = {s.attach: s for s in schemes if type(s) is PagePtrShadow}
        for s in schemes:
            if isinstance(s, PageExtShadow) and s.attach in twins:
                s.mirror(twins[s.attach])
        self.active = [s for s in schemes if not getattr(s, "twin", None)]
        self.others = self.active[1:]
        self.compiled = None  # the native engine's _schemes.Lockstep (bind_engine)
        # bound methods, looked up once: these run on every allocation and free
        self._bind()

    def _bind(self) -> None:
        """The hot paths as closures over the schemes' bound methods, set over the class's
        methods of the same names (the same calls, there for the ABC and as the reference)."""
        write = _fan_out([s.write for s in self.active])
        poison = _poison_all(self.active)
        shadow_byte = _checked_read(
            self.reference.shadow_byte, [s.shadow_byte for s in self.others], self._diverged
        )
        self.write = write  # type: ignore[method-assign]  # per instance: the closure
        self.poison = poison  # type: ignore[method-assign]  # per instance: the closure
        self.shadow_byte = shadow_byte  # type: ignore[method-assign]  # per instance: the closure

    def bind_engine(self, engine: str) -> None:
        """On the native engine, the writes, reads and page hooks of every scheme are the
        compiled ones (_schemes.pyx), bound to this instance; this class's are the reference.
        Called by the machine (Machine._bind_shadow), again after unpickling."""
        if engine != "native" or self.compiled is not None:
            return
        from .. import native

        self.compiled = native.compiled_for_native("_schemes").Lockstep(self)
        for name in _COMPILED_METHODS:
            setattr(self, name, getattr(self.compiled, name))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["write"], state["poison"], state["shadow_byte"]  # closures: made again
        if state.pop("compiled") is not None:  # bound again by the machine
            for name in _COMPILED_METHODS:
                state.pop(name, None)
        state["compiled"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._bind()

    def boot(self) -> None:
        for s in self.active:
            s.boot()
        if self.compiled is not None:
            self.compiled.rebind()  # the containers boot() bound

    def poison(self, addr: int, size: int, value: int) -> None:  # replaced per instance (_bind)
        for s in self.active:
            s.poison(addr, size, value)

    def write(self, addr: int, data: bytes) -> None:  # replaced per instance (_fan_out)
        for s in self.active:
            s.write(addr, data)

    def set_byte(self, addr: int, value: int) -> None:
        for s in self.active:
            s.set_byte(addr, value)

    def shadow_byte(self, addr: int) -> int:  # replaced per instance (_bind)
        return self.reference.shadow_byte(addr)

    def _diverged(self, addr: int, want: int) -> None:
        for s in self.others:
            got = s.shadow_byte(addr)
            if got != want:
                raise ShadowDivergence(
                    f"shadow of {addr:#x}: {self.reference.name} has {want:02x}, "
                    f"{s.name} has {got:02x}"
                )

    def read(self, addr: int, size: int) -> bytes:
        want = self.reference.read(addr, size)
        for s in self.others:
            got = s.read(addr, size)
            if got != want:
                i = next(i for i in range(len(want)) if got[i] != want[i])
                raise ShadowDivergence(
                    f"shadow of {addr + 8 * i:#x}: {self.reference.name} has {want[i]:02x}, "
                    f"{s.name} has {got[i]:02x}"
                )
        return want

    def page_alloc(self, pfn: int, order: int, use: PageUse) -> bool:
        """All schemes attach, or none: those that did are told to detach again."""
        done: list[ShadowScheme] = []
        for s in self.active:
            if not s.page_alloc(pfn, order, use):
                for t in done:
                    t.page_free(pfn, order)
                return False
            done.append(s)
        return True

    def page_free(self, pfn: int, order: int) -> None:
        for s in self.active:
            s.page_free(pfn, order)

    def footprint(self) -> Footprint:
        return self.reference.footprint()
