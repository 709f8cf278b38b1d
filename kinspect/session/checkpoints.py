"""Checkpoints of a simulated machine (a small pickle, its big buffers in a shared store), and
the spare machines kept ready behind the position.

A Session goes back by restoring the nearest checkpoint at or before the target and replaying
forward (kinspect.session.cursor). The machine's big state already lives in flat buffers: the
memmap's sections (numpy struct page records), the flat shadow's 2 MiB chunks (bytearrays),
the per-page schemes' shadow blocks and shadow pages, the slabs' metadata arrays. A checkpoint
does not copy those into its pickle. It pickles the machine with a ``persistent_id`` that takes
every buffer of ``CHUNK_MIN`` bytes or more (a bytearray, bytes, a numpy array, an
array.array) out of the pickle into a ``ChunkStore``, cut in pieces of ``PIECE`` bytes (a
memmap section is about a MiB, a flat shadow chunk 2 MiB: one struct page or shadow byte
written dirties 32 KiB of them, not the whole), each piece a chunk, a content kept once:

- a piece is first compared with the chunk it was stored as (or restored from) last time, by
  its place (the same live buffer, ``id``, and the same piece of it) and then byte for byte (a
  memcmp). A piece that the machine has not written since is found so, without a write
  barrier on the hot path, as QEMU's dirty-page tracking or CRIU's incremental dumps find the
  pages dirtied since the last dump;
- one that differs (dirtied, or a fresh object) is looked up by its content (length and CRC-32,
  then a memcmp): the free shadow chunks, the empty blocks and the pieces equal to those of
  another checkpoint are stored once;
- only the rest is copied into the store.

So a checkpoint costs its pickle (the machine's small objects) and the chunks dirtied since the
last one. A restore unpickles the small part and copies each chunk back into a buffer of its
own (``bytearray(chunk)``, ``bytearray().join(pieces)``, a numpy array filled): a memcpy
each. The stored chunks are immutable ``bytes``, so a restored machine that changes never
changes a stored checkpoint. Aliasing is kept: a buffer reached twice from the machine is one
buffer after a restore.

``CheckpointStore`` keeps a Session's checkpoints: the regular ones (one every ``every``
events, thinned to every other one when they use more than half of ``budget``, ``every``
doubling) and the *dense* ones laid near the position (evicted least recently used first beyond
the other half). A chunk leaves the store when no checkpoint refers to it any more.

``Standby`` keeps what going back uses beside the checkpoints, made in idle time, a piece at a
time (``work``): *spares*, live machines at ``position - 1``, ``- 2``, ``- 3`` (as memory
allows), so that the next steps back are swaps, not restores; the oldest spare's state as a
dense checkpoint; and a *ladder* of dense checkpoints just below the spares (``HOLD_LADDER``
rungs ``LADDER_STEP`` events apart), so that a key held down past the spares restores a rung
and replays a few events. A piece lasts about ``IDLE_SECONDS``: a restore or a take is made in
pieces (``RestoreInPieces``, ``TakeInPieces``: the unpickler or pickler runs in a thread that
stops at a buffer once a piece's time is up, ``_Paced``), a trace's spare replayed by the
compiled replayer in slices (``sources.fast_forward``).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import pickle
import platform
import threading
import time
import zlib
from array import array
from bisect import bisect_right, insort
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..engine.collector import gc_paused
from ..engine.errors import KinspectError
from ..engine.machine import Machine
from . import written as written_pages
from .recording import dispose, forget_changes, unobserve
from .sources import EventRunner, TraceRunner, fast_forward
from .written import Buffers

CHUNK_MIN = 256  # buffers of this many bytes or more leave the pickle...
PIECE = 32 << 10  # ...as chunks of at most this many bytes (a bigger one: pieces)
# Where piece i of a buffer is, for the chunk store's first look: id(buffer) << PIECES_SHIFT | i
# (one int, cheaper to keep than a tuple; only a hint, a memcmp decides).
PIECES_SHIFT = 20
TABLES_KEPT = 4  # tables kept unpickled (ChunkStore.table)
RECENT_BYTES = 16 << 20  # chunks kept decompressed, the most recently read (ChunkStore)
THIN_KEEP_NEWEST = 4  # regular checkpoints always kept when thinning (and position 0)
SPARE_REPLAY = 512  # going back, a spare this many events behind beats a restore
IDLE_CHUNK = 512  # events stepped in one piece of idle work (not replayed compiled)
PARKED_MAX = 60.0  # seconds a take or restore in pieces waits for its next piece, then ends
IDLE_SLICE_MAX = 8192  # events replayed compiled in a piece at most
PAUSE_OBJECTS = 1024  # a take in pieces may stop after this many objects pickled
PAUSE_PIECES = 32  # a restore in pieces, after this many pieces of a buffer made (1 MiB)
IDLE_SECONDS = 0.02  # about the time of a piece of idle work (a restore or take: a piece of it)
HOLD_LADDER = 8  # dense checkpoints kept just below the spares (Standby.work)...
LADDER_STEP = 16  # ...this many events apart
LADDER_SPAN = LADDER_STEP * (HOLD_LADDER - 1)  # from the ladder's lowest rung to its top


@dataclass(eq=False)
class Checkpoint:
    """The state after ``position`` events: a pickle (``blob``, compressed) whose big buffers
    are chunks of the store (``chunks``: their serials, one per buffer object)."""

    position: int
    blob: bytes
    chunks: tuple[int, ...]
    nbytes: int  # the pickle and the chunks first stored with it
    size: int  # the pickle and every chunk it refers to: what a restore copies
    dense: bool = False


class ChunkStore:
    """Every buffer taken out of the checkpoints' pickles, stored once per content, as
    immutable bytes, zlib-compressed (``packed``: level 1, a piece of shadow or struct pages
    is mostly runs: 89 MiB of chunks held 5 MiB so, late in the real trace at 1 TiB), with a
    count of the references to it (a chunk that no checkpoint refers to any more is dropped).
    ``store[serial]`` is a chunk's content, ``length(serial)`` its length."""

    HINTS_MAX = 1 << 19  # identity hints kept at most (beyond: forgotten, not wrong)

    def __init__(self, packed: bool = True) -> None:
        self.packed = packed
        self._data: dict[int, bytes] = {}  # serial -> content (compressed when packed)
        self._length: dict[int, int] = {}  # serial -> its content's length
        self._refs: dict[int, int] = {}  # serial -> checkpoints referring to it
        self._by_content: dict[tuple[int, int], list[int]] = {}  # (length, crc32) -> serials
        self._crc: dict[int, int] = {}  # serial -> its crc32
        # where a piece is (PIECES_SHIFT) -> the serial of the chunk it equalled when last
        # stored or restored: a hint (ids are reused once an object dies), checked by a memcmp.
        self._by_id: dict[int, int] = {}
        self._next = 0
        self.nbytes = 0  # held (compressed)
        # the chunks stored or read back most recently, decompressed: a restore reads those
        # of the rungs of the ladder just laid (the pieces written between two), and the
        # single-piece buffers it makes anew each time
        self._recent: dict[int, bytes] = {}
        self._recent_bytes = 0
        self._tables: dict[int, dict] = {}  # serial -> a table unpickled (never written)
        self._table_serials: set[int] = set()  # the chunks that are tables

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, serial: int) -> bytes:
        data = self._data[serial]
        if not self.packed:
            return data
        content = self._recent.get(serial)
        if content is None:
            content = zlib.decompress(data)
        self._remember(serial, content)
        return content

    def peek(self, serial: int) -> bytes:
        """A chunk's content, not kept decompressed (a whole machine made anew reads them
        all once: it would push the others out)."""
        content = self._recent.get(serial)
        if content is not None:
            return content
        data = self._data[serial]
        return zlib.decompress(data) if self.packed else data

    def table(self, serial: int, into: dict | None = None) -> dict:
        """A table (``Machine.tables``) as the chunk ``serial`` pickled it: a copy of the one
        unpickled last time (a C copy of its hash table, a tenth of unpickling it: steps back
        in a row restore the same rung, and rungs share a table where no page was allocated
        or freed between them), made in ``into`` if given (the table of a machine the restore
        replaces: emptied, its memory is the copy's at once, already faulted in; a fresh
        2.6 MB late in the real trace at 1T faulted 640 pages, 1-7 ms in this VM)."""
        tables = self._tables
        table = tables.pop(serial, None)
        if table is None:
            while len(tables) >= TABLES_KEPT:  # (first: its memory is the new one's)
                tables.pop(next(iter(tables)))
            table = pickle.loads(self[serial])
        tables[serial] = table  # (the most recently used last)
        if into is None:
            return table.copy()
        into.clear()
        into.update(table)
        return into

    def intern_table(self, key: int, table: dict) -> tuple[int, int]:
        """``intern`` of a table (``Machine.tables``), pickled."""
        serial, new = self.intern(key, pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL))
        self._table_serials.add(serial)
        return serial, new

    def warm(self, serials) -> bool:
        """Unpickle the first table among the chunks ``serials`` that is not kept unpickled
        (idle work: the next restore of it copies it); whether there was one."""
        for serial in serials:
            if serial in self._table_serials and serial not in self._tables:
                self.table(serial)
                return True
        return False

    def _remember(self, serial: int, content: bytes) -> None:
        """Keep a chunk's content decompressed, as the most recently used, within
        ``RECENT_BYTES``."""
        recent = self._recent
        if recent.pop(serial, None) is None:
            self._recent_bytes += len(content)
            while self._recent_bytes > RECENT_BYTES and recent:
                self._recent_bytes -= len(recent.pop(next(iter(recent))))
        recent[serial] = content

    def stored(self, serial: int) -> int:
        """The bytes a chunk holds in the store (compressed when packed)."""
        return len(self._data[serial])

    def length(self, serial: int) -> int:
        return self._length[serial]

    def intern(self, key: int, piece) -> tuple[int, int]:
        """The serial of a chunk equal to ``piece`` (bytes, a bytearray, or a uint8 numpy view),
        stored now if there is none, and how many bytes were newly stored for it; ``key`` says
        where the piece is (PIECES_SHIFT). The caller holds one reference more to the chunk."""
        if type(piece) is np.ndarray:
            piece = piece.tobytes()
        serial = self._by_id.get(key)
        if serial is not None and serial in self._data and piece == self[serial]:
            self._refs[serial] += 1
            return serial, 0
        crc = zlib.crc32(piece)
        content = (len(piece), crc)
        for serial in self._by_content.get(content, ()):
            if piece == self[serial]:
                self._refs[serial] += 1
                self._hint(key, serial)
                return serial, 0
        serial = self._next
        self._next += 1
        if self.packed:
            data = zlib.compress(piece, 1)
            self._remember(serial, piece if type(piece) is bytes else bytes(piece))
        else:
            data = piece if type(piece) is bytes else bytes(piece)
        self._data[serial] = data
        self._length[serial] = len(piece)
        self._refs[serial] = 1
        self._crc[serial] = crc
        self._by_content.setdefault(content, []).append(serial)
        self._hint(key, serial)
        self.nbytes += len(data)
        return serial, len(data)

    def reuse(self, serial: int) -> bool:
        """One reference more to the chunk ``serial``, if it is still held (a piece known
        unchanged since it equalled that chunk: ``WriteTracker.since``); whether it is."""
        refs = self._refs
        if serial not in refs:
            return False
        refs[serial] += 1
        return True

    def _hint(self, key: int, serial: int) -> None:
        hints = self._by_id
        if len(hints) >= self.HINTS_MAX:
            hints.clear()
        hints[key] = serial

    def restoring(self) -> dict[int, int]:
        """For a restore: the hints, where the restore notes that
        the piece at a place is a fresh copy of a chunk (so the next take compares it with that
        chunk first); room made for a machine's pieces."""
        if len(self._by_id) >= self.HINTS_MAX // 2:
            self._by_id.clear()
        return self._by_id

    def hold(self, serials) -> None:
        """One reference more to each chunk of ``serials`` (kept while a restore in pieces
        reads them: ``release`` gives them back)."""
        refs = self._refs
        for serial in serials:
            refs[serial] += 1

    def release(self, serials) -> int:
        """Drop one reference to each chunk of ``serials``; the bytes freed."""
        freed = 0
        refs, data = self._refs, self._data
        for serial in serials:
            refs[serial] -= 1
            if refs[serial]:
                continue
            del refs[serial]
            chunk = data.pop(serial)
            content = self._recent.pop(serial, None)
            if content is not None:
                self._recent_bytes -= len(content)
            self._tables.pop(serial, None)
            self._table_serials.discard(serial)
            key = (self._length.pop(serial), self._crc.pop(serial))
            same = self._by_content[key]
            same.remove(serial)
            if not same:
                del self._by_content[key]
            freed += len(chunk)
        self.nbytes -= freed
        return freed


