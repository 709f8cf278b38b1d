"""A mutation fuzzer for kinspect's input parsers (issue 11): workload parser + runner, trace
reader + replay, KASAN report parser + explain. Deterministic for a given seed.

Each case is a seed input (the repository's own workloads, the first lines of the sample
traces, the real reports under tests/data) with a few mutations: lines dropped, repeated,
swapped or borrowed from another seed; a token replaced by an "interesting" value (2^64, a
5000-digit number, 08, Unicode digits, NULL...) or by a word of another seed; bytes flipped,
inserted or cut. A case runs in a worker process under a memory limit (RLIMIT_AS) and a time
limit (an interval timer; a worker that does not answer is killed). Its outcome is:

- clean: it ran, or it raised one of kinspect's own errors (KinspectError);
- traceback: any other exception, counted by type and the deepest kinspect frame;
- hang: over the time limit;
- memory: MemoryError under the memory limit.

Usage (docs/fuzzing.md):

    python benchmarks/fuzz.py --cases 20000 --seed 1 --targets workload,trace,report \
        --jobs 1 --save /tmp/fuzz-found

prints the figures per target and, with ``--save``, writes the first input of every distinct
traceback or hang there, minimized (lines, then tokens dropped while the outcome stays).
"""

from __future__ import annotations

import argparse
import io
import lzma
import multiprocessing
import random
import re
import resource
import signal
import sys
import time
import traceback
from collections import Counter
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kinspect.engine.errors import KinspectError  # noqa: E402

TARGETS = ("workload", "trace", "report")
# "program": workloads written from the language's statements (most parse, so they reach the
# runner's deeper paths: out-of-memory, NULL caches and pools, stacks), run as "workload".
EXTRA_TARGETS = ("program",)
PROFILES = (("x86_64", 64 << 20), ("arm32", 64 << 20), ("x86_64", None))

INTERESTING = [
    b"0",
    b"1",
    b"-1",
    b"08",
    b"0x",
    b"0x0",
    b"7",
    b"4096",
    b"8193",
    b"1G",
    b"1T",
    b"18446744073709551615",
    b"18446744073709551616",
    b"4294967296",
    b"2147483648",
    b"9" * 30,
    b"1" * 5000,
    b"0x" + b"f" * 40,
    b"16777216T",
    "\uff11\uff16".encode(),
    b"NULL",
    b"-0x10",
    b"4194304",
    b"99999999999",
    b"(null)",
    b"f" * 17,
    b"0xffffffffffffffff",
    b"0xffff888000000000",
    b"-",
    b"",
    b"x",
    b"\x00",
    b"\xff\xfe",
]
JUNK = [
    b"\x00",
    b"\xff",
    "\u00e9".encode(),
    b"\t",
    b"#",
    b"=",
    b" ",
    b":",
    b"[",
    b"]",
    b"+",
    b"\r",
    b"\x1b[0m",
    b"(",
    b")",
]
_TOKEN = re.compile(rb"([\s=:@+\-/\[\]()]+)")


class Timeout(BaseException):
    """The per-case time limit (a BaseException: no ``except Exception`` swallows it)."""


# ----------------------------------------------------------------------------------- seeds


def _trace_head(path: Path, lines: int) -> bytes:
    with lzma.open(path, "rb") as f:
        return b"".join(islice(f, lines))


def seeds(target: str) -> list[bytes]:
    """The inputs mutations start from: the repository's own."""
    if target == "workload":
        files = sorted((ROOT / "samples" / "workloads").rglob("*.kw"))
        return [f.read_bytes() for f in files]
    if target == "trace":
        out = []
        for name in ("kmem-trace-x86_64.txt.xz", "kmem-trace-arm32.txt.xz"):
            head = _trace_head(ROOT / "samples" / "traces" / name, 2400).split(b"\n")
            out += [b"\n".join(head[i : i + 80]) for i in range(0, len(head), 300)]
        out.append(
            b"# tracer: nop\n"
            b"  bash-1 [000] ..... 1.0: kmalloc: call_site=0xffffffff92d10d97 "
            b"(-1831793257) ptr=0xffff9e0e8571e000 (-107689771147264) bytes_req=0x1000 "
            b"(4096) bytes_alloc=0x1000 (4096)\n"
            b" 1)               |  /* mm_page_alloc: page=0 pfn=0 order=9 migratetype=1 */"
            b"\n  12.5: kfree: call_site=f ptr=c143de20\n"
        )
        return out
    files = sorted(p for p in (ROOT / "tests" / "data" / "kasan-reports").glob("*.txt"))
    return [b"\n".join(f.read_bytes().split(b"\n")[:150]) for f in files]


