"""The ftrace reader: every era's line format, bad input, hashed pointers; and the replay."""

from __future__ import annotations

import contextlib
import gzip
import io
import lzma
import multiprocessing
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from kinspect.cli import main
from kinspect.engine import ftrace
from kinspect.engine.errors import TraceError
from kinspect.engine.ftrace import (
    KFREE,
    KMALLOC,
    KMEM_CACHE_ALLOC,
    KMEM_CACHE_FREE,
    PAGE_ALLOC,
    PAGE_FREE,
    ParallelTraceReader,
    TraceEvent,
    TraceReader,
)
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.replay import replay_trace

X86_TRACE = ROOT / "samples" / "traces" / "kmem-trace-x86_64.txt.xz"

# One line per era; the real ones come from: 2.6.33, Andrew Morton quoting Li Hong on linux-mm,
# 2010-01-14 <20100114144732.6f0f82a6.akpm@linux-foundation.org>; 3.x, an i386 boot like the
# 3.6.0-rc1 kmem logs of github.com/ezequielgarcia/kmem-probe-framework; 5.4.44, a blog post;
# 6.12, samples/traces/kmem-trace-x86_64.txt.xz; options/fields, Steven Rostedt's
# <20241219012346.575822656@goodmis.org>; nr_free, a linux-mm patch discussion.
ERA_LINES = [
    # 2.6.33: no flags column, decimal pfn
    (
        "  gnome-terminal-1567  [000]  4415.246466: mm_page_free_direct: page=ffffea0003db9f40 "
        "pfn=1155800 order=0",
        PAGE_FREE,
        dict(pfn=1155800, order=0, comm="gnome-terminal", pid=1567),
    ),
    # 3.x: 4 flag characters, raw call site, 32-bit pointers
    (
        "            init-1     [000] .N..     0.170000: kmalloc: call_site=c104de4f ptr=c143de20 "
        "bytes_req=29 bytes_alloc=32 gfp_flags=GFP_KERNEL",
        KMALLOC,
        dict(ptr=0xC143DE20, bytes_req=29, bytes_alloc=32, call_site="c104de4f", comm="init"),
    ),
    # 5.4: %pS call site, hashed pointer (a single line is not enough to refuse it)
    (
        "          <idle>-0     [003] ..s. 312444.111637: kmem_cache_alloc: "
        "call_site=__build_skb+0x24/0x60 ptr=0000000003218205 bytes_req=224 bytes_alloc=256 "
        "gfp_flags=GFP_ATOMIC",
        KMEM_CACHE_ALLOC,
        dict(bytes_req=224, bytes_alloc=256, call_site="__build_skb+0x24/0x60", comm="<idle>"),
    ),
    # 6.12: 5 flag characters, node= and accounted=, hex pfn
    (
        "          <idle>-0       [000] d....     2.246921: mm_page_alloc: page=ffff88813ef91300 "
        "pfn=0x10644c order=0 migratetype=0 gfp_flags=__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP",
        PAGE_ALLOC,
        dict(pfn=0x10644C, order=0),
    ),
    # kmem_cache_free with name= (5.x+), NULL on 64-bit
    (
        "   kworker/u4:2-40  [001] ..... 10.5: kmem_cache_free: call_site=rcu_core+0x6a2/0xec0 "
        "ptr=ffff888004e74000 name=test_cache",
        KMEM_CACHE_FREE,
        dict(ptr=0xFFFF888004E74000, name="test_cache", comm="kworker/u4:2", pid=40),
    ),
    (
        "   a-b-c-7  [001] ..... 10.5: kfree: call_site=foo+0x1/0x2 ptr=          (null)",
        KFREE,
        dict(ptr=0, comm="a-b-c", pid=7),
    ),
    # options/fields output: hex plus decimal, real addresses
    (
        "  sh-90 [001] ..... 10.5: kmalloc: call_site=0xffffffff92d10d97 (-1831793257) "
        "ptr=0xffff9e0e8571e000 (-107689771147264) bytes_req=0x1000 (4096) bytes_alloc=0x1000 "
        "(4096) gfp_flags=0xcc0 (3264) node=0xffffffff (-1) accounted=(0)",
        KMALLOC,
        dict(ptr=0xFFFF9E0E8571E000, bytes_req=4096, bytes_alloc=4096),
    ),
    # patched kernels add fields; function_graph embeds events as comments
    (
        "  sh-90 [001] ..... 10.5: mm_page_alloc: page=00000000d2be5665 pfn=970744 order=0 "
        "migratetype=0 nr_free=3650 gfp_flags=GFP_HIGHUSER|__GFP_ZERO",
        PAGE_ALLOC,
        dict(pfn=970744),
    ),
    (
        " 1)               |  /* mm_page_alloc: page=0000000000000000 pfn=0 order=9 "
        "migratetype=1 gfp_flags=GFP_KERNEL */",
        PAGE_ALLOC,
        dict(pfn=0, order=9),
    ),
    # pasted without the task prefix
    (
        "kmalloc: call_site=c104de4f ptr=c143de20 bytes_req=29 bytes_alloc=32 gfp_flags=GFP_KERNEL",
        KMALLOC,
        dict(ptr=0xC143DE20),
    ),
]


