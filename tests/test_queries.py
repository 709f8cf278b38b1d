"""The inspector's questions about a session (kinspect/session/queries.py), without a UI:
go-to targets, breakpoints, jumps and the next poisoned granule, on both engines."""

from __future__ import annotations

import pytest

from kinspect.engine.errors import KinspectError
from kinspect.engine.kasan import KASAN_GRANULE_SIZE
from kinspect.engine.view import machine_view
from kinspect.session import Breakpoint
from kinspect.session.queries import (
    find_poisoned_granule,
    parse_breakpoint,
    parse_jump,
    resolve_location,
)

# line 1: the task; line 2: a global; 3: a 20-byte kmalloc (kmalloc-32); 4: its kfree
LINES = ["task t 1", "g = global boot_command_line 100", "x = kmalloc 20", "kfree x"]


@pytest.fixture
def small(engine, make_session):
    """The session over LINES after its kmalloc (3 events applied)."""
    s = make_session(LINES, engine)
    s.step(3)
    return s


def test_go_to_an_address_a_pfn_a_variable_and_a_cache(small):
    s = small
    v = machine_view(s)
    x = s.runner.values["x"]
    head = v.addr_to_pfn(x)
    assert resolve_location(s, hex(x)) == (head, x)
    assert resolve_location(s, str(x)) == (head, x)
    assert resolve_location(s, f"pfn {head:#x}") == (head, v.page_address(head))
    assert resolve_location(s, "x + 0x10") == (head, x + 16)
    assert resolve_location(s, "x-8") == (v.addr_to_pfn(x - 8), x - 8)
    assert resolve_location(s, "kmalloc-32") == (head, v.page_address(head))


def test_go_to_says_what_it_cannot_name(small):
    p = small.profile
    with pytest.raises(KinspectError, match="nothing called 'nosuch'"):
        resolve_location(small, "nosuch")
    with pytest.raises(KinspectError, match="is not RAM"):
        resolve_location(small, f"pfn {p.max_pfn:#x}")
    with pytest.raises(KinspectError, match="bad number in 'pfn 0xzz'"):
        resolve_location(small, "pfn 0xzz")
    with pytest.raises(KinspectError, match="kmem_cache kmalloc-8k has no slab now"):
        resolve_location(small, "kmalloc-8k")


def test_breakpoints_by_line_pfn_address_and_attach(small):
    s = small
    x = s.runner.values["x"]
    assert parse_breakpoint(s, "attach") == Breakpoint("attach")
    assert parse_breakpoint(s, "line 4") == Breakpoint("line", 4)
    assert parse_breakpoint(s, "4") == Breakpoint("line", 4)
    assert parse_breakpoint(s, "pfn 0x100") == Breakpoint("pfn", 0x100)
    assert parse_breakpoint(s, "addr x+8") == Breakpoint("addr", x + 8)
    assert parse_breakpoint(s, "x") == Breakpoint("addr", x)
    with pytest.raises(KinspectError, match="is not RAM"):
        parse_breakpoint(s, f"pfn {s.profile.max_pfn:#x}")


def test_jumps_by_event_and_by_line(small):
    s = small
    assert parse_jump(s, "2") == 2
    assert parse_jump(s, "event 4") == 4
    assert parse_jump(s, "line 3") == 3  # the state after the kmalloc
    with pytest.raises(KinspectError, match="event 5 is outside 0..4"):
        parse_jump(s, "5")
    with pytest.raises(KinspectError, match="no event on line 9"):
        parse_jump(s, "line 9")
    with pytest.raises(ValueError):
        parse_jump(s, "soon")


def test_the_next_poisoned_granule_is_the_kmalloc_tail(small):
    """kmalloc(20) in kmalloc-32: granules 0 and 1 are whole (00), granule 2 holds 4 bytes
    (04): the first poisoned granule after the object's start is 16 bytes in
    (mm/kasan/common.c, __kasan_kmalloc -> kasan_poison_last_granule)."""
    s = small
    x = s.runner.values["x"]
    assert find_poisoned_granule(s, x, 1) == x + 2 * KASAN_GRANULE_SIZE
    before = find_poisoned_granule(s, x, -1)
    assert before is not None and before < x