def words(pool: list[bytes]) -> list[bytes]:
    found = sorted({t for s in pool for t in _TOKEN.split(s)[::2] if 0 < len(t) < 40})
    return found[:5000]


def mutate(rng: random.Random, data: bytes, pool: list[bytes], vocab: list[bytes]) -> bytes:
    lines = data.split(b"\n")
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        i = rng.randrange(len(lines))
        op = rng.randrange(10)
        if op == 0 and len(lines) > 1:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            lines.insert(i, rng.choice(rng.choice(pool).split(b"\n")))
        elif op == 3:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op in (4, 5, 6):
            toks = _TOKEN.split(lines[i])
            spots = [k for k in range(0, len(toks), 2) if toks[k]]
            if spots:
                k = rng.choice(spots)
                r = rng.random()
                toks[k] = (
                    rng.choice(INTERESTING) if r < 0.5 else rng.choice(vocab) if r < 0.85 else b""
                )
                lines[i] = b"".join(toks)
        elif op == 7 and lines[i]:
            b = bytearray(lines[i])
            b[rng.randrange(len(b))] = rng.randrange(256)
            lines[i] = bytes(b)
        elif op == 8:
            pos = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:pos] + rng.choice(JUNK + INTERESTING) + lines[i][pos:]
        elif op == 9:
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    return b"\n".join(lines)


_A, _C, _P = ("a0", "a1", "a2", "a3"), ("c0", "c1"), ("p0", "p1")
STATEMENTS = [
    "{a} = kmalloc {n}",
    "{a} = kzalloc {n}",
    "{a} = vmalloc {n}",
    "{a} = alloc_pages {o}",
    "__free_pages {a} {o}",
    "kfree {a}",
    "{a} = krealloc {a} {n}",
    "read {a}+{n} {n}",
    "write {a}-{n} {n}",
    "memset {a} {n}",
    "memmove {a} {a} -{n}",
    "memcpy {a} {a} {n}",
    "{c} = kmem_cache_create cache {n}",
    "{c} = kmem_cache_create rcu {n} SLAB_TYPESAFE_BY_RCU",
    "{a} = kmem_cache_alloc {c}",
    "kmem_cache_free {c} {a}",
    "kmem_cache_destroy {c}",
    "{p} = mempool_create_kmalloc_pool {m} {n}",
    "{p} = mempool_create_slab_pool {m} {c}",
    "{p} = mempool_create_page_pool {m} {o}",
    "{a} = mempool_alloc {p}",
    "mempool_free {a} {p}",
    "mempool_destroy {p}",
    "{a} = global g {n}",
    "frame {a}:{n} {a2}@{n}:{n}",
    "{a} = alloca {n}",
    "task t {m}",
    "func f {n}",
    "call_rcu {a}",
    "queue_work {a}",
    "rcu_barrier",
    "{a} = ksize {a}",
    "kfree_sensitive {a}",
    "{a} = kmalloc_node {n} {m}",
    "expect none",
    "expect slab-out-of-bounds",
]
NUMBERS = [
    "0",
    "1",
    "7",
    "8",
    "16",
    "64",
    "123",
    "4096",
    "8192",
    "8193",
    "1M",
    "4M",
    "64M",
    "1G",
    "1T",
    "0xffffffffffffffff",
    "2147483647",
    "100000",
    "0x10",
    "4194303",
]


def program(rng: random.Random) -> bytes:
    """A workload written from the statements, its variables defined first."""
    lines = [f"{a} = kmalloc {rng.choice(NUMBERS)}" for a in _A]
    lines += [f"{c} = kmem_cache_create k{c} {rng.choice(NUMBERS)}" for c in _C]
    lines += [
        f"{p} = mempool_create_kmalloc_pool {rng.randrange(5)} {rng.choice(NUMBERS)}" for p in _P
    ]
    for _ in range(rng.randrange(1, 40)):
        lines.append(
            rng.choice(STATEMENTS).format(
                a=rng.choice(_A),
                a2=rng.choice(_A),
                c=rng.choice(_C),
                p=rng.choice(_P),
                n=rng.choice(NUMBERS),
                o=rng.randrange(12),
                m=rng.choice(["0", "1", "4", "100", "100000000"]),
            )
        )
    return ("\n".join(lines) + "\n").encode()


