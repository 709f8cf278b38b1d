"""The compiled trace replayer: ``TraceReplayer.replay`` over an EventBatch's columns (issue 12).

``BatchReplayer(replayer).replay(batch, progress, after_event)`` applies a block of trace
events (``ftrace.EventBatch``, the compiled scanner's packed columns) to the replayer's
machine exactly as ``TraceReplayer.replay`` (replay.py, the Python reference) applies the
same events one TraceEvent at a time: the same Machine calls in the same order, the same
statistics, the same ``progress(events, line)`` every 16384 events and ``after_event(event)``
after each replayed one, and a KeyboardInterrupt leaves the counts of what was done.

Its pointer maps are open-addressing hash tables (``KeyTable``) over numpy arrays, where the
reference keeps dicts and a set:
- ``objects``: traced pointer -> (simulated address, the index of its kmem_cache in
  ``caches_made``, or -1 for a kmalloc) (the reference's ``objects`` and ``object_cache``),
- ``pages``: traced pfn -> (simulated pfn, order),
- ``slab_pfns``: traced pfns that turned out to be slab pages,
- ``caches``: (bytes_req, bytes_alloc) of kmem_cache_alloc -> the index of its kmem_cache.

It calls the native machine's allocators in C, as the Machine's methods would call them:
kmalloc() of 1..KMALLOC_MAX_CACHE_SIZE bytes is ``SlubAllocator.kmalloc_slab()``,
kmem_cache_alloc() is ``slab_alloc()`` of the cache's object size, kfree() and
kmem_cache_free() are ``kfree_slab()``, alloc_pages()/free_pages() are
``PageAllocator.alloc_pages_noprof()``/``free_pages_ok()``, each with the track the Machine
would make (``task.pid << 32 | ip_handle``). What is rare stays with the Machine's Python
methods: kmalloc(0) (ZERO_SIZE_PTR) and large kmallocs, a kfree() outside every slab (a large
kmalloc's pages), and the report of a bad free; ``Machine.ip_handle`` is written before any
such call, before ``progress``/``after_event`` and when a batch ends, so the Machine reads as
after the reference's replay. ``Machine.set_task()`` runs when the pid changes, unless the
machine's Task of that pid is the one it made for this (comm, pid) before: then that Task is
the one set_task() would give, and it is set as ``Machine.task`` directly.

Both pickle as a few arrays (``KeyTable.__reduce__``, ``BatchReplayer.__getstate__``): a
session's checkpoint of a trace on the native engine holds the maps as buffers of its chunk
store (kinspect/session/checkpoints.py), not tens of thousands of Python objects, and a
replayer restored from one goes on replaying compiled where it stopped. A BatchReplayer made
for a TraceReplayer whose dicts hold maps (it was driven the Python way so far) takes them
over: from then on the compiled one is driven, and the dicts stay empty until ``maps()``.
tests/test_native_replay.py replays both real traces both ways and compares them.
"""

from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, realloc

import numpy as np

from ._page_alloc cimport PageAllocator
from ._slab cimport SlubAllocator
from .ftrace import (
    KFREE, KIND_NAMES, KMALLOC, KMEM_CACHE_ALLOC, KMEM_CACHE_FREE, PAGE_ALLOC, PAGE_FREE
)
from .shadow.base import PageUse
from .slab import FREE_BUG_TYPES

cdef int C_KMALLOC = KMALLOC, C_KMEM_CACHE_ALLOC = KMEM_CACHE_ALLOC
cdef int C_KMEM_CACHE_FREE = KMEM_CACHE_FREE, C_PAGE_ALLOC = PAGE_ALLOC
assert (KMALLOC, KMEM_CACHE_ALLOC, KFREE, KMEM_CACHE_FREE, PAGE_ALLOC, PAGE_FREE) == tuple(range(6))


