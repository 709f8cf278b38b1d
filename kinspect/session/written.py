"""Which pages of the machines' buffers were written since a checkpoint was taken of them or
restored into them, as the kernel itself tracks it: userfaultfd's asynchronous write-protect
and the PAGEMAP_SCAN ioctl of /proc/PID/pagemap (Linux 6.7, commit 52526ca7fdb9 "fs/proc/
task_mmu: implement IOCTL to get and optionally clear info about PTEs"; CRIU's incremental
dumps use it where soft-dirty bits are not built, as on this kernel).

A buffer's pages are *armed* (write-protected: ``PM_SCAN_WP_MATCHING``) when a checkpoint is
taken of it or restored into it, the moment its pieces equal the chunks its store noted for
them. A write to an armed page is let through by the kernel at once (``UFFD_FEATURE_WP_ASYNC``:
no fault reaches this process) and the page is marked written; a scan (``PAGEMAP_SCAN`` asking
for ``PAGE_IS_WRITTEN``) later says which. A restore into those buffers then compares and copies
only the pieces on a written page, not every byte of a machine (kinspect/session/checkpoints.py).
Every writer is seen, compiled or Python, without a write barrier in the engines.

Only the pages wholly inside a buffer are armed (a page it shares with its malloc neighbours
would be re-armed by theirs): the bytes before its first such page and after its last are
kept when it is armed (a few KiB a buffer), and the pieces they are in looked at when they
differ from those. A record of arming (``Armed``) is kept with the list of buffers it was made for
(``Buffers``), which keeps them alive, so that their ids and places stay theirs; it holds for a
buffer while no later arming of the same buffer was made (``generation``) and the buffer has
not moved. Anything else is compared, as where the kernel cannot do this (not Linux, no
userfaultfd, a kernel before 6.7), where the compiled core is not built (its walks over the
buffers, kinspect/engine/_buffers.pyx, find their places and compare their edges), or with
``KINSPECT_WRITE_TRACKING=0``: ``tracker()`` is None then, and every piece is compared. A user
without privileges has it too: the userfaultfd is asked for faults from user mode only
(``UFFD_USER_MODE_ONLY``, Linux 5.11), which ``vm.unprivileged_userfaultfd`` 0, the default,
allows; the asynchronous write-protect needs no more.
"""

from __future__ import annotations

import ctypes
import os
import sys
from bisect import bisect_right
from types import ModuleType

from ..engine.native import compiled

PAGE = 4096  # the granule the kernel reports writes in (mmap.PAGESIZE is checked: tracker())

# include/uapi/linux/userfaultfd.h, include/uapi/linux/fs.h (Linux 6.7+)
UFFD_API = 0xAA
UFFD_USER_MODE_ONLY = 1  # faults from user mode only: all a user may ask for by default
UFFD_FEATURE_WP_UNPOPULATED = 1 << 13
UFFD_FEATURE_WP_ASYNC = 1 << 15
UFFDIO_REGISTER_MODE_WP = 1 << 1
PAGE_IS_WPALLOWED = 1 << 0
PAGE_IS_WRITTEN = 1 << 1
PM_SCAN_WP_MATCHING = 1 << 0
PM_SCAN_CHECK_WPASYNC = 1 << 1
NR_USERFAULTFD = {"x86_64": 323, "aarch64": 282}  # arch/*/syscall tables


def _iowr(kind: int, nr: int, size: int) -> int:
    """include/uapi/asm-generic/ioctl.h: _IOWR(type, nr, size)."""
    return 3 << 30 | size << 16 | kind << 8 | nr


UFFDIO_API = _iowr(UFFD_API, 0x3F, 24)  # struct uffdio_api: api, features, ioctls
UFFDIO_REGISTER = _iowr(UFFD_API, 0x00, 32)  # struct uffdio_register: range, mode, ioctls
PAGEMAP_SCAN = _iowr(ord("f"), 16, 96)  # struct pm_scan_arg: 12 u64
RUN_GAP = 64 << 10  # buffers this close scanned as one run (a scan is a syscall: ~300 PTEs)
VEC_REGIONS = 256  # struct page_region (start, end, categories) a scan returns at most


Place = tuple[int, int, int, tuple[int, ...], bytes, bytes]