_KINDS = frozenset((bytearray, bytes, np.ndarray, array))  # what a checkpoint may take
_TYPES = {"b": bytearray, "y": bytes, "n": np.ndarray, "a": array}  # by the pickle's kind
_WRITABLE = (bytearray, np.ndarray, array)  # what a restore in place writes into


def _taker(store: ChunkStore, pause=None, known: dict | None = None, tables=frozenset()):
    """A ``persistent_id`` for a pickler that takes the big buffers out of the pickle into
    ``store``; with it, what it took: the buffers (kept alive while the pickle is made, so
    their ids stay theirs), the serials of their chunks, and [bytes stored new, bytes taken].
    A closure: it is called for every object pickled (millions late in a trace). ``pause``:
    called before each buffer and each piece is stored (a take in pieces, ``TakeInPieces``).
    ``known``: id of a buffer -> (the serials of its pieces when it was last armed, the pieces
    that may have changed since: ``WriteTracker.since``); the others are those chunks still,
    taken as they are, not compared. ``tables``: the ids of the dicts taken out too, each
    pickled apart as one chunk (``Machine.tables``)."""
    seen: dict[int, int] = {}  # id of a buffer -> its ordinal in this pickle
    known = known or {}
    reuse = store.reuse
    buffers = Buffers()
    serials: list[int] = []
    count = [0, 0]
    intern = store.intern

    def persistent_id(obj):
        t = type(obj)
        if t not in _KINDS:
            if t is not dict or id(obj) not in tables:
                return None
            size, kind = CHUNK_MIN, "t"  # (taken whatever its size: its pickle's, below)
        elif t is bytearray or t is bytes:
            size = len(obj)
            kind = "b" if t is bytearray else "y"
        elif t is array:
            size = obj.itemsize * len(obj)
            kind = "a"
        else:
            if obj.dtype.hasobject or not obj.flags.c_contiguous:
                return None
            size = obj.nbytes
            kind = "n"
        if size < CHUNK_MIN:
            return None
        at = id(obj)
        ordinal = seen.get(at)
        if ordinal is not None:
            return ordinal  # the same buffer again: the same after a restore
        seen[at] = len(buffers)
        buffers.append(obj)
        raw = obj if kind in "byt" else np.frombuffer(obj, np.uint8)
        if size <= PIECE or kind == "t":
            if pause is not None:
                pause()
            if kind == "t":
                pieces, new = store.intern_table(at << PIECES_SHIFT, obj)
                size = store.length(pieces)
            else:
                pieces, new = intern(at << PIECES_SHIFT, raw)
            serials.append(pieces)
            count[0] += new
        else:
            pieces = []
            then, look = known.get(at, ((), ()))
            if len(then) != -(-size // PIECE):
                then = ()
            for i, start in enumerate(range(0, size, PIECE)):
                if pause is not None:
                    pause()
                if then and i not in look and reuse(then[i]):
                    serial, new = then[i], 0
                else:
                    serial, new = intern(at << PIECES_SHIFT | i, raw[start : start + PIECE])
                pieces.append(serial)
                serials.append(serial)  # (as it goes: a take given up gives each back)
                count[0] += new
            pieces = tuple(pieces)
        count[1] += size
        buffers.serials.append(pieces)
        if kind == "n":
            return pieces, kind, (obj.dtype, obj.shape)
        return pieces, kind, obj.typecode if kind == "a" else None

    return persistent_id, buffers, serials, count


def _refill(old, serials, kind: str, meta, data: ChunkStore, since, tracker):
    """``old`` (a buffer of the machine a restore replaces) made to hold the chunks of
    ``serials``, only the pieces that differ copied, and whether its pages are armed again;
    None when it is not of the same kind and size (or is immutable bytes). ``since``: what
    may have changed in it since it was armed (``WriteTracker.since``), or None: then
    every piece is compared; else only the pieces it names and those whose chunk is not the
    one they held then, its pages armed again once written."""
    pieces = (serials,) if type(serials) is int else serials
    if kind == "b":
        if type(old) is not bytearray:
            return None
        raw: bytearray | memoryview | np.ndarray = old
    elif kind == "n":
        dtype, shape = meta
        if (
            type(old) is not np.ndarray
            or old.dtype != dtype
            or old.shape != shape
            or not old.flags.c_contiguous
            or not old.flags.writeable
        ):
            return None
        raw = old.reshape(-1).view(np.uint8)
    elif kind == "a":
        if type(old) is not array or old.typecode != meta:
            return None
        raw = memoryview(old).cast("B")
    else:
        return None
    # (every piece of a buffer but its last is PIECE bytes long)
    if len(raw) != (len(pieces) - 1) * PIECE + data.length(pieces[-1]):
        return None
    view = memoryview(raw)  # type: ignore[arg-type]  # numpy's stubs: an ndarray is a buffer
    if since is None:
        look = {i: (i * PIECE, i * PIECE + data.length(s)) for i, s in enumerate(pieces)}
    else:
        before, look = since[0], since[1]
        if pieces != before:
            for i, (serial, held) in enumerate(zip(pieces, before)):
                if serial != held:
                    look[i] = (i * PIECE, i * PIECE + data.length(serial))
    # Each piece (or the part of it looked at) compared in place, a memcmp (bytes.startswith
    # of a view of the bytes looked at, from where they are in the chunk: no copy made to
    # compare), copied if it differs.
    copied = False
    for i, (lo, hi) in look.items():
        chunk = data[pieces[i]]
        start = i * PIECE
        if not chunk.startswith(view[lo:hi], lo - start):
            view[start : start + len(chunk)] = chunk
            copied = True
    rearmed = since is not None and (not copied or tracker.protect(since[2], since[3]))
    return old, rearmed


def _arm(buffers: list) -> None:
    """Have the kernel note the writes to ``buffers`` from now on (a ``Buffers``: a take or
    restore has just made its pieces equal to the chunks noted for them), where it can."""
    if isinstance(buffers, Buffers):
        tracker = written_pages.tracker()
        if tracker is not None:
            tracker.arm(buffers)


def _pieces(serials: tuple[int, ...], data: ChunkStore, pause):
    """The chunks of ``serials`` in order; ``pause`` (if any) called every ``PAUSE_PIECES``."""
    for i, serial in enumerate(serials):
        if pause is not None and i % PAUSE_PIECES == PAUSE_PIECES - 1:
            pause()
        yield data.peek(serial)


def _made(serials: tuple[int, ...], kind: str, meta, data: ChunkStore, pause):
    """A buffer of several pieces made anew from its chunks (``pause``: see ``_pieces``)."""
    if kind == "b":  # grown a piece at a time: bytearray(n) would write every page first
        grown = bytearray()
        for chunk in _pieces(serials, data, pause):
            grown += chunk
        return grown
    if kind == "n":
        dtype, shape = meta
        obj = np.empty(shape, dtype=dtype)
        raw = obj.reshape(-1).view(np.uint8)
        for i, chunk in enumerate(_pieces(serials, data, pause)):
            raw[i * PIECE : i * PIECE + len(chunk)] = np.frombuffer(chunk, np.uint8)
        return obj
    joined = b"".join(_pieces(serials, data, pause))
    return array(meta, joined) if kind == "a" else joined


def _loader(store: ChunkStore, reuse: list | None, buffers: list, pause=None):
    """A ``persistent_load`` for an unpickler: each buffer a copy of its chunks, made anew or,
    with ``reuse`` (the buffers of a machine the restored one replaces, in the order of a take
    or restore of it), written into the first one not taken yet of the same type and size,
    when it is of more than one piece (two machines list theirs in the same order, but for
    a buffer one has and the other has not). ``buffers`` gets the buffers of the restored state,
    in order. ``pause`` (a restore in pieces): called at each buffer and every
    ``PAUSE_PIECES`` pieces of one made anew (a big one is tens of ms: its fresh pages faulted
    in as it is filled)."""
    data, hints = store, store.restoring()
    tracker = written_pages.tracker()
    listed = buffers if isinstance(buffers, Buffers) else None  # (their serials, to arm them)
    since = [None] * len(reuse) if reuse is not None else []  # what changed in them
    if isinstance(reuse, Buffers):
        if tracker is not None:
            since = tracker.since(reuse.armed, reuse, PIECE)
        reuse.armed = None  # written into: that arming holds no more
    free: dict[tuple[type, int], deque[int]] = {}  # the buffers of reuse by type and size
    tables: deque[dict] = deque()  # and its tables (Machine.tables)
    for k, old in enumerate(reuse or ()):
        if type(old) in _WRITABLE:
            free.setdefault((type(old), memoryview(old).nbytes), deque()).append(k)
        elif type(old) is dict:
            tables.append(old)

    def persistent_load(pid):
        if type(pid) is int:
            return buffers[pid]
        if pause is not None:
            pause()
        serials, kind, meta = pid
        if type(serials) is int:  # one piece: made anew (cheaper than comparing it)
            if kind == "t":
                obj = data.table(serials, tables.popleft() if tables else None)
            elif kind == "b":
                obj = bytearray(data[serials])
            elif kind == "n":
                dtype, shape = meta
                obj = np.frombuffer(data[serials], dtype=dtype).reshape(shape).copy()
            elif kind == "a":
                obj = array(meta, data[serials])
            else:
                obj = data[serials]  # bytes: immutable, shared as they are
            hints[id(obj) << PIECES_SHIFT] = serials
            buffers.append(obj)
            if listed is not None:
                listed.serials.append(serials)
            return obj
        obj = None
        index = len(buffers)
        size = (len(serials) - 1) * PIECE + data.length(serials[-1])
        same = free.get((_TYPES[kind], size))
        if same:
            k = same.popleft()
            assert reuse is not None  # (free lists its buffers)
            refilled = _refill(reuse[k], serials, kind, meta, data, since[k], tracker)
            if refilled is not None:
                obj, rearmed = refilled
                if rearmed and listed is not None:
                    listed.rearmed.add(index)
        if obj is None:
            obj = _made(serials, kind, meta, data, pause)
        at = id(obj) << PIECES_SHIFT
        for i, serial in enumerate(serials):
            hints[at | i] = serial
        buffers.append(obj)
        if listed is not None:
            listed.serials.append(serials)
        return obj

    return persistent_load


class CheckpointStore:
    """The checkpoints of one Session: regular ones every ``every`` events, dense ones near
    the position, all within ``budget`` bytes (see the module's docstring)."""

    def __init__(self, budget: int = 256 << 20, every: int = 256) -> None:
        self.budget = budget
        self.every = every
        # compressed where writes are tracked: a take then reads back (decompresses) only the
        # chunks of the pieces written since, not one for every piece of a machine
        self.chunks = ChunkStore(packed=written_pages.tracker() is not None)
        self._regular: dict[int, Checkpoint] = {}
        self._positions: list[int] = []  # of the regular ones, sorted
        self._dense: OrderedDict[int, Checkpoint] = OrderedDict()  # least recently used first
        self.regular_bytes = 0
        self.dense_bytes = 0
        self.seconds = 0.0  # a take's time, smoothed
        self.restore_seconds = 0.0  # a restore's CPU time, smoothed
        self.takes = 0
        self.new_bytes = 0  # bytes stored by all takes
        self.full_bytes = 0  # what they would have held whole
        self.last_size = 0  # the last take's state, whole: about what a machine holds now
        self._unpacked: tuple[Checkpoint, bytes] | None = None  # the last restored, its pickle

    # ------------------------------------------------------------------------- taking

    def _dump(
        self, state, buffers: list | None, pause=None, previous: list | None = None
    ) -> Checkpoint:
        """A checkpoint of ``state``, its chunks referred to (``take`` places and keeps it);
        ``pause``: called at each buffer and each piece stored, and every ``PAUSE_OBJECTS``
        objects pickled (a take in pieces, ``TakeInPieces``: it may raise, the chunks taken
        so far given back). ``previous``: the state's buffers as its last take or restore
        listed them (a ``Buffers``, armed then): the pieces of those not written since are
        taken as the chunks they were, not compared."""
        known = {}
        tracker = written_pages.tracker()
        if isinstance(previous, Buffers) and previous.armed is not None and tracker is not None:
            for buf, found in zip(previous, tracker.since(previous.armed, previous, PIECE, False)):
                if found is not None:
                    known[id(buf)] = found[:2]
        f = io.BytesIO()
        pickler = pickle.Pickler(f, protocol=pickle.HIGHEST_PROTOCOL)
        machines = state if type(state) is tuple else (state,)
        tables = {id(t) for m in machines if isinstance(m, Machine) for t in m.tables()}
        persistent_id, taken, serials, count = _taker(self.chunks, pause, known, tables)
        pickler.persistent_id = persistent_id  # type: ignore[method-assign]  # pickle's per-instance hook
        if pause is not None:  # also every PAUSE_OBJECTS objects (the graph between buffers)
            pickled = [0]

            def paced_persistent_id(obj):
                pickled[0] += 1
                if not pickled[0] % PAUSE_OBJECTS:
                    pause()
                return persistent_id(obj)

            pickler.persistent_id = paced_persistent_id  # type: ignore[method-assign]
        try:
            with gc_paused():
                pickler.dump(state)
        except BaseException:
            self.chunks.release(serials)
            raise
        if buffers is not None:
            buffers[:] = taken
            if isinstance(buffers, Buffers):
                buffers.serials = taken.serials
                _arm(buffers)
        del taken  # alive until the pickle is made
        new, size = count
        blob = zlib.compress(f.getvalue(), 1)  # (its ints, the machine's small objects: 1/4)
        self.takes += 1
        self.new_bytes += len(blob) + new
        self.full_bytes += len(blob) + size
        self.last_size = len(blob) + size
        return Checkpoint(-1, blob, tuple(serials), len(blob) + new, len(blob) + size)

    def take(
        self,
        position: int,
        state,
        dense: bool = False,
        buffers: list | None = None,
        previous: list | None = None,
    ) -> Checkpoint | None:
        """Keep a checkpoint of ``state`` (the machine and the runner's state, after
        ``position`` events), unless one is kept there; the new one, else None. A regular
        one may make the older ones thin out (``every`` doubles), a dense one evict the least
        recently used dense ones. ``buffers``: a list that gets the state's buffers taken, in
        order (what a later ``restore(..., reuse=)`` into this state may write into);
        ``previous``: the state's buffers as they were listed before (``_dump``)."""
        if position in self._regular or (dense and position in self._dense):
            return None
        if position in self._dense:  # asked for a regular one: the dense one is it
            ckpt = self._dense.pop(position)
            self.dense_bytes -= ckpt.nbytes
            ckpt.dense = False
            self._keep_regular(ckpt)
            return ckpt
        t = time.perf_counter()
        ckpt = self._dump(state, buffers, previous=previous)
        self._keep(ckpt, position, dense)
        if not dense:
            self.seconds = 0.5 * self.seconds + 0.5 * (time.perf_counter() - t)
        return ckpt

    def take_in_pieces(
        self, position: int, state, dense: bool = False, previous: list | None = None
    ) -> TakeInPieces | None:
        """``take``, a piece at a time (``TakeInPieces.work``: idle work), for a state that
        does not change until it is done or given up; None when a checkpoint is kept there
        (a regular one asked where a dense one is: that one made regular, at once)."""
        if position in self._regular or position in self._dense:
            if not dense and position in self._dense:
                self.take(position, state)
            return None
        return TakeInPieces(self, position, state, dense, previous)

    def _keep(self, ckpt: Checkpoint, position: int, dense: bool) -> None:
        """Place a checkpoint made by ``_dump`` (after ``position`` events)."""
        ckpt.position = position
        ckpt.dense = dense
        if dense:
            self._dense[position] = ckpt
            self.dense_bytes += ckpt.nbytes
            while self.dense_bytes > self.budget // 2 and len(self._dense) > 1:
                self._drop(self._dense.popitem(last=False)[1])
        else:
            self._keep_regular(ckpt)

    def _keep_regular(self, ckpt: Checkpoint) -> None:
        self._regular[ckpt.position] = ckpt
        insort(self._positions, ckpt.position)
        self.regular_bytes += ckpt.nbytes
        if self.regular_bytes > self.budget // 2:
            self.thin()

    def thin(self) -> None:
        """Keep the first regular checkpoint, the newest few, and every other one of the rest;
        double ``every`` for those to come."""
        keys = self._positions
        keep = set(keys[:1]) | set(keys[-THIN_KEEP_NEWEST:]) | set(keys[::2])
        for k in keys:
            if k not in keep:
                self._drop(self._regular.pop(k))
        self._positions = sorted(keep)
        self.every *= 2

    def _drop(self, ckpt: Checkpoint) -> None:
        if ckpt.dense:
            self.dense_bytes -= ckpt.nbytes
        else:
            self.regular_bytes -= ckpt.nbytes
        self.chunks.release(ckpt.chunks)

    # ------------------------------------------------------------------------ finding

    def has(self, position: int) -> bool:
        return position in self._regular or position in self._dense

    def positions(self, dense: bool = False) -> list[int]:
        """The positions of the regular checkpoints (or the dense ones), in order."""
        return sorted(self._dense) if dense else list(self._positions)

    def nearest_position(self, target: int) -> int:
        """The position of the nearest checkpoint at or before ``target``."""
        keys = self._positions
        best = keys[bisect_right(keys, target) - 1]
        for pos in self._dense:
            if best < pos <= target:
                best = pos
        return best

    def last_regular(self, position: int) -> int:
        """The position of the last regular checkpoint at or before ``position``."""
        keys = self._positions
        return keys[bisect_right(keys, position) - 1]

    def at(self, position: int) -> Checkpoint:
        return self._dense.get(position) or self._regular[position]

    def nearest(self, target: int) -> Checkpoint:
        """The nearest checkpoint at or before ``target``, to restore (a dense one becomes the
        most recently used)."""
        best = self.nearest_position(target)
        if best in self._dense:
            self._dense.move_to_end(best)
        return self.at(best)

    # ---------------------------------------------------------------------- restoring

    def restore(self, ckpt: Checkpoint, reuse: list | None = None, buffers: list | None = None):
        """The state ``ckpt`` holds, as new objects, every buffer a copy of its chunks: a new
        one, or (``reuse``: the buffers of a state this one replaces, as ``take`` or
        ``restore`` listed them) one of those, in place, only the pieces that differ copied:
        that state must not be used any more. ``buffers``: a list that gets the restored
        state's buffers, in order."""
        t = time.process_time()
        last = self._unpacked
        if last is None or last[0] is not ckpt:  # (steps back in a row restore one rung)
            last = self._unpacked = (ckpt, zlib.decompress(ckpt.blob))
        unpickler = pickle.Unpickler(io.BytesIO(last[1]))
        unpickler.persistent_load = _loader(  # type: ignore[method-assign]  # pickle's per-instance hook
            self.chunks, reuse, buffers if buffers is not None else []
        )
        with gc_paused():
            state = unpickler.load()
        if buffers is not None:
            _arm(buffers)
        self.restore_seconds = 0.5 * self.restore_seconds + 0.5 * (time.process_time() - t)
        return state

    def warm(self, position: int) -> bool:
        """A piece of idle work for the steps back to come from ``position``: the tables of
        the two checkpoints below it unpickled, if they are not (a step back that restores
        one then copies it: 0.3 ms, not 5-7 ms of unpickling late in the real trace at 1T);
        whether there was one to do."""
        first = self.nearest_position(max(0, position - 1))
        below = (first,) if first == 0 else (first, self.nearest_position(first - 1))
        return any(self.chunks.warm(self.at(p).chunks) for p in below)

    # ------------------------------------------------------------------------- account

    @property
    def nbytes(self) -> int:
        """Bytes held: every pickle and every chunk once."""
        blobs = sum(len(c.blob) for c in self._regular.values()) + sum(
            len(c.blob) for c in self._dense.values()
        )
        return blobs + self.chunks.nbytes

    def stats(self) -> dict:
        """What the store holds: ``checkpoints`` (regular), ``dense``, ``bytes`` (held),
        ``pickle_bytes`` and ``chunk_bytes`` (its parts), ``chunks``, ``every``; ``takes``
        and, over them, ``stored_bytes`` (new with each) against ``full_bytes`` (each whole)."""
        held = self.nbytes
        return {
            "checkpoints": len(self._regular),
            "dense": len(self._dense),
            "bytes": held,
            "pickle_bytes": held - self.chunks.nbytes,
            "chunk_bytes": self.chunks.nbytes,
            "chunks": len(self.chunks),
            "every": self.every,
            "takes": self.takes,
            "stored_bytes": self.new_bytes,
            "full_bytes": self.full_bytes,
        }


# ----------------------------------------------------------------- in pieces (idle work)


M_ARENA_MAX = -8  # glibc's mallopt() parameter (malloc.h)
_malloc_tuned = False


def tune_malloc() -> None:
    """One malloc arena for the process, on glibc (elsewhere: nothing), once: glibc gives a
    thread an arena of its own, and a machine restored in a ``_Paced`` thread would hold
    memory that, freed, only that arena reuses (the process's memory grew by a machine's
    worth so). Those threads never run at once with the main one (M_ARENA_MAX 1).

    Measured beside it (benchmarks/ui.py --only jump, docs/architecture.md): glibc's mmap
    threshold kept at its default too (M_MMAP_THRESHOLD; glibc raises it as big blocks are
    freed, and the machines' buffers then come from the heap), so that a machine freed gives
    its memory back at once, took the peak RSS from 909 to 894 MiB with two spares, 746 to
    721 with one, for about 11 s more CPU of idle work and steps back 10-15 ms slower when
    held past the spares (each buffer a mapping of its own, faulted in anew): not set."""
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    if platform.libc_ver()[0] != "glibc":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)