def _write(tmp_path, text: str, name="t.txt", opener=open) -> str:
    path = tmp_path / name
    with opener(path, "wt") as f:
        f.write(text)
    return str(path)


@pytest.mark.parametrize("line,kind,fields", ERA_LINES)
def test_every_era_line_format(tmp_path, line, kind, fields):
    [ev] = list(TraceReader(_write(tmp_path, "# tracer: nop\n" + line + "\n")))
    assert ev.kind == kind and ev.line == 2
    for key, value in fields.items():
        assert getattr(ev, key) == value, key


@pytest.mark.parametrize("opener,name", [(gzip.open, "t.txt.gz"), (lzma.open, "t.txt.xz")])
def test_compressed_traces(tmp_path, opener, name):
    path = _write(tmp_path, ERA_LINES[1][0] + "\n", name, opener)
    assert [e.kind for e in TraceReader(path)] == [KMALLOC]


def test_bad_lines_are_counted_with_line_numbers_or_strict(tmp_path):
    text = (
        "\n".join(
            [
                ERA_LINES[1][0],
                "garbage here",
                ERA_LINES[1][0][:60],
                "  x-1 [000] ..... 1.0: sched_switch: prev=a next=b",
            ]
        )
        + "\n"
    )
    path = _write(tmp_path, text)
    reader = TraceReader(path)
    assert [e.kind for e in reader] == [KMALLOC]
    assert reader.stats.bad_lines == 2
    assert [n for n, _ in reader.stats.first_bad] == [2, 3]
    assert reader.stats.other_events == {"sched_switch": 1}
    with pytest.raises(TraceError) as e:
        list(TraceReader(path, strict=True))
    assert (e.value.line, str(e.value).split(": ")[0]) == (2, f"{path}:2")


def test_not_a_trace_and_binary_files(tmp_path):
    with pytest.raises(TraceError, match="not an ftrace text file"):
        list(TraceReader(_write(tmp_path, "hello\nworld\n")))
    binary = tmp_path / "b.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(TraceError, match="not an ftrace text file"):
        list(TraceReader(str(binary)))


def test_hashed_pointers_are_explained(tmp_path):
    lines = [
        f"  sh-9 [000] ..... 1.{i}: kmalloc: call_site=f+0x1/0x2 ptr={0x3E4C3799 + i:016x} "
        f"bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL"
        for i in range(300)
    ]
    with pytest.raises(TraceError, match="hashed.*no_hash_pointers"):
        list(TraceReader(_write(tmp_path, "\n".join(lines) + "\n")))


