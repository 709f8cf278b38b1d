"""The workload language: every statement parses, and every mistake is one precise error."""

from __future__ import annotations

import pytest

from kinspect.engine.errors import WorkloadError
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.workload import WorkloadRunner, parse_workload


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