class _GivenUp(Exception):
    """Raised at a pause point of a call given up (``_Paced.abandon``)."""


class _Paced:
    """A long call (a checkpoint's pickle or unpickle) made a piece at a time: it runs in a
    thread of its own, which stops at its next pause point (``pause``: a buffer reached) once
    the piece's time is up, until the next ``work``. The caller's thread waits meanwhile, so
    the two never run at once: between two pieces the call is stopped where it was, and the
    objects it reads must not change (or it is given up: ``abandon``, which makes the pause
    point raise, the call end unwinding)."""

    def __init__(self, call) -> None:
        self._call = call  # call(pause) -> the result
        self._turn = threading.Condition()
        self._running = False  # the thread's turn
        self._deadline = 0.0
        self._given_up = False
        self._thread: threading.Thread | None = None
        self.done = False
        self.result = None
        self._error: BaseException | None = None

    def pause(self) -> None:
        """In the call: stop here if the piece's time is up, until the next ``work``."""
        if time.perf_counter() < self._deadline and not self._given_up:
            return
        with self._turn:
            self._running = False
            self._turn.notify_all()
            if not self._turn.wait_for(lambda: self._running, PARKED_MAX):
                self._given_up = True  # forgotten (its owner gone): it ends, freeing what it holds
        if self._given_up:
            raise _GivenUp

    def _run(self) -> None:
        try:
            self.result = self._call(self.pause)
        except _GivenUp:
            pass
        except BaseException as e:  # raised again by work(), in the caller's thread
            self._error = e
        with self._turn:
            self.done = True
            self._running = False
            self._turn.notify_all()

    def work(self, seconds: float) -> bool:
        """Run the call on for about ``seconds`` (up to its next pause point after them);
        whether it has ended."""
        if self.done:
            return True
        with self._turn:
            self._deadline = time.perf_counter() + seconds
            self._running = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()
            else:
                self._turn.notify_all()
            self._turn.wait_for(lambda: not self._running)
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self.done

    def abandon(self) -> None:
        """Give the call up: it ends at the pause point where it stopped."""
        if self._thread is not None and not self.done:
            self._given_up = True
            self.work(0.0)
        self.done = True