def test_cli_bad_trace_is_one_line_exit_2(tmp_path, capsys):
    path = _write(tmp_path, "x", name="t.txt.gz")
    assert main(["run", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kinspect: ") and err.count("\n") == 1


def test_replay_of_the_real_trace_prefix(tmp_path):
    """The first 20 000 lines of the real x86_64 trace replay with no report and keep every
    traced key mapped (the simulated allocator places objects and pages itself)."""
    with lzma.open(X86_TRACE, "rt") as f:
        head = "".join(next(f) for _ in range(20_000))
    path = _write(tmp_path, head)
    m = Machine(load_profile("x86_64-q35-3g"))
    reader, replayer = replay_trace(m, path)
    assert m.reports == []
    s = replayer.stats
    assert sum(reader.stats.events.values()) == replayer.events
    assert s.replayed["kmem_cache_alloc"] > 200 and s.replayed["kmalloc"] > 5000
    assert s.slab_pages > 0
    assert not s.failed
    live = len(replayer.objects)
    assert (
        live
        == s.replayed["kmalloc"]
        + s.replayed["kmem_cache_alloc"]
        - s.replayed["kfree"]
        - s.replayed["kmem_cache_free"]
        - s.freed_before_trace["lost free"]
    )


# ------------------------------------------------------------------ the block scanner


def _per_line(path: str, strict: bool = False):
    """The reference reading: every line through the per-line path (``_line``), as the reader
    read traces before the block scanner. The block scanner must give the same everything."""
    r = TraceReader(path, strict=strict)
    events, error = [], None
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        for n, raw in enumerate(lines, 1):
            if raw[:1] == b"#" or not raw.strip():
                continue
            ev = r._line(raw, n)
            if ev is not None:
                events.append(ev)
        r.stats.lines = len(lines)
        if not r._seen_event:
            raise TraceError("not an ftrace text file", path)
    except TraceError as e:
        error = (str(e).split(":")[0], e.line)
    return events, error, _stats(r, error is None), r.pointer_bits


def _blockwise(path: str, strict: bool = False):
    r = TraceReader(path, strict=strict)
    events, error = [], None
    try:
        for ev in r:
            events.append(ev)
    except TraceError as e:
        error = (str(e).split(":")[0], e.line)
    return events, error, _stats(r, error is None), r.pointer_bits


def _stats(r: TraceReader, finished: bool):
    s = r.stats
    return (
        s.lines if finished else None,
        list(s.events.items()),
        list(s.other_events.items()),
        s.bad_lines,
        s.first_bad,
        s.markers,
    )


def _same_both_ways(path: str) -> None:
    for strict in (False, True):
        assert _blockwise(path, strict) == _per_line(path, strict)


COMMS = [
    "<idle>",
    "kworker/u4:2",
    "<...>",
    "a-b-c",
    "sh",
    "(sd-pam)",
    "Web Content",
    "x[1]",
    "a-12 b",
    "a-12\tb",
    "#c",
    "-",
    "q-",
    " lead",
    "caf\xc3\xa9",
    "a(1)",
    "a-1 (-5)",
]
ALLOCS = ["kmalloc", "kmalloc_node", "kmem_cache_alloc", "kmem_cache_alloc_node"]
FREES = ["kfree", "kmem_cache_free"]
PAGES = [
    "mm_page_alloc",
    "mm_page_free",
    "mm_page_free_batched",
    "mm_page_free_direct",
    "mm_pagevec_free",
]
OTHERS = ["mm_page_alloc_zone_locked", "tracing_mark_write", "sched_switch", "kmallocx", "kfree_x"]
ALLOC_FIELDS = [
    "call_site={cs} ptr={ptr} bytes_req=29 bytes_alloc=32 gfp_flags=GFP_KERNEL",
    "call_site={cs} ptr={ptr} bytes_req=64 bytes_alloc=128 gfp_flags=GFP_KERNEL "
    "node=-1 accounted=false",
    "call_site={cs} ptr={ptr} bytes_req=8",
    "call_site={cs} ptr={ptr} bytes_req=08 bytes_alloc=8 node=1",
    "call_site=0xffffffff92d10d97 (-1831793257) ptr=0xffff9e0e8571e000 "
    "(-107689771147264) bytes_req=0x1000 (4096) bytes_alloc=0x1000 (4096)",
]
FREE_FIELDS = [
    "call_site={cs} ptr={ptr}",
    "call_site={cs} ptr={ptr} name=test_cache",
    "call_site={cs} ptr={ptr} name=caf\xc3\xa9",
    "call_site={cs} ptr={ptr}  ",
    "call_site={cs} ptr={ptr} name=bad\xff",
    "call_site={cs} ptr={ptr} extra=1",
    "call_site={cs} ptr={ptr} name=a b",
]
PAGE_FIELDS = [
    "page=ffffea0003db9f40 pfn={pfn} order=0",
    "page=ffffea0003db9f40 pfn={pfn} order=3 migratetype=0 gfp_flags=GFP_KERNEL",
    "page=00000000d2be5665 pfn={pfn} order=0 nr_free=3",
    "page= ffff pfn={pfn} order=1 cold=0",
    "pfn={pfn} order=0",
    "page=ffff pfn={pfn} order=x",
]
CALL_SITES = [
    "getname_flags+0x47/0x1f0",
    "c104de4f",
    "f+0x1/0x2 [mod]",
    "caf\xc3\xa9+0x1/0x2",
    "0",
    "a\x7fb",
    "bad\xff+0x1/0x2",
]
POINTERS = [
    "ffff88810644b100",
    "c143de20",
    "          (null)",
    "(null)",
    "FFFF8881",
    "0x1f",
    "ffff8881zz",
    "  c143de20",
]
PFNS = ["0x10644c", "1155800", "0", "0123", "0x1A", "-1", "00"]


# A well-formed line, part by part: (default, variants). Lines with one part changed, every
# way, are read both ways below; the fuzz test changes a few parts at random.
FAMILIES = [
    (ALLOCS, ALLOC_FIELDS),
    (FREES, FREE_FIELDS),
    (PAGES, PAGE_FIELDS),
    (OTHERS, ["a=1 b", ""]),
]
PARTS = [
    ("lead", "          ", ["", " ", "\t", "\x0b"]),
    ("comm", "sh", COMMS),
    ("pid", "-90", ["-0", "-1x", "-", "-123456", ""]),
    ("sp1", " ", ["  ", "\t", "", "\r"]),
    ("tgid", "", ["(  12) ", "(-----) ", "(1)"]),
    ("cpu", "[001]", ["[x]", "[1", "001]"]),
    ("sp2", " ", ["  ", "\t", ""]),
    ("flags", "d.... ", [".N.. ", "", "d....", "..s.  "]),
    ("ts", "2.245139", ["312444.111637", "7", "1.", ".5"]),
    ("sp3", ": ", [":  ", ":\t", ":", " : "]),
    ("sp4", ": ", [":", ":  ", ":\t", " : "]),
    ("end", "", [" ", "\r", "\t", "\x00", "\xff"]),
]
VALUES = [
    ("cs", "getname_flags+0x47/0x1f0", CALL_SITES),
    ("ptr", "ffff88810644b100", POINTERS),
    ("pfn", "0x10644c", PFNS),
]
ADVERSARIAL = [
    # _LINE splits at the first "-pid " that lets a line match: a fast path that split later
    # would read another event than the per-line path.
    "x-1 [000] d.... 1.0: kfree: y-2 [000] d.... 1.0: kmalloc: call_site=f ptr=c143de20 "
    "bytes_req=1 bytes_alloc=8",
    "x-1 [000] d.... 1.0: tracing_mark_write: y-2 [000] d.... 1.0: kfree: call_site=f ptr=c1",
    "x-1 (-5) [000] d.... 1.0: kmalloc: call_site=f ptr=c143de20 bytes_req=1 bytes_alloc=8",
    "a-12 b-3 [000] d.... 1.0: kfree: call_site=f ptr=c143de20",
    "#x-1 [000] d.... 1.0: kfree: call_site=f ptr=c143de20",
    "  #x-1 [000] d.... 1.0: kfree: call_site=f ptr=c143de20",
    "x-1 [000] d.... 1.0: kmalloc: call_site=f ptr=c143de20 bytes_req=1 bytes_alloc=8\x0bz",
    "x-1 [000] d.... 1.0: kfree: call_site=f ptr=c143de20 name=n\x0b",
    "x-1 [000] d.... 1.0: mm_page_free: page=f pfn=0x1 order=0\x0c",
    "x-1 [000] d.... 1.0: mm_page_free_batched: page=f pfn=0x1 order=0",
    "x-1 [000] d.... 1.0: kmem_cache_alloc_node: call_site=f ptr=c1 bytes_req=1 bytes_alloc=8",
]


def _line_of(parts: dict, event: str, fields: str, values: dict) -> str:
    text = "".join(parts[name] if name not in ("sp3", "sp4") else "" for name, *_ in PARTS[:8])
    return (
        text
        + parts["ts"]
        + parts["sp3"]
        + event
        + parts["sp4"]
        + fields.format(**values)
        + parts["end"]
    )


def _one_change_lines() -> list[str]:
    """Every well-formed line with at most one part or value changed, each event family."""
    default = {name: d for name, d, _ in PARTS}
    values = {name: d for name, d, _ in VALUES}
    lines = []
    for events, field_sets in FAMILIES:
        for event in events:
            for fields in field_sets:
                lines.append(_line_of(default, event, fields, values))
        event, fields = events[0], field_sets[0]
        for name, _, variants in PARTS:
            for v in variants:
                lines.append(_line_of({**default, name: v}, event, fields, values))
        for fields in field_sets:
            for name, _, variants in VALUES:
                for v in variants:
                    lines.append(_line_of(default, event, fields, {**values, name: v}))
    return lines


def test_block_scanner_on_every_one_change_line(tmp_path):
    lines = _one_change_lines() + ADVERSARIAL
    path = tmp_path / "lines.txt"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    _same_both_ways(str(path))
    for line in lines:  # one by one too (a strict error stops a whole file)
        path.write_bytes(("# tracer: nop\n" + line + "\n").encode("latin-1"))
        _same_both_ways(str(path))


def _usually(draw, default, variants):
    """The default most of the time, else one of the variants: lines are mostly well formed,
    each with the odd part changed."""
    return (
        variants[draw(st.integers(0, len(variants) - 1))]
        if draw(st.integers(0, 24)) == 12
        else default
    )


@st.composite
def trace_lines(draw):
    """A trace line: well formed with a changed part or two, or something else entirely."""
    if draw(st.integers(0, 9)) == 0:
        return draw(
            st.sampled_from(
                [
                    "",
                    "   ",
                    "# tracer: nop",
                    "#",
                    "garbage here",
                    "\x00\x01binary",
                    " 1)               |  /* mm_page_alloc: page=0 pfn=0 order=9 migratetype=1 */",
                    "kmalloc: call_site=f ptr=c143de20 bytes_req=1 bytes_alloc=8",
                    "  12.5: kfree: call_site=f ptr=c143de20",
                    "tracing_mark_write: hello",
                ]
                + ADVERSARIAL
            )
        )
    events, field_sets = FAMILIES[draw(st.integers(0, 3))]
    event = draw(st.sampled_from(events))
    fields = draw(
        st.sampled_from(
            FAMILIES[_usually(draw, FAMILIES.index((events, field_sets)), [0, 1, 2, 3])][1]
        )
    )
    parts = {name: _usually(draw, d, variants) for name, d, variants in PARTS}
    values = {name: _usually(draw, d, variants) for name, d, variants in VALUES}
    return _line_of(parts, event, fields, values)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(trace_lines(), min_size=1, max_size=12), st.booleans())
def test_block_scanner_reads_every_line_as_the_per_line_path(tmp_path, lines, final_newline):
    """Fuzzed lines of every shape: the block scanner (fast path plus per-line fallback) gives
    the same events, counts, bad lines, markers and errors as the per-line path alone."""
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path = tmp_path / "fuzz.txt"
    path.write_bytes(text.encode("latin-1"))  # "\xc3\xa9" stands for UTF-8 é
    _same_both_ways(str(path))


def test_block_scanner_on_the_real_traces(tmp_path):
    """The first 60 000 lines of both real captures read alike both ways."""
    for trace in ("kmem-trace-x86_64.txt.xz", "kmem-trace-arm32.txt.xz"):
        with lzma.open(ROOT / "samples" / "traces" / trace, "rb") as f:
            head = b"".join(next(f) for _ in range(60_000))
        path = tmp_path / trace.replace(".xz", "")
        path.write_bytes(head)
        events, error, stats, bits = _blockwise(str(path))
        assert (events, error, stats, bits) == _per_line(str(path))
        assert len(events) > 30_000 and error is None


def test_hashed_pointers_stop_after_the_events_before_them(tmp_path):
    """Errors found inside a block come after the block's earlier events, as line by line."""
    lines = [
        f"  sh-9 [000] ..... 1.{i}: kmalloc: call_site=f+0x1/0x2 ptr={0x3E4C3799 + i:016x} "
        f"bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL"
        for i in range(300)
    ]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    events, error, _, _ = _blockwise(path)
    assert (events, error) == _per_line(path)[:2] and len(events) == 255


# ------------------------------------------------------------ reading in a child process

needs_fork = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="ParallelTraceReader forks: Linux only"
)


