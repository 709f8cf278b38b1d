"""The compiled ftrace scanner (_ftrace_scan.pyx) against the Python reader, the reference:
the same events, statistics, errors and line numbers on both real traces and on every
malformed input of test_ftrace.py."""

from __future__ import annotations

import lzma
import sys
from itertools import zip_longest
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinspect.engine import native
from kinspect.engine.errors import TraceError
from kinspect.engine.ftrace import ParallelTraceReader, TraceReader
from test_ftrace import ADVERSARIAL, ERA_LINES, _one_change_lines, trace_lines

pytestmark = pytest.mark.skipif(
    native.compiled("_ftrace_scan") is None, reason="the native engine is not built"
)

TRACES = Path(__file__).resolve().parent.parent / "samples" / "traces"


def _read(path: str, engine: str, strict: bool = False):
    """Everything a reading gives: events, the error (text and line), statistics, and the
    state that decides later lines (the pointer sample of the hashing check)."""
    r = TraceReader(path, strict=strict, engine=engine)
    events, error = [], None
    try:
        for batch in r.batches():
            events += batch
    except TraceError as e:
        error = (str(e), e.line)
    s = r.stats
    return (
        events,
        error,
        s.lines,
        list(s.events.items()),
        list(s.other_events.items()),
        s.bad_lines,
        s.first_bad,
        s.markers,
        r.pointer_bits,
        r._seen_event,
        r._ptr_sample,
    )


def _same_both_engines(path: str) -> None:
    for strict in (False, True):
        assert _read(path, "native", strict) == _read(path, "python", strict)


def _write_lines(tmp_path, lines: list[str], name: str = "lines.txt", end: str = "\n") -> str:
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + end).encode("latin-1"))  # "\xc3\xa9": UTF-8 é
    return str(path)


@pytest.mark.parametrize("trace", ["kmem-trace-x86_64.txt.xz", "kmem-trace-arm32.txt.xz"])
def test_the_real_traces_read_alike(trace):
    """Every event of both real captures, block by block, and all the statistics."""
    path = str(TRACES / trace)
    readers = [TraceReader(path, engine=engine) for engine in ("native", "python")]
    events = 0
    for ours, reference in zip_longest(*(r.batches() for r in readers)):
        assert list(ours) == reference
        events += len(ours)
    assert events > 100_000
    assert readers[0].stats == readers[1].stats
    assert readers[0].pointer_bits == readers[1].pointer_bits


def test_every_one_change_line_reads_alike(tmp_path):
    lines = _one_change_lines() + ADVERSARIAL + [line for line, _, _ in ERA_LINES]
    _same_both_engines(_write_lines(tmp_path, lines))
    for line in lines:  # one by one too (a strict error stops a whole file)
        _same_both_engines(_write_lines(tmp_path, ["# tracer: nop", line]))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(trace_lines(), min_size=1, max_size=12), st.booleans())
def test_fuzzed_lines_read_alike(tmp_path, lines, final_newline):
    _same_both_engines(_write_lines(tmp_path, lines, "fuzz.txt", "\n" if final_newline else ""))


def test_numbers_of_every_length_read_alike(tmp_path):
    """Numbers at and past the lengths the scanner decodes in place (a pid of 7 digits, a
    pointer of 16 hex digits, sizes and pfns of 19 digits, an order of 9), and past u64."""
    task = "  sh-{pid} [001] d.... 1.5: "
    lines = []
    for digits in (1, 7, 8, 9, 16, 17, 19, 20, 21, 40):
        dec, hexa = "9" * digits, "f" * digits
        lines += [
            task.format(pid=dec[:digits]) + "kfree: call_site=f ptr=c1",
            task.format(pid=1) + f"kmalloc: call_site=f ptr={hexa} bytes_req={dec} "
            f"bytes_alloc={dec}",
            task.format(pid=1) + f"kmem_cache_free: call_site=f ptr={hexa} name=c",
            task.format(pid=1) + f"mm_page_alloc: page=f pfn=0x{hexa} order={dec}",
            task.format(pid=1) + f"mm_page_free: page=f pfn={dec} order=0",
        ]
    _same_both_engines(_write_lines(tmp_path, lines))


def test_bad_files_fail_alike(tmp_path):
    """Not a trace, binary data, hashed pointers, strict bad lines: the same error, the same
    file:line, after the same events."""
    good = ERA_LINES[1][0]
    hashed = [
        f"  sh-9 [000] ..... 1.{i}: kmalloc: call_site=f+0x1/0x2 "
        f"ptr={0x3E4C3799 + i:016x} bytes_req=8 bytes_alloc=8"
        for i in range(300)
    ]
    for lines in (
        ["hello", "world"],
        [good, "garbage here", good[:60], good],
        hashed,
        [good, "\x00\x01binary", good],
        [],
    ):
        _same_both_engines(_write_lines(tmp_path, lines))
    binary = tmp_path / "b.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    _same_both_engines(str(binary))
    _same_both_engines(str(tmp_path / "missing.txt"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks: Linux only")
def test_the_reading_child_scans_natively(tmp_path):
    """ParallelTraceReader's child (plain tuples) gives the Python reader's events."""
    with lzma.open(TRACES / "kmem-trace-x86_64.txt.xz", "rb") as f:
        head = b"".join(next(f) for _ in range(20_000))
    path = tmp_path / "head.txt"
    path.write_bytes(head)
    parallel = ParallelTraceReader(str(path), engine="native")
    assert list(parallel) == list(TraceReader(str(path), engine="python"))
    assert parallel.engine == "native"