class Armed:
    """One arming of a list of buffers: for each, (address, length, generation, the serials
    of the chunks its pieces held then, its bytes before its first page armed and after its
    last, as they were), or None (not armed)."""

    __slots__ = ("places",)

    def __init__(self, places: list[Place | None]) -> None:
        self.places = places


class Buffers(list):
    """The buffers of a machine, in the order a checkpoint's take or restore listed them
    (what a restore replacing that machine writes into), with ``serials``: the chunks each
    held then (a serial, or a tuple of one per piece), ``armed``: the record of their arming
    then, if any, and ``rearmed``: the buffers whose pages a restore in place armed again as
    it went (after ``WriteTracker.since``), not to be armed twice."""

    __slots__ = ("armed", "serials", "rearmed")

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.armed: Armed | None = None
        self.serials: list = []
        self.rearmed: set[int] = set()


class WriteTracker:
    """The process's userfaultfd (asynchronous write-protect) and its /proc/self/pagemap."""

    GENERATIONS_MAX = 1 << 16  # arming generations remembered (beyond: forgotten, compared)

    def __init__(self, uffd: int, pagemap: int, walks: ModuleType) -> None:
        self._uffd = uffd
        self._walks = walks  # the compiled walks over the buffers (kinspect/engine/_buffers.pyx)
        self.address_of = walks.address_of
        self._pagemap = pagemap
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
        self._vec = (ctypes.c_uint64 * (3 * VEC_REGIONS))()
        self._arg = (ctypes.c_uint64 * 12)()
        self._arg[0] = ctypes.sizeof(self._arg)
        self._arg[9] = self._arg[11] = PAGE_IS_WRITTEN  # category_mask, return_mask
        self._generation = 0
        self._armed_as: dict[int, int] = {}  # id(buffer) -> the generation it was last armed

    def _scan(self, flags: int, start: int, end: int, vec: bool) -> int:
        arg = self._arg
        arg[1], arg[2], arg[3] = flags, start, end
        arg[5], arg[6] = (ctypes.addressof(self._vec), VEC_REGIONS) if vec else (0, 0)
        return self._libc.ioctl(self._pagemap, PAGEMAP_SCAN, arg)

    def _register(self, start: int, end: int) -> bool:
        reg = (ctypes.c_uint64 * 4)(start, end - start, UFFDIO_REGISTER_MODE_WP, 0)
        return self._libc.ioctl(self._uffd, UFFDIO_REGISTER, reg) == 0

    def protect(self, at: int, n: int) -> bool:
        """Arm the pages wholly inside [at, at + n) (registered with the userfaultfd first if
        they are not); whether they are."""
        start, end = self._walks.inner_pages(at, n)
        flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC
        return end > start and (
            self._scan(flags, start, end, False) >= 0
            or (self._register(start, end) and self._scan(flags, start, end, False) >= 0)
        )

    def arm(self, buffers: Buffers) -> None:
        """Arm the buffers of more than one piece in ``buffers`` (but those ``rearmed``
        already), their pieces equal to the chunks ``serials`` lists now: from now on the
        kernel marks the pages that are written. ``buffers.armed`` gets the record."""
        self._generation += 1
        generation = self._generation
        armed_as = self._armed_as
        if len(armed_as) >= self.GENERATIONS_MAX:
            armed_as.clear()
        places = self._walks.arm_places(
            buffers, buffers.serials, buffers.rearmed, generation, armed_as, self.protect
        )
        buffers.armed = Armed(places)
        buffers.rearmed = set()

    def since(self, armed: Armed | None, buffers: list, piece: int, rearm: bool = True) -> list:
        """For each buffer of ``buffers``, armed as ``armed``, what may have changed since,
        in pieces of ``piece`` bytes: None when nothing can be said (it was not armed then,
        or was armed again since with another list, or has moved, or the kernel cannot say),
        else the serials of the chunks its pieces held then, the pieces to look at (piece ->
        the bytes of it to compare, (start, end) in the buffer: a piece on a page written
        since, all of it; the first and the last pieces, the bytes outside the pages armed,
        when they differ from what they were then), its address and length. With ``rearm``
        (a restore into them), the pages found written are armed again before it returns: the
        caller, who makes the buffers' pieces equal to chunks again, arms again what it
        writes (``protect``); without (a take of them), nothing changes: the take arms them
        anew. One scan of the kernel's page tables for each run of pages they lie in."""
        if armed is None:
            return [None] * len(buffers)
        found, valid = self._walks.looked_at(armed.places, buffers, self._armed_as, piece)
        if not valid:
            return found
        valid.sort()
        starts = [v[0] for v in valid]
        arg = self._arg
        # the runs of pages the buffers lie in (another machine's, in between, not walked)
        runs: list[list[int]] = []
        inner_pages = self._walks.inner_pages
        for at, n, _ in valid:
            lo, hi = inner_pages(at, n)
            if runs and lo - runs[-1][1] <= RUN_GAP:
                runs[-1][1] = max(runs[-1][1], hi)
            else:
                runs.append([lo, hi])
        arg[9] = PAGE_IS_WRITTEN | PAGE_IS_WPALLOWED  # written pages of armed mappings only
        written: set[int] = set()
        try:
            for lo, hi in runs:
                self._written_in(lo, hi, valid, starts, found, piece, written)
        except _Unknown:
            return [None] * len(buffers)
        finally:
            arg[9] = PAGE_IS_WRITTEN
        if rearm:
            for at, n, index in valid:
                if index in written and not self.protect(at, n):
                    found[index] = None
        return found

    def _written_in(self, lo: int, hi: int, valid, starts, found, piece: int, written) -> None:
        """``since``'s scan of the pages in [lo, hi): the pieces on the pages written in it
        added to what ``found`` says to look at, their buffers' indices to ``written``."""
        vec, arg = self._vec, self._arg
        while lo < hi:
            count = self._scan(0, lo, hi, True)
            if count < 0:
                raise _Unknown
            for r in range(count):
                begin, stop = vec[3 * r], vec[3 * r + 1]
                k = max(0, bisect_right(starts, begin) - 1)
                while k < len(valid) and valid[k][0] < stop:
                    at, n, index = valid[k]
                    k += 1
                    if at + n <= begin:
                        continue
                    look = found[index][1]
                    first = (max(begin, at) - at) // piece
                    last = (min(stop, at + n) - 1 - at) // piece
                    for i in range(first, last + 1):
                        look[i] = (i * piece, min(n, (i + 1) * piece))
                    written.add(index)
            if count < VEC_REGIONS:
                return
            lo = arg[4]  # walk_end: where the full vector stopped the walk


