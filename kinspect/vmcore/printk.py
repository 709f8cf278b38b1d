"""The printk ring buffer of a dump (kernel/printk/printk_ringbuffer.[ch]), read as the
kernel's own reader does: the descriptors from ``tail_id`` to ``head_id`` in order
(``prb_read_valid()``), each record's text from its data block (``get_data()``).

The layouts of struct printk_ringbuffer, prb_desc, printk_info and prb_data_block come from
the vmlinux's DWARF (:mod:`.types`).  The walk is bounded by the ring's own size
(``DESCS_COUNT``): a corrupt head/tail, a looped or torn ring ends it with a note, never a hang.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .core import VmcoreError
from .kernel import Kernel

__all__ = ["Record", "RingBuffer", "read_ringbuffer", "console_lines"]

# kernel/printk/printk_ringbuffer.h (BITS_PER_LONG 64)
DESC_SV_BITS = 64
DESC_FLAGS_SHIFT = DESC_SV_BITS - 2
DESC_ID_MASK = (1 << DESC_FLAGS_SHIFT) - 1
desc_reserved, desc_committed, desc_finalized, desc_reusable = 0, 1, 2, 3
EMPTY_LINE_LPOS = 0x3
# the largest ring the kernel makes (kernel/printk/printk.c: LOG_BUF_LEN_MAX 1 << 31, one
# descriptor per 1 << PRB_AVGBITS (5) bytes): beyond, the header is corrupt
_MAX_SIZE_BITS = 31
_MAX_COUNT_BITS = _MAX_SIZE_BITS - 5


@dataclass
class Record:
    """One log record: its sequence number, time stamp (ns), level and text."""

    seq: int
    ts_nsec: int
    level: int
    caller_id: int
    text: str

    def console_lines(self) -> list[str]:
        """The record as the console prints it with printk.time (``record_print_text()``
        with ``print_time()``): every line of the text behind the time stamp."""
        secs, nsec = divmod(self.ts_nsec, 1_000_000_000)
        prefix = f"[{secs:5d}.{nsec // 1000:06d}] "
        return [prefix + line for line in self.text.split("\n")]


@dataclass
class RingBuffer:
    records: list[Record]
    count: int  # DESCS_COUNT
    data_size: int  # DATA_SIZE
    notes: list[str] = field(default_factory=list)  # what could not be read, and why


def console_lines(records: list[Record]) -> list[str]:
    out: list[str] = []
    for r in records:
        out += r.console_lines()
    return out


def _desc_state(sv: int) -> int:
    return 3 & (sv >> DESC_FLAGS_SHIFT)


def read_ringbuffer(k: Kernel) -> RingBuffer:
    """Every readable record of the ring ``prb`` points to, oldest first."""
    L = k.layouts
    for name in ("printk_ringbuffer", "prb_desc", "printk_info", "prb_data_block"):
        if name not in L:
            raise VmcoreError(f"the vmlinux's DWARF has no struct {name}", k.sym.path)
    prb_sym = k.symbols.get("prb")
    if prb_sym is None:
        raise VmcoreError(
            "the vmlinux has no symbol prb (not a printk ring buffer kernel)", k.sym.path
        )
    rb = k.u64(prb_sym)
    if rb is None:
        raise VmcoreError(f"cannot read prb at {prb_sym:#x} in the dump", k.core.path)
    f = lambda path: k.field("printk_ringbuffer", rb, path)  # noqa: E731
    count_bits = f("desc_ring.count_bits")
    size_bits = f("text_data_ring.size_bits")
    descs, infos = f("desc_ring.descs"), f("desc_ring.infos")
    head_id, tail_id = f("desc_ring.head_id"), f("desc_ring.tail_id")
    data = f("text_data_ring.data")
    if (
        count_bits is None
        or size_bits is None
        or descs is None
        or infos is None
        or head_id is None
        or tail_id is None
        or data is None
    ):
        raise VmcoreError(
            f"cannot read the printk ring buffer at {rb:#x} (prb) in the dump", k.core.path
        )
    if not 0 < count_bits <= _MAX_COUNT_BITS or not 0 < size_bits <= _MAX_SIZE_BITS:
        raise VmcoreError(
            f"the printk ring buffer at {rb:#x} is corrupt: count_bits "
            f"{count_bits}, size_bits {size_bits}",
            k.core.path,
        )
    count = 1 << count_bits
    data_size = 1 << size_bits
    dsz, isz = L["prb_desc"].size, L["printk_info"].size
    desc_bytes = k.read(descs, count * dsz)
    info_bytes = k.read(infos, count * isz)
    text_ring = k.read(data, data_size)
    if desc_bytes is None or info_bytes is None or text_ring is None:
        raise VmcoreError(
            "the printk ring buffer's descriptors, infos or text are not in the dump", k.core.path
        )
    out = RingBuffer([], count, data_size)
    steps = ((head_id - tail_id) & DESC_ID_MASK) + 1
    if steps > count:
        out.notes.append(
            f"head_id {head_id:#x} is {steps} descriptors past tail_id "
            f"{tail_id:#x}, more than the ring's {count}: corrupt; read the "
            f"last {count}"
        )
        steps = count
        tail_id = (head_id - count + 1) & DESC_ID_MASK
    pd = L["prb_desc"]
    sv_m, beg_m, nxt_m = pd["state_var"], pd["text_blk_lpos.begin"], pd["text_blk_lpos.next"]
    pi = L["printk_info"]
    seq_m, ts_m, len_m, cid_m, lvl_m = (
        pi["seq"],
        pi["ts_nsec"],
        pi["text_len"],
        pi["caller_id"],
        pi["level"],
    )
    id_size = L["prb_data_block"]["data"].offset  # sizeof(db->id)
    le = lambda b, at, m: m.get(b, at)  # noqa: E731
    skipped = 0
    last_seq = None
    for n in range(steps):
        did = (tail_id + n) & DESC_ID_MASK
        at = (did & (count - 1)) * dsz
        sv = le(desc_bytes, at, sv_m)
        if sv & DESC_ID_MASK != did or _desc_state(sv) not in (desc_committed, desc_finalized):
            skipped += 1
            continue
        iat = (did & (count - 1)) * isz
        seq = le(info_bytes, iat, seq_m)
        if last_seq is not None and seq <= last_seq:
            out.notes.append(
                f"descriptor {did:#x}: seq {seq} after {last_seq}: the ring is "
                "torn here; the walk stops"
            )
            break
        last_seq = seq
        level = le(info_bytes, iat, lvl_m)
        text = _get_data(
            text_ring, data_size, le(desc_bytes, at, beg_m), le(desc_bytes, at, nxt_m), id_size
        )
        if text is None:
            skipped += 1
            continue
        text_len = le(info_bytes, iat, len_m)
        out.records.append(
            Record(
                seq,
                le(info_bytes, iat, ts_m),
                level,
                le(info_bytes, iat, cid_m),
                text[:text_len].decode("utf-8", "replace"),
            )
        )
    if skipped:
        out.notes.append(
            f"{skipped} descriptor(s) not readable (reserved, reused or their data lost)"
        )
    return out


def _get_data(ring: bytes, size: int, begin: int, nxt: int, id_size: int) -> bytes | None:
    """``get_data()``: the text of a data block, or None (data-less, illegal)."""
    if begin & 1 and nxt & 1:  # BLK_DATALESS
        return b"" if begin == EMPTY_LINE_LPOS and nxt == EMPTY_LINE_LPOS else None
    bits = size.bit_length() - 1
    if begin >> bits == nxt >> bits and begin < nxt:
        at, n = begin & (size - 1), nxt - begin
    elif (begin + size) >> bits == nxt >> bits:
        at, n = 0, nxt & (size - 1)
    else:
        return None
    if begin % id_size or nxt % id_size or n < id_size or at + n > size:
        return None
    return ring[at + id_size : at + n]
