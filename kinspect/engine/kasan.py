"""Generic KASAN as in Linux 6.12: poison values, the access check, bug-type selection.

Sources: mm/kasan/kasan.h, mm/kasan/generic.c, mm/kasan/report_generic.c (6.12).
Shadow bytes are read through a ``shadow_byte(addr) -> int`` callable, so the same rules run
on every shadow scheme.
"""

from __future__ import annotations

from dataclasses import dataclass

KASAN_SHADOW_SCALE_SHIFT = 3
KASAN_GRANULE_SIZE = 1 << KASAN_SHADOW_SCALE_SHIFT
KASAN_GRANULE_MASK = KASAN_GRANULE_SIZE - 1

# mm/kasan/kasan.h (6.12), generic mode.
KASAN_PAGE_FREE = 0xFF
KASAN_PAGE_REDZONE = 0xFE
KASAN_SLAB_REDZONE = 0xFC
KASAN_SLAB_FREE = 0xFB
KASAN_SLAB_FREE_META = 0xFA
KASAN_GLOBAL_REDZONE = 0xF9
KASAN_VMALLOC_INVALID = 0xF8
KASAN_STACK_LEFT = 0xF1
KASAN_STACK_MID = 0xF2
KASAN_STACK_RIGHT = 0xF3
KASAN_STACK_PARTIAL = 0xF4
KASAN_ALLOCA_LEFT = 0xCA
KASAN_ALLOCA_RIGHT = 0xCB

KASAN_ALLOCA_REDZONE_SIZE = 32
KASAN_CURRENT_STACK_FRAME_MAGIC = 0x41B58AB3


@dataclass(frozen=True)
class PoisonValue:
    """One row of the 6.12 poison table: the byte, its kernel name, what it means, its title."""

    value: int
    name: str
    meaning: str
    bug_type: str


POISON_VALUES: tuple[PoisonValue, ...] = (
    PoisonValue(KASAN_PAGE_FREE, "KASAN_PAGE_FREE", "freed page", "use-after-free"),
    PoisonValue(
        KASAN_PAGE_REDZONE,
        "KASAN_PAGE_REDZONE",
        "redzone of a kmalloc_large allocation",
        "slab-out-of-bounds",
    ),
    PoisonValue(
        KASAN_SLAB_REDZONE,
        "KASAN_SLAB_REDZONE",
        "slab object redzone (and all of a new slab)",
        "slab-out-of-bounds",
    ),
    PoisonValue(KASAN_SLAB_FREE, "KASAN_SLAB_FREE", "freed slab object", "slab-use-after-free"),
    PoisonValue(
        KASAN_SLAB_FREE_META,
        "KASAN_SLAB_FREE_META",
        "freed slab object with valid free metadata",
        "slab-use-after-free",
    ),
    PoisonValue(
        KASAN_GLOBAL_REDZONE,
        "KASAN_GLOBAL_REDZONE",
        "global variable redzone",
        "global-out-of-bounds",
    ),
    PoisonValue(
        KASAN_VMALLOC_INVALID,
        "KASAN_VMALLOC_INVALID",
        "inaccessible space in a vmap area",
        "vmalloc-out-of-bounds",
    ),
    PoisonValue(KASAN_STACK_LEFT, "KASAN_STACK_LEFT", "stack left redzone", "stack-out-of-bounds"),
    PoisonValue(KASAN_STACK_MID, "KASAN_STACK_MID", "stack mid redzone", "stack-out-of-bounds"),
    PoisonValue(
        KASAN_STACK_RIGHT, "KASAN_STACK_RIGHT", "stack right redzone", "stack-out-of-bounds"
    ),
    PoisonValue(
        KASAN_STACK_PARTIAL, "KASAN_STACK_PARTIAL", "stack partial redzone", "stack-out-of-bounds"
    ),
    PoisonValue(
        KASAN_ALLOCA_LEFT, "KASAN_ALLOCA_LEFT", "alloca left redzone", "alloca-out-of-bounds"
    ),
    PoisonValue(
        KASAN_ALLOCA_RIGHT, "KASAN_ALLOCA_RIGHT", "alloca right redzone", "alloca-out-of-bounds"
    ),
)