class _Unknown(Exception):
    """The kernel could not say which pages were written."""


_tracker: WriteTracker | None = None
_tried = False


def tracker() -> WriteTracker | None:
    """The process's WriteTracker, or None where the kernel does not offer one (or
    ``KINSPECT_WRITE_TRACKING=0``)."""
    global _tracker, _tried
    if _tried:
        return _tracker
    _tried = True
    nr = NR_USERFAULTFD.get(os.uname().machine) if sys.platform == "linux" else None
    walks = compiled("_buffers")
    if nr is None or walks is None or os.environ.get("KINSPECT_WRITE_TRACKING") == "0":
        return None
    import mmap

    if mmap.PAGESIZE != PAGE:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    uffd = libc.syscall(nr, os.O_CLOEXEC | os.O_NONBLOCK | UFFD_USER_MODE_ONLY)
    if uffd < 0:
        return None
    api = (ctypes.c_uint64 * 3)(UFFD_API, UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, 0)
    libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    try:
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(uffd)
        return None
    found = WriteTracker(uffd, pagemap, walks)
    probe = bytearray(4 * PAGE)
    if libc.ioctl(uffd, UFFDIO_API, api) != 0 or not _works(found, probe):
        os.close(uffd)
        os.close(pagemap)
        return None
    _tracker = found
    return _tracker


def _works(found: WriteTracker, probe: bytearray) -> bool:
    """Whether arming and scanning see a write (a kernel that takes the calls but does not
    track them is not trusted)."""
    listed = Buffers([probe])
    listed.serials = [(0, 1, 2, 3)]
    found.arm(listed)
    clean = found.since(listed.armed, listed, PAGE)[0]
    probe[2 * PAGE + 1] = 1
    dirty = found.since(listed.armed, listed, PAGE)[0]
    return clean is not None and dirty is not None and 2 in dirty[1] and 2 not in clean[1]
