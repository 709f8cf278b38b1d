"""The read API (kinspect/engine/view.py): what the views read from a machine.

Both engines answer every question alike, step by step over the demo workload; the answers
equal the machine's own reference state and hand-computed cases; and no view (widget, app,
report screen, the session's SchemeView) reads a Machine's internals past it.
"""

from __future__ import annotations

import ast
import inspect

import pytest

from conftest import DEMO, ROOT, native_missing
from kinspect.engine import native
from kinspect.engine.memory import PageState, pfn_to_page
from kinspect.engine.profile import load_profile
from kinspect.engine.view import (
    CacheInfo,
    FreeBlock,
    LargeKmalloc,
    MachineReader,
    MachineView,
    SlabInfo,
    machine_view,
)
from kinspect.engine.workload import parse_workload
from kinspect.session import Session
from kinspect.session import cursor as session_module

ENGINES = ("python", "native")


def session_on(engine: str, monkeypatch, workload=None) -> Session:
    """A session over the demo (or ``workload``), every scheme running, on ``engine``."""
    if engine == "native" and (why := native_missing()) is not None:
        pytest.skip(why)
    monkeypatch.setenv(native.VARIABLE, engine)
    s = Session(load_profile("x86_64"), workload or parse_workload(str(DEMO)))
    assert s.machine.engine == engine
    return s


# ------------------------------------------------------------------ both engines alike


def probe_pfns(s: Session, v: MachineView) -> list[int]:
    """The pfns worth asking about: every allocated page, every shadow slab page, and a few
    fixed ones (the first RAM pages, the kernel image, a max-order block, the last pfn)."""
    p = s.profile
    pfns = {
        1,
        2,
        3,
        4,
        5,
        0x9E,
        0x100,
        0x1000,
        p.kernel_image_phys >> p.page_shift,
        0x20123,
        p.max_pfn - 1,
    }
    for block in v.allocated_pages():
        pfns.update(range(block.pfn, block.pfn + (1 << block.order)))
    for name in s.scheme_names:
        pfns.update(v.shadow_slab_pages(name))
    return sorted(pfns)


def answers(s: Session) -> dict:
    """Every answer of the read API that the views use, at the session's position."""
    v = machine_view(s)
    p = s.profile
    pfns = probe_pfns(s, v)
    out: dict = {
        "allocated": v.allocated_pages(),
        "highest": v.highest_allocated_pfn(),
        "caches": v.caches(),
        "globals": v.global_variables(),
        "states": v.page_states(p.min_pfn, p.max_pfn - p.min_pfn).tobytes(),
        "sections": [(start, states.tobytes()) for start, states in v.for_each_section_states()],
    }
    for pfn in pfns:
        head = v.compound_head(pfn)
        out[pfn] = (
            v.page(pfn),
            v.find_free_block(pfn),
            v.find_slab(pfn),
            v.find_large_kmalloc(pfn),
            head,
            v.page_flags_word(pfn),
            v.dump_page(head),
        )
        slab = v.find_slab(pfn)
        if slab is not None:
            out[pfn, "tracks"] = [
                v.object_tracks(slab.base + i * slab.slot_size + 1) for i in range(slab.objects)
            ]
    for name in s.scheme_names:
        out[name] = (
            v.shadow_storage(name),
            v.footprint(name),
            v.shadow_windows(name),
            v.shadow_slabs(name),
            v.shadow_slab_pages(name),
            v.shadow_slab_heads(name),
            v.shadow_block_pfns(name),
        )
        for pfn in pfns:
            shadow = (
                v.shadow_bytes(name, v.page_address(pfn), p.page_size)
                if p.is_lowmem_pfn(pfn) and p.pfn_valid(pfn)
                else None
            )
            out[name, pfn] = (
                v.shadow_link(name, pfn),
                v.has_own_shadow(name, pfn),
                shadow,
                v.shadow_block_of_pfn(name, pfn),
            )
    return out