_BUG_TYPE_OF_SHADOW: dict[int, str] = {p.value: p.bug_type for p in POISON_VALUES}
for _partial in range(KASAN_GRANULE_SIZE):
    _BUG_TYPE_OF_SHADOW[_partial] = "out-of-bounds"


def find_poison_value(value: int) -> PoisonValue | None:
    """The 6.12 poison table entry of a shadow byte, or None (00-07 and unknown bytes)."""
    for p in POISON_VALUES:
        if p.value == value:
            return p
    return None


def _signed(byte: int) -> int:
    return byte - 256 if byte >= 128 else byte


def memory_is_poisoned(shadow_byte, addr: int, size: int) -> bool:
    """``memory_is_poisoned()`` of mm/kasan/generic.c for an access of ``size`` bytes at ``addr``.

    ``shadow_byte(addr)`` returns the shadow byte of the granule holding ``addr``.
    """
    if size == 1:
        return _poisoned_1(shadow_byte, addr)
    if size in (2, 4, 8):
        last = addr + size - 1
        if ((addr ^ last) >> KASAN_SHADOW_SCALE_SHIFT) != 0:
            # memory_is_poisoned_2_4_8: the access crosses a granule boundary.
            return shadow_byte(addr) != 0 or _poisoned_1(shadow_byte, last)
        return _poisoned_1(shadow_byte, last)
    if size == 16:
        # memory_is_poisoned_16: one u16 read of two shadow bytes.
        if shadow_byte(addr) != 0 or shadow_byte(addr + KASAN_GRANULE_SIZE) != 0:
            return True
        if addr & KASAN_GRANULE_MASK:
            return _poisoned_1(shadow_byte, addr + 15)
        return False
    return _poisoned_n(shadow_byte, addr, size)


def _poisoned_1(shadow_byte, addr: int) -> bool:
    s = shadow_byte(addr)
    if s == 0:
        return False
    return (addr & KASAN_GRANULE_MASK) >= _signed(s)


def _poisoned_n(shadow_byte, addr: int, size: int) -> bool:
    """memory_is_poisoned_n: first non-zero shadow byte of the range decides."""
    last = addr + size - 1
    granule = addr & ~KASAN_GRANULE_MASK
    last_granule = last & ~KASAN_GRANULE_MASK
    while granule <= last_granule:
        s = shadow_byte(granule)
        if s != 0:
            if granule != last_granule:
                return True
            return (last & KASAN_GRANULE_MASK) >= _signed(s)
        granule += KASAN_GRANULE_SIZE
    return False


def kasan_byte_accessible(shadow_byte, addr: int) -> bool:
    """``kasan_byte_accessible()``: 0 <= shadow < KASAN_GRANULE_SIZE."""
    return shadow_byte(addr) < KASAN_GRANULE_SIZE


def kasan_find_first_bad_addr(shadow_byte, addr: int, size: int) -> int:
    """``kasan_find_first_bad_addr()``: step 8 bytes at a time from the access address."""
    p = addr
    end = addr + size
    while p < end and shadow_byte(p) == 0:
        p += KASAN_GRANULE_SIZE
    return p


def get_shadow_bug_type(shadow_byte, first_bad_addr: int) -> str:
    """``get_shadow_bug_type()``: the title from the first bad granule (or the next one)."""
    s = shadow_byte(first_bad_addr)
    if 0 < s < KASAN_GRANULE_SIZE:
        s = shadow_byte(first_bad_addr + KASAN_GRANULE_SIZE)
    return _BUG_TYPE_OF_SHADOW.get(s, "unknown-crash")


def get_wild_bug_type(addr: int, page_size: int, task_size: int) -> str:
    """``get_wild_bug_type()``: an address below the shadow-covered range."""
    if addr < page_size:
        return "null-ptr-deref"
    if addr < task_size:
        return "user-memory-access"
    return "wild-memory-access"


def round_up(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def round_down(x: int, a: int) -> int:
    return x // a * a