cdef inline uint64_t mix(uint64_t key, uint64_t key2) noexcept:
    """splitmix64's finalizer of the two keys: the slot hash."""
    cdef uint64_t x = key ^ (key2 * 0x9E3779B97F4A7C15ULL)
    x ^= x >> 30
    x *= 0xBF58476D1CE4E5B9ULL
    x ^= x >> 27
    x *= 0x94D049BB133111EBULL
    x ^= x >> 31
    return x


cdef class KeyTable:
    """(key, key2) -> (value, value2), 64-bit each (value unsigned, value2 signed), in five
    numpy arrays (``arrays``: key, key2, value, value2, used) of a power-of-two length: open
    addressing with linear probing, deletion by backward shift (no tombstones), doubled when
    half full. Pickled as its arrays (a checkpoint keeps them as buffers)."""

    cdef uint64_t *key
    cdef uint64_t *key2
    cdef uint64_t *value
    cdef int64_t *value2
    cdef uint8_t *used
    cdef Py_ssize_t mask
    cdef readonly Py_ssize_t count
    cdef readonly tuple arrays                      # what the pointers above point into

    def __cinit__(self, Py_ssize_t size=1024, tuple arrays=None, Py_ssize_t count=0):
        if arrays is None:
            self.allocate(size)
        else:
            self.adopt(arrays, count)

    def __reduce__(self):
        return KeyTable, (self.mask + 1, self.arrays, self.count)

    cdef int allocate(self, Py_ssize_t size) except -1:
        self.adopt((np.zeros(size, np.uint64), np.zeros(size, np.uint64),
                    np.zeros(size, np.uint64), np.zeros(size, np.int64),
                    np.zeros(size, np.uint8)), 0)
        return 0

    cdef int adopt(self, tuple arrays, Py_ssize_t count) except -1:
        """Work on ``arrays`` (their memory, not a copy), holding ``count`` entries."""
        cdef uint64_t[::1] key = arrays[0], key2 = arrays[1], value = arrays[2]
        cdef int64_t[::1] value2 = arrays[3]
        cdef uint8_t[::1] used = arrays[4]
        cdef Py_ssize_t size = key.shape[0]
        if size < 1 or size & (size - 1) or not (key2.shape[0] == value.shape[0] ==
                                                 value2.shape[0] == used.shape[0] == size):
            raise ValueError("a KeyTable's arrays: five of one power-of-two length")
        self.key, self.key2, self.value = &key[0], &key2[0], &value[0]
        self.value2, self.used = &value2[0], &used[0]
        self.arrays = arrays
        self.mask = size - 1
        self.count = count
        return 0

    cdef Py_ssize_t find(self, uint64_t key, uint64_t key2) noexcept:
        """The slot holding (key, key2), or -1."""
        cdef Py_ssize_t i = mix(key, key2) & self.mask
        while self.used[i]:
            if self.key[i] == key and self.key2[i] == key2:
                return i
            i = (i + 1) & self.mask
        return -1

    cdef int put(self, uint64_t key, uint64_t key2, uint64_t value, int64_t value2) except -1:
        """Set (key, key2) -> (value, value2), adding it if new."""
        cdef Py_ssize_t i
        if 2 * (self.count + 1) > self.mask + 1:
            self.grow()
        i = mix(key, key2) & self.mask
        while self.used[i]:
            if self.key[i] == key and self.key2[i] == key2:
                break
            i = (i + 1) & self.mask
        else:
            self.used[i] = 1
            self.key[i] = key
            self.key2[i] = key2
            self.count += 1
        self.value[i] = value
        self.value2[i] = value2
        return 0

    cdef int grow(self) except -1:
        cdef uint64_t *key = self.key
        cdef uint64_t *key2 = self.key2
        cdef uint64_t *value = self.value
        cdef int64_t *value2 = self.value2
        cdef uint8_t *used = self.used
        cdef Py_ssize_t size = self.mask + 1, i
        old = self.arrays                           # alive while its entries move
        self.allocate(2 * size)
        for i in range(size):
            if used[i]:
                self.put(key[i], key2[i], value[i], value2[i])
        del old
        return 0

    cdef void remove(self, Py_ssize_t slot) noexcept:
        """Empty a slot found by find(), moving back the entries of its probe run."""
        cdef Py_ssize_t i = slot, j = slot, home
        while True:
            self.used[i] = 0
            while True:
                j = (j + 1) & self.mask
                if not self.used[j]:
                    self.count -= 1
                    return
                home = mix(self.key[j], self.key2[j]) & self.mask
                # j's entry may move to i unless its home lies cyclically in (i, j]
                if (i <= j and (home <= i or home > j)) or (i > j and home <= i and home > j):
                    break
            self.used[i] = 1
            self.key[i], self.key2[i] = self.key[j], self.key2[j]
            self.value[i], self.value2[i] = self.value[j], self.value2[j]
            i = j

    def items(self) -> dict:
        """{(key, key2): (value, value2)}: the table as a dict, for tests and views."""
        cdef Py_ssize_t i
        return {(self.key[i], self.key2[i]): (self.value[i], self.value2[i])
                for i in range(self.mask + 1) if self.used[i]}


