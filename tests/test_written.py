"""The pages written since a checkpoint (kinspect/session/written.py): the kernel's asynchronous
userfaultfd write-protect and PAGEMAP_SCAN say which pieces of a machine's buffers a restore in
place must look at; every write is seen, wherever it lands in a buffer, and a restore that
trusts them gives what one that compares every byte gives."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from kinspect.session import checkpoints
from kinspect.session import written as written_pages
from kinspect.session.checkpoints import PIECE, CheckpointStore
from kinspect.session.written import PAGE, Buffers
from test_checkpoint import TRACE_SLICE, state_of, trace_slice

TRACKER = written_pages.tracker()
needs_tracker = pytest.mark.skipif(
    TRACKER is None, reason="the kernel offers no userfaultfd write-protect with PAGEMAP_SCAN"
)


def armed(*bufs) -> Buffers:
    listed = Buffers(bufs)
    listed.serials = [tuple(range(-(-memoryview(b).nbytes // PIECE))) for b in bufs]
    TRACKER.arm(listed)
    return listed


@needs_tracker
def test_a_write_after_arming_names_its_piece_once_and_an_edge_when_it_changed():
    shadow = bytearray(8 * PIECE)
    listed = armed(shadow)
    serials, look, at, n = TRACKER.since(listed.armed, listed, PIECE)[0]
    assert (at, n) == TRACKER.address_of(shadow) and serials == tuple(range(8))
    assert look == {}  # nothing written, the bytes outside the pages armed as they were
    shadow[3 * PIECE + 100] = 0xFC
    look = TRACKER.since(listed.armed, listed, PIECE)[0][1]
    assert look[3] == (3 * PIECE, 4 * PIECE) and set(look) <= {2, 3}  # (the page it is on)
    # the pages found written were armed again: the next look finds nothing
    assert TRACKER.since(listed.armed, listed, PIECE)[0][1] == {}
    # the bytes outside the pages armed (on pages shared with malloc's neighbours: a
    # bytearray's buffer is not page-aligned) are compared with what they were when armed
    head, tail = listed.armed.places[0][4:]
    assert head and tail and len(head) < PAGE and len(tail) < PAGE
    shadow[0] = shadow[-1] = 1
    look = TRACKER.since(listed.armed, listed, PIECE)[0][1]
    assert look == {0: (0, len(head)), 7: (n - len(tail), n)}
    shadow[0] = shadow[-1] = 0  # as they were: nothing to look at
    assert TRACKER.since(listed.armed, listed, PIECE)[0][1] == {}


@needs_tracker
def test_a_numpy_array_and_an_array_are_tracked_too():
    records = np.zeros(4 * PIECE // 8, np.uint64)
    words = array("Q", bytes(4 * PIECE))
    listed = armed(records, words)
    records[PIECE // 8 + 3] = 1
    words[2 * PIECE // 8 + 5] = 1
    first, second = TRACKER.since(listed.armed, listed, PIECE)
    assert 1 in first[1] and first[1][1] == (PIECE, 2 * PIECE)
    assert 2 in second[1] and second[1][2] == (2 * PIECE, 3 * PIECE)


@needs_tracker
def test_an_arming_by_another_list_or_a_buffer_moved_says_nothing():
    shadow, other = bytearray(4 * PIECE), bytearray(4 * PIECE)
    listed = armed(shadow, other)
    armed(shadow)  # armed again with another list: the first one's arming of it is void
    found = TRACKER.since(listed.armed, listed, PIECE)
    assert found[0] is None and found[1] is not None
    other.extend(bytes(PIECE))  # (moved, or grown)
    assert TRACKER.since(listed.armed, listed, PIECE)[1] is None


def big_state() -> dict:
    return {
        "shadow": bytearray(b"\xff" * (2 << 20)),
        "records": np.arange(3 * PIECE // 8, dtype=np.uint64),
        "words": array("Q", range(PIECE // 8 + 1)),
        "small": bytearray(1000),
    }


@needs_tracker
def test_a_restore_in_place_finds_every_write_and_looks_only_at_those(monkeypatch):
    """Writes into the middle of a buffer, into its first and last bytes (on pages it shares
    with its neighbours, not armed) and into a numpy array are undone by a restore that looks
    at those pieces only."""
    store = CheckpointStore()
    ckpt = store.take(0, big_state())
    listed = Buffers()
    live = store.restore(ckpt, buffers=listed)
    assert listed.armed is not None and listed.armed.places[0] is not None
    live["shadow"][(1 << 20) + 7] = 0
    live["shadow"][0] = 0
    live["shadow"][-1] = 0
    live["records"][PIECE // 8 + 1] = 0
    looked: list = []
    since = written_pages.WriteTracker.since

    def spied(self, armed, buffers, piece, rearm=True):
        found = since(self, armed, buffers, piece, rearm)
        looked.extend(None if f is None else dict(f[1]) for f in found)
        return found

    monkeypatch.setattr(written_pages.WriteTracker, "since", spied)
    again = Buffers()
    back = store.restore(ckpt, reuse=listed, buffers=again)
    fresh = store.restore(ckpt)
    assert back["shadow"] is live["shadow"] and back["shadow"] == fresh["shadow"]
    assert np.array_equal(back["records"], fresh["records"]) and back["words"] == fresh["words"]
    shadow, records = looked[0], looked[1]
    at = TRACKER.address_of(back["shadow"])[0]
    pages = [(at + k) // PAGE * PAGE - at for k in (0, (1 << 20) + 7, (2 << 20) - 1)]
    middle = (1 << 20) // PIECE
    assert shadow[middle] == (middle * PIECE, (middle + 1) * PIECE)
    for i, (lo, hi) in shadow.items():  # the pieces on a page written, and the edges
        assert any(lo < p + PAGE and hi > p for p in pages) or hi - lo < PAGE, (i, lo, hi)
    assert len(shadow) <= 5 and 1 in records


def test_without_the_kernel_s_help_a_restore_in_place_compares_every_piece(monkeypatch):
    """No tracker (not Linux, an older kernel, no userfaultfd): every piece is compared, and
    the restore is the same."""
    monkeypatch.setattr(written_pages, "tracker", lambda: None)
    store = CheckpointStore()
    ckpt = store.take(0, big_state())
    listed = Buffers()
    live = store.restore(ckpt, buffers=listed)
    assert listed.armed is None
    live["shadow"][(1 << 20) + 7] = 0
    live["shadow"][0] = 0
    back = store.restore(ckpt, reuse=listed, buffers=Buffers())
    assert back["shadow"] is live["shadow"] and back["shadow"] == b"\xff" * (2 << 20)


def test_going_back_and_forth_on_a_trace_with_tracked_restores_gives_the_machine_anew(
    monkeypatch,
):
    """Every buffer a restore in place refills holds its checkpoint's chunks afterwards, and
    the session's machine at each stop is the one replayed from the start to there."""
    refill = checkpoints._refill
    refills = {"all": 0, "tracked": 0}

    def checked(old, serials, kind, meta, data, since, tracker):
        done = refill(old, serials, kind, meta, data, since, tracker)
        if done is not None:
            raw = old.reshape(-1).view(np.uint8) if kind == "n" else memoryview(old).cast("B")
            assert bytes(raw) == b"".join(data[s] for s in serials)
            refills["all"] += 1
            refills["tracked"] += since is not None
        return done

    monkeypatch.setattr(checkpoints, "_refill", checked)
    session = trace_slice()
    moves = [("jump", 2500), ("back", 1), ("back", 1), ("back", 7), ("step", 3), ("back", 2)]
    moves += [("back", 1)] * 6 + [("jump", 1200), ("back", 1), ("back", 300), ("back", 1)]
    for move, n in moves:
        if move == "jump":
            session.jump(min(n, TRACE_SLICE))
        elif move == "back":
            session.back(n)
        else:
            for _ in range(n):
                session.step()
        while session.idle_work():
            pass
    stop = session.position
    again = trace_slice()
    again.jump(stop)
    assert state_of(session.machine) == state_of(again.machine)
    assert refills["all"] > 0
    if TRACKER is not None:
        assert refills["tracked"] > refills["all"] // 2