class Generator:
    """Case number -> input, for one target and seed (the same on every run)."""

    def __init__(self, target: str, seed: int, rounds: int = 1) -> None:
        self.target, self.seed, self.rounds = target, seed, rounds
        self.pool = seeds("workload" if target == "program" else target)
        self.vocab = words(self.pool)

    def case(self, n: int) -> bytes:
        rng = random.Random(f"{self.seed}:{self.target}:{n}")
        if self.target == "program":
            return program(rng)
        data = rng.choice(self.pool)
        for _ in range(self.rounds):
            data = mutate(rng, data, self.pool, self.vocab)
        return data


# ---------------------------------------------------------------------------------- targets

_profiles: dict = {}


def _profile(n: int):
    from kinspect.engine.profile import load_profile

    key = PROFILES[n % len(PROFILES)]
    if key not in _profiles:
        _profiles[key] = load_profile(*key)
    return _profiles[key]


def run_workload(data: bytes, n: int = 0) -> None:
    from kinspect.engine.machine import Machine
    from kinspect.engine.workload import WorkloadRunner, iter_workload

    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    runner = WorkloadRunner(Machine(_profile(n)), iter_workload("fuzz.kw", text))
    runner.run()
    runner.machine.summary()


def run_trace(data: bytes, n: int = 0) -> None:
    from kinspect.engine.machine import Machine
    from kinspect.engine.replay import replay_trace, trace_summary

    machine = Machine(_profile(n))
    reader, replayer = replay_trace(machine, "fuzz.txt", strict=n % 4 == 0, stream=io.BytesIO(data))
    trace_summary(reader.stats, replayer.stats)
    machine.summary()


def run_report(data: bytes, n: int = 0) -> None:
    from kinspect.reports.explain import (
        ReplayUnsupported,
        format_explanation,
        replay_workload,
        run_replay,
    )
    from kinspect.reports.kreport import iter_reports, read_log_lines

    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    for rep in iter_reports(
        read_log_lines(text, "fuzz.txt"), path="fuzz.txt", strict=n % 2 == 0, partial=n % 3 == 0
    ):
        format_explanation(rep)
        try:
            plan = replay_workload(rep)
        except ReplayUnsupported:
            continue
        run_replay(plan)


RUNNERS = {
    "workload": run_workload,
    "trace": run_trace,
    "report": run_report,
    "program": run_workload,
}


def _where(e: BaseException) -> str:
    """The deepest frame in kinspect's own code (else the deepest frame)."""
    frames = traceback.extract_tb(e.__traceback__)
    own = [f for f in frames if "/kinspect/" in f.filename] or frames
    f = own[-1]
    return f"{Path(f.filename).name}:{f.name}:{f.lineno}"


def _alarm(_signum, _frame):
    raise Timeout()


