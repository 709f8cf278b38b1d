"""Issue 11: what bad input and simulated out-of-memory do. Bad input is one located line and
exit status 2, in bounded time; a kernel that runs out of memory fails its allocations (NULL,
-ENOMEM) and the run's summary counts them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from conftest import DEMO, ROOT
from kinspect.cli import EXIT_BROKEN_PIPE, EXIT_INTERNAL_ERROR, main
from kinspect.engine.errors import KinspectError, WorkloadError
from kinspect.engine.machine import KernelOops, Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.workload import WorkloadRunner, parse_number, parse_workload


def parse(text: str):
    return parse_workload("t.kw", text.splitlines(keepends=True))


def run(text: str, profile: str = "x86_64", mem: int | None = None) -> WorkloadRunner:
    runner = WorkloadRunner(Machine(load_profile(profile, mem)), parse(text))
    runner.run()
    return runner


def cli(tmp_path, capsys, text: str, *args: str) -> tuple[int, str, str]:
    wl = tmp_path / "w.kw"
    wl.write_text(text)
    rc = main(["run", str(wl), *args])
    out, err = capsys.readouterr()
    return rc, out, err.replace(str(wl), "w.kw")


# ------------------------------------------------------------------------------ numbers

BAD_NUMBERS = [
    # decimals over Python's 4300-digit int() limit, and hex of any length, are refused
    # before int() sees them
    ("x = kmalloc 8\nread x+" + "1" * 5000 + " 1\n", 6, "does not fit in 64 bits"),
    ("x = kmalloc 0x" + "f" * 60_000 + "\n", 13, "(60002 characters) does not fit"),
    ("x = kmalloc 08\n", 13, "leading 0, which C reads as octal"),
    ("x = kmalloc 8\nread x 18446744073709551616\n", 8, "does not fit in 64 bits"),
    ("x = kmalloc 8\nread 0x10000000000000000 1\n", 6, "does not fit in 64 bits"),
    ("x = kmalloc 16T\nx = kmalloc 16777216T\n", 13, "does not fit in 64 bits"),
    ("x = kmalloc １６\n", 13, "must be a number"),
    ("x = kmalloc 0x1_0\n", 13, "must be a number"),
    ("task t 4294967296\n", 8, "PID_MAX_LIMIT"),
    ("x = alloca 18446744073709551616\n", 12, "does not fit in 64 bits"),
    ("frame a:18446744073709551616\n", 7, "frame variable size"),
    ("frame a@0x" + "1" * 30 + ":8\n", 7, "frame offset"),
    ("c = kmem_cache_create c 4294967296\n", 25, "unsigned int"),
    ("p = mempool_create_kmalloc_pool 2147483648 16\n", 33, "int"),
]


@pytest.mark.parametrize(
    "text,col,message",
    BAD_NUMBERS,
    ids=[f"{i}-{t[:24]}" for i, (t, _, _) in enumerate(BAD_NUMBERS)],
)
def test_bad_numbers_are_located_errors(text, col, message):
    with pytest.raises(WorkloadError) as e:
        parse(text)
    assert e.value.line == text.count("\n") and e.value.col == col
    assert message in e.value.message and len(e.value.message) < 200


def test_parse_number_bounds():
    assert parse_number("18446744073709551615") == (1 << 64) - 1
    assert parse_number("0xffffffffffffffff") == (1 << 64) - 1
    assert parse_number("0x000000000000000000000001") == 1  # leading hex zeros are fine
    assert parse_number("16777215T") == 16777215 << 40
    assert parse_number("0") == 0
    with pytest.raises(ValueError):
        parse_number("16777216T")
    with pytest.raises(ValueError):
        parse_number("2147483648", 1 << 31, "int")


def test_32bit_profile_bounds_the_word(tmp_path, capsys):
    text = "x = kmalloc 8\nread 0x100000000 1\n"
    with pytest.raises(WorkloadError) as e:
        run(text, "arm32")
    assert (e.value.line, e.value.col) == (2, 6) and "fit in 32 bits" in e.value.message
    run(text)  # fine on a 64-bit profile
    rc, _, err = cli(tmp_path, capsys, text, "--profile", "arm32")
    assert (
        rc == 2 and err == "kinspect: w.kw:2:6: address '0x100000000' does not fit in 32 bits\n"
    )  # streamed: checked as the line is read


# ------------------------------------------------------------- simulated out-of-memory


def test_sizes_beyond_the_machine_fail_as_the_kernel_does(tmp_path, capsys):
    r = run(
        "a = kmalloc 0xffffffffffffffff\nb = vmalloc 1T\nc = alloc_pages 20\n"
        "g = global big 1T\np = mempool_create_kmalloc_pool 100000000 16\n"
        "q = mempool_create_page_pool 1000000 0\nread a 1\nexpect null-ptr-deref\n"
    )
    assert r.values["a"] == r.values["b"] == r.values["c"] == r.values["g"] == 0
    assert r.values["p"] is None and r.values["q"] is None and r.expect_failures == []
    assert dict(r.machine.failed) == {
        "kmalloc": 1,
        "vmalloc": 1,
        "alloc_pages": 1,
        "global": 1,
        "mempool_create_kmalloc_pool": 1,
        "mempool_create_page_pool": 1,
    }
    rc, out, _ = cli(tmp_path, capsys, "a = kmalloc 1T\nb = kmalloc 2T\n")
    assert rc == 0 and out.endswith("failed allocations (NULL, -ENOMEM): kmalloc 2\n")


def test_an_access_of_a_terabyte_reads_only_the_shadow_that_can_be_poisoned(monkeypatch):
    """``read a+1T 1T`` on a 64M machine: the holes' shadow is 0 (the early shadow page), so
    the check reads the shadow of what exists, not a million chunks (a hang the fuzzer's
    program mode found); a terabyte that ends in poisoned memory still reports."""
    from kinspect.engine.shadow.flat import FlatShadow

    reads = []
    original = FlatShadow.read
    monkeypatch.setattr(
        FlatShadow,
        "read",
        lambda self, addr, size: reads.append(size) or original(self, addr, size),
    )
    r = run(
        "a = kmalloc 8\nread a+1T 1T\nexpect none\n"
        "b = kmalloc 8\nread b 1T\nexpect slab-out-of-bounds\n",
        mem=64 << 20,
    )
    assert r.machine.reports[-1].first_bad_addr == r.values["b"] + 8
    assert r.expect_failures == [] and len(reads) < 1000


def test_many_task_stacks_make_fork_fail_not_python(tmp_path, capsys):
    """10 000 tasks with a stack each on a 256M machine: forks fail with -ENOMEM, counted;
    a failed fork's frame variables are NULL (an access through one: null-ptr-deref)."""
    text = (
        "".join(f"task t{i} {i}\nframe a:8\n" for i in range(1, 10001))
        + "read a 1\nexpect null-ptr-deref\n"
    )
    r = run(text, mem=256 << 20)
    assert r.machine.failed["fork"] > 3000 and r.expect_failures == []
    assert r.machine.summary()["failed_allocations"] == {"fork": r.machine.failed["fork"]}