class TakeInPieces:
    """``CheckpointStore.take`` made a piece at a time (``work``), for idle work: the pickle is
    made in a thread of its own that stops at a buffer once a piece's time is up
    (``_Paced``). The state must not change until it is done: its owner gives it up
    (``abandon``) before it does."""

    def __init__(
        self, store: CheckpointStore, position: int, state, dense: bool, previous: list | None
    ) -> None:
        self.store = store
        self.position = position
        self.dense = dense
        self.buffers = Buffers()  # the state's buffers taken, in order (take's ``buffers``)
        self.checkpoint: Checkpoint | None = None  # once done (None: one was kept there)
        self._paced = _Paced(lambda pause: store._dump(state, self.buffers, pause, previous))

    def work(self, seconds: float) -> bool:
        """One piece; whether the checkpoint is taken (and kept: ``checkpoint``)."""
        with gc_paused():
            if not self._paced.work(seconds):
                return False
        ckpt, self._paced.result = self._paced.result, None
        if ckpt is None:  # given up
            return True
        store = self.store
        if store.has(self.position):  # taken meanwhile (a step forced one)
            store.chunks.release(ckpt.chunks)
        else:
            store._keep(ckpt, self.position, self.dense)
            self.checkpoint = ckpt
        return True

    def abandon(self) -> None:
        """Give it up (the chunks it took are given back)."""
        self._paced.abandon()
        ckpt, self._paced.result = self._paced.result, None
        if ckpt is not None and ckpt is not self.checkpoint:
            self.store.chunks.release(ckpt.chunks)