def run_case(target: str, data: bytes, n: int = 0, limit: float = 10.0) -> tuple[str, str]:
    """One case: (outcome, detail); outcome is clean, traceback, hang or memory."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        RUNNERS[target](data, n)
        return "clean", "ran"
    except KinspectError:
        return "clean", "error"
    except Timeout:
        return "hang", f"over {limit:g} s"
    except MemoryError as e:
        return "memory", f"MemoryError at {_where(e)}"
    except RecursionError as e:
        return "traceback", f"RecursionError at {_where(e)}"
    except Exception as e:  # noqa: BLE001  (what the fuzzer counts)
        return "traceback", f"{type(e).__name__} at {_where(e)}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------------------ the workers


def _worker(
    target: str, seed: int, rounds: int, start: int, stop: int, limit: float, mem: int, conn
) -> None:
    if mem:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    gen = Generator(target, seed, rounds)
    for n in range(start, stop):
        outcome, detail = run_case(target, gen.case(n), n, limit)
        conn.send((n, outcome, detail))
    conn.close()


def fuzz(
    target: str,
    seed: int,
    rounds: int,
    start: int,
    stop: int,
    limit: float,
    mem: int,
    results: dict,
    progress,
) -> None:
    """Cases [start, stop) in one worker process at a time, restarted after a hard hang."""
    ctx = multiprocessing.get_context("fork")
    n = start
    while n < stop:
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker, args=(target, seed, rounds, n, stop, limit, mem, send), daemon=True
        )
        proc.start()
        send.close()
        while n < stop:
            if not receive.poll(limit * 3 + 10):
                results[n] = ("hang", "worker killed (no answer)")
                n += 1
                break
            try:
                got, outcome, detail = receive.recv()
            except EOFError:  # the worker died (a crash)
                results[n] = ("traceback", f"worker died (exit {proc.exitcode})")
                n += 1
                break
            results[got] = (outcome, detail)
            n = got + 1
            progress()
        proc.kill()
        proc.join()
        receive.close()


def _run_jobs(
    target: str, seed: int, rounds: int, cases: int, limit: float, mem: int, jobs: int
) -> dict:
    import threading

    results: dict = {}
    done = [0]
    lock = threading.Lock()
    t0 = time.monotonic()

    def progress():
        with lock:
            done[0] += 1
            if sys.stderr.isatty() and done[0] % 100 == 0:
                rate = done[0] / (time.monotonic() - t0)
                sys.stderr.write(f"\r{target}: {done[0]}/{cases} ({rate:.0f}/s)  ")

    step = -(-cases // jobs)
    threads = [
        threading.Thread(
            target=fuzz,
            args=(target, seed, rounds, a, min(a + step, cases), limit, mem, results, progress),
        )
        for a in range(0, cases, step)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    return results


# ------------------------------------------------------------------------------ minimizing


def minimize(target: str, data: bytes, n: int, want: tuple[str, str], limit: float) -> bytes:
    """Drop lines, then tokens, while the case keeps its outcome (in this process)."""

    def same(candidate: bytes) -> bool:
        return run_case(target, candidate, n, limit) == want

    lines = data.split(b"\n")
    chunk = max(len(lines) // 2, 1)
    while chunk >= 1:
        i = 0
        while i < len(lines):
            trial = lines[:i] + lines[i + chunk :]
            if trial and same(b"\n".join(trial)):
                lines = trial
            else:
                i += chunk
        chunk //= 2
    for i in range(len(lines)):
        toks = _TOKEN.split(lines[i])
        k = 0
        while k < len(toks):
            trial = toks[:k] + toks[k + 2 :]
            if trial and same(b"\n".join(lines[:i] + [b"".join(trial)] + lines[i + 1 :])):
                toks = trial
            else:
                k += 2
        lines[i] = b"".join(toks)
    return b"\n".join(lines)


# ----------------------------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=2000, help="cases per target")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of mutations per case (each: 1 to 8 mutations)",
    )
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--limit", type=float, default=10.0, help="seconds per case")
    ap.add_argument("--mem", type=int, default=2048, help="MiB of address space per worker")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes at once")
    ap.add_argument("--save", metavar="DIR", help="write the distinct findings there")
    ap.add_argument("--no-minimize", action="store_true")
    args = ap.parse_args(argv)
    total: Counter[str] = Counter()
    for target in args.targets.split(","):
        t0 = time.monotonic()
        results = _run_jobs(
            target, args.seed, args.rounds, args.cases, args.limit, args.mem << 20, args.jobs
        )
        counts = Counter(outcome for outcome, _ in results.values())
        kinds: dict[tuple[str, str], list[int]] = {}
        for n, (outcome, detail) in sorted(results.items()):
            if outcome != "clean":
                kinds.setdefault((outcome, detail), []).append(n)
        seconds = time.monotonic() - t0
        ran = sum(1 for outcome, detail in results.values() if detail == "ran")
        print(
            f"{target}: {len(results)} cases in {seconds:.0f} s: clean {counts['clean']} "
            f"({ran} ran to the end, {counts['clean'] - ran} kinspect errors), "
            f"tracebacks {counts['traceback']} ({sum(k[0] == 'traceback' for k in kinds)} "
            f"distinct), hangs {counts['hang']}, memory {counts['memory']}"
        )
        for (outcome, detail), cases in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
            print(f"  {outcome}: {detail}: {len(cases)} (first: case {cases[0]})")
        total.update(counts)
        total["cases"] += len(results)
        if args.save and kinds:
            out = Path(args.save)
            out.mkdir(parents=True, exist_ok=True)
            gen = Generator(target, args.seed, args.rounds)
            for i, ((outcome, detail), cases) in enumerate(sorted(kinds.items())):
                data = gen.case(cases[0])
                if not args.no_minimize and outcome != "hang":
                    resource.setrlimit(resource.RLIMIT_AS, (args.mem << 20, args.mem << 20))
                    data = minimize(target, data, cases[0], (outcome, detail), args.limit)
                (out / f"{target}-{i:02d}-case{cases[0]}.in").write_bytes(data)
                (out / f"{target}-{i:02d}-case{cases[0]}.why").write_text(f"{outcome}: {detail}\n")
    print(
        f"total: {total['cases']} cases: clean {total['clean']}, tracebacks "
        f"{total['traceback']}, hangs {total['hang']}, memory {total['memory']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
