"""Checkpoints (kinspect/session/checkpoints.py): a restore gives back the machine that was taken,
which then runs on exactly as the one that never went back; the big buffers live once in the
chunk store, shared between checkpoints, and no restored machine can change them."""

from __future__ import annotations

import pickle
import random
import zlib
from array import array
from hashlib import blake2b
from pathlib import Path

import numpy as np
import pytest

from kinspect.engine.fingerprint import Fingerprinter, fingerprint
from kinspect.engine.memory import FREE_PAGE, PAGE_DTYPE
from kinspect.engine.profile import load_profile
from kinspect.engine.workload import parse_workload
from kinspect.session import Session, load_trace, merge_ranges
from kinspect.session.checkpoints import CHUNK_MIN, PIECE, CheckpointStore

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "samples" / "workloads" / "demo.kw")
TRACE = str(ROOT / "samples" / "traces" / "kmem-trace-x86_64.txt.xz")
TRACE_SLICE = 3000  # events of the real trace replayed (from its start)


def state_of(machine) -> dict:
    """What two machines in the same state share: the state fingerprint (struct pages, the
    reference shadow of what is allocated, free areas, slab objects, reports, failures,
    summary), and every scheme's shadow of every page in use and of what is allocated."""
    out = dict(fingerprint(machine))
    ranges = merge_ranges(Fingerprinter(machine).allocated_ranges())
    pfns = sorted(machine.pages)
    for scheme in machine.schemes:
        h = blake2b(digest_size=16)
        for start, size in ranges:
            h.update(scheme.read(start, size))
        for pfn in pfns:
            h.update(scheme.read(machine.page_address(pfn), 1 << machine.page_shift))
            h.update(repr(scheme.shadow_link(pfn)).encode())
        out[f"shadow of {scheme.name}"] = h.hexdigest()
    return out


def demo(**kwargs) -> Session:
    return Session(load_profile("x86_64"), parse_workload(DEMO), **kwargs)


def trace_slice(**kwargs) -> Session:
    return Session(load_profile("x86_64"), load_trace(TRACE), **kwargs)


