"""The inspector's questions about a session, asked in the words a user types: where a go-to
lands (:func:`resolve_location`), which breakpoint a text names (:func:`parse_breakpoint`),
which position a jump goes to (:func:`parse_jump`), where the next poisoned granule is
(:func:`find_poisoned_granule`).  They read the session and its machine view, never change
them, and raise a KinspectError (its message shown as it is) on a text that names nothing."""

from __future__ import annotations

import re

import numpy as np

from kinspect.engine.errors import KinspectError
from kinspect.engine.kasan import KASAN_GRANULE_SIZE, KASAN_PAGE_FREE
from kinspect.engine.view import machine_view
from kinspect.session.cursor import Breakpoint, Session


def _parse_int(text: str) -> int:
    text = text.strip().lower()
    return int(text, 16) if text.startswith("0x") else int(text, 10)


def resolve_location(session: Session, text: str) -> tuple[int | None, int | None]:
    """(pfn, address) named by the text of a go-to: an address, ``pfn N``, or a symbol
    (a workload variable with an optional +/- offset, a global variable, a kmem_cache)."""
    s = session
    m = machine_view(s)
    p = s.profile
    text = text.strip()
    pm = re.fullmatch(r"pfn\s+(\S+)", text)
    try:
        if pm:
            pfn = _parse_int(pm.group(1))
            if not p.pfn_valid(pfn):
                raise KinspectError(
                    f"pfn {pfn:#x} is not RAM (memory: pfn "
                    f"{p.min_pfn:#x}-{p.max_pfn - 1:#x}, with holes)"
                )
            return pfn, (m.page_address(pfn) if p.is_lowmem_pfn(pfn) else None)
        if re.fullmatch(r"(0x[0-9a-fA-F]+|\d+)", text):
            value = _parse_int(text)
            return _locate_address(s, value, text)
    except ValueError:
        raise KinspectError(f"bad number in {text!r}") from None
    sym = re.fullmatch(r"([A-Za-z_][\w.]*)\s*(?:([+-])\s*(0x[0-9a-fA-F]+|\d+))?", text)
    if sym:
        name, sign, off = sym.groups()
        offset = (-1 if sign == "-" else 1) * _parse_int(off) if off else 0
        value = s.runner.values.get(name)
        if isinstance(value, int):
            return _locate_address(s, (value + offset) & ((1 << p.bits) - 1), text)
        for var in m.global_variables():
            if var.name == name:
                return _locate_address(s, var.addr + offset, text)
        if value is not None:
            raise KinspectError(f"{name} is not an address (it is a {type(value).__name__})")
    # A kmem_cache by its whole name: kmalloc-128 reads as kmalloc - 128 above.
    cache = m.find_cache(text)
    if cache is not None:
        if not cache.slabs:
            raise KinspectError(f"kmem_cache {text} has no slab now")
        head = cache.slabs[0]
        return head, m.page_address(head)
    raise KinspectError(
        f"nothing called {text!r}: not an address, a pfn, a workload "
        "variable, a global or a kmem_cache"
    )


def _locate_address(s: Session, addr: int, text: str) -> tuple[int | None, int | None]:
    p = s.profile
    m = machine_view(s)
    pfn = m.addr_to_pfn(addr)
    if pfn is not None:
        return pfn, addr
    if p.vmalloc_start <= addr < p.vmalloc_end or p.addr_has_metadata(addr):
        return None, addr  # shadow exists, no page behind (vmalloc hole, ...)
    if p.pfn_valid(addr):
        return addr, (m.page_address(addr) if p.is_lowmem_pfn(addr) else None)
    raise KinspectError(f"{text} is neither a kernel address with shadow nor a pfn of RAM")


def parse_breakpoint(s: Session, text: str) -> Breakpoint:
    text = text.strip()
    if text in ("attach", "detach", "attach/detach"):
        return Breakpoint("attach")
    m = re.fullmatch(r"line\s+(\S+)", text) or re.fullmatch(r"(\d+)", text)
    if m:
        return Breakpoint("line", _parse_int(m.group(1)))
    m = re.fullmatch(r"pfn\s+(\S+)", text)
    if m:
        pfn = _parse_int(m.group(1))
        if not s.profile.pfn_valid(pfn):
            raise KinspectError(f"pfn {pfn:#x} is not RAM")
        return Breakpoint("pfn", pfn)
    m = re.fullmatch(r"addr(?:ess)?\s+(.+)", text)
    target = m.group(1) if m else text
    _pfn, addr = resolve_location(s, target)
    if addr is None:
        raise KinspectError(f"{target} has no address")
    return Breakpoint("addr", addr)


def find_poisoned_granule(s: Session, addr: int | None, direction: int) -> int | None:
    """The next (or previous) granule after ``addr`` whose shadow is not 00, in pages that
    are allocated (free pages are all KASAN_PAGE_FREE: not what anyone looks for)."""
    m = machine_view(s)
    p = s.profile
    blocks = m.allocated_pages()
    if not blocks:
        return None
    page = p.page_size
    cur_pfn = m.addr_to_pfn(addr) if addr is not None else None
    if cur_pfn is None:
        cur_pfn = p.min_pfn if direction > 0 else p.max_pfn
        addr = None
    spans = [(b.pfn, 1 << b.order) for b in blocks if p.is_lowmem_pfn(b.pfn)]
    pfns = [pfn for h, n in spans for pfn in range(h, h + n)]
    if direction < 0:
        pfns.reverse()
    for pfn in pfns:
        if (direction > 0 and pfn < cur_pfn) or (direction < 0 and pfn > cur_pfn):
            continue
        base = m.page_address(pfn)
        data = np.frombuffer(m.shadow_bytes(s.shown, base, page), dtype=np.uint8)
        bad = np.flatnonzero((data != 0) & (data != KASAN_PAGE_FREE))
        if not len(bad):
            continue
        offsets = bad * KASAN_GRANULE_SIZE
        if addr is not None and pfn == cur_pfn:
            rel = addr - base
            offsets = offsets[offsets > rel] if direction > 0 else offsets[offsets < rel]
        if len(offsets):
            return base + int(offsets[0] if direction > 0 else offsets[-1])
    return None


def parse_jump(s: Session, text: str) -> int:
    """The position (events applied) a jump to ``N``, ``event N`` or ``line L`` goes to: the
    state after event N, or after the event on line L.  A text that is no number raises
    ValueError; a number outside the workload (or a line with no event) a KinspectError."""
    m = re.fullmatch(r"(?:line\s+)(\S+)", text)
    if m:
        found = s.index_of_line(_parse_int(m.group(1)))
        if found is None:
            raise KinspectError(
                f"no event on line {m.group(1)}"
                + (f" (the trace is read up to line {s.events[-1].line})" if s.loading else "")
            )
        return found + 1
    index = _parse_int(text.removeprefix("event").strip())
    if index < 0 or (index > s.total and not s.loading):
        raise KinspectError(f"event {index} is outside 0..{s.total}")
    return index
