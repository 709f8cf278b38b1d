"""The workload language: every statement parses, and every mistake is one precise error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinspect.engine.errors import KinspectError, WorkloadError
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.workload import (
    _SUFFIX,
    _VALUE_OPS,
    WorkloadRunner,
    parse_number,
    parse_workload,
)


def parse(text: str):
    return parse_workload("t.kw", text.splitlines(keepends=True))


def run(text: str) -> WorkloadRunner:
    runner = WorkloadRunner(Machine(load_profile("x86_64")), parse(text))
    runner.run()
    return runner


@pytest.mark.parametrize(
    "text,line,col,message",
    [
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
    ],
)
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
    r = run(
        "v = vmalloc 2035\nread v+2035 1\nread v+2040 1\nread NULL 8\nread 0x1000 4\n"
        "read 0x8000000000000000 1\n"
    )
    assert [x.bug_type for x in r.machine.reports] == [
        "vmalloc-out-of-bounds",
        "vmalloc-out-of-bounds",
        "null-ptr-deref",
        "user-memory-access",
        "wild-memory-access",
    ]


# ------------------------------------------------------------------- properties (hypothesis)


@given(st.integers(0, (1 << 64) - 1))
def test_numbers_below_2_64_read_back_in_decimal_and_hex(n):
    assert parse_number(str(n)) == n
    assert parse_number(hex(n)) == n
    assert parse_number("0x" + f"{n:x}".zfill(30)) == n  # leading zeros: no limit


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


@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=12))
def test_any_token_is_a_number_or_a_value_error(tok):
    try:
        value = parse_number(tok)
    except ValueError:
        return
    assert tok.isascii() and 0 <= value < 1 << 64


_STATEMENT_WORDS = sorted(_VALUE_OPS) + [
    "kfree",
    "read",
    "write",
    "memset",
    "memcpy",
    "memmove",
    "frame",
    "func",
    "task",
    "expect",
    "mempool_free",
    "__free_pages",
    "rcu_barrier",
    "kmem_cache_free",
    "kmem_cache_destroy",
    "if",
    "else",
    "endif",
]
_OPERANDS = st.one_of(
    st.sampled_from(
        [
            "x",
            "y",
            "c",
            "p",
            "x+8",
            "x-8",
            "NULL",
            "a:8",
            "b@64:8",
            "0x0",
            "0xffff888000100000",
            "none",
            "slab-out-of-bounds",
            "ctor",
            "SLAB_TYPESAFE_BY_RCU",
            "sizeof(long)",
            "PAGE_SIZE/2-5",
            "==",
            "!=",
            "CONFIG_64BIT",
            "!__HAVE_ARCH_STRCHR",
            "x+sizeof(void*)",
            "(1+",
        ]
    ),
    st.integers(-(1 << 70), 1 << 70).map(str),
    st.integers(0, 1 << 70).map(hex),
    st.sampled_from(["1G", "1T", "08", "0x", "\uff11", "8K", "20", "4096", "16"]),
    st.text(max_size=6),
)


@st.composite
def _workload_lines(draw):
    target = draw(st.sampled_from(["", "", "x = ", "y = ", "c = ", "p = "]))
    words = [draw(st.sampled_from(_STATEMENT_WORDS))] + draw(st.lists(_OPERANDS, max_size=4))
    return target + " ".join(words)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_workload_lines(), min_size=1, max_size=12))
def test_any_workload_parses_and_runs_or_is_a_kinspect_error(lines):
    """Statements with operands of every kind, valid or not: a located WorkloadError at
    parse time (for a workload that uses the architecture's names: when a runner binds it to
    its machine's profile), or a run that ends, or a KinspectError (a kernel that cannot go
    on)."""
    try:
        workload = parse_workload("h.kw", [line + "\n" for line in lines])
        runner = WorkloadRunner(Machine(load_profile("x86_64", 64 << 20)), workload)
    except WorkloadError as e:
        assert e.line is not None and 1 <= e.line <= len(lines)
        return
    try:
        runner.run()
    except KinspectError as e:
        assert e.line is not None


# ------------------------------------------------- the architecture's names and conditions


def run_on(profile: str, text: str) -> WorkloadRunner:
    runner = WorkloadRunner(Machine(load_profile(profile)), parse(text))
    runner.run()
    return runner


@pytest.mark.parametrize(
    "profile,word,page",
    [("x86_64", 8, 4096), ("arm32", 4, 4096), ("ppc32", 4, 4096), ("arm64-64k-42", 8, 65536)],
)
def test_names_take_the_profile_values(profile, word, page):
    r = run_on(
        profile,
        "p = kmalloc sizeof(long)+1\nread p+sizeof(void*)+1 1\n"
        "v = vmalloc PAGE_SIZE/2-KASAN_GRANULE_SIZE-5\n"
        "q = kmalloc KMALLOC_MAX_CACHE_SIZE+10\n",
    )
    events = r.workload.events
    assert events[0].args == (word + 1,)
    assert events[1].args[0].offset == word + 1
    assert parse("p = kmalloc 8\nread p-8+sizeof(int) 1\n").events[1].args[0].offset == -4
    assert events[2].args == (page // 2 - 8 - 5,)  # C: / before -, left to right
    assert events[3].args == (2 * page + 10,)  # KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1
    assert [x.bug_type for x in r.machine.reports] == ["slab-out-of-bounds"]
    assert r.machine.reports[0].size == 1 and r.machine.reports[0].addr == r.values["p"] + word + 1


@pytest.mark.parametrize(
    "profile,taken", [("x86_64", "64"), ("arm32", "32"), ("ppc32", "32"), ("riscv64-sv39", "64")]
)
def test_if_else_endif_follow_the_profile(profile, taken):
    text = (
        "p = kmalloc 16\n"
        "if BITS_PER_LONG == 64\nwrite p+16 1\n  if CONFIG_HIGHMEM\nread p 1\nendif\n"
        "else\nwrite p+17 1\nif !CONFIG_64BIT\nwrite p+18 1\nendif\nendif\n"
        "expect slab-out-of-bounds\n"
    )
    r = run_on(profile, text)
    offsets = [ev.args[0].offset for ev in r.workload.events if ev.op == "write"]
    assert offsets == ([16] if taken == "64" else [17, 18])
    assert r.expect_failures == []
    assert [ev.line for ev in r.workload.events][-1] == 13  # lines keep their numbers


@pytest.mark.parametrize(
    "profile,defined",
    [("x86_64", False), ("arm32", True), ("arm64-4k-48", False), ("ppc32", False)],
)
def test_if_tests_the_architecture_headers(profile, defined):
    r = run_on(
        profile,
        "if __HAVE_ARCH_STRCHR\np = kmalloc 8\nendif\n"
        "if !_ASM_GENERIC_BITOPS_INSTRUMENTED_ATOMIC_H\nq = kmalloc 8\nendif\n",
    )
    assert [ev.target for ev in r.workload.events] == (["p", "q"] if defined else [])


def test_a_workload_parsed_without_a_profile_is_parsed_for_each_machine():
    workload = parse("p = kmalloc sizeof(long)\nread p+sizeof(long) 1\n")
    sizes = []
    for profile in ("arm32", "x86_64", "arm32"):
        runner = WorkloadRunner(Machine(load_profile(profile)), workload)
        runner.run()
        sizes.append(runner.machine.reports[0].addr - runner.values["p"])
    assert sizes == [4, 8, 4]


def test_a_workload_without_the_names_parses_once():
    workload = parse("p = kmalloc 8\n")
    events = workload.events
    WorkloadRunner(Machine(load_profile("arm32")), workload).run()
    assert workload.events is events


def test_a_stream_parsed_for_one_profile_is_refused_on_another():
    from kinspect.engine.workload import iter_workload

    workload = iter_workload("s.kw", ["p = kmalloc sizeof(long)\n"], profile=load_profile("arm32"))
    list(workload.events)
    with pytest.raises(WorkloadError, match="parsed for profile 'arm32'"):
        WorkloadRunner(Machine(load_profile("x86_64")), workload)


def test_names_without_a_profile_are_an_error_when_the_events_are_read():
    from kinspect.engine.workload import iter_workload

    with pytest.raises(WorkloadError) as e:
        list(iter_workload("s.kw", ["p = kmalloc 8\n", "q = kmalloc PAGE_SIZE\n"]).events)
    assert (e.value.line, e.value.col) == (2, 13)
    assert "depends on the architecture" in e.value.message
    with pytest.raises(WorkloadError, match="depends on the architecture"):
        list(parse("if CONFIG_64BIT\nendif\n").events)


@pytest.mark.parametrize(
    "text,line,col,message",
    [
        ("p = kmalloc sizeof(long\n", 1, 13, "SIZE: unknown name 'sizeof'"),
        ("p = kmalloc PAGE_SIZ\n", 1, 13, "unknown name 'PAGE_SIZ'"),
        ("p = kmalloc 8/0\n", 1, 13, "divides by zero"),
        ("p = kmalloc 8-16\n", 1, 13, "(it is negative)"),
        ("p = kmalloc (8+8\n", 1, 13, "unclosed"),
        ("p = kmalloc 8+\n", 1, 13, "ends too early"),
        ("else\n", 1, 1, "'else' without 'if'"),
        ("endif\n", 1, 1, "'endif' without 'if'"),
        ("if 1 == 1\nelse\nelse\nendif\n", 3, 1, "a second 'else'"),
        ("p = kmalloc 8\nif 1 == 1\nread p 1\n", 2, 1, "this 'if' has no 'endif'"),
        ("if CONFIG_SMB\nendif\n", 1, 4, "unknown name 'CONFIG_SMB' to test"),
        ("if 1 = 1\nendif\n", 1, 6, "usage: if NAME"),
        ("if\nendif\n", 1, 3, "usage: if NAME"),
        ("if 1 == 1\nendif x\n", 2, 7, "too many operands"),
    ],
)
def test_bad_names_and_conditions_name_file_line_and_column(text, line, col, message):
    with pytest.raises(WorkloadError) as e:
        WorkloadRunner(Machine(load_profile("x86_64")), parse(text)).run()
    assert (e.value.path, e.value.line, e.value.col) == ("t.kw", line, col)
    assert message in e.value.message


def test_a_profile_of_an_unknown_architecture_has_no_header_facts():
    import dataclasses

    mips = dataclasses.replace(load_profile("arm32"), arch="mips", name="mips32")
    r = WorkloadRunner(Machine(mips), parse("p = kmalloc sizeof(long)\n"))
    r.run()
    assert r.workload.events[0].args == (4,)
    with pytest.raises(
        WorkloadError, match="no header facts .__HAVE_ARCH_STRCHR. for the architecture 'mips'"
    ):
        WorkloadRunner(Machine(mips), parse("if __HAVE_ARCH_STRCHR\nendif\n"))


def test_gcc_frame_layout_is_the_real_gcc_frame():
    """kasan_stack_oob's variables in declaration order: stack_array[10], char *array, a
    kunit_unary_assert, a kunit_fail_assert: the real gcc 12 x86_64 report's "This frame has 4
    objects" (tests/data/kernel-run/reports/kasan_stack_oob.txt) is [48, 49), [64, 72),
    [96, 106), [128, 144)."""
    from kinspect.engine.workload import gcc_frame_offsets

    assert gcc_frame_offsets([10, 8, 16, 1]) == [96, 64, 128, 48]
    r = run_on(
        "arm32",
        "task t 7\nfunc f\n"
        "frame gcc stack_array:10 array:sizeof(void*) a:2*sizeof(void*) b:1\n"
        "read stack_array+10 1\nexpect stack-out-of-bounds\n",
    )
    rep = r.machine.reports[0]
    assert rep.stack_frame_objects == [
        (32, 33, "b"),
        (48, 52, "array"),
        (64, 72, "a"),
        (96, 106, "stack_array"),
    ]
    assert rep.stack_frame_offset == 106 and r.expect_failures == []


@pytest.mark.parametrize(
    "sizes,offsets",
    [([1], [32]), ([4, 4], [64, 48]), ([17], [32]), ([200], [48]), ([5000, 1], [48, 32])],
)
def test_gcc_frame_redzones(sizes, offsets):
    """asan_var_and_redzone_size(): 16 bytes up to 4, 32 up to 16, then size + 32/64/128/256,
    16-byte aligned; the biggest variable at the top of the frame (the first at least 32), the
    base 32 below the lowest, 32-byte aligned (worked by hand from gcc/cfgexpand.cc)."""
    from kinspect.engine.workload import gcc_frame_offsets

    assert gcc_frame_offsets(sizes) == offsets


def test_gcc_frame_takes_no_offsets():
    with pytest.raises(WorkloadError, match="a gcc frame variable must be VAR:SIZE") as e:
        parse("frame gcc a@32:8\n")
    assert e.value.col == 11
    with pytest.raises(WorkloadError, match="usage: frame .gcc."):
        parse("frame gcc\n")


@pytest.mark.parametrize("profile,vmap", [("x86_64", False), ("arm32", True)])
def test_task_stacks_are_vmalloced_where_the_kernel_has_vmap_stack(profile, vmap):
    """arm32's kernel has CONFIG_VMAP_STACK (its profile's vmap_stack): a task's stack is a
    THREAD_SIZE vmalloc area, and a report on it names that vmalloc region after the frame."""
    from kinspect.engine.report import format_report

    r = run_on(
        profile,
        "task t 7\nfunc f 0x80\nframe gcc buf:10\nread buf+10 1\nexpect stack-out-of-bounds\n",
    )
    p = r.machine.profile
    assert p.vmap_stack is vmap and r.expect_failures == []
    rep = r.machine.reports[0]
    assert (p.vmalloc_start <= rep.addr < p.vmalloc_end) is vmap
    text = format_report(rep)
    assert (
        "The buggy address belongs to stack of task t/7" in text
        and "This frame has 1 object:" in text
    )
    region = f"a {p.page_size << p.thread_size_order >> p.page_shift}-page vmalloc region"
    assert (region in text) is vmap


def test_vmap_stack_is_an_optional_boolean_of_a_profile(tmp_path):
    from kinspect.engine.errors import ProfileError

    text = load_profile("arm32").path
    with open(text) as f:
        arm32 = f.read()
    bad = tmp_path / "bad.toml"
    bad.write_text(arm32.replace("vmap_stack = true", 'vmap_stack = "yes"'))
    with pytest.raises(ProfileError, match="vmap_stack") as e:
        load_profile(str(bad))
    assert e.value.line == arm32[: arm32.index("\nvmap_stack =")].count("\n") + 2
    off = tmp_path / "off.toml"
    off.write_text(arm32.replace("vmap_stack = true\n", ""))
    assert load_profile(str(off)).vmap_stack is False


RUNNER_WORKLOAD = """\
task worker 7
func churn 0x80
p = kmalloc 24
q = kzalloc 100
big = kmalloc 20000
kfree p
kfree p
expect double-free
r = kmalloc_node 0 0
kfree r
kfree big
task other 9
write q+100 4
expect slab-out-of-bounds
s = kmalloc 64
kfree q
kfree s
h = kmalloc 0x10000000
read s 8
expect none
"""


def _run_observed(engine: str, by_step: bool) -> dict:
    """A workload run by run() (its callbacks recording what they see) or by step()."""
    m = Machine(load_profile("x86_64", 64 << 20), engine=engine)
    runner = WorkloadRunner(m, parse_workload("<t>", RUNNER_WORKLOAD.splitlines()))
    seen = []
    if by_step:
        for outcome in runner:
            if outcome.reports:
                seen.append(("reports", runner.position, [r.bug_type for r in outcome.reports]))
            seen.append(("event", runner.position, outcome.event.index, m.task.pid))
        failures = runner.expect_failures
    else:
        failures = runner.run(
            on_reports=lambda new: seen.append(
                ("reports", runner.position, [r.bug_type for r in new])
            ),
            after_event=lambda ev: seen.append(("event", runner.position, ev.index, m.task.pid)),
        )
    return {
        "seen": seen,
        "failures": failures,
        "position": runner.position,
        "values": dict(runner.values),
        "last": [r.bug_type for r in runner.last_reports],
        "numbered": [(r.bug_type, r.event_index) for r in m.reports],
        "failed": dict(m.failed),
        "ip": (m.ip, m.ip_handle),
    }


def test_run_is_step_after_step_on_both_engines():
    """WorkloadRunner.run() (on the native engine a compiled loop, _runner.pyx, doing kmalloc
    and kfree itself) gives what step() after step() gives on the Python engine (the
    reference): callbacks with the same positions, values, reports numbered by event,
    failed expectations, the last reports, the machine's ip and current task."""
    from conftest import native_missing

    reference = _run_observed("python", by_step=True)
    assert reference["failures"] == ["<t>:20: expected none, got slab-use-after-free"]
    assert ("reports", 7, ["double-free"]) in reference["seen"]
    assert reference["failed"] == {"kmalloc": 1} and reference["values"]["h"] == 0
    engines = ["python"] + ([] if native_missing() else ["native"])
    for engine in engines:
        for by_step in (False, True):
            assert _run_observed(engine, by_step) == reference, (engine, by_step)
