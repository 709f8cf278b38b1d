"""The quarantine's hold on a freed object, read from the dump (mm/kasan/quarantine.c, 6.12).

Generic KASAN does not give a freed object back to its slab at once:
``kasan_quarantine_put()`` links the object's ``kasan_free_meta.quarantine_link`` (at the
cache's ``kasan_info.free_meta_offset``) at the tail of this CPU's ``cpu_quarantine`` list;
when that list passes ``QUARANTINE_PERCPU_SIZE`` bytes it is moved whole to the tail of the
batch ``global_quarantine[quarantine_tail]`` (a new batch once that one holds
``quarantine_batch_size`` bytes); ``kasan_quarantine_reduce()`` frees the oldest batch,
``global_quarantine[quarantine_head]``, when ``quarantine_size`` passes
``quarantine_max_size``.  So an object's place says how soon it is really freed: its batch's
distance from ``quarantine_head`` (0: the next batch freed), or a CPU's list (not yet in the
global quarantine), and its position in that list (0: the oldest).

Every list is walked once per dump from its ``head`` along ``next`` (``struct qlist_head`` and
``struct qlist_node`` from DWARF, ``QUARANTINE_BATCHES`` from the size of
``global_quarantine[]``, the per-CPU lists at ``cpu_quarantine`` plus each CPU's
``__per_cpu_offset``).  A walk is bounded: a list longer than the quarantine can hold, one
that loops, or a link the dump does not have ends that list's walk with a note, never a hang.
The per-CPU ``shrink_qlist`` (used only while ``kasan_quarantine_remove_cache()`` runs) is
not read.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kernel import Kernel
from .objects import addr_to_slab

__all__ = ["Quarantine", "QuarantineHold", "quarantine_of", "object_hold"]

KASAN_NO_FREE_META = 0x7FFFFFFF  # mm/kasan/kasan.h: INT_MAX
#: a bound on one list's walk: the quarantine holds at most 1/32 of RAM
#: (QUARANTINE_FRACTION), of objects of at least 8 bytes
_MAX_WALK = 1 << 22


@dataclass(frozen=True)
class QuarantineHold:
    """Where a quarantined object is: ``queue`` ("global" or "cpu"), ``batch`` (the index in
    global_quarantine[]) or ``cpu``, ``age`` (for a batch: its distance from quarantine_head,
    0 = the next freed), ``position`` in its list (0 = the oldest) of ``length``."""

    queue: str
    index: int
    age: int | None
    position: int
    length: int

    def line(self) -> str:
        if self.queue == "global":
            return (
                f"in KASAN's quarantine: global_quarantine[{self.index}], batch "
                f"{self.age} from quarantine_head (0: freed next), object {self.position} "
                f"of {self.length} in the batch (0: the oldest)"
            )
        return (
            f"in KASAN's quarantine: cpu_quarantine of CPU {self.index} (not yet moved to "
            f"the global quarantine), object {self.position} of {self.length} "
            "(0: the oldest)"
        )

    def to_json(self) -> dict:
        return {
            "queue": self.queue,
            "index": self.index,
            "age": self.age,
            "position": self.position,
            "length": self.length,
        }


class Quarantine:
    """Every quarantined object's link, walked once: ``hold(qlink)`` is its place or None.
    ``readable`` is False when the dump or the vmlinux lacks what the walk needs (``notes``
    say what)."""

    def __init__(self, k: Kernel) -> None:
        self.notes: list[str] = []
        #: (list, objects, its bytes, the sum of its objects' cache->size) per list walked
        self.checked: list[tuple[str, int, int | None, int | None]] = []
        self._where: dict[int, QuarantineHold] = {}
        self._slot_sizes: dict[int, int | None] = {}  # page -> its slab's cache->size
        self.readable = False
        need = ("global_quarantine", "quarantine_head", "quarantine_tail")
        if not {"qlist_head", "qlist_node"} <= k.layouts.keys() or any(
            n not in k.symbols for n in need
        ):
            self.notes.append(
                "the quarantine is not in this vmlinux (no global_quarantine "
                "or struct qlist_head): not CONFIG_KASAN_GENERIC?"
            )
            return
        qh = k.layouts["qlist_head"]
        gq = k.symbols["global_quarantine"]
        batches = k.symbol_candidates["global_quarantine"][0][1] // qh.size
        head = _u32(k, k.symbols["quarantine_head"])
        tail = _u32(k, k.symbols["quarantine_tail"])
        if (
            head is None
            or tail is None
            or not batches
            or not (0 <= head < batches and 0 <= tail < batches)
        ):
            self.notes.append(
                "quarantine_head/quarantine_tail are not readable or out of "
                "range: the quarantine is unknown"
            )
            return
        self.batches, self.head, self.tail = batches, head, tail
        self.readable = True
        self.objects = self.used_batches = 0
        for age in range(batches):
            i = (head + age) % batches
            self._walk(k, gq + i * qh.size, "global", i, age)
        for cpu, base in _per_cpu(k, "cpu_quarantine", self.notes):
            self._walk(k, base, "cpu", cpu, None)

    def _walk(self, k: Kernel, qhead: int, queue: str, index: int, age: int | None) -> None:
        name = (
            f"global_quarantine[{index}]" if queue == "global" else f"cpu_quarantine of CPU {index}"
        )
        node = k.field("qlist_head", qhead, "head")
        if node is None:
            self.notes.append(f"{name} is not in the dump")
            return
        links: list[int] = []
        seen: set[int] = set()
        while node:
            if node in seen or len(links) >= _MAX_WALK:
                self.notes.append(
                    f"{name} loops or is longer than a quarantine can be: "
                    f"its walk stopped after {len(links)} objects"
                )
                break
            seen.add(node)
            links.append(node)
            node = k.field("qlist_node", node, "next")
            if node is None:
                self.notes.append(
                    f"{name}: a link at {links[-1]:#x} is not in the dump: "
                    f"its walk stopped after {len(links)} objects"
                )
                break
        for pos, link in enumerate(links):
            self._where.setdefault(link, QuarantineHold(queue, index, age, pos, len(links)))
        # qlist_put() adds each object's cache->size (qlink_to_cache(): its slab's cache)
        # to the list's bytes: the walk is checked against them
        want = k.field("qlist_head", qhead, "bytes")
        got: int | None
        total = 0
        for link in links:
            size = self._slot_sizes.get(link >> 12, -1)
            if size == -1:  # (one lookup per page of objects)
                slab = addr_to_slab(k, link)
                cache = None if slab is None else k.field("slab", slab, "slab_cache")
                size = self._slot_sizes[link >> 12] = (
                    None if not cache else k.field("kmem_cache", cache, "size")
                )
            if size is None:
                got = None
                break
            total += size
        else:
            got = total
        self.checked.append((name, len(links), want, got))
        if got is not None and want is not None and got != want:
            self.notes.append(
                f"{name}: its objects' cache sizes add up to {got} bytes, its "
                f"bytes say {want}: the list is not what the kernel built"
            )
        self.objects += len(links)
        self.used_batches += bool(links) and queue == "global"

    def hold(self, qlink: int) -> QuarantineHold | None:
        return self._where.get(qlink)

    def summary(self) -> str:
        if not self.readable:
            return "KASAN's quarantine: unknown"
        return (
            f"KASAN's quarantine: {self.objects} objects, in "
            f"{self.used_batches} of {self.batches} global batches "
            f"(quarantine_head {self.head}, quarantine_tail {self.tail}) and the per-CPU "
            "lists" + (f"; {len(self.notes)} of its lists cut short" if self.notes else "")
        )


def quarantine_of(k: Kernel) -> Quarantine:
    """The dump's quarantine, walked once per Kernel."""
    q = k.__dict__.get("_quarantine")
    if q is None:
        q = k.__dict__["_quarantine"] = Quarantine(k)
    return q