def test_both_engines_answer_alike_over_the_demo_step_by_step(monkeypatch):
    python, compiled = (session_on(e, monkeypatch) for e in ENGINES)
    seen = {"slab": 0, "large": 0, "free": 0, "tracks": 0, "attached": 0}
    while not python.at_end:
        a, b = answers(python), answers(compiled)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key], (python.position, key)
        for key, value in a.items():
            if isinstance(key, int):
                seen["slab"] += value[2] is not None
                seen["large"] += value[3] is not None
                seen["free"] += value[1] is not None
            elif isinstance(key, tuple) and key[1] == "tracks":
                seen["tracks"] += sum(t is not None and t.alloc is not None for t in value)
            elif isinstance(key, tuple):
                seen["attached"] += value[1]
        python.step()
        compiled.step()
    assert compiled.at_end and python.position == compiled.position
    # The walk asked questions that have answers, not only None.
    assert all(seen.values()), seen


def reference_answers(s: Session, pfn: int) -> tuple:
    """What the machine's own state says of a pfn (the engine's objects, read directly:
    the one place of these tests that does, to check the read API against them)."""
    m = s.machine
    slab = m.slab_of(pfn)
    head = m.compound_head(pfn)
    large = m.large.get(head)
    free = m.zones[s.profile.zone_of_pfn(pfn)].find_free_block(pfn)
    return (
        pfn_to_page(m.memmap, pfn),
        None
        if slab is None
        else (
            slab.cache.name,
            slab.pfn,
            slab.base,
            slab.inuse,
            slab.frozen,
            slab.cache.objects,
            slab.cache.size,
        ),
        None if large is None else (head, *large),
        free,
    )


def test_the_read_api_says_what_the_machines_own_state_says(monkeypatch):
    for engine in ENGINES:
        s = session_on(engine, monkeypatch)
        while True:
            v = machine_view(s)
            m = s.machine
            assert v.allocated_pages() == [
                (pfn, order, use) for pfn, (order, use) in sorted(m.pages.items())
            ]
            assert [(c.name, c.object_size, c.slot_size, c.objects_in_use) for c in v.caches()] == [
                (
                    c.name,
                    c.object_size,
                    c.size,
                    sum(m.slab_of(head).inuse for head in m.slub.slab_heads(c)),
                )
                for c in m.caches
            ]
            for pfn in probe_pfns(s, v):
                slab, large, free = (
                    v.find_slab(pfn),
                    v.find_large_kmalloc(pfn),
                    v.find_free_block(pfn),
                )
                assert (
                    v.page(pfn),
                    None
                    if slab is None
                    else (
                        slab.cache,
                        slab.pfn,
                        slab.base,
                        slab.inuse,
                        slab.frozen,
                        slab.objects,
                        slab.slot_size,
                    ),
                    large,
                    free,
                ) == reference_answers(s, pfn)
            if s.at_end:
                break
            s.step()


# Slab pages enough for several shadow slabs (16 blocks each), some freed between.
MANY_SLABS = ["task t 1", "func probe 0x100"]
MANY_SLABS += [f"p{i} = kmalloc 4096" for i in range(60)]
MANY_SLABS += [f"kfree p{i}" for i in range(10, 40, 3)]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_shadow_slabs_asked_in_pieces_are_those_of_the_whole_walk(engine, monkeypatch):
    """What the views ask of a blocks scheme's shadow slabs (the slabs of a pfn range, the
    slab heads, the pfns served, the block of a pfn) is what the walk of every slab says."""
    s = session_on(engine, monkeypatch, parse_workload("many.kw", MANY_SLABS))
    seen = set()
    while True:
        v = machine_view(s)
        for name in ("pageptr", "pageext"):
            slabs = v.shadow_slabs(name)
            heads = [slab.pfn for slab in slabs]
            assert v.shadow_slab_heads(name) == heads
            served = sorted(b.pfn for slab in slabs for b in slab.blocks if b.pfn is not None)
            assert v.shadow_block_pfns(name) == served
            block_of = {b.pfn: b.addr for slab in slabs for b in slab.blocks if b.pfn is not None}
            for pfn in probe_pfns(s, v):
                assert v.shadow_block_of_pfn(name, pfn) == block_of.get(pfn)
            for i, head in enumerate(heads):
                assert v.shadow_slabs(name, head, 1) == [slabs[i]]
                assert v.shadow_slabs(name, heads[0], head - heads[0]) == slabs[:i]
                assert v.shadow_slabs(name, head + 1, 1 << 30) == slabs[i + 1 :]
            seen.add(len(heads))
        if s.at_end:
            break
        s.step()
    assert max(seen) >= 3  # several shadow slabs were asked about


