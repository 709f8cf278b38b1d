"""Workload files (``.kw``): parsing into immutable events, and running them on a Machine.

The language is documented in docs/workloads.md. Parsing reads the file line by line and
checks everything it can before anything runs (unknown statements, bad numbers, variables used
before they are bound or bound to the wrong kind of thing), naming ``FILE:LINE:COL``.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from . import native
from .collector import gc_paused
from .errors import WorkloadError
from .kasan import KASAN_GRANULE_SIZE
from .machine import KernelOops, Machine, Mempool
from .report import BadAccess, Frame, StackDepot
from .slab import SLAB_FLAG_NAMES, KmemCache

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")  # kernel symbols: foo.constprop.0
# Numbers are ASCII only ([0-9], not \d: Unicode digits such as '１６' are refused).
_SIZE = re.compile(r"(0[xX][0-9a-fA-F]+|[0-9]+)([KMGT]?)\Z")
_ADDR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:([+-])(\S+))?\Z")
_FRAME_VAR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:@([^:\s]+))?:(\S+)\Z")
_SUFFIX = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
_EXPRESSION = re.compile(r"\A[A-Za-z_(]|.[-+*/()]")  # a name or an operator: not a number
# Limits of the kernel types the operands stand for. size_t and unsigned long are the
# profile's word (checked again against a 32-bit profile's word when the workload runs).
WORD_BITS = 64
INT_MAX = (1 << 31) - 1  # int: a node, a mempool's min_nr
PID_MAX_LIMIT = 4 * 1024 * 1024  # include/linux/threads.h (64-bit)


def parse_number(tok: str, limit: int = 1 << WORD_BITS, kind: str = "64 bits") -> int:
    """A workload number (decimal, 0x hex, optional K/M/G/T) below ``limit``; ValueError
    saying what is wrong otherwise (``kind`` names the limit: "64 bits", "int"...). The
    digits are bounded before int() sees them: a number of a million digits is refused as
    fast as one of twenty."""
    m = _SIZE.match(tok)
    if not m:
        raise ValueError(f"must be a number (decimal, 0x hex, or with K/M/G/T), not {_short(tok)}")
    digits, suffix = m.groups()
    hexa = digits[:2] in ("0x", "0X")
    if not hexa and len(digits) > 1 and digits[0] == "0":
        raise ValueError(
            f"{_short(tok)} has a leading 0, which C reads as octal: write it "
            "in decimal without the 0, or in 0x hex"
        )
    body = digits[2:].lstrip("0") if hexa else digits
    too_long = len(body) > (limit.bit_length() + 3) // 4 if hexa else len(body) > len(str(limit))
    value = 0 if too_long else int(body or "0", 16 if hexa else 10) << _SUFFIX[suffix]
    if too_long or value >= limit:
        raise ValueError(f"{_short(tok)} does not fit in {kind}")
    return value


def _short(tok: str) -> str:
    return repr(tok) if len(tok) <= 40 else f"{tok[:32]!r}... ({len(tok)} characters)"


# What an architecture's own headers define that a KUnit case of mm/kasan/kasan_test_c.c
# depends on (Linux 6.12, generic KASAN), by ArchProfile.arch. A workload tests them with
# ``if NAME`` / ``if !NAME`` (docs/workloads.md):
# - __HAVE_ARCH_<F>: the architecture's own (assembly) string function F replaces lib/string.c's,
#   and is not instrumented: arch/arm/include/asm/string.h defines __HAVE_ARCH_STRRCHR,
#   __HAVE_ARCH_STRCHR and __HAVE_ARCH_MEMCHR (arch/arm/lib/strrchr.S, strchr.S, memchr.S);
#   arm64 (arch/arm64/include/asm/string.h), riscv (arch/riscv/include/asm/string.h) and
#   powerpc (arch/powerpc/include/asm/string.h) define their str*/memchr/memcmp ones only
#   without KASAN; x86_64 (arch/x86/include/asm/string_64.h) has none of them. lib/string.c's
#   C versions are instrumented (lib/Makefile: KASAN_SANITIZE_string.o := n only with
#   CONFIG_AMD_MEM_ENCRYPT). The mem{set,cpy,move} ones are KASAN's own checked versions
#   everywhere (mm/kasan/shadow.c), so they are not listed.
# - _ASM_GENERIC_BITOPS_INSTRUMENTED_ATOMIC_H: set_bit(), clear_bit(), change_bit() and the
#   test_and_*() atomic bit operations are wrapped with instrument_atomic_write() by
#   include/asm-generic/bitops/instrumented-atomic.h, which x86 (asm/bitops.h), arm64 (through
#   asm-generic/bitops/atomic.h), riscv and powerpc (asm/bitops.h) include. arm does not: with
#   CONFIG_SMP its set_bit() is ATOMIC_BITOP() = _set_bit(), assembly (arch/arm/lib/setbit.S...),
#   unchecked.
# - _ASM_GENERIC_BITOPS_INSTRUMENTED_NON_ATOMIC_H: __set_bit(), __test_and_set_bit(),
#   test_bit()... are instrument_write()/instrument_atomic_read() wrappers around the
#   architecture's assembly (x86's asm/bitops.h includes instrumented-non-atomic.h). The others
#   include asm-generic/bitops/non-atomic.h: generic___set_bit() and generic_test_bit() in C,
#   inlined into the caller and checked by the compiler there (a read-modify-write of one long:
#   gcc checks its load and not the store to the same reference in the same basic block,
#   has_mem_ref_been_instrumented() in gcc/asan.cc).
# - _ASM_GENERIC_BITOPS_LOCK_H_: the architecture takes arch_test_and_set_bit_lock() and
#   arch___clear_bit_unlock() from include/asm-generic/bitops/lock.h, whose READ_ONCE(*addr) is
#   C, checked by the compiler after instrumented-lock.h's own check (arm, arm64).
# - arch_atomic[64]_<op>: the architecture's own (assembly) atomic_<op>(), where
#   include/linux/atomic/atomic-arch-fallback.h would otherwise loop on raw_atomic_read() (C,
#   checked by the compiler after atomic-instrumented.h's own check): arm's asm/atomic.h defines
#   arch_atomic_fetch_add_unless, arch_atomic64_fetch_add_unless and
#   arch_atomic64_dec_if_positive; arm64's arch_atomic64_dec_if_positive; riscv's the
#   fetch_add_unless, dec_if_positive, inc_unless_negative and dec_unless_positive of both;
#   powerpc (32-bit) arch_atomic_fetch_add_unless and arch_atomic_dec_if_positive; x86_64 none
#   of them (its arch_atomic_try_cmpxchg reads *old in C as the fallback does).
_INSTRUMENTED_BITOPS = "_ASM_GENERIC_BITOPS_INSTRUMENTED_ATOMIC_H"
_INSTRUMENTED_NON_ATOMIC = "_ASM_GENERIC_BITOPS_INSTRUMENTED_NON_ATOMIC_H"
_GENERIC_LOCK = "_ASM_GENERIC_BITOPS_LOCK_H_"
_ATOMIC_OPS = ("fetch_add_unless", "dec_if_positive", "inc_unless_negative", "dec_unless_positive")
ARCH_DEFINES: dict[str, frozenset[str]] = {
    "x86_64": frozenset({_INSTRUMENTED_BITOPS, _INSTRUMENTED_NON_ATOMIC}),
    "arm": frozenset(
        {
            "__HAVE_ARCH_MEMCHR",
            "__HAVE_ARCH_STRCHR",
            "__HAVE_ARCH_STRRCHR",
            _GENERIC_LOCK,
            "arch_atomic_fetch_add_unless",
            "arch_atomic64_fetch_add_unless",
            "arch_atomic64_dec_if_positive",
        }
    ),
    "arm64": frozenset({_INSTRUMENTED_BITOPS, _GENERIC_LOCK, "arch_atomic64_dec_if_positive"}),
    "riscv64": frozenset(
        {_INSTRUMENTED_BITOPS} | {f"arch_atomic{w}_{op}" for w in ("", "64") for op in _ATOMIC_OPS}
    ),
    "powerpc": frozenset(
        {_INSTRUMENTED_BITOPS, "arch_atomic_fetch_add_unless", "arch_atomic_dec_if_positive"}
    ),
}
# Every name an ``if`` may test: the ones above, and those ArchNames derives from the profile.
DEFINE_NAMES = frozenset(
    {
        "CONFIG_64BIT",
        "CONFIG_HIGHMEM",
        _INSTRUMENTED_BITOPS,
        _INSTRUMENTED_NON_ATOMIC,
        _GENERIC_LOCK,
    }
    | {f"arch_atomic{w}_{op}" for w in ("", "64") for op in _ATOMIC_OPS}
    | {
        f"__HAVE_ARCH_{f}"
        for f in ("MEMCHR", "MEMCMP", "STRCHR", "STRRCHR", "STRCMP", "STRNCMP", "STRLEN", "STRNLEN")
    }
)
# Names whose value is the same on every architecture kinspect models.
FIXED_NAMES = {
    "BITS_PER_BYTE": 8,
    "KASAN_GRANULE_SIZE": KASAN_GRANULE_SIZE,
    "sizeof(char)": 1,
    "sizeof(short)": 2,
    "sizeof(int)": 4,
    "sizeof(u8)": 1,
    "sizeof(u16)": 2,
    "sizeof(u32)": 4,
    "sizeof(u64)": 8,
    "sizeof(atomic_t)": 4,
    "sizeof(atomic64_t)": 8,
}
# Names whose value is the architecture's (ArchNames.values has them all).
ARCH_NAMES = (
    "BITS_PER_LONG",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "KMALLOC_MIN_SIZE",
    "KMALLOC_MAX_CACHE_SIZE",
    "sizeof(long)",
    "sizeof(void*)",
    "sizeof(size_t)",
    "sizeof(atomic_long_t)",
)


class ArchNames:
    """The names a workload may use for one profile's sizes and facts (docs/workloads.md):
    their values, and the set of names ``if`` finds defined."""

    def __init__(self, profile) -> None:
        word = profile.bits // 8
        self.profile_name = profile.name
        self.arch = profile.arch
        self.values = dict(FIXED_NAMES)
        self.values.update(
            {
                "BITS_PER_LONG": profile.bits,
                "PAGE_SHIFT": profile.page_shift,
                "PAGE_SIZE": 1 << profile.page_shift,
                # include/linux/slab.h: KMALLOC_MIN_SIZE = ARCH_KMALLOC_MINALIGN when that is above
                # 8 (arm: ARCH_DMA_MINALIGN = L1_CACHE_BYTES = 64), else 1 << KMALLOC_SHIFT_LOW = 8
                "KMALLOC_MIN_SIZE": max(profile.kmalloc_minalign, 8),
                # include/linux/slab.h (SLUB): KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1
                "KMALLOC_MAX_CACHE_SIZE": 1 << (profile.page_shift + 1),
                "sizeof(long)": word,
                "sizeof(void*)": word,
                "sizeof(size_t)": word,
                "sizeof(atomic_long_t)": word,  # atomic_long_t is atomic64_t or atomic_t
            }
        )
        defined = ARCH_DEFINES.get(profile.arch)
        self.known = defined is not None
        self.defines = set(defined or ())
        if profile.bits == 64:
            self.defines.add("CONFIG_64BIT")
        if profile.lowmem_limit is not None:
            self.defines.add("CONFIG_HIGHMEM")
        self.key = (tuple(sorted(self.values.items())), tuple(sorted(self.defines)))


class _NeedsProfile(Exception):
    """A workload parsed without a profile used an architecture's name (parse it again once
    the profile is known)."""


_EXPR_TOKEN = re.compile(
    r"sizeof\([A-Za-z_][A-Za-z0-9_]*\*?\)|[A-Za-z_][A-Za-z0-9_]*"
    r"|0[xX][0-9a-fA-F]+[KMGT]?|[0-9]+[KMGT]?|[-+*/()]|."
)


def eval_expression(tok: str, names) -> int:
    """The value of a workload expression: numbers and names (``sizeof(long)``, ``PAGE_SIZE``;
    ``names(name)`` gives a name's value) joined by ``+ - * /`` (C's integer arithmetic,
    ``*`` and ``/`` first) and parentheses, without spaces: ``KMALLOC_MAX_CACHE_SIZE+10``,
    ``PAGE_SIZE/2-KASAN_GRANULE_SIZE-5``. ValueError saying what is wrong otherwise."""
    toks = _EXPR_TOKEN.findall(tok)
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def atom() -> int:
        nonlocal pos
        t = peek()
        if t is None:
            raise ValueError(f"{_short(tok)} ends too early")
        pos += 1
        if t == "(":
            v = expr()
            if peek() != ")":
                raise ValueError(f"{_short(tok)} has an unclosed '('")
            pos += 1
            return v
        if t == "-":
            return -atom()
        if t[0].isdigit():
            return parse_number(t, 1 << 64, "64 bits")
        if t[0].isalpha() or t[0] == "_" or t.startswith("sizeof("):
            return names(t)
        raise ValueError(f"{_short(tok)}: unexpected {t!r}")

    def apply(op: str, v: int, r: int) -> int:
        if op == "+":
            return v + r
        if op == "-":
            return v - r
        if op == "*":
            v *= r
        elif r == 0:
            raise ValueError(f"{_short(tok)} divides by zero")
        else:
            v = abs(v) // abs(r) * (1 if (v < 0) == (r < 0) else -1)  # C truncates
        if abs(v) >= 1 << 64:
            raise ValueError(f"{_short(tok)} does not fit in 64 bits")
        return v

    def binary(operand, ops: tuple[str, str]) -> int:
        """Operands joined by the operators of one precedence level, left to right."""
        nonlocal pos
        v = operand()
        while peek() in ops:
            op = toks[pos]
            pos += 1
            v = apply(op, v, operand())
        return v

    def term() -> int:
        return binary(atom, ("*", "/"))

    def expr() -> int:
        return binary(term, ("+", "-"))

    value = expr()
    if pos != len(toks):
        raise ValueError(f"{_short(tok)}: unexpected {toks[pos]!r}")
    return value


BUG_TYPES = frozenset(
    {
        "out-of-bounds",
        "slab-out-of-bounds",
        "slab-use-after-free",
        "use-after-free",
        "global-out-of-bounds",
        "stack-out-of-bounds",
        "alloca-out-of-bounds",
        "vmalloc-out-of-bounds",
        "double-free",
        "invalid-free",
        "null-ptr-deref",
        "user-memory-access",
        "wild-memory-access",
        "unknown-crash",
    }
)

ADDR, CACHE, POOL = "address", "kmem_cache", "mempool"

# Statements that allocate: NULL (0, or no cache/pool) from one of them is a failed allocation,
# counted in the run's summary (Machine.failed). ksize gives 0 for a bad pointer, not a failure.
ALLOCATORS = frozenset(
    {
        "kmalloc",
        "kzalloc",
        "kmalloc_node",
        "krealloc",
        "kmem_cache_create",
        "kmem_cache_alloc",
        "alloc_pages",
        "vmalloc",
        "mempool_create_kmalloc_pool",
        "mempool_create_slab_pool",
        "mempool_create_page_pool",
        "mempool_alloc",
        "global",
        "alloca",
    }
)


# The allocation statements WorkloadRunner._run() does itself, all three as kmalloc(); the other
# statements run by their op_* method.
_KMALLOCS = frozenset({"kmalloc", "kzalloc", "kmalloc_node"})


class Addr(NamedTuple):
    """An address operand: ``VAR``, ``VAR+N``, ``VAR-N`` or a literal (var None)."""

    var: str | None
    offset: int


class Event(NamedTuple):
    """One statement of a workload."""

    index: int  # type: ignore[assignment]  # the event number (0-based), over tuple.index
    path: str
    line: int
    text: str  # the line as written (without the comment)
    op: str
    target: str | None  # VAR of ``VAR = ...``
    args: tuple
    frame: Frame  # where it happens: ``func+0xOFF/0xLEN FILE:LINE``


class FuncTable:
    """The ``func`` statements of a workload, by line: enough to rebuild any line's frame."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lines = [0]
        self._funcs = [("kinspect_main", 0x400)]

    def add(self, line: int, name: str, length: int) -> None:
        self._lines.append(line)
        self._funcs.append((name, length))

    def frame_at(self, line: int) -> Frame:
        """The frame of a statement on ``line``: ``func+0xOFF/0xLEN FILE:LINE``."""
        i = bisect_right(self._lines, line) - 1
        name, length = self._funcs[i]
        return Frame(name, min((line - self._lines[i]) * 0x10, length - 1), length, self.path, line)