@needs_tracker
def test_a_take_after_a_restore_compares_only_the_pieces_written_since(monkeypatch):
    """A take of the buffers a restore armed takes the pieces not written since as the chunks
    they were, without comparing them; the written ones are stored anew, and the checkpoint
    restores what the machine held."""
    store = CheckpointStore()
    first = store.take(0, big_state())
    listed = Buffers()
    live = store.restore(first, buffers=listed)
    live["shadow"][(1 << 20) + 7] = 0x12
    live["records"][5] = 99
    interned: list[int] = []
    intern = checkpoints.ChunkStore.intern

    def spied(self, key, piece):
        interned.append(len(piece))
        return intern(self, key, piece)

    monkeypatch.setattr(checkpoints.ChunkStore, "intern", spied)
    second = store.take(1, live, buffers=Buffers(), previous=listed)
    # 70 pieces in all (64 of shadow, 3 of records, 2 of words, small): small (one piece,
    # never armed), and the pieces on the pages written (a page may straddle two pieces):
    # 3 to 5. The kernel may say more pages were written than were (seen here with other test
    # modules loaded: a page of words, written by no one, reported written): never fewer.
    assert 3 <= len(interned) <= 10
    assert len(set(second.chunks) - set(first.chunks)) == 2
    again = store.restore(second)
    assert again["shadow"] == live["shadow"] and again["words"] == live["words"]
    assert np.array_equal(again["records"], live["records"]) and again["records"][5] == 99