def test_globals_under_compare_fail_to_load(capsys, tmp_path):
    wl = tmp_path / "g.kw"
    wl.write_text("".join(f"g{i} = global g{i} 1G\n" for i in range(3000)))
    assert main(["compare", str(wl), "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert '"events": 3000' in out
    assert '"failed allocations (NULL, -ENOMEM): global 3000"' in out


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "c = kmem_cache_create c 1G\nx = kmem_cache_alloc c\n",
            "t.kw:2: kmem_cache_alloc() on 'c', which is NULL",
        ),
        (
            "p = mempool_create_kmalloc_pool 100000000 16\nx = mempool_alloc p\n",
            "t.kw:2: mempool_alloc() on 'p', which is NULL",
        ),
        (
            "c = kmem_cache_create c 1G\np = mempool_create_slab_pool 2 c\n",
            "t.kw:2: mempool_alloc_slab() on 'c'",
        ),
        ("x = alloca 1G\n", "t.kw:1: kernel stack overflow: an alloca of"),
        # THREAD_SIZE 32K less 256: seven frames of 4160 bytes fit, the eighth (line 9) does not
        ("func f\n" + "frame a:4K\n" * 9, "t.kw:9: kernel stack overflow: a stack frame of"),
    ],
)
def test_what_the_kernel_cannot_survive_stops_the_run_at_its_line(text, message):
    with pytest.raises(KernelOops) as e:
        run(text)
    assert str(e.value).startswith(message)


