"""The workload language: every statement parses, and every mistake is one precise error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinspect.engine.errors import KinspectError, WorkloadError
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.workload import (_SUFFIX, _VALUE_OPS, WorkloadRunner, parse_number,
                                      parse_workload)


def parse(text: str):
    return parse_workload("t.kw", text.splitlines(keepends=True))


def run(text: str) -> WorkloadRunner:
    runner = WorkloadRunner(Machine(load_profile("x86_64")), parse(text))
    runner.run()
    return runner


@pytest.mark.parametrize("text,line,col,message", [
    ("p = kmalloc\n", 1, 12, "missing operand"),
    ("p = kmalloc 12x\n", 1, 13, "SIZE must be a number"),
    ("kfree q\n", 1, 7, "'q' is not defined"),
    ("c = kmem_cache_create c 64\nkfree c\n", 2, 7, "'c' is a kmem_cache, not an address"),
    ("p = kmalloc 8\nread p+ 1\n", 2, 6, "address must be VAR"),
    ("frobnicate 1\n", 1, 1, "unknown statement 'frobnicate'"),
    ("p = kmalloc 8\nexpect slab-oob\n", 2, 8, "unknown bug type 'slab-oob'"),
    ("# ok\n\n  p = kfree x\n", 3, 7, "'kfree' gives no value to bind"),
    ("c = kmem_cache_create c 64 SLAB_BOGUS\n", 1, 28, "unknown flag 'SLAB_BOGUS'"),
    ("frame a@4:8\n", 1, 7, "frame offsets must be granule aligned"),
    ("p = kmalloc 8\nread p 1 2\n", 2, 10, "too many operands"),
])
def test_bad_workloads_name_file_line_and_column(text, line, col, message):
    with pytest.raises(WorkloadError) as e:
        parse(text)
    assert (e.value.path, e.value.line, e.value.col) == ("t.kw", line, col)
    assert message in e.value.message
    assert str(e.value).startswith(f"t.kw:{line}:{col}: ")


def test_expect_holds_and_fails():
    r = run("p = kmalloc 16\nwrite p+16 1\nexpect slab-out-of-bounds\nread p 8\nexpect none\n")
    assert r.expect_failures == []
    r = run("p = kmalloc 16\nwrite p+16 1\nexpect none\n")
    assert r.expect_failures == ["t.kw:3: expected none, got slab-out-of-bounds"]


def test_reports_name_the_function_and_the_workload_lines():
    r = run("task worker 42\nfunc my_func 0x100\np = kmalloc 16\nkfree p\nread p 1\n")
    report = r.machine.reports[0]
    assert report.ip.symbol() == "my_func+0x30/0x100"
    assert (report.comm, report.pid) == ("worker", 42)
    assert report.alloc_track.frame.line == 3 and report.free_track.frame.line == 4


def test_stack_frame_layout_and_report():
    r = run("task t 7\nfunc f 0x80\nframe a:1 buf@64:10\nread buf+10 1\n")
    rep = r.machine.reports[0]
    assert rep.bug_type == "stack-out-of-bounds"
    assert rep.stack_frame_offset == 74
    assert rep.stack_frame_objects == [(32, 33, "a"), (64, 74, "buf")]
    base = rep.addr - 74
    sb = r.machine.shadow.read(base, 96)
    assert list(sb) == [0xF1] * 4 + [1] + [0xF2] * 3 + [0, 2] + [0xF3] * 2


def test_alloca_has_no_frame_description():
    r = run("task t 7\nfunc f\nframe x:8\nv = alloca 10\nread v-1 1\nexpect alloca-out-of-bounds\n")
    assert r.expect_failures == []
    assert r.machine.reports[0].stack_frame_pc is None


def test_global_redzone():
    r = run("g = global arr 10\nread g+13 1\nexpect global-out-of-bounds\n")
    assert r.expect_failures == []
    assert r.machine.reports[0].variable == "arr+0xd/0x40"


def test_vmalloc_and_wild_accesses():
    r = run("v = vmalloc 2035\nread v+2035 1\nread v+2040 1\nread NULL 8\nread 0x1000 4\n"
            "read 0x8000000000000000 1\n")
    assert [x.bug_type for x in r.machine.reports] == [
        "vmalloc-out-of-bounds", "vmalloc-out-of-bounds", "null-ptr-deref",
        "user-memory-access", "wild-memory-access"]


# ------------------------------------------------------------------- properties (hypothesis)

@given(st.integers(0, (1 << 64) - 1))
def test_numbers_below_2_64_read_back_in_decimal_and_hex(n):
    assert parse_number(str(n)) == n
    assert parse_number(hex(n)) == n
    assert parse_number("0x" + f"{n:x}".zfill(30)) == n     # leading zeros: no limit


@given(st.integers(1 << 64, 1 << 300), st.sampled_from(["{}", "{:#x}"]))
def test_numbers_from_2_64_up_are_refused(n, form):
    with pytest.raises(ValueError, match="does not fit in 64 bits"):
        parse_number(form.format(n))


@given(st.integers(0, 1 << 30), st.sampled_from(sorted(_SUFFIX)))
def test_suffixes_shift_or_refuse(n, suffix):
    value = n << _SUFFIX[suffix]
    if value >> 64:
        with pytest.raises(ValueError):
            parse_number(f"{n}{suffix}")
    else:
        assert parse_number(f"{n}{suffix}") == value


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))
def test_any_token_is_a_number_or_a_value_error(tok):
    try:
        value = parse_number(tok)
    except ValueError:
        return
    assert tok.isascii() and 0 <= value < 1 << 64


_STATEMENT_WORDS = sorted(_VALUE_OPS) + ["kfree", "read", "write", "memset", "memcpy",
                                         "memmove", "frame", "func", "task", "expect",
                                         "mempool_free", "__free_pages", "rcu_barrier",
                                         "kmem_cache_free", "kmem_cache_destroy"]
_OPERANDS = st.one_of(
    st.sampled_from(["x", "y", "c", "p", "x+8", "x-8", "NULL", "a:8", "b@64:8", "0x0",
                     "0xffff888000100000", "none", "slab-out-of-bounds", "ctor",
                     "SLAB_TYPESAFE_BY_RCU"]),
    st.integers(-(1 << 70), 1 << 70).map(str),
    st.integers(0, 1 << 70).map(hex),
    st.sampled_from(["1G", "1T", "08", "0x", "\uff11", "8K", "20", "4096", "16"]),
    st.text(max_size=6))


@st.composite
def _workload_lines(draw):
    target = draw(st.sampled_from(["", "", "x = ", "y = ", "c = ", "p = "]))
    words = [draw(st.sampled_from(_STATEMENT_WORDS))] + draw(st.lists(_OPERANDS, max_size=4))
    return target + " ".join(words)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_workload_lines(), min_size=1, max_size=12))
def test_any_workload_parses_and_runs_or_is_a_kinspect_error(lines):
    """Statements with operands of every kind, valid or not: a located WorkloadError at
    parse time, or a run that ends, or a KinspectError (a kernel that cannot go on)."""
    try:
        workload = parse_workload("h.kw", [line + "\n" for line in lines])
    except WorkloadError as e:
        assert e.line is not None and 1 <= e.line <= len(lines)
        return
    runner = WorkloadRunner(Machine(load_profile("x86_64", 64 << 20)), workload)
    try:
        runner.run()
    except KinspectError as e:
        assert e.line is not None