class WorkloadDepot(StackDepot):
    """The stack depot of a workload run: a stack's handle is its workload line."""

    def __init__(self, funcs: FuncTable) -> None:
        super().__init__()
        self.funcs = funcs

    def save(self, frame: Frame) -> int:
        return frame.line or 0  # a frame without a line: no stack

    def fetch(self, handle: int) -> Frame | None:
        return self.funcs.frame_at(handle) if handle else None


class WordState:
    """The width of unsigned long / size_t that a workload's numbers are checked against
    (64 bits until a runner on a 32-bit profile says otherwise), and the widest such number
    parsed so far, where it was: a workload parsed before its machine is known is checked
    against the machine's word when it runs."""

    def __init__(self, arch: ArchNames | None = None) -> None:
        self.word_bits = WORD_BITS
        self.widest: tuple[int, int, int, str] = (0, 0, 0, "")  # value, line, col, what
        self.arch = arch  # the profile's names; None: not known yet
        self.arch_used = False  # a line used one of them

    def name_value(self, name: str, path: str, line: int, col: int) -> int:
        """The value of a name in an expression (``sizeof(long)``, ``PAGE_SIZE``...)."""
        if name in FIXED_NAMES:
            return FIXED_NAMES[name]
        if name not in ARCH_NAMES:
            raise ValueError(
                f"unknown name {_short(name)} (known: "
                f"{', '.join(sorted(FIXED_NAMES) + sorted(ARCH_NAMES))})"
            )
        return self.arch_value(name, path, line, col)

    def arch_value(self, name: str, path: str, line: int, col: int):
        """An architecture's fact: a name's value, or for an ``if`` whether it is defined."""
        self.arch_used = True
        if self.arch is None:
            raise _NeedsProfile(
                WorkloadError(
                    f"{name} depends on the architecture, and this workload is parsed without a "
                    "profile",
                    path,
                    line,
                    col,
                )
            )
        if name in ARCH_NAMES:
            return self.arch.values[name]
        if not self.arch.known and name not in ("CONFIG_64BIT", "CONFIG_HIGHMEM"):
            raise WorkloadError(
                f"kinspect knows no header facts ({name}) for the "
                f"architecture {self.arch.arch!r} of profile "
                f"{self.arch.profile_name!r}",
                path,
                line,
                col,
            )
        return name in self.arch.defines

    def saw_word(self, value: int, line: int, col: int, what: str) -> None:
        if value > self.widest[0]:
            self.widest = (value, line, col, what)