def _x86_head(tmp_path, lines: int = 20_000) -> str:
    with lzma.open(X86_TRACE, "rt") as f:
        return _write(tmp_path, "".join(next(f) for _ in range(lines)), name="head.txt")


def _replay_both_ways(path: str, **kw):
    out = []
    for parallel in (False, True):
        m = Machine(load_profile("x86_64-q35-3g"))
        seen: list[TraceEvent] = []
        reader, replayer = replay_trace(m, path, parallel=parallel, after_event=seen.append, **kw)
        assert multiprocessing.active_children() == []
        out.append(
            (
                m.summary(),
                reader.stats,
                reader.pointer_bits,
                replayer.stats,
                replayer.events,
                replayer.interrupted,
                sorted(replayer.objects.items()),
                seen,
            )
        )
    return out


@needs_fork
def test_parallel_reader_reads_as_the_reader(tmp_path):
    path = _x86_head(tmp_path)
    assert list(ParallelTraceReader(path)) == list(TraceReader(path))
    sequential, parallel = _replay_both_ways(path)
    assert sequential == parallel
    assert all(type(ev) is TraceEvent for ev in parallel[-1]) and len(parallel[-1]) > 10_000


@needs_fork
def test_parallel_reader_errors_come_after_the_events_before_them(tmp_path):
    for text, strict in (
        (ERA_LINES[1][0] + "\n" + "garbage\n" + ERA_LINES[1][0] + "\n", True),
        ("hello\nworld\n", False),
    ):
        path = _write(tmp_path, text)
        results = []
        for cls in (TraceReader, ParallelTraceReader):
            events = []
            with pytest.raises(TraceError) as e:
                for ev in cls(path, strict=strict):
                    events.append(ev)
            results.append((events, str(e.value), e.value.line))
        assert results[0] == results[1]
    with pytest.raises(TraceError, match="cannot read trace"):
        list(ParallelTraceReader(str(tmp_path / "missing.txt")))