def test_null_cache_and_pool_calls_that_return_at_once():
    r = run(
        "c = kmem_cache_create c 1G\nx = kmalloc 8\nkmem_cache_free c x\n"
        "kmem_cache_destroy c\np = mempool_create_kmalloc_pool 100000000 16\n"
        "mempool_destroy p\nmempool_free NULL p\nread x 8\nexpect none\n"
    )
    assert r.expect_failures == [] and r.machine.failed["kmem_cache_create"] == 1


@pytest.mark.parametrize("element", ["g", "0x1000", "v", "pg", "s+8"])
def test_mempool_free_of_a_foreign_element_is_an_invalid_free(element):
    r = run(
        "g = global g 64\nv = vmalloc 100\npg = alloc_pages 0\ns = kmalloc 64\n"
        "p = mempool_create_kmalloc_pool 2 16\nx = mempool_alloc p\n"
        f"mempool_free {element} p\nexpect invalid-free\n"
    )
    assert r.expect_failures == []


def test_mempool_free_of_a_foreign_page_to_a_full_page_pool():
    with pytest.raises(WorkloadError) as e:
        run("p = mempool_create_page_pool 1 0\nx = kmalloc 64\nmempool_free x p\n")
    assert e.value.line == 3 and "not allocated at that order" in e.value.message


def test_krealloc_of_a_non_slab_pointer():
    """__ksize() of a global is 0: a new object, then kfree() of the global (the report
    kfree() of an address outside the direct map gives)."""
    r = run("g = global g 64\ny = krealloc g 4096\nexpect out-of-bounds\n")
    assert r.values["y"] and r.expect_failures == []


def test_unexpected_errors_are_kinspect_errors():
    assert issubclass(KernelOops, KinspectError)


# ------------------------------------------------------------------------------- traces

TASK = "            bash-1234  [000] .....   100.000001: "