class Workload:
    """A workload's events: all of them (a list), or streamed as they are parsed."""

    def __init__(
        self, path: str, lines: Iterable[str] | None = None, stream: bool = False, profile=None
    ) -> None:
        self.path = path
        self.funcs = FuncTable(path)
        self.words = WordState(None if profile is None else ArchNames(profile))
        # The lines of a workload that uses an architecture's names, kept to parse it again
        # for another profile (list mode only: a stream is parsed once, for its runner's).
        self._source: list[str] | None = None
        self._events: list[Event] | Iterator[Event] | None = None
        if stream:
            self._events = _needing_no_profile(_iter_events(path, lines, self.funcs, self.words))
            return
        if lines is None:
            lines = _read_lines(path)
        elif hasattr(lines, "readline"):
            lines = _capped_lines(lines)
        try:
            kept = list(lines)  # parsed again for another profile if need be
        except UnicodeDecodeError as u:
            raise WorkloadError(f"not UTF-8 text ({u.reason})", path) from None
        try:
            with gc_paused():
                self._events = list(_iter_events(path, kept, self.funcs, self.words))
        except _NeedsProfile as e:
            self._source = kept
            self._pending = e.args[0]
            return
        if self.words.arch_used:
            self._source = kept

    @property
    def events(self) -> list[Event] | Iterator[Event]:
        """The events; for a workload that uses an architecture's names, once bound to a
        profile (``bind``, which every WorkloadRunner and Session does)."""
        if self._events is None:
            raise self._pending
        return self._events

    @events.setter
    def events(self, events: list[Event]) -> None:
        self._events = events

    def bind(self, profile) -> None:
        """Make the workload the one for ``profile``: the architecture's names take its
        values (parsing the lines again if they were parsed for another profile, or without
        one), and the unsigned long / size_t numbers are checked against its word: those
        parsed already now, those of lines streamed later as they come."""
        arch = ArchNames(profile)
        if self._source is not None and (
            self.words.arch is None or self.words.arch.key != arch.key
        ):
            self.funcs = FuncTable(self.path)
            self.words = WordState(arch)
            with gc_paused():
                self._events = list(
                    _iter_events(self.path, iter(self._source), self.funcs, self.words)
                )
        elif self.words.arch is None:
            self.words.arch = arch  # a stream: the lines to come use the profile's
        elif self.words.arch_used and self.words.arch.key != arch.key:
            raise WorkloadError(
                f"this workload was parsed for profile "
                f"{self.words.arch.profile_name!r}, whose sizes differ from "
                f"{profile.name!r}'s",
                self.path,
            )
        self.check_word(profile.bits)

    def check_word(self, bits: int) -> None:
        """Check the workload's unsigned long / size_t numbers against a machine's word
        (``bits``): those parsed already now, those of lines streamed later as they come."""
        self.words.word_bits = bits
        value, line, col, what = self.words.widest
        if value >> bits:
            raise WorkloadError(
                f"{what} {value:#x} does not fit in {bits} bits", self.path, line, col
            )