def buffers_of(obj) -> list:
    """The buffers reachable from ``obj`` that a checkpoint keeps as chunks."""
    found: dict[int, object] = {}

    class Walker(pickle.Pickler):
        def persistent_id(self, o):
            t = type(o)
            if t is bytearray or t is array or (t is np.ndarray and not o.dtype.hasobject):
                found[id(o)] = o
            return None

    Walker(_Sink(), protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return list(found.values())


class _Sink:
    def write(self, data) -> None:
        """Nothing kept."""


@pytest.mark.parametrize(
    "make,events,every",
    [(demo, None, 2), (trace_slice, TRACE_SLICE, 64)],
    ids=["demo", "real trace"],
)
def test_every_checkpoint_restores_the_machine_and_it_runs_on_alike(make, events, every):
    s = make(checkpoint_every=every)
    events = events or s.total
    reference = make()  # steps forward only, never restored
    expected = {0: state_of(reference.machine)}
    for _ in range(events):
        s.step()  # one at a time: a checkpoint every 4 * every
        reference.step()
        if reference.position % (4 * every) == 0 or reference.position == events:
            expected[reference.position] = state_of(reference.machine)
    store = s.checkpoints
    taken = store.positions()
    assert len(taken) >= 3 and set(taken) <= set(expected)
    for pos in taken:
        machine, state = store.restore(store.at(pos))
        assert state_of(machine) == expected[pos], pos
        runner = s.driver.runner(machine, pos, state)
        for _ in range(pos, events):
            runner.step()
        assert state_of(machine) == expected[events], pos
        assert [r.bug_type for r in machine.reports] == [
            r.bug_type for r in reference.machine.reports
        ]


def test_going_back_through_the_session_gives_the_state_of_a_machine_that_never_went_back():
    s = trace_slice(checkpoint_every=64)
    reference = trace_slice()
    s.step(2000)
    s.jump(700)  # a restore of a checkpoint, and a replay
    s.step(300)
    reference.step(1000)
    assert state_of(s.machine) == state_of(reference.machine)


def test_a_restored_machine_that_changes_never_changes_a_stored_chunk():
    s = demo()
    s.step(s.total)
    store = CheckpointStore()
    ckpt = store.take(s.position, s.machine)
    first = store.restore(ckpt)
    taken = state_of(first)
    stored = [bytes(store.chunks[serial]) for serial in ckpt.chunks]
    buffers = buffers_of(first)
    assert sum(b.nbytes if isinstance(b, np.ndarray) else len(b) for b in buffers) > 1 << 20
    before = [bytes(memoryview(b).cast("B")) for b in buffers]
    for b in buffers:  # every buffer of the restored machine overwritten
        if isinstance(b, np.ndarray):
            b.view(np.uint8).reshape(-1)[:] = 0xA5
        elif isinstance(b, bytearray):
            b[:] = b"\xa5" * len(b)
        else:
            b[:] = array(b.typecode, [7] * len(b))
    # (checked on the buffers, not through the machine: an index overwritten, such as a per-page
    # scheme's chunk directory, points nowhere)
    assert [bytes(memoryview(b).cast("B")) for b in buffers] != before
    assert [store.chunks[serial] for serial in ckpt.chunks] == stored
    assert state_of(store.restore(ckpt)) == taken


def test_a_checkpoint_stores_only_the_chunks_dirtied_since_the_last_one():
    s = trace_slice()
    s.step(2000)
    store = CheckpointStore()
    first = store.take(0, s.machine)
    again = store.take(1, s.machine)  # nothing changed: only its pickle is new
    assert again.nbytes == len(again.blob) and again.chunks == first.chunks
    s.step(10)
    after = store.take(2, s.machine)
    dirtied = set(after.chunks) - set(first.chunks)
    assert 0 < len(dirtied) < len(after.chunks) // 10
    new = after.nbytes - len(after.blob)
    assert new == sum(store.chunks.stored(serial) for serial in dirtied)
    assert new < after.size // 10
    assert store.stats()["stored_bytes"] < store.stats()["full_bytes"] // 2


def test_a_restored_machine_taken_again_shares_every_chunk():
    s = demo()
    s.step(s.total)
    store = CheckpointStore()
    ckpt = store.take(0, s.machine)
    machine = store.restore(ckpt)
    again = store.take(1, machine)
    assert again.nbytes == len(again.blob) and sorted(again.chunks) == sorted(ckpt.chunks)


def test_buffers_keep_their_kind_shape_and_aliases():
    structs = np.empty(64, dtype=PAGE_DTYPE)
    structs[:] = FREE_PAGE
    structs["order"][3] = 2
    grid = np.arange(256, dtype=np.int64).reshape(16, 16)
    shared = bytearray(b"\x01" * 512)
    state = {
        "structs": structs,
        "grid": grid,
        "meta": array("Q", range(64)),
        "blob": bytes(range(256)) * 2,
        "small": bytearray(b"\xfc" * (CHUNK_MIN - 1)),
        "twice": [shared, shared],
        "equal": [bytearray(1024), bytearray(1024)],
    }
    store = CheckpointStore()
    ckpt = store.take(0, state)
    assert len(ckpt.blob) < 1024  # the big buffers are chunks, not in the pickle
    got = store.restore(ckpt)
    assert got["structs"].dtype == PAGE_DTYPE and np.array_equal(got["structs"], structs)
    assert got["structs"].flags.writeable and got["grid"].flags.writeable
    assert got["grid"].shape == (16, 16) and np.array_equal(got["grid"], grid)
    assert got["meta"].typecode == "Q" and got["meta"] == state["meta"]
    assert got["blob"] == state["blob"] and got["small"] == state["small"]
    a, b = got["twice"]
    assert a is b and a == shared  # one buffer reached twice stays one
    c, d = got["equal"]
    assert c is not d and c == d == bytearray(1024)  # two equal ones: one chunk, two buffers
    assert len(set(ckpt.chunks)) == len(ckpt.chunks) - 1
    c[0] = 1
    assert d[0] == 0


def test_a_big_buffer_is_stored_in_pieces_and_one_byte_written_stores_one_piece():
    sections = np.empty(3 * PIECE // PAGE_DTYPE.itemsize + 5, dtype=PAGE_DTYPE)
    sections[:] = FREE_PAGE
    shadow = bytearray(b"\xff" * (2 << 20))
    shadow[12345] = 0
    meta = array("Q", range(PIECE // 8 + 1))
    state = [sections, shadow, meta, shadow]
    store = CheckpointStore()
    first = store.take(0, state)
    held = sections.nbytes + len(shadow) + 8 * len(meta)
    assert len(first.blob) < 1024 and first.size == len(first.blob) + held
    assert first.nbytes - len(first.blob) < held // 8  # the 0xff pieces: stored once
    got = store.restore(first)
    assert np.array_equal(got[0], sections) and got[0].dtype == PAGE_DTYPE
    assert got[1] == shadow and got[1] is got[3] and got[2] == meta
    shadow[(1 << 20) + 7] = 0xFC  # one byte of one piece
    sections["refcount"][PIECE // PAGE_DTYPE.itemsize + 1] = 1
    second = store.take(1, state)
    assert 0 < second.nbytes - len(second.blob) <= 2 * PIECE
    assert len(set(second.chunks) - set(first.chunks)) == 2
    got = store.restore(second)
    assert got[1] == shadow and np.array_equal(got[0], sections)
    assert store.restore(first)[1][(1 << 20) + 7] == 0xFF


def test_a_restore_in_pieces_stops_within_a_big_buffer_and_within_the_graph():
    """A buffer made anew of many pieces is made PAUSE_PIECES pieces at a time, and the pickle
    between buffers a frame at a time (idle work: each piece of it short); what it gives is
    what a restore made at once gives, each kind of buffer alike."""
    from kinspect.session.checkpoints import PAUSE_PIECES, RestoreInPieces

    def in_pieces(state):
        """(pieces of work, the state restored that way, the state restored at once)"""
        store = CheckpointStore()
        ckpt = store.take(0, state)
        restore = RestoreInPieces(store, ckpt)
        steps = 1
        while not restore.work(0.0):
            steps += 1
        return steps, restore.result, store.restore(ckpt), len(zlib.decompress(ckpt.blob))

    assert PAUSE_PIECES * PIECE <= 1 << 20  # at most 1 MiB of a buffer made in one piece
    pieces = 400
    shadow = bytearray(b"\xfc" * (pieces * PIECE - 100))
    shadow[5 * PIECE + 1] = 0
    sections = np.zeros(pieces * PIECE // 8, dtype=np.int64)
    sections[::4097] = np.arange(len(sections[::4097]))
    steps, got, at_once, _ = in_pieces({"shadow": shadow, "sections": sections})
    assert steps >= 2 * (pieces // PAUSE_PIECES)
    for g in (got, at_once):
        assert type(g["shadow"]) is bytearray and g["shadow"] == shadow
        assert g["sections"].dtype == np.int64 and np.array_equal(g["sections"], sections)

    graph = [(i, str(i)) for i in range(60_000)]  # a pickle of several frames, no buffer
    steps, got, at_once, blob = in_pieces(graph)
    assert blob > 4 * 65536 and steps >= blob // 65536
    assert got == at_once == graph


def test_thinning_frees_the_chunks_only_dropped_checkpoints_held():
    store = CheckpointStore(budget=400 << 10, every=1)
    common = bytearray(b"\x07" * (64 << 10))
    own = [random.Random(pos).randbytes(16 << 10) for pos in range(40)]  # (not compressible)
    for pos in range(40):
        store.take(pos, [common, bytearray(own[pos])])
    assert store.every > 1  # thinned, some of them more than once
    kept = store.positions()
    assert 0 in kept and len(kept) < 40
    serials = {serial for pos in kept for serial in store.at(pos).chunks}
    assert len(store.chunks) == len(serials)
    assert store.chunks.nbytes == sum(store.chunks.stored(x) for x in serials)
    assert store.stats()["chunk_bytes"] < 400 << 10
    for pos in kept:
        assert store.restore(store.at(pos))[1] == own[pos]


def test_a_regular_checkpoint_asked_where_a_dense_one_is_becomes_it():
    store = CheckpointStore()
    store.take(0, b"boot")
    dense = store.take(5, bytearray(4096), dense=True)
    assert store.positions(dense=True) == [5] and store.dense_bytes == dense.nbytes
    assert store.take(5, bytearray(4096), dense=True) is None
    assert store.take(5, bytearray(4096)) is dense
    assert store.positions() == [0, 5] and store.positions(dense=True) == []
    assert store.dense_bytes == 0 and store.last_regular(7) == 5


def test_the_standby_makes_spares_and_a_ladder_behind_a_position_in_pieces():
    """Standby alone (no Session): from the checkpoints of a store and a driver, its idle work
    makes live machines at position - 1 and - 2 in the state stepping leaves there, lays the
    ladder's rungs below them as dense checkpoints (on the first spare's way), and gives a
    spare up when asked."""
    from kinspect.engine.machine import Machine
    from kinspect.session.checkpoints import LADDER_STEP, Standby
    from kinspect.session.sources import WorkloadDriver

    profile = load_profile("x86_64")
    workload = parse_workload(DEMO)
    workload.bind(profile)
    driver = WorkloadDriver(workload)
    machine = Machine(profile)
    runner = driver.runner(machine, 0)
    store = CheckpointStore()
    store.take(0, (machine, driver.state(runner)))
    expected = {0: state_of(machine)}
    position = len(driver.events)
    assert position > 2 + 1 + LADDER_STEP
    for pos in range(1, position + 1):
        runner.step()
        expected[pos] = state_of(machine)
    standby = Standby(store, driver, wanted=2)
    jobs = []
    while standby.work(position):
        jobs.append(standby.job)
    assert sorted(standby.positions()) == [position - 2, position - 1]
    for pos, spare in standby.machines().items():
        assert state_of(spare) == expected[pos]
    top = position - 3  # the ladder's top rung
    assert top in store.positions(dense=True)
    assert state_of(store.restore(store.at(top))[0]) == expected[top]
    # laid by the first spare's job on its way: no job (a machine more) of its own
    assert all(job is None or job[1] for job in jobs)
    spare = standby.take(position - 1)
    assert spare.position == position - 1 and standby.positions() == [position - 2]
    assert standby.take(position - 3) is None  # none at or before: a restore
    standby.drop()
    assert standby.positions() == [] and standby.machines() == {}


def test_a_restore_in_place_writes_only_the_pieces_that_differ_into_the_replaced_buffers():
    """restore(ckpt, reuse=buffers): the buffers of the state it replaces (as a restore
    listed them) of more than one piece hold the checkpoint's content afterwards, the same
    objects (one of another size since: a new one); the result equals a restore made anew,
    the store unchanged."""
    sections = np.empty(3 * PIECE // PAGE_DTYPE.itemsize, dtype=PAGE_DTYPE)
    sections[:] = FREE_PAGE
    shadow = bytearray(b"\xff" * (2 << 20))
    meta = array("Q", range(PIECE // 8 + 1))
    state = {
        "sections": sections,
        "shadow": shadow,
        "meta": meta,
        "again": shadow,
        "odd": bytearray(b"\x01" * (PIECE + 10)),
        "small": bytearray(1000),
    }
    store = CheckpointStore()
    first = store.take(0, state)
    shadow[(1 << 20) + 7] = 0xFC
    sections["refcount"][5] = 1
    meta[3] = 99
    second = store.take(1, state)
    stored = {serial: store.chunks[serial] for serial in first.chunks + second.chunks}
    listed: list = []
    live = store.restore(second, buffers=listed)
    assert [id(b) for b in listed] == [
        id(live[k]) for k in ("sections", "shadow", "meta", "odd", "small")
    ]
    live["odd"].extend(b"\x02")  # resized since: not reused, a new one
    again: list = []
    back = store.restore(first, reuse=listed, buffers=again)
    assert back["shadow"] is live["shadow"] and back["again"] is back["shadow"]
    assert back["sections"] is live["sections"] and back["meta"] is live["meta"]
    assert back["odd"] is not live["odd"] and back["odd"] == bytearray(b"\x01" * (PIECE + 10))
    assert back["small"] is not live["small"]  # one piece: made anew
    fresh = store.restore(first)
    assert back["shadow"] == fresh["shadow"] and back["shadow"][(1 << 20) + 7] == 0xFF
    assert np.array_equal(back["sections"], fresh["sections"]) and back["meta"] == fresh["meta"]
    assert {serial: store.chunks[serial] for serial in stored} == stored
    assert [id(b) for b in again] == [
        id(b) for b in (back["sections"], back["shadow"], back["meta"], back["odd"], back["small"])
    ]


def sizes(buffers: list) -> list[int]:
    """The bytes of each buffer a take listed (the entries of a table: Machine.tables)."""
    return [len(b) if type(b) is dict else len(memoryview(b).cast("B")) for b in buffers]


def test_a_take_and_a_restore_in_pieces_give_what_take_and_restore_give():
    """TakeInPieces / RestoreInPieces (idle work): the pickle or unpickle stopped at every
    buffer (a piece of no time) and resumed; the checkpoint and the state are those of a
    take and a restore made at once; a take given up gives its chunks back, and a restore
    holds its checkpoint's chunks while that checkpoint is dropped."""
    from kinspect.session.checkpoints import RestoreInPieces

    s = trace_slice()
    s.jump(TRACE_SLICE)
    state = (s.machine, s.driver.state(s.runner))
    store = CheckpointStore()
    listed: list = []
    whole = store.take(0, state, buffers=listed)
    held = store.chunks.nbytes
    take = store.take_in_pieces(7, state, dense=True)
    pieces = 1
    while not take.work(0.0):
        pieces += 1
    assert pieces > 20 and take.checkpoint is store.at(7) and store.positions(dense=True) == [7]
    assert take.checkpoint.blob == whole.blob and take.checkpoint.chunks == whole.chunks
    assert store.chunks.nbytes == held
    assert sizes(take.buffers) == sizes(listed)
    given_up = store.take_in_pieces(9, state)
    for _ in range(5):
        given_up.work(0.0)
    given_up.abandon()
    assert not store.has(9) and store.chunks.nbytes == held
    assert store.take_in_pieces(7, state) is None  # the dense one became regular
    assert store.positions() == [0, 7] and store.positions(dense=True) == []

    restore = RestoreInPieces(store, store.at(7))
    restore.work(0.0)
    store.thin()  # drops 7's pickle, not the chunks the restore holds
    store._drop(store._regular.pop(7))
    while not restore.work(0.0):
        pass
    machine, _state = restore.result
    assert state_of(machine) == state_of(s.machine)
    assert [type(b) for b in restore.buffers] == [type(b) for b in listed]
    assert store.chunks.nbytes == held  # only checkpoint 0's chunks now
    store._drop(store._regular.pop(0))  # the last: no chunk left (none kept by what gave up)
    assert len(store.chunks) == 0 and store.chunks.nbytes == 0


def test_a_machine_s_page_table_is_kept_as_one_chunk_and_each_restore_gets_its_own_copy():
    """Machine.tables (``pages``: head pfn -> (order, use)) leave the pickle as one chunk each,
    stored once while no page is allocated or freed; every restore makes a dict of its own,
    equal to the one taken, which the restored machine may change without touching the
    next restore's."""
    s = trace_slice()
    s.step(500)
    store = CheckpointStore()
    first = store.take(0, (s.machine, s.driver.state(s.runner)))
    pages = dict(s.machine.pages)
    assert len(pages) > 50
    tables = [
        x
        for x in set(first.chunks)
        if store.chunks[x][:2] == b"\x80\x05" and pickle.loads(store.chunks[x]) == pages
    ]
    assert len(tables) == 1  # a chunk of its own, not in the checkpoint's pickle
    again = store.take(1, (s.machine, s.driver.state(s.runner)))
    assert again.chunks == first.chunks  # the same table: the same chunk
    one = store.restore(first)[0]
    two = store.restore(first)[0]
    assert one.pages == two.pages == pages and one.pages is not two.pages
    head, (order, _use) = next(iter(pages.items()))
    one.free_pages(head, order)
    assert head not in one.pages and store.restore(first)[0].pages == pages
    assert state_of(two) == state_of(s.machine)


def test_a_restore_in_place_copies_the_table_into_the_replaced_machine_s_table(monkeypatch):
    """A restore in place gives the restored machine the replaced machine's table object,
    holding the checkpoint's entries; a table warmed in idle time is not unpickled again."""
    from kinspect.session import checkpoints
    from kinspect.session.written import Buffers

    s = trace_slice()
    s.step(500)
    store = CheckpointStore()
    ckpt = store.take(0, (s.machine, s.driver.state(s.runner)))
    pages = dict(s.machine.pages)
    listed = Buffers()
    live = store.restore(ckpt, buffers=listed)[0]
    table = live.pages
    table[1 << 40] = (0, next(iter(pages.values()))[1])  # the replaced machine's own change
    store.chunks._tables.clear()  # (forgotten: the next restore must unpickle it...)
    assert store.warm(1)  # (...unless idle work did: a table below position 1 unpickled)
    assert not store.warm(1)  # nothing left to warm
    loads = []
    real_loads = pickle.loads
    monkeypatch.setattr(checkpoints.pickle, "loads", lambda b: loads.append(1) or real_loads(b))
    again = store.restore(ckpt, reuse=listed, buffers=Buffers())[0]
    assert again.pages is table and again.pages == pages and not loads


def test_the_chunks_kept_decompressed_stay_within_their_budget(monkeypatch):
    from kinspect.session import checkpoints

    monkeypatch.setattr(checkpoints, "RECENT_BYTES", 100 << 10)
    chunks = checkpoints.ChunkStore()
    rng = random.Random(3)
    pieces = [rng.randbytes(rng.randrange(1, PIECE)) for _ in range(40)]
    serials = [chunks.intern(i, p)[0] for i, p in enumerate(pieces)]
    for _ in range(200):
        k = rng.randrange(40)
        assert chunks[serials[k]] == pieces[k]
        recent = chunks._recent
        assert chunks._recent_bytes == sum(map(len, recent.values())) <= 100 << 10
        assert list(recent)[-1] == serials[k]  # the most recently used last
    chunks.release(serials[:20])
    assert chunks._recent_bytes == sum(map(len, chunks._recent.values()))