class _PausingReader:
    """A checkpoint's pickle as the unpickler's file, a pause point at each read: the graph
    between two buffers and after the last (``machine.pages``, the replayer's maps, the slab
    records) is unpickled a frame at a time, as the C unpickler reads a protocol 4 or 5
    pickle: a frame (up to 64 KiB) a ``read`` (CPython's Modules/_pickle.c, load_frame())."""

    def __init__(self, blob: bytes, pause) -> None:
        self._file = io.BytesIO(blob)
        self._pause = pause

    def read(self, n: int = -1) -> bytes:
        self._pause()
        return self._file.read(n)

    def readinto(self, buffer) -> int:
        self._pause()
        return self._file.readinto(buffer)

    def readline(self) -> bytes:
        return self._file.readline()


class RestoreInPieces:
    """``CheckpointStore.restore`` of ``ckpt`` into new buffers, made a piece at a time
    (``work``), for idle work: the unpickling runs in a thread of its own that stops at a
    buffer once a piece's time is up (``_Paced``); the checkpoint's chunks are held
    meanwhile (the checkpoint may be dropped). ``result``: the state, once done;
    ``buffers``: its buffers, in order."""

    def __init__(self, store: CheckpointStore, ckpt: Checkpoint) -> None:
        self.store = store
        self.buffers = Buffers()
        self._chunks: tuple[int, ...] | None = ckpt.chunks
        store.chunks.hold(self._chunks)

        def unpickle(pause):
            unpickler = pickle.Unpickler(_PausingReader(zlib.decompress(ckpt.blob), pause))
            unpickler.persistent_load = _loader(store.chunks, None, self.buffers, pause)
            return unpickler.load()

        self._paced = _Paced(unpickle)
        self.result = None

    def work(self, seconds: float) -> bool:
        """One piece; whether the state is restored (``result``)."""
        with gc_paused():
            if not self._paced.work(seconds):
                return False
        if self._chunks is not None:
            self.result, self._paced.result = self._paced.result, None
            if self.result is not None:
                _arm(self.buffers)
            self.store.chunks.release(self._chunks)
            self._chunks = None
        return True

    def abandon(self) -> None:
        self._paced.abandon()
        if self._chunks is not None:
            self.store.chunks.release(self._chunks)
            self._chunks = None