def parse_workload(path: str, lines: Iterable[str] | None = None, profile=None) -> Workload:
    """Parse a whole workload file (or the given lines, named path) into a list of events,
    for ``profile`` (its sizes and facts; without one, a workload that uses them is parsed
    when a runner or session binds it to its machine's profile)."""
    return Workload(path, lines, profile=profile)


def iter_workload(path: str, lines: Iterable[str] | None = None, profile=None) -> Workload:
    """A workload whose events are parsed one line at a time as they are consumed.

    A huge workload is never read whole: errors surface when their line is reached.
    """
    return Workload(path, lines, stream=True, profile=profile)


MAX_LINE = 64 << 10  # characters: a longer "line" (a binary file, /dev/zero) is refused


def _capped_lines(f) -> Iterator[str]:
    """The lines of a text file, none read longer than MAX_LINE + 1 characters."""
    while line := f.readline(MAX_LINE + 1):
        yield line


def _read_lines(path: str) -> Iterator[str]:
    """The lines of the workload file at path (with the line cap)."""
    try:
        with open(path, encoding="utf-8") as f:
            yield from _capped_lines(f)
    except OSError as e:
        raise WorkloadError(f"cannot read workload: {e.strerror}", path) from None


def _needing_no_profile(events: Iterator[Event]) -> Iterator[Event]:
    """A stream's events: one that uses an architecture's name before it is bound to a
    profile is an error at that line."""
    try:
        yield from events
    except _NeedsProfile as e:
        raise e.args[0] from None


def _iter_events(
    path: str, lines: Iterable[str] | None, funcs: FuncTable, words: WordState
) -> Iterator[Event]:
    """``lines``: the workload's lines, or a text file (read with the line cap); None: the
    file at path."""
    try:
        if lines is None:
            with open(path, encoding="utf-8") as f:
                yield from _parse(path, _capped_lines(f), funcs, words)
            return
        if hasattr(lines, "readline"):
            lines = _capped_lines(lines)
        yield from _parse(path, lines, funcs, words)
    except OSError as e:
        raise WorkloadError(f"cannot read workload: {e.strerror}", path) from None
    except UnicodeDecodeError as e:
        raise WorkloadError(f"not UTF-8 text ({e.reason})", path) from None


class _LineParser:
    def __init__(
        self, path: str, lineno: int, raw: str, kinds: dict[str, str], state: WordState
    ) -> None:
        self.path, self.lineno, self.raw, self.kinds = path, lineno, raw, kinds
        self.state = state
        self.words = raw.split()
        self.first = 0  # words consumed by ``VAR =``
        self._cols: list[int] | None = None

    def __len__(self) -> int:
        return len(self.words) - self.first

    def word(self, i: int) -> str:
        return self.words[self.first + i]

    def col(self, i: int) -> int:
        """1-based column of operand i (found only when an error needs it)."""
        if self._cols is None:
            self._cols = [m.start() + 1 for m in re.finditer(r"\S+", self.raw)]
        return self._cols[self.first + i]

    def pairs(self, start: int):
        return [(self.word(i), self.col(i)) for i in range(start, len(self))]

    def error(self, message: str, col: int | None) -> WorkloadError:
        return WorkloadError(message, self.path, self.lineno, col)

    def number(
        self, i: int, what: str, signed: bool = False, limit: int | None = None, kind: str = ""
    ) -> int:
        """Operand i as a number: an unsigned long / size_t (below the word) unless ``limit``
        (exclusive) and ``kind`` name a narrower type; ``signed``: it may be negative."""
        return self.number_at(self.token(i, what), self.col(i), what, signed, limit, kind)

    def number_at(
        self,
        tok: str,
        col: int,
        what: str,
        signed: bool = False,
        limit: int | None = None,
        kind: str = "",
    ) -> int:
        neg = signed and tok.startswith("-")
        word = limit is None
        if limit is None:
            limit, kind = 1 << self.state.word_bits, f"{self.state.word_bits} bits"
        try:
            value = parse_number(tok[1:] if neg else tok, (limit >> 1) + 1 if neg else limit, kind)
        except ValueError as e:
            if _EXPRESSION.search(tok) and not _SIZE.match(tok[1:] if neg else tok):
                return self.expression(tok, col, what, signed, limit, kind, word)
            raise self.error(f"{what} {e}", col) from None
        if word:
            self.state.saw_word(value, self.lineno, col, what)
        return -value if neg else value

    def expression(
        self, tok: str, col: int, what: str, signed: bool, limit: int, kind: str, word: bool
    ) -> int:
        """A number written as an expression of names (``sizeof(long)+1``)."""
        try:
            value = eval_expression(
                tok, lambda name: self.state.name_value(name, self.path, self.lineno, col)
            )
        except ValueError as e:
            raise self.error(f"{what}: {e}", col) from None
        low = -(limit >> 1) if signed else 0
        if not low <= value < limit:
            raise self.error(
                f"{what} {_short(tok)} = {value} does not fit in {kind}"
                + ("" if signed or value >= 0 else " (it is negative)"),
                col,
            )
        if word and value >= 0:
            self.state.saw_word(value, self.lineno, col, what)
        return value

    def token(self, i: int, what: str) -> str:
        if i >= len(self.words) - self.first:
            raise self.error(f"missing {what}", len(self.raw.rstrip()) + 1)
        return self.words[self.first + i]

    def name(self, i: int, what: str) -> str:
        tok = self.token(i, what)
        if not _NAME.match(tok):
            raise self.error(f"{what} must be a name, not {_short(tok)}", self.col(i))
        return tok

    def var(self, i: int, kind: str, what: str) -> str:
        tok = self.token(i, what)
        have = self.kinds.get(tok)
        if have is None:
            raise self.error(f"{_short(tok)} is not defined", self.col(i))
        if have != kind:
            raise self.error(f"{_short(tok)} is a {have}, not a {kind}", self.col(i))
        return tok

    def addr(self, i: int, what: str = "address") -> Addr:
        tok = self.token(i, what)
        if tok == "NULL":
            return Addr(None, 0)
        if tok[:2] in ("0x", "0X"):
            return Addr(None, self.number_at(tok, self.col(i), what))
        m = _ADDR.match(tok)
        if not m:
            raise self.error(
                f"{what} must be VAR, VAR+N, VAR-N or a 0x address, not {_short(tok)}", self.col(i)
            )
        name, sign, num = m.groups()
        have = self.kinds.get(name)
        if have is None:
            raise self.error(f"{_short(name)} is not defined", self.col(i))
        if have != ADDR:
            raise self.error(f"{_short(name)} is a {have}, not an address", self.col(i))
        if num and _EXPRESSION.search(num) and not _SIZE.match(num):
            # VAR-8+4 is VAR + (-8 + 4), as in C
            word = 1 << self.state.word_bits
            return Addr(
                name,
                self.expression(
                    f"0{sign}{num}",
                    self.col(i),
                    f"{what} offset",
                    True,
                    word << 1,
                    f"{self.state.word_bits} bits",
                    False,
                ),
            )
        offset = self.number_at(num, self.col(i), f"{what} offset") if num else 0
        return Addr(name, -offset if sign == "-" else offset)

    def arity(self, n_min: int, n_max: int, usage: str) -> None:
        if len(self) > n_max:
            raise self.error(f"too many operands; usage: {usage}", self.col(n_max))
        if len(self) < n_min:
            raise self.error(f"missing operand; usage: {usage}", len(self.raw.rstrip()) + 1)