# ------------------------------------------------------------------ hand-computed cases

SMALL = [
    "task t 1",
    "func probe 0x100",
    "x = kmalloc 20",  # kmalloc-32
    "big = kmalloc 12000",  # a large kmalloc: order 2
    "kfree big",
]


def test_hand_computed_slab_large_kmalloc_free_block_and_reserved_page(monkeypatch):
    for engine in ENGINES:
        s = session_on(engine, monkeypatch, parse_workload("small.kw", SMALL))
        p = s.profile
        s.step(4)  # up to big = kmalloc 12000
        v = machine_view(s)
        x, big = s.runner.values["x"], s.runner.values["big"]
        # kmalloc(20) is served by kmalloc-32 (kmalloc_index(): 20 <= 32), from a new slab
        # whose first object it is (the cpu slab: frozen). The slot: 32 bytes, then
        # kasan_cache_create() (mm/kasan/generic.c) appends struct kasan_alloc_meta (a
        # kasan_track of 8 bytes and aux_stack[2] of 4 each: 16 bytes); the free meta fits
        # in the object; 48 is aligned to 32, create_boot_cache()'s alignment of a
        # power-of-two kmalloc size (mm/slab_common.c): 64 bytes, 64 to a 4 KiB page.
        pfn = v.addr_to_pfn(x)
        assert v.find_slab(pfn) == SlabInfo(
            cache="kmalloc-32",
            cache_id=v.find_cache("kmalloc-32").cache_id,
            pfn=pfn,
            pages=1,
            base=x,
            objects=64,
            inuse=1,
            frozen=True,
            object_size=32,
            slot_size=64,
        )
        assert v.find_cache("kmalloc-32") == CacheInfo(
            "kmalloc-32", v.page(pfn).cache, 32, 64, 64, (pfn,), 1
        )
        tracks = v.object_tracks(x + 19)
        assert tracks.addr == x and tracks.alloc_size == 20 and tracks.free is None
        assert tracks.alloc.pid == 1 and tracks.alloc.frame.func == "probe"
        # kmalloc(12000) > KMALLOC_MAX_CACHE_SIZE (8 KiB): kmalloc_large(), order
        # get_order(12000) = 2, a compound page of 4; every page of it answers.
        head = v.addr_to_pfn(big)
        for i in range(4):
            assert v.find_large_kmalloc(head + i) == LargeKmalloc(head, 2, 12000)
            assert v.compound_head(head + i) == head
        assert v.find_large_kmalloc(head + 4) is None and v.find_slab(head) is None
        s.step()  # kfree big
        v = machine_view(s)
        # The 4 pages went back to the buddy allocator, from pfn 4 (the lowest free order-2
        # block: RAM starts at pfn 1, the BIOS page 0 is not RAM), and cannot merge with
        # their buddy 0-3, which is not all RAM: a free block of order 2 from pfn 4.
        assert head == 4
        for i in range(4):
            assert v.find_free_block(head + i) == FreeBlock(4, 2)
        assert v.find_large_kmalloc(head) is None
        # A pfn in the middle of DMA32 nothing touched: its MAX_PAGE_ORDER (10) block.
        assert (
            v.find_free_block(0x20123) == FreeBlock(0x20000, p.max_order) == FreeBlock(0x20000, 10)
        )
        # The kernel image's pages are reserved at boot (memblock_reserve()): PG_reserved,
        # one reference, in no free block, no slab.
        image = p.kernel_image_phys >> p.page_shift
        page = v.page(image)
        assert page.state == PageState.RESERVED and page.PageReserved() and page.refcount == 1
        assert v.find_free_block(image) is None and v.find_slab(image) is None
        assert v.page_states(image, 1)[0] == PageState.RESERVED