cdef enum:
    LOST_FREE, LOST_KFREE, LOST_KMEM_CACHE_FREE, LOST_PAGE_FREE, LOST_MM_PAGE_FREE, NR_LOST

PAGE_ALLOC_USE = PageUse.PAGE_ALLOC
LOST_LABEL = ("lost free", "kfree", "kmem_cache_free", "lost page free", "mm_page_free")
FAILED_LABEL = ("kmalloc", "kmem_cache_alloc", "mm_page_alloc")


cdef class BatchReplayer:
    """The compiled twin of TraceReplayer.replay, holding the pointer maps of one replay
    (``replayer``: the TraceReplayer whose machine, statistics, caches and call-site frames
    it shares; its dicts stay empty)."""

    cdef object replayer, machine
    cdef readonly KeyTable objects, pages, slab_pfns, caches
    cdef readonly list caches_made                  # cache index -> KmemCache
    cdef int32_t *cache_id                          # cache index -> its KmemCache's id ...
    cdef uint64_t *object_size                      # ... and object_size
    cdef Py_ssize_t cache_room
    cdef bytearray named                            # cache index -> named by a free yet
    cdef object frame_of                            # string index -> stack depot handle, -1
    cdef object pid_of                              # task index -> pid
    cdef list task_of                               # task index -> the Task made for it
    cdef int64_t last_pid                          # the task of the last event ...
    cdef bint have_pid                              # ... once there was one
    cdef uint64_t lm_delta                          # __pa(): ptr - lm_delta, as a u64 ...
    cdef bint lm_delta_negative                     # ... or ptr + |lm_delta|
    cdef int page_shift

    def __init__(self, replayer):
        """The compiled twin of ``replayer``, taking over the maps its dicts hold."""
        self.replayer = replayer
        self.machine = replayer.machine
        self.objects = KeyTable()
        self.pages = KeyTable()
        self.slab_pfns = KeyTable()
        self.caches = KeyTable(64)
        self.caches_made = []
        self.named = bytearray()
        self.frame_of = np.empty(0, np.int64)
        self.pid_of = np.empty(0, np.int64)
        self.task_of = []
        self.have_pid = replayer._pid is not None
        self.last_pid = replayer._pid if self.have_pid else 0
        delta = replayer._lm_delta
        self.lm_delta_negative = delta < 0
        self.lm_delta = -delta if delta < 0 else delta
        self.page_shift = replayer._page_shift
        self.take_over(replayer)

    cdef int take_over(self, replayer) except -1:
        """Move the maps of the replayer's dicts (objects, object_cache, pages, slab_pfns)
        into the tables, its caches (in the order it made them) into caches_made."""
        index_of = {}
        for (req, size), cache in replayer.caches.items():
            index_of[cache.id] = self.cache_index(req, size)
        object_cache = replayer.object_cache
        for ptr, addr in replayer.objects.items():
            cache = object_cache.get(ptr)
            self.objects.put(ptr, 0, addr, -1 if cache is None else index_of[cache.id])
        for pfn, (sim, order) in replayer.pages.items():
            self.pages.put(pfn, 0, sim, order)
        for pfn in replayer.slab_pfns:
            self.slab_pfns.put(pfn, 0, 0, 0)
        replayer.objects, replayer.object_cache = {}, {}
        replayer.pages, replayer.slab_pfns = {}, set()
        return 0

    def __dealloc__(self):
        free(self.cache_id)
        free(self.object_size)

    def __reduce__(self):
        # the state after the object: the replayer refers back to it (its ``_compiled``)
        return _new_batch_replayer, (), self.__getstate__()

    def __getstate__(self):
        cdef Py_ssize_t i, made = len(self.caches_made)
        return (self.replayer, self.machine, self.objects, self.pages, self.slab_pfns,
                self.caches, self.caches_made, [self.cache_id[i] for i in range(made)],
                [self.object_size[i] for i in range(made)], self.named, self.frame_of,
                self.pid_of, self.task_of, self.last_pid, self.have_pid, self.lm_delta,
                self.lm_delta_negative, self.page_shift)

    def __setstate__(self, state):
        cdef Py_ssize_t i
        (self.replayer, self.machine, self.objects, self.pages, self.slab_pfns, self.caches,
         self.caches_made, cache_id, object_size, self.named, self.frame_of, self.pid_of,
         self.task_of, self.last_pid, self.have_pid, self.lm_delta, self.lm_delta_negative,
         self.page_shift) = state
        self.grow_caches(len(cache_id))
        for i in range(len(cache_id)):
            self.cache_id[i] = cache_id[i]
            self.object_size[i] = object_size[i]

    cdef int grow_caches(self, Py_ssize_t room) except -1:
        """Room for ``room`` caches or more in cache_id and object_size."""
        cdef void *grown
        if room <= self.cache_room:
            return 0
        room = 2 * (room + 8)
        grown = realloc(self.cache_id, room * sizeof(int32_t))
        if grown == NULL:
            raise MemoryError()
        self.cache_id = <int32_t *>grown
        grown = realloc(self.object_size, room * sizeof(uint64_t))
        if grown == NULL:
            raise MemoryError()
        self.object_size = <uint64_t *>grown
        self.cache_room = room
        return 0

    def object_address(self, uint64_t ptr):
        """The simulated address of a live traced pointer, or None (``objects.get(ptr)``)."""
        cdef Py_ssize_t slot = self.objects.find(ptr, 0)
        return None if slot < 0 else self.objects.value[slot]

    def page(self, uint64_t pfn):
        """(simulated pfn, order) of a live traced page allocation, or None
        (``pages.get(pfn)``)."""
        cdef Py_ssize_t slot = self.pages.find(pfn, 0)
        return None if slot < 0 else (self.pages.value[slot], self.pages.value2[slot])

    cdef inline bint traced_pfn(self, uint64_t ptr, uint64_t *pfn) noexcept:
        """``(ptr - lm_delta) >> page_shift`` when it is not negative."""
        cdef uint64_t total
        if self.lm_delta_negative:
            total = ptr + self.lm_delta
            pfn[0] = total >> self.page_shift
            if total < ptr:                             # carried into bit 64
                pfn[0] |= (<uint64_t>1) << (64 - self.page_shift)
            return True
        if ptr < self.lm_delta:
            return False
        pfn[0] = (ptr - self.lm_delta) >> self.page_shift
        return True

    cdef Py_ssize_t find_traced_page(self, uint64_t ptr) noexcept:
        """The slot in ``pages`` of the traced page allocation holding a traced pointer (slab
        orders 0..3, PAGE_ALLOC_COSTLY_ORDER), or -1: TraceReplayer._traced_page_of()."""
        cdef uint64_t pfn, mask
        cdef Py_ssize_t slot
        if not self.traced_pfn(ptr, &pfn):
            return -1
        for mask in range(4):                           # pfn, pfn & ~1, & ~3, & ~7
            slot = self.pages.find(pfn & ~((<uint64_t>1 << mask) - 1), 0)
            if slot >= 0:
                return slot
        return -1

    cdef int64_t cache_index(self, uint64_t req, uint64_t size) except -2:
        """The index of the kmem_cache of (object size, slot size), made by the replayer's
        _cache() on first use; -1 when the simulated kernel cannot make it."""
        cdef Py_ssize_t slot = self.caches.find(req, size)
        if slot >= 0:
            return self.caches.value[slot]
        cache = self.replayer._cache(req, size)
        if cache is None:
            return -1
        cdef Py_ssize_t index = len(self.caches_made)
        self.grow_caches(index + 1)
        self.cache_id[index] = cache.id
        self.object_size[index] = cache.object_size
        self.caches.put(req, size, index, 0)
        self.caches_made.append(cache)
        self.named.append(cache.id in self.replayer._named)
        return len(self.caches_made) - 1

    def maps(self) -> tuple[dict, dict, dict, set]:
        """The pointer maps in the reference's form: (objects, object_cache, pages,
        slab_pfns) as TraceReplayer keeps them."""
        objects, object_cache = {}, {}
        for (ptr, _), (addr, cache) in self.objects.items().items():
            objects[ptr] = addr
            if cache >= 0:
                object_cache[ptr] = self.caches_made[cache]
        return (objects, object_cache,
                {pfn: value for (pfn, _), value in self.pages.items().items()},
                {pfn for pfn, _ in self.slab_pfns.items()})

    def replay(self, batch, progress=None, after_event=None):
        """Apply a batch's events in order (TraceReplayer.replay)."""
        cdef const int64_t[::1] line_col = batch.line
        cdef const int8_t[::1] kind_col = batch.kind
        cdef const uint64_t[::1] ptr_col = batch.ptr, pfn_col = batch.pfn
        cdef const uint64_t[::1] order_col = batch.order, req_col = batch.bytes_req
        cdef const uint64_t[::1] size_col = batch.bytes_alloc
        cdef const int32_t[::1] call_site_col = batch.call_site, name_col = batch.name
        cdef const int32_t[::1] task_col = batch.task
        cdef Py_ssize_t i, nr = len(batch), slot
        cdef Py_ssize_t done[6]
        cdef Py_ssize_t lost[NR_LOST]
        cdef Py_ssize_t failed[3]
        cdef Py_ssize_t slab_pages = 0
        cdef int kind, bug
        cdef uint64_t ptr, pfn, req, addr, track = 0
        cdef int64_t handle, cache, order, pid, last_pid, sim
        cdef int64_t ip_handle = -1                     # the current call site's handle ...
        cdef int64_t machine_ip = -1                    # ... and Machine.ip_handle, -1 unknown
        cdef bint have_pid = self.have_pid
        cdef int64_t[::1] frame_of
        cdef int64_t[::1] pid_of
        cdef KeyTable objects = self.objects, pages = self.pages, slab_pfns = self.slab_pfns
        replayer, m = self.replayer, self.machine
        cdef SlubAllocator slub = <SlubAllocator?>m.slub
        cdef PageAllocator page_allocator = <PageAllocator?>m.page_allocator
        cdef uint64_t kmalloc_max = m.kmalloc_max_cache_size
        strings, tasks = batch.strings, batch.tasks
        if len(self.frame_of) < len(strings):
            self.frame_of = np.concatenate([self.frame_of,
                                            np.full(len(strings) - len(self.frame_of), -1)])
        if len(self.pid_of) < len(tasks):
            self.pid_of = np.concatenate([self.pid_of, np.array(
                [pid for _, pid in tasks[len(self.pid_of):]], np.int64)])
        if len(self.task_of) < len(tasks):
            self.task_of.extend([None] * (len(tasks) - len(self.task_of)))
        frame_of, pid_of, task_of = self.frame_of, self.pid_of, self.task_of
        cdef dict machine_tasks = m.tasks
        # the track's high half, Machine.task.pid << 32, when the pid is a small int (else
        # the track is made by Python, as Machine._track() makes it); read again whenever
        # the task changes or a callback ran
        cdef uint64_t track_pid
        task_pid = m.task.pid
        cdef bint small_pid = pid_bits(task_pid, &track_pid)
        caches_made, named = self.caches_made, self.named
        last_pid = self.last_pid
        cdef Py_ssize_t n = replayer.events
        for i in range(6):
            done[i] = 0
        for i in range(NR_LOST):
            lost[i] = 0
        for i in range(3):
            failed[i] = 0
        try:
            for i in range(nr):
                n += 1
                if not n & 0x3FFF:
                    PyErr_CheckSignals()                # Ctrl-C, in runs of compiled calls
                    if progress is not None:
                        if ip_handle >= 0:
                            m.ip_handle = ip_handle
                        replayer.events = n
                        progress(n, line_col[i])
                        machine_ip = -1
                        task_pid = m.task.pid
                        small_pid = pid_bits(task_pid, &track_pid)
                pid = pid_of[task_col[i]]
                if pid != last_pid or not have_pid:
                    # Machine.set_task(comm or "?", pid): its Task of the pid if that has the
                    # comm (then it is the one made for this task index), else a new one
                    task = machine_tasks.get(pid)
                    if task is not None and task is task_of[task_col[i]]:
                        m.task = task
                    else:
                        m.set_task(tasks[task_col[i]][0] or "?", pid)
                        task = task_of[task_col[i]] = m.task
                    task_pid = task.pid
                    small_pid = pid_bits(task_pid, &track_pid)
                    last_pid = replayer._pid = pid
                    have_pid = True
                kind = kind_col[i]
                ptr = ptr_col[i]
                if kind <= C_KMEM_CACHE_FREE:               # the slab events
                    if kind <= C_KMEM_CACHE_ALLOC:          # kmalloc, kmem_cache_alloc
                        if not ptr:
                            continue                            # the traced allocation failed
                        slot = objects.find(ptr, 0)
                        if slot >= 0:                           # a missed free: treat as freed
                            lost[LOST_FREE] += 1
                            objects.remove(slot)
                        if pages.count:
                            slot = self.find_traced_page(ptr)
                            if slot >= 0:
                                pfn, sim, order = pages.key[slot], pages.value[slot], \
                                    pages.value2[slot]
                                pages.remove(slot)
                                page_allocator.free_pages_ok(sim, order)
                                slab_pfns.put(pfn, 0, 0, 0)
                                slab_pages += 1
                    else:                                   # kfree, kmem_cache_free
                        slot = objects.find(ptr, 0)
                        if slot < 0:
                            if ptr:
                                lost[LOST_KFREE if kind < C_KMEM_CACHE_FREE
                                     else LOST_KMEM_CACHE_FREE] += 1
                            continue
                        addr, cache = objects.value[slot], objects.value2[slot]
                        objects.remove(slot)
                    # kasan_save_track(): the caller's stack (its handle) and the task
                    handle = frame_of[call_site_col[i]]
                    if handle < 0:
                        handle = frame_of[call_site_col[i]] = replayer._frame(
                            strings[call_site_col[i]], line_col[i])
                    ip_handle = handle
                    if small_pid:
                        track = track_pid | <uint64_t>handle
                    else:                           # (beyond a u64: OverflowError, as Machine's)
                        track = task_pid << 32 | handle
                    if kind <= C_KMEM_CACHE_ALLOC:
                        if kind == C_KMALLOC:
                            cache = -1
                            req = req_col[i]
                            if 0 < req <= kmalloc_max:
                                addr = slub.kmalloc_slab(req, track)
                            else:                           # ZERO_SIZE_PTR, or a large kmalloc
                                if ip_handle != machine_ip:
                                    m.ip_handle = machine_ip = ip_handle
                                addr = m.kmalloc(req)
                        else:
                            cache = self.cache_index(req_col[i], size_col[i])
                            addr = slub.slab_alloc(self.cache_id[cache], self.object_size[cache],
                                                   track) if cache >= 0 else 0
                        if addr:
                            objects.put(ptr, 0, addr, cache)
                        else:
                            failed[kind] += 1
                            continue
                    else:
                        if cache >= 0 and name_col[i] >= 0 and not named[cache]:
                            name = strings[name_col[i]]
                            if name:
                                kmem_cache = caches_made[cache]
                                kmem_cache.name = name
                                named[cache] = 1
                                replayer._named.add(kmem_cache.id)
                        bug = slub.kfree_slab(addr, track)
                        if bug != 0 and (bug > 0 or cache >= 0 or addr > 16):
                            # Machine.kfree()/kmem_cache_free(): a report, or (kfree() outside
                            # every slab, not ZERO_OR_NULL_PTR) a large kmalloc's pages
                            if ip_handle != machine_ip:
                                m.ip_handle = machine_ip = ip_handle
                            if bug > 0 or cache >= 0:
                                m._report_invalid_free(addr, FREE_BUG_TYPES.get(bug,
                                                                                "invalid-free"))
                            else:
                                m._free_large_kmalloc(addr)
                elif kind == C_PAGE_ALLOC:
                    pfn = pfn_col[i]
                    slot = pages.find(pfn, 0)
                    if slot >= 0:
                        lost[LOST_PAGE_FREE] += 1
                        sim, order = pages.value[slot], pages.value2[slot]
                        pages.remove(slot)
                        page_allocator.free_pages_ok(sim, order)
                    order = order_col[i]
                    sim = -1                            # Machine.alloc_pages(): None
                    if order_col[i] <= <uint64_t>page_allocator.max_order:
                        sim = page_allocator.alloc_pages_noprof(order, PAGE_ALLOC_USE, False,
                                                                None)
                    if sim < 0:
                        failed[2] += 1
                        continue
                    pages.put(pfn, 0, sim, order)
                    slot = slab_pfns.find(pfn, 0)
                    if slot >= 0:
                        slab_pfns.remove(slot)
                else:                                       # PAGE_FREE
                    pfn = pfn_col[i]
                    slot = pages.find(pfn, 0)
                    if slot < 0:
                        slot = slab_pfns.find(pfn, 0)
                        if slot >= 0:
                            slab_pfns.remove(slot)          # SLUB gave the slab page back
                        else:
                            lost[LOST_MM_PAGE_FREE] += 1
                        continue
                    sim, order = pages.value[slot], pages.value2[slot]
                    pages.remove(slot)
                    page_allocator.free_pages_ok(sim, order)
                done[kind] += 1
                if after_event is not None:
                    if ip_handle >= 0:
                        m.ip_handle = ip_handle
                    replayer.events = n
                    after_event(batch[i])
                    machine_ip = -1
                    task_pid = m.task.pid
                    small_pid = pid_bits(task_pid, &track_pid)
        finally:
            if ip_handle >= 0:
                m.ip_handle = ip_handle
            self.last_pid, self.have_pid = last_pid, have_pid
            replayer.events = n
            stats = replayer.stats
            stats.slab_pages += slab_pages
            for i in range(NR_LOST):
                if lost[i]:
                    stats.freed_before_trace[LOST_LABEL[i]] += lost[i]
            for i in range(3):
                if failed[i]:
                    stats.failed[FAILED_LABEL[i]] += failed[i]
            for i in range(6):
                if done[i]:
                    stats.replayed[KIND_NAMES[i]] += done[i]


def _new_batch_replayer():
    """An empty BatchReplayer for the unpickler to fill (``__setstate__``)."""
    return BatchReplayer.__new__(BatchReplayer)


cdef inline bint pid_bits(task_pid, uint64_t *bits) except -1:
    """``task.pid << 32`` of Machine._track() into bits, when the pid is an int in 0..2^31 - 1
    (a kernel's pids are below PID_MAX_LIMIT, 2^22); False otherwise."""
    cdef int64_t pid
    if type(task_pid) is int and 0 <= task_pid < (<int64_t>1) << 31:
        pid = task_pid
        bits[0] = (<uint64_t>pid) << 32
        return True
    return False