# statement -> (usage, kind of the bound variable or None if it binds nothing)
_VALUE_OPS = {
    "kmalloc": ("VAR = kmalloc SIZE", ADDR),
    "kzalloc": ("VAR = kzalloc SIZE", ADDR),
    "kmalloc_node": ("VAR = kmalloc_node SIZE NODE", ADDR),
    "krealloc": ("VAR = krealloc PTR SIZE", ADDR),
    "ksize": ("VAR = ksize PTR", ADDR),
    "kmem_cache_create": ("VAR = kmem_cache_create NAME SIZE [ALIGN] [FLAG ...]", CACHE),
    "kmem_cache_alloc": ("VAR = kmem_cache_alloc CACHE", ADDR),
    "alloc_pages": ("VAR = alloc_pages ORDER", ADDR),
    "vmalloc": ("VAR = vmalloc SIZE", ADDR),
    "mempool_create_kmalloc_pool": ("VAR = mempool_create_kmalloc_pool MIN SIZE", POOL),
    "mempool_create_slab_pool": ("VAR = mempool_create_slab_pool MIN CACHE", POOL),
    "mempool_create_page_pool": ("VAR = mempool_create_page_pool MIN ORDER", POOL),
    "mempool_alloc": ("VAR = mempool_alloc POOL", ADDR),
    "global": ("VAR = global NAME SIZE", ADDR),
    "alloca": ("VAR = alloca SIZE", ADDR),
}


def _parse(path: str, lines: Iterable[str], funcs: FuncTable, words: WordState) -> Iterator[Event]:
    kinds: dict[str, str] = {}
    index = 0
    func, func_len, func_line = "kinspect_main", 0x400, 0
    conds: list[list] = []  # open ``if``s: [taken, line, else seen]
    skipping = False  # inside a branch not taken
    for lineno, raw_line in enumerate(lines, 1):
        if len(raw_line) > MAX_LINE and len(raw_line.rstrip("\n")) > MAX_LINE:
            raise WorkloadError(
                f"line longer than {MAX_LINE} characters (not a workload?)", path, lineno
            )
        raw = raw_line.rstrip("\n").split("#", 1)[0].rstrip()
        if not raw.strip():
            continue
        if skipping:  # a branch not taken: only if/else/endif count
            if raw.split(None, 1)[0] in _CONDITIONALS:
                skipping = _conditional(
                    _LineParser(path, lineno, raw, kinds, words), conds, skipping, words
                )
            continue
        lp = _LineParser(path, lineno, raw, kinds, words)
        if lp.words[0] in _CONDITIONALS:
            skipping = _conditional(lp, conds, skipping, words)
            continue
        target = None
        if len(lp) >= 2 and lp.word(1) == "=":
            target = lp.name(0, "variable")
            lp.first = 2
            if not len(lp):
                raise lp.error("missing statement after '='", len(raw) + 1)
        op = sys.intern(lp.word(0))  # one string per statement name, not per event
        if target is not None and op not in _VALUE_OPS:
            raise lp.error(f"{_short(op)} gives no value to bind", lp.col(0))
        args, binds = _parse_args(lp, op, target)
        if target is not None:
            kinds[target] = binds
        if op == "frame":
            for name, _off, _size in args:
                kinds[name] = ADDR
        if op == "func":
            func, func_len, func_line = args[0], args[1], lineno
            funcs.add(lineno, func, func_len)
        frame = Frame(func, min((lineno - func_line) * 0x10, func_len - 1), func_len, path, lineno)
        yield Event(index, path, lineno, raw.strip(), op, target, args, frame)
        index += 1
    if conds:
        raise WorkloadError("this 'if' has no 'endif'", path, conds[-1][1], 1)


_CONDITIONALS = ("if", "else", "endif")
_COMPARISONS = {
    "==": int.__eq__,
    "!=": int.__ne__,
    "<": int.__lt__,
    ">": int.__gt__,
    "<=": int.__le__,
    ">=": int.__ge__,
}


def _conditional(lp: _LineParser, conds: list[list], skipping: bool, words: WordState) -> bool:
    """An ``if COND`` / ``else`` / ``endif`` line (docs/workloads.md): the conditions are
    the profile's, decided while parsing, as the C preprocessor decides ``#if``; the lines
    of a branch not taken are not events (and are not parsed). Whether the lines that follow
    are skipped."""
    path, lineno, raw, first = lp.path, lp.lineno, lp.raw, lp.words[0]
    if first != "if":
        lp.arity(1, 1, first)
        if not conds:
            raise lp.error(f"{first!r} without 'if'", 1)
        if first == "endif":
            taken, _line, _else = conds.pop()
            return bool(conds) and not conds[-1][0]
        if conds[-1][2]:
            raise lp.error("a second 'else' for the same 'if'", 1)
        conds[-1][2] = True
        outer = len(conds) < 2 or conds[-2][0]
        conds[-1][0] = outer and not conds[-1][0]
        return not conds[-1][0]
    if skipping:  # nested in a branch not taken: not evaluated
        conds.append([False, lineno, False])
        return True
    n = len(lp)
    if n == 2:
        tok, col = lp.word(1), lp.col(1)
        name = tok[1:] if tok.startswith("!") else tok
        if name not in DEFINE_NAMES:
            raise lp.error(
                f"unknown name {_short(name)} to test (known: "
                f"{', '.join(sorted(DEFINE_NAMES))}; or compare: if A == B)",
                col,
            )
        taken = bool(words.arch_value(name, path, lineno, col)) != tok.startswith("!")
    elif n == 4 and lp.word(2) in _COMPARISONS:
        a = lp.number_at(
            lp.word(1), lp.col(1), "left operand", signed=True, limit=1 << 64, kind="64 bits"
        )
        b = lp.number_at(
            lp.word(3), lp.col(3), "right operand", signed=True, limit=1 << 64, kind="64 bits"
        )
        taken = _COMPARISONS[lp.word(2)](a, b)
    else:
        raise lp.error(
            f"usage: if NAME | if !NAME | if A OP B (OP: {' '.join(_COMPARISONS)})",
            lp.col(2) if n > 2 else len(raw) + 1,
        )
    conds.append([taken, lineno, False])
    return not taken