@pytest.mark.parametrize(
    "event,what",
    [
        (
            "kmalloc: call_site=f+0x1/0x2 ptr=ffff888000100000 bytes_req="
            + "1" * 5000
            + " bytes_alloc=8 gfp_flags=GFP_KERNEL",
            "bytes_req out of range",
        ),
        (
            "kmalloc: call_site=f ptr=ffff888000100000 bytes_req=8 bytes_alloc="
            + "1" * 5000
            + " x=1",
            "bytes_alloc out of range",
        ),
        (
            "kmalloc: call_site=f+0x1/0x2 ptr=ffff888000100000 bytes_req=18446744073709551616 "
            "bytes_alloc=8",
            "bytes_req out of range",
        ),
        ("mm_page_alloc: page=0x1 pfn=0x1000 order=-1 migratetype=0", "order out of range"),
        (
            "mm_page_alloc: page=0x1 pfn=0x1000 order=99999999999999999999 migratetype=0",
            "order out of range",
        ),
        (
            "mm_page_alloc: page=0x1 pfn=" + "1" * 5000 + " order=0 migratetype=0",
            "pfn out of range",
        ),
        ("kfree: call_site=f+0x1/0x2 ptr=" + "f" * 5000, "ptr wider than 64 bits"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_trace_numbers_out_of_range_are_bad_lines(tmp_path, capsys, event, what):
    trace = tmp_path / "t.txt"
    trace.write_text(f"# tracer: nop\n{TASK}{event}\n")
    assert main(["run", str(trace)]) == 0
    assert (
        f"unreadable lines: 1 (first: line 2: malformed {event.split(':')[0]} event "
        f"({what}))" in capsys.readouterr().out
    )
    assert main(["run", "--strict", str(trace)]) == 2
    assert (
        capsys.readouterr().err == f"kinspect: {trace}:2: malformed "
        f"{event.split(':')[0]} event ({what})\n"
    )


@pytest.mark.parametrize("pid", ["1" * 5000, "99999999999", "10000000"], ids=lambda v: v[:12])
def test_trace_pids_of_more_than_7_digits_are_bad_lines(tmp_path, capsys, pid):
    trace = tmp_path / "t.txt"
    trace.write_text(
        f"# tracer: nop\n  bash-{pid}  [000] .....   100.000001: kmalloc: "
        "call_site=f+0x1/0x2 ptr=ffff888000100000 bytes_req=8 bytes_alloc=8\n"
    )
    assert main(["run", str(trace)]) == 0
    assert "(pid out of range)" in capsys.readouterr().out


def test_trace_object_too_big_for_a_slab_fails_its_allocation(tmp_path, capsys):
    trace = tmp_path / "t.txt"
    trace.write_text(
        f"# tracer: nop\n{TASK}kmem_cache_alloc: call_site=f+0x1/0x2 "
        "ptr=ffff888000100000 bytes_req=1073741824 bytes_alloc=1073741824\n"
        f"{TASK}kmem_cache_free: call_site=f+0x1/0x2 ptr=ffff888000100000\n"
    )
    assert main(["run", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "allocations that failed (out of simulated memory): kmem_cache_alloc 1" in out
    assert "kmem_cache_free 1" in out  # its free: of an unknown object


# ----------------------------------------------------------------------------- profiles


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("sizeof_kmem_cache", '"1G"', "sizeof_kmem_cache must be at most 2 * PAGE_SIZE"),
        ("sizeof_struct_page", '"1G"', "sizeof_struct_page must be from 64 (8 words) to 256 bytes"),
        (
            "sizeof_struct_page",
            '"0x10"',
            "sizeof_struct_page must be from 64 (8 words) to 256 bytes",
        ),
        ("page_ext_size", '"1M"', "page_ext_size must be at most PAGE_SIZE"),
        ("description", "1" * 5000, "a number with thousands of digits"),
        ("description", "[" * 3000 + "]" * 3000, "nested too deeply"),
    ],
    ids=lambda v: v[:30],
)
def test_profile_values_that_no_kernel_has(tmp_path, capsys, key, value, message):
    from kinspect.engine.profile import PROFILES_DIR

    text = (PROFILES_DIR / "x86_64.toml").read_text()
    lines = text.splitlines()
    line = next(i for i, t in enumerate(lines, 1) if t.startswith(f"{key} ="))
    lines[line - 1] = f"{key} = {value}"
    path = tmp_path / "p.toml"
    path.write_text("\n".join(lines) + "\n")
    wl = tmp_path / "w.kw"
    wl.write_text("x = kmalloc 8\n")
    assert main(["run", str(wl), "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kinspect: {path}:{line}:") and err.endswith(f"{message}\n")
    assert err.count("\n") == 1


def test_profile_read_is_capped(tmp_path, capsys):
    path = tmp_path / "huge.toml"
    path.write_text("# " + "x" * (2 << 20) + "\n")
    wl = tmp_path / "w.kw"
    wl.write_text("x = kmalloc 8\n")
    assert main(["run", str(wl), "--profile", str(path)]) == 2
    assert capsys.readouterr().err == f"kinspect: {path}: not a profile: larger than 1024 KiB\n"


# ------------------------------------------------------------------- the CLI's input/output

TRACE_LINES = "".join(
    f"{TASK}kmalloc: call_site=f+0x1/0x2 ptr=ffff8880001{i:05x} bytes_req=64 "
    f"bytes_alloc=64 gfp_flags=GFP_KERNEL\n"
    for i in range(0, 4000, 8)
)


def _kinspect(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kinspect.cli", *args],
        cwd=ROOT,
        capture_output="stdout" not in kwargs,
        timeout=120,
        **kwargs,
    )


@pytest.mark.parametrize("arg", ["-", "/dev/stdin"])
def test_a_workload_on_standard_input_is_read_whole(arg):
    """The content sniff peeks: `cat demo.kw | kinspect run /dev/stdin` ran 0 events."""
    done = _kinspect("run", arg, input=DEMO.read_bytes())
    assert done.returncode == 0, done.stderr
    by_path = _kinspect("run", str(DEMO))
    summary = by_path.stdout[by_path.stdout.rindex(b"\nkinspect: ") :]  # no path in it
    assert b" 0 events" not in summary and done.stdout.endswith(summary)


def test_a_trace_on_standard_input():
    done = _kinspect("run", "-", input=f"# tracer: nop\n{TRACE_LINES}".encode())
    assert done.returncode == 0, done.stderr
    assert b"replayed kmalloc 500" in done.stdout


def test_a_trace_from_a_fifo_is_not_seeked(tmp_path, capsys):
    """`kinspect run <(cat trace)`: a pipe cannot seek; the magic bytes are peeked."""
    import gzip

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = gzip.compress(f"# tracer: nop\n{TRACE_LINES}".encode())
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    try:
        assert main(["run", str(fifo)]) == 0
    finally:
        writer.join(timeout=60)
    assert "replayed kmalloc 500" in capsys.readouterr().out


def test_a_workload_from_a_fifo_under_compare(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(DEMO.read_bytes()))
    writer.start()
    try:
        assert main(["compare", str(fifo), "--schemes", "flat", "--format", "csv"]) == 0
    finally:
        writer.join(timeout=60)
    assert capsys.readouterr().out.startswith("scheme,")


def test_timeline_over_an_input_is_refused(tmp_path, capsys):
    wl = tmp_path / "w.kw"
    wl.write_bytes(DEMO.read_bytes())
    assert main(["compare", str(wl), "--timeline", str(wl)]) == 2
    assert (
        capsys.readouterr().err == f"kinspect: --timeline: {wl} is an input of this run: "
        "refusing to write over it\n"
    )
    assert wl.read_bytes() == DEMO.read_bytes()
    link = tmp_path / "link.csv"
    link.symlink_to(wl)
    assert main(["compare", str(wl), "--timeline", str(link)]) == 2
    assert wl.read_bytes() == DEMO.read_bytes()


def test_dev_zero_is_refused_at_the_line_cap(capsys):
    assert main(["run", "/dev/zero"]) == 2
    assert (
        capsys.readouterr().err
        == "kinspect: /dev/zero:1: line longer than 65536 characters (not a workload?)\n"
    )


def test_long_lines_are_refused(tmp_path):
    with pytest.raises(WorkloadError) as e:
        parse("x = kmalloc 8\n" + "x" * 70000 + "\n")
    assert e.value.line == 2 and "line longer than" in e.value.message
    parse("# " + "x" * 65534 + "\n")  # 65536 characters and a newline: fine


@pytest.mark.parametrize("args", [["run", "MANY"], ["run", "MANY", "--format", "json"]])
def test_output_into_a_closed_pipe(tmp_path, args):
    many = tmp_path / "many.kw"
    many.write_text("x = kmalloc 8\n" + "read x+8 1\n" * 3000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kinspect.cli", *[str(many) if a == "MANY" else a for a in args]],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.read(100)
    proc.stdout.close()  # `| head`
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE and err == b""


@pytest.mark.parametrize("command", ["run", "compare"])
def test_output_to_a_full_device(command):
    with open("/dev/full", "wb") as full:
        done = _kinspect(command, str(DEMO), stdout=full, stderr=subprocess.PIPE)
    assert done.returncode == 2
    assert done.stderr == b"kinspect: <stdout>: cannot write the output: No space left on device\n"


def test_a_bug_is_a_traceback_and_exit_3_never_1(monkeypatch, capsys):
    import kinspect.commands.simulate as simulate

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(simulate, "_run", broken)
    assert main(["run", str(DEMO)]) == EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: a bug" in err
    assert err.endswith(
        "kinspect: internal error (a bug in kinspect: the traceback above says where)\n"
    )


def test_trace_fraction_while_the_file_is_closed_elsewhere():
    """The UI asks how far a reader is while its thread closes the file (a truncated .xz):
    tell() on a file closed after the `closed` check gave EBADF."""
    from kinspect.engine.ftrace import TraceReader

    class ClosedUnderneath:
        closed = False

        def tell(self):
            raise OSError(9, "Bad file descriptor")

    reader = TraceReader("t.txt")
    reader._raw, reader._size = ClosedUnderneath(), 100
    assert reader.fraction() == 0.0


def test_kmem_cache_destroy_of_a_cache_with_objects_keeps_it():
    """__kmem_cache_shutdown() gives -EBUSY (a WARN): the cache and its objects stay (the
    fuzzer found the objects of a mempool freed under it: KeyError in mempool_destroy)."""
    r = run(
        "c = kmem_cache_create test_cache 123\np = mempool_create_slab_pool 4 c\n"
        "x = kmem_cache_alloc c\nkmem_cache_destroy c\nread x 123\nexpect none\n"
        "mempool_destroy p\nkmem_cache_free c x\nkmem_cache_destroy c\nread x 1\n"
        "expect use-after-free\n"
    )  # now destroyed: its slab pages are free
    assert r.expect_failures == []


# --------------------------------------------------------------------------- fuzz corpus


def _fuzzer():
    import importlib.util

    spec = importlib.util.spec_from_file_location("kinspect_fuzz", ROOT / "benchmarks" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORPUS = sorted(p for p in (ROOT / "tests" / "fuzz").glob("*/*") if p.suffix in (".kw", ".txt"))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fuzz_corpus_ends_cleanly_in_bounded_time(path):
    outcome, detail = _fuzzer().run_case(path.parent.name, path.read_bytes(), 0, limit=30.0)
    assert (outcome, path.name) == ("clean", path.name), detail


def test_the_fuzzer_is_deterministic_and_counts_tracebacks():
    fuzz = _fuzzer()
    gen = fuzz.Generator("workload", 7)
    assert [gen.case(n) for n in range(5)] == [
        fuzz.Generator("workload", 7).case(n) for n in range(5)
    ]
    assert fuzz.run_case("workload", b"x = kmalloc 8\n")[0] == "clean"
    assert fuzz.run_case("trace", b"nothing\n") == ("clean", "error")


def test_mempool_destroy_after_an_element_was_freed_under_the_pool():
    """A full pool's mempool_free() of elem+1 kfree()s it: KASAN reports the invalid free and
    free_large_kmalloc() frees elem's pages anyway (as in the kernel), though the pool holds
    elem; mempool_destroy() unpoisons elem by the pool's size (the fuzzer found a KeyError)."""
    r = run(
        "pool = mempool_create_kmalloc_pool 4 8193\nextra = mempool_alloc pool\n"
        "elem = mempool_alloc pool\nmempool_free extra pool\nmempool_free elem pool\n"
        "mempool_free elem+1 pool\nexpect invalid-free\nmempool_destroy pool\n"
    )
    assert r.expect_failures == []


@pytest.mark.parametrize("size", ["64M", "1G"])
def test_an_access_of_memory_the_machine_lacks_is_checked_in_chunks(size):
    """A 64M read past the end of a 64M machine's RAM (zero shadow: no report) took 24 s a
    granule at a time; a 1G one would take minutes. The first bad granule still decides."""
    r = run(
        f"a = kmalloc 100000\nread a+64M {size}\nexpect none\nmemset a {size}\n"
        "expect slab-out-of-bounds\n",
        mem=64 << 20,
    )
    assert r.expect_failures == []
    report = r.machine.reports[0]
    assert report.first_bad_addr == r.values["a"] + 100000  # the kmalloc redzone


def test_large_and_small_accesses_agree_at_the_edge():
    from kinspect.engine.machine import LARGE_ACCESS

    for size in (LARGE_ACCESS - 8, LARGE_ACCESS + 8):
        end = 4 * 2**20 - 8  # a large kmalloc with an 8-byte redzone after it
        r = run(
            f"a = kmalloc {end}\nread a {size}\nexpect none\nread a+{end - size + 1} "
            f"{size}\nexpect slab-out-of-bounds\n"
        )
        assert r.expect_failures == [], size


def test_mempool_oddities_found_by_the_program_fuzzer():
    run(
        "p = mempool_create_kmalloc_pool 4 0\nx = mempool_alloc p\nmempool_free x p\n"
        "mempool_destroy p\n"
    )  # ZERO_SIZE_PTR elements
    # a foreign kmalloc-8 object into a pool of 123-byte elements: unpoisoned as the
    # object it is (an IndexError before), then kfree()d by mempool_destroy
    r = run(
        "a = kmalloc 8\np = mempool_create_kmalloc_pool 1 123\nmempool_destroy p\n"
        "mempool_free a p\nmempool_destroy p\nread a 8\n"
    )
    assert [x.bug_type for x in r.machine.reports] == ["slab-use-after-free"]