def test_the_highest_allocated_pfn_is_the_highest_head_handed_out(monkeypatch):
    s = session_on("python", monkeypatch, parse_workload("small.kw", SMALL))
    v = machine_view(s)
    assert v.highest_allocated_pfn() == max(b.pfn for b in v.allocated_pages())


def test_a_reader_is_the_protocol_and_follows_the_machine_going_back(monkeypatch):
    s = session_on("python", monkeypatch, parse_workload("small.kw", SMALL))
    assert isinstance(machine_view(s), MachineReader)
    s.step(4)
    big = s.runner.values["big"]
    head = machine_view(s).addr_to_pfn(big)
    assert machine_view(s).find_large_kmalloc(head) is not None
    s.back(2)  # before kmalloc 12000: a restored machine
    assert machine_view(s).find_large_kmalloc(head) is None


def test_go_to_finds_globals_and_caches_through_the_read_api(monkeypatch):
    from kinspect.engine.errors import KinspectError
    from kinspect.session.queries import resolve_location

    s = session_on(
        "python",
        monkeypatch,
        parse_workload(
            "small.kw", ["task t 1", "g = global boot_command_line 100", "x = kmalloc 20"]
        ),
    )
    s.step(3)
    v = machine_view(s)
    g = s.runner.values["g"]
    assert v.global_variables()[0][:2] == (g, 100)
    assert resolve_location(s, "boot_command_line+8") == (v.addr_to_pfn(g), g + 8)
    # a cache's name is the whole text: kmalloc-32, not kmalloc minus 32
    head = v.addr_to_pfn(s.runner.values["x"])
    assert resolve_location(s, "kmalloc-32") == (head, v.page_address(head))
    with pytest.raises(KinspectError, match="kmem_cache kmalloc-8k has no slab now"):
        resolve_location(s, "kmalloc-8k")


# ------------------------------------------------------------------ views stay outside

# A Machine's internals, and the roads to them: ``.machine`` (the session's Machine), a
# session's or view's scheme objects (``scheme_named``, ``.scheme``).
FORBIDDEN = {
    "machine",
    "zones",
    "slab_of_pfn",
    "slub",
    "large",
    "memmap",
    "caches",
    "globals",
    "quarantine",
    "vm_areas",
    "freelist",
    "partial",
    "shadow_cache",
    "scheme_named",
}
# ``.scheme`` is also an attach event's scheme name: forbidden only on these objects.
SCHEME_HOLDERS = {"s", "session", "self.session", "view", "self.view"}

VIEW_FILES = (
    sorted((ROOT / "kinspect" / "widgets").glob("*.py"))
    + sorted((ROOT / "kinspect" / "screens").glob("*.py"))
    + [
        ROOT / "kinspect" / name
        for name in ("app.py", "commands/reports.py", "commands/ui.py", "session/queries.py")
    ]
)


def reaches_in(source: str) -> list[str]:
    """``line: expression`` of every read of a forbidden attribute in Python source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and (
            node.attr in FORBIDDEN
            or node.attr == "scheme"
            and ast.unparse(node.value) in SCHEME_HOLDERS
        ):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_check_finds_a_view_that_reaches_in():
    assert reaches_in("m = session.machine\nfree = m.zones[0].find_free_block(pfn)\n") == [
        "1: session.machine",
        "2: m.zones",
    ]
    assert reaches_in("read = s.scheme.read\nok = [a for a in att if a.scheme == 'flat']\n") == [
        "1: s.scheme"
    ]
    assert reaches_in("v = machine_view(session)\nv.find_slab(pfn)\n") == []


@pytest.mark.parametrize("path", VIEW_FILES, ids=lambda p: p.name)
def test_no_view_reads_machine_internals(path):
    assert reaches_in(path.read_text()) == [], f"{path.name} reads past kinspect.engine.view"


def test_the_sessions_scheme_view_reads_through_the_read_api():
    source = inspect.getsource(session_module.SchemeView)
    assert reaches_in(source) == []