# ------------------------------------------------------------------------------ spares


@dataclass
class Spare:
    """A live machine at ``position`` events, not the session's: going back to it is a swap,
    to a little after it a short replay."""

    position: int
    machine: Machine
    runner: EventRunner
    nbytes: int  # what the checkpoint it was made from restores: about what
    # it holds
    buffers: list | None  # its buffers as the restore that made it listed them


@dataclass
class _Replay(Spare):
    """Idle work under way: a machine of its own, restored from a checkpoint and replayed
    toward ``target`` a piece at a time (``Standby._build``); done, a spare or disposed of.
    ``pending``: the restore that makes its machine, or the take of a ladder rung, under way."""

    target: int
    spare: bool  # it becomes a spare at target (else: it lays the ladder)
    ladder: int  # the ladder's top rung, laid on the way (-1: none)
    pending: RestoreInPieces | TakeInPieces | None = None


class Standby:
    """The spares of a session (machines ready behind its position) and the idle job that makes
    them and lays the ladder (see the module's docstring). ``driver`` makes a runner for a
    restored machine and says what of a runner's state a checkpoint keeps (``runner()``,
    ``state()``: the session's event source)."""

    def __init__(
        self,
        store: CheckpointStore,
        driver,
        wanted: int = 3,
        budget: int = 384 << 20,
    ) -> None:
        self.store = store
        self.driver = driver
        self.wanted = wanted  # spares kept, at position - 1 .. - wanted
        self.budget = budget  # about how many bytes they may hold
        self._spares: list[Spare] = []
        self._job: _Replay | None = None
        self._taking: tuple[Spare, TakeInPieces] | None = None  # the oldest spare's state
        self._slice = 1024  # events a piece of compiled replay (IDLE_SECONDS: see _replay)

    # ----------------------------------------------------------------------- reading

    def positions(self) -> list[int]:
        """The positions of the spares ready."""
        return [sp.position for sp in self._spares]

    def machines(self) -> dict[int, Machine]:
        """The spare machines: position -> machine."""
        return {sp.position: sp.machine for sp in self._spares}

    @property
    def job(self) -> tuple[int, bool, int] | None:
        """The idle work under way, if any: (target, whether it makes a spare, position)."""
        job = self._job
        return None if job is None else (job.target, job.spare, job.position)

    # ------------------------------------------------------------------------- using

    def take(self, target: int) -> Spare | None:
        """The spare nearest at or before ``target``, no longer a spare, when it is near
        enough (``SPARE_REPLAY``) to beat a restore; else None."""
        best = None
        for spare in self._spares:
            if 0 <= target - spare.position <= SPARE_REPLAY and (
                best is None or spare.position > best.position
            ):
                best = spare
        if best is not None:
            self._spares.remove(best)
            self._stop_taking(best)  # it changes from now on
        return best

    def drop(self, keep: Sequence[int] = ()) -> None:
        """Dispose of the spares, but those at the positions ``keep``."""
        for spare in [sp for sp in self._spares if sp.position not in keep]:
            self._spares.remove(spare)
            self._stop_taking(spare)
            dispose(spare.machine, spare.runner)

    def _stop_taking(self, spare: Spare | None = None) -> None:
        """Give up the take in pieces of a spare's state (of ``spare``, or whichever)."""
        if self._taking is not None and (spare is None or self._taking[0] is spare):
            self._taking[1].abandon()
            self._taking = None

    # --------------------------------------------------------------------- idle work

    def work(self, position: int) -> bool:
        """One piece of the idle work for a session at ``position``, most urgent first: a spare
        no longer wanted disposed of; a spare at ``position - 1`` (the next step back becomes
        a swap); spares further back, up to ``wanted`` of them, within the budget; the oldest
        spare's state as a dense checkpoint (steps back beyond the spares restore from near);
        the ladder below it. A piece is about ``IDLE_SECONDS`` of a checkpoint's restore or
        take, or of events replayed (``IDLE_CHUNK`` stepped, or a slice replayed compiled).
        False when there is nothing left to do."""
        wanted = range(position - self.wanted, position)
        for spare in self._spares:
            if spare.position not in wanted:
                self._spares.remove(spare)
                self._stop_taking(spare)
                dispose(spare.machine, spare.runner)
                return True
        top = position - self.wanted - 1  # the ladder's top rung
        # the ladder is wanted when its top rung is missing (no checkpoint within a step
        # below it) or its middle one (steps back went half way down it: laid again, the
        # whole of it, once every half a ladder's span, not at every step)
        nearest = self.store.nearest_position
        ladder = top > 0 and any(
            rung - nearest(rung) >= LADDER_STEP for rung in (top, max(0, top - LADDER_SPAN // 2))
        )
        target = self._next_spare(position)
        if target is not None:
            # the ladder laid on the way when it is wanted: no machine of its own for it
            return self._build(target, spare=True, ladder=top if ladder else -1)
        if self._taking is not None:
            spare, taking = self._taking
            if taking.work(IDLE_SECONDS):
                if taking.buffers:  # armed by the take: what a restore into it reads
                    spare.buffers = taking.buffers
                self._taking = None
            return True
        if self._spares:
            # Keep the oldest spare's state too: steps back taken in a row beyond the spares,
            # with no pause to make more, restore from there instead of from further back.
            oldest = min(self._spares, key=lambda sp: sp.position)
            if oldest.position - self.store.nearest_position(oldest.position) > 32:
                take = self.store.take_in_pieces(
                    oldest.position,
                    (oldest.machine, self.driver.state(oldest.runner)),
                    True,
                    oldest.buffers,
                )
                if take is not None:
                    self._taking = (oldest, take)
                return True
        if ladder and (
            self._job is not None
            or sum(sp.nbytes for sp in self._spares) + self._machine_bytes(top) <= self.budget
        ):
            return self._build(top, spare=False, ladder=top)
        self.drop_job()
        return False

    def _next_spare(self, position: int) -> int | None:
        """The position of the spare to make next: ``position - 1`` whatever it costs, then
        the nearest missing one within the budget; None when there are enough."""
        have = {sp.position for sp in self._spares}
        held = sum(sp.nbytes for sp in self._spares)
        for distance in range(1, self.wanted + 1):
            target = position - distance
            if target < 0:
                return None
            if target in have:
                continue
            if distance > 1 and held + self._machine_bytes(target) > self.budget:
                return None
            return target
        return None

    def _machine_bytes(self, target: int) -> int:
        """About what a spare at ``target`` holds: what the nearest checkpoint restores, or
        (a spare replayed far from it: the machine grows) what the last one taken held."""
        return max(self.store.at(self.store.nearest_position(target)).size, self.store.last_size)

    def _build(self, target: int, spare: bool, ladder: int) -> bool:
        """One piece of the idle job that replays a machine of its own up to ``target``: a
        piece of the nearest checkpoint's restore, or of the replay (``_replay``). ``spare``:
        the machine becomes a spare at ``target`` (else it is disposed of there). ``ladder``
        (a position, or -1): the ladder's top rung, the ladder laid on the way (a rung
        ``LADDER_STEP`` events apart in the last ``HOLD_LADDER`` events up to it, each a take
        in pieces; the job starts from the checkpoint nearest to it), so that steps back taken
        in a row beyond the spares (a key held down) each restore a rung and replay a few
        events, not up to ``every``. A spare's job lays it when it is wanted: a machine more
        held only for the ladder costs as much memory as a spare."""
        job = self._job
        if job is not None and (job.target, job.spare) != (target, spare):
            self.drop_job()
            job = None
        if job is None:
            # (a ladder: from below its lowest rung, so that every rung is laid)
            ckpt = self.store.nearest(
                target if ladder < 0 else min(target, max(0, ladder - LADDER_SPAN))
            )
            restore = RestoreInPieces(self.store, ckpt)
            self._job = _Replay(
                ckpt.position,
                None,  # type: ignore[arg-type]  # the machine and its runner: once restored
                None,  # type: ignore[arg-type]
                self._machine_bytes(target),
                restore.buffers,
                target,
                spare,
                ladder,
                restore,
            )
            return True
        try:
            pending = job.pending
            if pending is None:
                self._replay(job)
            elif not pending.work(IDLE_SECONDS):
                return True
            else:
                job.pending = None
                if isinstance(pending, TakeInPieces) and pending.buffers:
                    job.buffers = pending.buffers  # armed by the take: what a restore reads
                elif job.machine is None:  # restored
                    if pending.result is None:  # it waited too long for this piece: ended
                        self.drop_job()
                        return True
                    (job.machine, state), pending.result = pending.result, None
                    job.runner = self.driver.runner(job.machine, job.position, state)
                    if self._compiled(job):
                        unobserve(job.machine)  # replayed compiled: nothing to observe
        except (KinspectError, ValueError, MemoryError, KeyError, IndexError):
            self.drop_job()
            return False
        if job.position >= target and job.pending is None:
            self._job = None
            if spare:
                self._spares.append(job)
            else:
                dispose(job.machine, job.runner)
        return True

    def _compiled(self, job: _Replay) -> bool:
        """Whether the job replays by the compiled replayer (a trace read as EventBatches, on
        the native engine: ``sources.fast_forward``), not stepping."""
        return (
            job.machine.engine == "native"
            and getattr(self.driver, "batches", None) is not None
            and self.driver.event_batches(job.target, job.target) is not None
        )

    def _replay(self, job: _Replay) -> None:
        """A piece of the job's replay: up to the next ladder rung (taken then, in pieces), or
        the target; ``IDLE_CHUNK`` events stepped, or a slice replayed compiled, as many
        events as the rate measured so far replays in ``IDLE_SECONDS``. What a spare is read
        for afterwards is its machine, its runner (the replayer, the last event's reports,
        their ``event_index``) and its position: the same either way (tests/test_session.py
        compares the two with plain stepping)."""
        top, span = job.ladder, LADDER_SPAN
        end = job.target
        if job.position < top - span:
            end = top - span  # the lowest rung
        elif job.position < top:
            end = top - (top - job.position - 1) // LADDER_STEP * LADDER_STEP  # the next one
        end = min(end, job.target)
        if self._compiled(job):
            end = min(end, job.position + self._slice)
            assert isinstance(job.runner, TraceRunner)  # compiled: a trace's runner
            t = time.process_time()
            job.runner = fast_forward(
                self.driver, job.machine, job.runner.replayer, end, {}, _no_sample
            )
            spent = max(time.process_time() - t, 1e-6)
            done = max(1, job.runner.position - job.position)
            self._slice = max(64, min(IDLE_SLICE_MAX, int(done * IDLE_SECONDS / 2 / spent)))
        else:
            end = min(end, job.position + IDLE_CHUNK)
            with gc_paused():
                while job.runner.position < end:
                    job.runner.step()
                    forget_changes(job.machine)
        job.position = job.runner.position
        below = top - job.position
        if top >= 0 and 0 <= below <= span and below % LADDER_STEP == 0:
            job.pending = self.store.take_in_pieces(
                job.position,
                (job.machine, self.driver.state(job.runner)),
                dense=True,
                previous=job.buffers,
            )

    def drop_job(self) -> None:
        """Give up the idle job under way, if any."""
        job = self._job
        if job is not None:
            if job.pending is not None:
                job.pending.abandon()
            dispose(job.machine, job.runner)
            self._job = None


def _no_sample(machine: Machine, position: int) -> None:
    """A spare's replay samples no footprints (the session knows them behind its position)."""