def _parse_args(lp: _LineParser, op: str, target: str | None):
    """Operands of one statement, checked; and the kind of value it binds."""
    n = len(lp)
    if op in _VALUE_OPS:
        usage, binds = _VALUE_OPS[op]
    else:
        binds = None
    if op == "task":
        lp.arity(3, 3, "task COMM PID")
        return (
            lp.word(1),
            lp.number(2, "PID", limit=PID_MAX_LIMIT, kind="a pid (below PID_MAX_LIMIT, 4194304)"),
        ), None
    if op == "func":
        lp.arity(2, 3, "func NAME [LEN]")
        length = lp.number(2, "LEN") if n > 2 else 0x400
        if length <= 0:
            raise lp.error("LEN must be positive", lp.col(2))
        name = lp.token(1, "function name")
        if not _SYMBOL.match(name):
            raise lp.error(f"function name must be a symbol, not {_short(name)}", lp.col(1))
        return (name, length), None
    if op in ("kmalloc", "kzalloc", "vmalloc", "alloca"):
        lp.arity(2, 2, usage)
        return (lp.number(1, "SIZE"),), binds
    if op == "kmalloc_node":
        lp.arity(3, 3, usage)
        return (lp.number(1, "SIZE"), lp.number(2, "NODE", limit=INT_MAX + 1, kind="int")), binds
    if op == "krealloc":
        lp.arity(3, 3, usage)
        return (lp.addr(1, "PTR"), lp.number(2, "SIZE")), binds
    if op in ("ksize", "kfree", "kfree_sensitive", "vfree", "call_rcu", "queue_work"):
        lp.arity(2, 2, f"{op} PTR")
        return (lp.addr(1, "PTR"),), (ADDR if target else None)
    if op == "kmem_cache_create":
        lp.arity(3, 8, usage)
        name, size = lp.word(1), lp.number(2, "SIZE", limit=1 << 32, kind="unsigned int")
        align, flags, ctor = 0, 0, False
        for i in range(3, n):
            tok, col = lp.word(i), lp.col(i)
            if tok == "ctor":
                ctor = True
            elif tok in SLAB_FLAG_NAMES:
                flags |= SLAB_FLAG_NAMES[tok]
            elif i == 3 and _SIZE.match(tok):
                align = lp.number(3, "ALIGN", limit=1 << 32, kind="unsigned int")
                if align & (align - 1):
                    raise lp.error("ALIGN must be a power of two", col)
            else:
                raise lp.error(
                    f"unknown flag {_short(tok)} (known: ctor, "
                    f"{', '.join(sorted(SLAB_FLAG_NAMES))})",
                    col,
                )
        if size <= 0:
            raise lp.error("SIZE must be positive", lp.col(2))
        return (name, size, align, flags, ctor), binds
    if op == "kmem_cache_alloc":
        lp.arity(2, 2, usage)
        return (lp.var(1, CACHE, "CACHE"),), binds
    if op == "kmem_cache_free":
        lp.arity(3, 3, "kmem_cache_free CACHE PTR")
        return (lp.var(1, CACHE, "CACHE"), lp.addr(2, "PTR")), None
    if op == "kmem_cache_destroy":
        lp.arity(2, 2, "kmem_cache_destroy CACHE")
        return (lp.var(1, CACHE, "CACHE"),), None
    if op == "alloc_pages":
        lp.arity(2, 2, usage)
        return (_order(lp, 1),), binds
    if op == "__free_pages":
        lp.arity(3, 3, "__free_pages PTR ORDER")
        return (lp.addr(1, "PTR"), _order(lp, 2)), None
    if op == "mempool_create_kmalloc_pool":
        lp.arity(3, 3, usage)
        return (_min_nr(lp), lp.number(2, "SIZE")), binds
    if op == "mempool_create_slab_pool":
        lp.arity(3, 3, usage)
        return (_min_nr(lp), lp.var(2, CACHE, "CACHE")), binds
    if op == "mempool_create_page_pool":
        lp.arity(3, 3, usage)
        return (_min_nr(lp), _order(lp, 2)), binds
    if op == "mempool_alloc":
        lp.arity(2, 2, usage)
        return (lp.var(1, POOL, "POOL"),), binds
    if op == "mempool_free":
        lp.arity(3, 3, "mempool_free PTR POOL")
        return (lp.addr(1, "PTR"), lp.var(2, POOL, "POOL")), None
    if op == "mempool_destroy":
        lp.arity(2, 2, "mempool_destroy POOL")
        return (lp.var(1, POOL, "POOL"),), None
    if op == "global":
        lp.arity(3, 3, usage)
        size = lp.number(2, "SIZE")
        if size <= 0:
            raise lp.error("SIZE must be positive", lp.col(2))
        return (lp.name(1, "global name"), size), binds
    if op == "frame":
        gcc = n > 1 and lp.word(1) == "gcc"
        if n < 2 + gcc:
            raise lp.error(
                "missing operand; usage: frame [gcc] VAR:SIZE [VAR:SIZE ...]", len(lp.raw) + 1
            )
        if gcc:
            return _gcc_frame(lp), None
        objs = []
        prev_end = None
        for tok, col in lp.pairs(1):
            m = _FRAME_VAR.match(tok)
            if not m:
                raise lp.error(
                    f"frame variable must be VAR:SIZE or VAR@OFF:SIZE, not {_short(tok)}", col
                )
            name, off = m.group(1), m.group(2)
            size = lp.number_at(m.group(3), col, "frame variable size")
            if size <= 0:
                raise lp.error("a frame variable needs a positive size", col)
            if off is None:
                off = 32 if prev_end is None else -(-prev_end // 32) * 32 + 32
            else:
                off = lp.number_at(off, col, "frame offset")
                if (
                    off % KASAN_GRANULE_SIZE
                    or (prev_end is not None and off < prev_end + 8)
                    or off < 8
                ):
                    raise lp.error(
                        "frame offsets must be granule aligned, increasing, and "
                        "leave a redzone before each variable",
                        col,
                    )
            objs.append((name, off, size))
            prev_end = off + size
        return tuple(objs), None
    if op in ("read", "write", "memset"):
        lp.arity(3, 3, f"{op} ADDR SIZE")
        return (lp.addr(1), lp.number(2, "SIZE")), None
    if op in ("memcpy", "memmove"):
        lp.arity(4, 4, f"{op} DST SRC SIZE")
        return (
            lp.addr(1, "DST"),
            lp.addr(2, "SRC"),
            lp.number(3, "SIZE", signed=(op == "memmove")),
        ), None
    if op == "rcu_barrier":
        lp.arity(1, 1, "rcu_barrier")
        return (), None
    if op == "expect":
        if n < 2:
            raise lp.error(
                "missing operand; usage: expect TYPE [TYPE ...] | expect none", len(lp.raw) + 1
            )
        types = [lp.word(i) for i in range(1, n)]
        if types == ["none"]:
            return (), None
        for tok, col in lp.pairs(1):
            if tok not in BUG_TYPES:
                raise lp.error(f"unknown bug type {_short(tok)}", col)
        return tuple(types), None
    raise lp.error(f"unknown statement {_short(op)} (see docs/workloads.md)", lp.col(0))


ASAN_RED_ZONE_SIZE = 32  # gcc/asan.h
ASAN_MIN_RED_ZONE_SIZE = 16


def asan_var_and_redzone_size(size: int) -> int:
    """gcc/asan.h asan_var_and_redzone_size() (GCC 8 on): a stack variable with its redzone."""
    if size <= 4:
        return 16
    if size <= 16:
        return 32
    for limit, redzone in ((128, 32), (512, 64), (4096, 128)):
        if size <= limit:
            return size + redzone
    return size + 256


def gcc_frame_offsets(sizes: list[int]) -> list[int]:
    """The frame offsets gcc gives a function's instrumented stack variables (in declaration
    order, each at most 16-byte aligned), as the report's "This frame has N objects" lists them:
    gcc/cfgexpand.cc expand_stack_vars() takes them by decreasing size (stack_var_cmp(), the
    declaration order among equals), each from the top of the frame down in
    asan_var_and_redzone_size() bytes at ASAN_MIN_RED_ZONE_SIZE alignment (the first at least
    ASAN_RED_ZONE_SIZE); asan_emit_stack_protection() puts the frame base ASAN_RED_ZONE_SIZE
    below the lowest, aligned down to it. Offsets count from that base."""
    top = 0
    at = [0] * len(sizes)
    for n, i in enumerate(sorted(range(len(sizes)), key=lambda i: -sizes[i])):
        size = asan_var_and_redzone_size(sizes[i])
        if n == 0:
            size = max(size, ASAN_RED_ZONE_SIZE)
        top = (top - size) // ASAN_MIN_RED_ZONE_SIZE * ASAN_MIN_RED_ZONE_SIZE
        at[i] = top
    base = min(at) // ASAN_RED_ZONE_SIZE * ASAN_RED_ZONE_SIZE - ASAN_RED_ZONE_SIZE
    return [a - base for a in at]


def _gcc_frame(lp: _LineParser) -> tuple:
    """``frame gcc VAR:SIZE ...``: the variables in declaration order, laid out as gcc does."""
    names, sizes = [], []
    for tok, col in lp.pairs(2):
        m = _FRAME_VAR.match(tok)
        if not m or m.group(2) is not None:
            raise lp.error(f"a gcc frame variable must be VAR:SIZE, not {_short(tok)}", col)
        size = lp.number_at(m.group(3), col, "frame variable size")
        if size <= 0:
            raise lp.error("a frame variable needs a positive size", col)
        names.append(m.group(1))
        sizes.append(size)
    return tuple(sorted(zip(names, gcc_frame_offsets(sizes), sizes), key=lambda v: v[1]))


def _min_nr(lp: _LineParser) -> int:
    return lp.number(1, "MIN", limit=INT_MAX + 1, kind="int")


def _order(lp: _LineParser, i: int) -> int:
    order = lp.number(i, "ORDER", limit=1 << 32, kind="unsigned int")
    if order > 20:
        raise lp.error("ORDER must be a page order (0..MAX_PAGE_ORDER)", lp.col(i))
    return order


@dataclass
class StepOutcome:
    """What one event did: the reports it produced, and a failed expectation if any."""

    event: Event
    reports: list[BadAccess]
    expect_failure: str | None = None


# A variable's value, of the kind the parser checked it is bound to: an address (ADDR), a
# kmem_cache (CACHE) or a mempool (POOL); None, a cache or pool whose creation failed
Value = int | KmemCache | Mempool | None


class EventSource(Protocol):
    """What a WorkloadRunner runs: a Workload, or the part of one from an event on (a
    session's, going on from a checkpoint)."""

    @property
    def events(self) -> Iterable[Event]: ...

    @property
    def funcs(self) -> FuncTable: ...


class WorkloadRunner:
    """Runs a workload's events, in order, on a Machine (events are consumed as they come)."""

    def __init__(self, machine: Machine, workload: EventSource) -> None:
        self.machine = machine
        self.workload = workload
        if isinstance(workload, Workload):
            workload.bind(machine.profile)
        self._events = iter(workload.events)
        machine.depot = WorkloadDepot(workload.funcs)
        self.values: dict[str, Value] = {}
        self.position = 0  # events run so far
        self.last_reports: list[BadAccess] = []
        self.expect_failures: list[str] = []
        self._mask = (1 << machine.bits) - 1
        self._ops = {name[3:]: getattr(self, name) for name in dir(self) if name.startswith("op_")}

    def __iter__(self) -> Iterator[StepOutcome]:
        while (outcome := self.step()) is not None:
            yield outcome

    def run(self, on_reports=None, after_event=None) -> list[str]:
        """Run every remaining event; the failed expectations.

        ``on_reports(reports)`` is called with the new reports of each event that made some,
        ``after_event(event)`` after every event. On the Python engine this is ``_run()``; on
        the native engine, a compiled loop (_runner.pyx) does kmalloc and kfree itself, the
        same way, and gives every other event to ``_step()``.
        """
        with gc_paused():
            if self.machine.engine == "native":
                return native.compiled_for_native("_runner").run(self, on_reports, after_event)
            self._run(self._events, on_reports, after_event)
        return self.expect_failures

    def step(self) -> StepOutcome | None:
        """Run the next event (None at the end of the workload)."""
        ev = next(self._events, None)
        if ev is None:
            return None
        failures = len(self.expect_failures)
        new = self._step(ev)
        failure = self.expect_failures[-1] if len(self.expect_failures) > failures else None
        return StepOutcome(ev, new, failure)

    def _step(self, ev: Event) -> list[BadAccess]:
        """Run one event through ``_run()``: its new reports."""
        reports = self.machine.reports
        before = len(reports)
        self._run((ev,), None, None)
        return reports[before:]

    def _run(self, events: Iterable[Event], on_reports, after_event) -> None:
        """Run ``events``: the rule of a statement, its one Python copy (``step()`` and the
        native loop's other statements run one event through it). For each event: the
        position, the machine's ip for reports and tracks, the statement (kmalloc and its
        aliases and kfree, the commonest by far, here; the rest by their ``op_*`` method), the
        value bound to the target, a failed allocation counted, the new reports numbered with
        the event and kept as ``last_reports`` for an ``expect``, a KernelOops naming the line,
        the callbacks."""
        m = self.machine
        reports = m.reports
        values = self.values
        ops = self._ops
        mask = self._mask
        failed = m.failed
        kmalloc, kfree = m.kmalloc, m.kfree
        position = self.position  # written back before callbacks and at the end
        last_start = last_end = 0
        last_here = False  # last_reports is reports[last_start:last_end]
        ev = None
        try:
            for ev in events:
                position += 1
                index, _, line, _, op, target, args, frame = ev
                m.ip = frame
                m.ip_handle = line
                before = len(reports)
                if op in _KMALLOCS:  # kmalloc(), kzalloc(), kmalloc_node()
                    value = kmalloc(args[0])
                    if target is not None:
                        values[target] = value
                        if not value:
                            failed[op] += 1
                elif op == "kfree":
                    var, offset = args[0]  # an Addr, as _addr() reads it
                    kfree((offset if var is None else values[var] + offset) & mask)
                else:
                    if last_here:
                        self.last_reports = reports[last_start:last_end]
                        last_here = False
                    self.position = position
                    value = ops[op](ev)
                    if target is not None:
                        values[target] = value
                        if not value and op in ALLOCATORS:
                            failed[op] += 1
                    if op == "expect":  # reads the last reports, keeps them
                        if after_event is not None:
                            self.position = position
                            after_event(ev)
                        continue
                last_start, last_end, last_here = before, len(reports), True
                if last_end != before:
                    new = reports[before:]
                    for r in new:
                        r.event_index = index
                    if on_reports is not None:
                        self.position = position
                        on_reports(new)
                if after_event is not None:
                    self.position = position
                    after_event(ev)
        except KernelOops as e:
            assert ev is not None  # an event raised it
            raise KernelOops(e.message, ev.path, ev.line) from None
        finally:
            self.position = position
            if last_here:
                self.last_reports = reports[last_start:last_end]

    def _object(self, ev: Event, i: int, call: str):
        """The kmem_cache or mempool that operand i names; a NULL one (its creation failed)
        is dereferenced by ``call`` outside KASAN's instrumentation: the kernel oopses."""
        value = self.values[ev.args[i]]
        if value is None:
            raise KernelOops(
                f"{call}() on {ev.args[i]!r}, which is NULL (its creation "
                "failed): the kernel would oops here (NULL pointer dereference)",
                ev.path,
                ev.line,
            )
        return value

    def _addr(self, a: Addr) -> int:
        base = 0 if a.var is None else self.values[a.var]
        assert isinstance(base, int)  # an ADDR variable
        return (base + a.offset) & self._mask

    # One method per statement (docs/workloads.md).

    def _expect(self, ev: Event, last: list[BadAccess]) -> None:
        got = [r.bug_type for r in last]
        want = list(ev.args)
        if got != want:
            self.expect_failures.append(
                f"{ev.path}:{ev.line}: expected {' '.join(want) or 'none'}, "
                f"got {' '.join(got) or 'none'}"
            )

    def op_expect(self, ev: Event) -> None:
        self._expect(ev, self.last_reports)

    def op_task(self, ev: Event) -> None:
        self.machine.set_task(*ev.args)

    def op_func(self, ev: Event) -> None:
        self.machine.pop_frames()

    # kmalloc, kzalloc, kmalloc_node and kfree: _run() itself.

    def op_krealloc(self, ev: Event) -> int:
        return self.machine.krealloc(self._addr(ev.args[0]), ev.args[1])

    def op_ksize(self, ev: Event) -> int:
        return self.machine.ksize(self._addr(ev.args[0]))

    def op_kfree_sensitive(self, ev: Event) -> None:
        self.machine.kfree_sensitive(self._addr(ev.args[0]))

    def op_kmem_cache_create(self, ev: Event):
        return self.machine.kmem_cache_create(*ev.args)

    def op_kmem_cache_alloc(self, ev: Event) -> int:
        return self.machine.kmem_cache_alloc(self._object(ev, 0, "kmem_cache_alloc"))

    def op_kmem_cache_free(self, ev: Event) -> None:
        cache = self.values[ev.args[0]]
        if cache is not None:  # cache_from_obj() gives NULL back: nothing is freed
            assert isinstance(cache, KmemCache)  # a CACHE variable
            self.machine.kmem_cache_free(cache, self._addr(ev.args[1]))

    def op_kmem_cache_destroy(self, ev: Event) -> None:
        cache = self.values[ev.args[0]]
        if cache is not None:  # kmem_cache_destroy(NULL) returns at once
            assert isinstance(cache, KmemCache)  # a CACHE variable
            self.machine.kmem_cache_destroy(cache)

    def op_alloc_pages(self, ev: Event) -> int:
        return self.machine.alloc_pages_addr(ev.args[0])

    def op___free_pages(self, ev: Event) -> None:
        try:
            self.machine.free_pages_addr(self._addr(ev.args[0]), ev.args[1])
        except ValueError as e:
            raise WorkloadError(str(e), ev.path, ev.line) from None

    def op_vmalloc(self, ev: Event) -> int:
        return self.machine.vmalloc(ev.args[0])

    def op_vfree(self, ev: Event) -> None:
        self.machine.vfree(self._addr(ev.args[0]))

    def op_mempool_create_kmalloc_pool(self, ev: Event):
        return self.machine.mempool_create("kmalloc", ev.args[0], size=ev.args[1])

    def op_mempool_create_slab_pool(self, ev: Event):
        # mempool_alloc_slab() would kmem_cache_alloc() from the NULL cache at once
        return self.machine.mempool_create(
            "slab", ev.args[0], cache=self._object(ev, 1, "mempool_alloc_slab")
        )

    def op_mempool_create_page_pool(self, ev: Event):
        return self.machine.mempool_create("page", ev.args[0], size=ev.args[1])

    def op_mempool_alloc(self, ev: Event) -> int:
        return self.machine.mempool_alloc(self._object(ev, 0, "mempool_alloc"))

    def op_mempool_free(self, ev: Event) -> None:
        addr = self._addr(ev.args[0])
        if addr <= 16:  # mempool_free(NULL, pool) returns at once
            return
        try:
            self.machine.mempool_free(addr, self._object(ev, 1, "mempool_free"))
        except ValueError as e:
            raise WorkloadError(str(e), ev.path, ev.line) from None

    def op_mempool_destroy(self, ev: Event) -> None:
        pool = self.values[ev.args[0]]
        if pool is not None:  # mempool_destroy(NULL) returns at once
            assert isinstance(pool, Mempool)  # a POOL variable
            self.machine.mempool_destroy(pool)

    def op_global(self, ev: Event) -> int:
        return self.machine.register_global(*ev.args)

    def op_frame(self, ev: Event) -> None:
        base = self.machine.push_frame([(off, size, name) for name, off, size in ev.args])
        for name, off, _size in ev.args:
            self.values[name] = base + off if base else 0  # no stack (fork failed): NULL

    def op_alloca(self, ev: Event) -> int:
        return self.machine.alloca(ev.args[0])

    def op_read(self, ev: Event) -> None:
        self.machine.check_access(self._addr(ev.args[0]), ev.args[1], False)

    def op_write(self, ev: Event) -> None:
        self.machine.check_access(self._addr(ev.args[0]), ev.args[1], True)

    op_memset = op_write

    def op_memmove(self, ev: Event) -> None:
        dst, src, size = ev.args
        self.machine.memmove(self._addr(dst), self._addr(src), size & self._mask)

    op_memcpy = op_memmove

    def op_call_rcu(self, ev: Event) -> None:
        self.machine.call_rcu(self._addr(ev.args[0]))

    def op_queue_work(self, ev: Event) -> None:
        self.machine.queue_work(self._addr(ev.args[0]))

    def op_rcu_barrier(self, ev: Event) -> None:
        self.machine.rcu_barrier()