def object_hold(k: Kernel, obj) -> tuple[QuarantineHold | None, str]:
    """(its place, a line) for a slab object (:class:`~.objects.SlabObject`): in the
    quarantine where, or not in it (allocated, or freed and already given back)."""
    q = quarantine_of(k)
    if not q.readable:
        return None, "KASAN's quarantine: unknown (" + "; ".join(q.notes) + ")"
    free_off = k.field("kmem_cache", obj.cache, "kasan_info.free_meta_offset")
    if free_off is None or free_off == KASAN_NO_FREE_META:  # kasan_get_free_meta()
        return None, (
            "not in KASAN's quarantine: its cache keeps no free metadata "
            "(kasan_quarantine_put() declines it)"
        )
    link = obj.object_addr + free_off + k.layouts["kasan_free_meta"]["quarantine_link"].offset
    h = q.hold(link)
    if h is None and q.notes:
        return None, (
            "not found in the part of KASAN's quarantine the dump holds (some of "
            "its lists are cut short): unknown"
        )
    if h is None:
        return None, "not in KASAN's quarantine"
    return h, h.line()


def _u32(k: Kernel, addr: int) -> int | None:
    b = k.read(addr, 4)
    return None if b is None else int.from_bytes(b, "little")


def _per_cpu(k: Kernel, name: str, notes: list[str]) -> list[tuple[int, int]]:
    """(cpu, address) of per-CPU variable ``name`` for CPUs 0..nr_cpu_ids-1: its (zero-based)
    symbol plus ``__per_cpu_offset[cpu]`` (include/asm-generic/percpu.h ``per_cpu_ptr()``)."""
    var = k.symbols.get(name)
    offs = k.symbol_candidates.get("__per_cpu_offset")
    ncpu = _u32(k, k.symbols["nr_cpu_ids"]) if "nr_cpu_ids" in k.symbols else None
    if var is None or offs is None or ncpu is None:
        notes.append(
            f"{name}: the per-CPU lists are not readable (no {name}, "
            "__per_cpu_offset or nr_cpu_ids)"
        )
        return []
    addr, size = offs[0]
    out = []
    for cpu in range(min(ncpu, size // 8)):
        off = k.u64(addr + 8 * cpu)
        if off is None:
            notes.append(f"__per_cpu_offset[{cpu}] is not in the dump")
            continue
        out.append((cpu, (var + off) % (1 << 64)))
    return out