@needs_fork
def test_parallel_replay_stops_cleanly_on_ctrl_c(tmp_path):
    """An interrupt mid-replay: partial figures, the reading child ended, nothing left over."""
    path = _x86_head(tmp_path, 40_000)

    def progress(events, line, fraction):
        if events >= 16384:
            raise KeyboardInterrupt

    for parallel in (False, True):
        m = Machine(load_profile("x86_64-q35-3g"))
        reader, replayer = replay_trace(m, path, progress=progress, parallel=parallel)
        assert replayer.interrupted and replayer.events == 16384
        assert multiprocessing.active_children() == []


@given(st.binary(max_size=80).map(lambda b: b.replace(b"\x00", b"\n")), st.integers(1, 9))
def test_blocks_hold_the_lines_of_split(data, size):
    """Blocks of whole lines: their lines are those of splitting the file at newlines."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    got = []
    for block in ftrace._blocks(io.BytesIO(data), size):
        assert block.endswith(b"\n")
        got += block[:-1].split(b"\n")
    assert got == lines


def test_blocks_cut_endless_lines(monkeypatch):
    """A binary file with no newline is not held whole: it comes in LONGEST_LINE pieces."""
    monkeypatch.setattr(ftrace, "LONGEST_LINE", 10)
    blocks = list(ftrace._blocks(io.BytesIO(b"a" * 25 + b"\nb\n"), 4))
    assert b"".join(blocks) == b"a" * 12 + b"\n" + b"a" * 12 + b"\n" + b"a\nb\n"


# ------------------------------------------------ properties: numbers of every size (issue 11)

_TASK = "  bash-{pid}  [000] .....   100.000001: "
_NUMBER = st.one_of(
    st.integers(-(1 << 70), 1 << 70).map(str),
    st.integers(0, 1 << 80).map(hex),
    st.sampled_from(["08", "0x", "(null)", "1" * 5000, "f" * 20, "-0"]),
)
_EVENT_LINES = [
    "kmalloc: call_site=f+0x1/0x2 ptr={a} bytes_req={b} bytes_alloc={c} gfp_flags=GFP_KERNEL",
    "kmem_cache_alloc: call_site=f+0x1/0x2 ptr={a} bytes_req={b} bytes_alloc={c}",
    "kmalloc: call_site=f ptr={a} bytes_req={b} bytes_alloc={c} node=-1 extra={d}",
    "kfree: call_site=f+0x1/0x2 ptr={a}",
    "kmem_cache_free: call_site=f+0x1/0x2 ptr={a} name=c{b}",
    "mm_page_alloc: page=0x1 pfn={a} order={b} migratetype=0 gfp_flags=GFP_KERNEL",
    "mm_page_free: page=0x1 pfn={a} order={b}",
    "mm_page_alloc: page=0x1 pfn={a} order={b} migratetype=0 extra={c}",
]


@st.composite
def _numeric_lines(draw):
    fields = {k: draw(_NUMBER) for k in "abcd"}
    fields["a"] = draw(st.one_of(_NUMBER, st.integers(0, 1 << 64).map(lambda v: f"{v:x}")))
    pid = draw(st.one_of(st.integers(0, 1 << 40).map(str), st.sampled_from(["1" * 5000])))
    return _TASK.format(pid=pid) + draw(st.sampled_from(_EVENT_LINES)).format(**fields)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_numeric_lines(), min_size=1, max_size=8), st.booleans())
def test_trace_numbers_of_any_size_are_read_or_counted_and_replay(lines, strict):
    """Every field value, in range or not: an event whose values fit their kernel types, or a
    bad line (a TraceError when strict); the block scanner agrees with the per-line path;
    the replay of what was read never fails."""
    data = ("# tracer: nop\n" + "\n".join(lines) + "\n").encode()
    reader = TraceReader("h.txt", strict=strict, stream=io.BytesIO(data))
    try:
        events = list(reader)
    except TraceError as e:
        assert strict and e.line is not None
        return
    for ev in events:
        assert 0 <= ev.ptr < 1 << 64 and 0 <= ev.bytes_req < 1 << 64 and 0 <= ev.pid < 10**7
        assert ev.kind < PAGE_ALLOC or (0 <= ev.pfn < 1 << 64 and 0 <= ev.order < 1 << 32)
    assert len(events) + reader.stats.bad_lines == len(lines)
    machine = Machine(load_profile("x86_64", 64 << 20))
    replay_trace(machine, "h.txt", stream=io.BytesIO(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=80), min_size=1, max_size=10), st.booleans())
def test_any_bytes_are_a_trace_or_a_trace_error(chunks, strict):
    data = b"\n".join(chunks)
    with contextlib.suppress(TraceError):
        list(TraceReader("h.txt", strict=strict, stream=io.BytesIO(data)))
