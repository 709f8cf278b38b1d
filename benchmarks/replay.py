"""Replaying the real x86_64 kmem trace: parsing alone, the flat scheme, all schemes.

Each figure comes from a fresh process (so peak RSS is that run's own), best of ``--repeat``
runs (the time of the fastest run; the machine may be shared, so CPU seconds are printed
beside wall seconds):
- read: a bare Python loop that decompresses the file and splits every line into its fields
  (``for line in lzma.open(trace): line.split()``), the yardstick of issue 12,
- parse only: reading and decoding every line (the floor of a replay),
- replay with the flat scheme alone, at --mem 1G and --mem 1T,
- replay with the flat scheme at --mem 1T with the quarantine sized as for 1G ("1T/q1G"): a
  1 TiB machine's quarantine (RAM/32 = 32 GiB) never evicts, so it keeps every freed object
  and its slab alive, while 1 GiB's (32 MiB) evicts. That difference is the simulated
  kernel's, not the simulator's: with the quarantine held equal, the simulated kernels do the
  same thing and any RSS difference left is the simulator's own cost of a bigger machine,
- replay with every scheme in lockstep, at --mem 1G.

``--python-lockstep`` measures the Python reference engine alone instead (issue 12: "no slower
than today"): every scheme in lockstep at --mem 1G over the first ``--lines`` lines of the
trace (default 150 000: 112 967 events of the x86_64 trace), parsed first, then replayed in one
process; CPU seconds of the replay alone, best of ``--repeat``. ``--tree DIR`` (repeatable)
runs the same replay on another checkout of kinspect too (``PYTHONPATH=DIR``, e.g. a worktree
of an older commit), the trees taking turns, so that the load of a shared machine weighs on
all alike.

Every figure but read's is made on each engine (``--engines``, docs/engine.md), in the same
run. Replays read the trace in a child process while the parent replays (ParallelTraceReader,
what ``kinspect run/compare`` do on a machine with a second CPU); the ``-seq`` runs read it in
the replaying process, as on one CPU. CPU seconds and peak RSS of the reading child are printed
beside the parent's (the child is forked: much of its RSS is shared with the parent's).

    python benchmarks/replay.py [TRACE] [--repeat N] [--modes read,parse,flat,...]
                                [--engines python,native]
    python benchmarks/replay.py [TRACE] --python-lockstep [--lines N] [--repeat N]
                                [--tree DIR ...]
"""

from __future__ import annotations

import argparse
import lzma
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from kinspect.engine import native

TRACE = Path(__file__).resolve().parent.parent / "samples" / "traces" / "kmem-trace-x86_64.txt.xz"

RUNS = (
    ("read", "1G"),
    ("parse", "1G"),
    ("flat-seq", "1G"),
    ("flat", "1G"),
    ("flat", "1T"),
    ("flat-q1G", "1T"),
    ("all-seq", "1G"),
    ("all", "1G"),
)


def child(mode: str, mem: str, trace: str, engine: str) -> None:
    os.environ[native.VARIABLE] = engine  # the reading child's engine too
    from kinspect.engine.collector import gc_paused
    from kinspect.engine.ftrace import TraceReader
    from kinspect.engine.machine import Machine
    from kinspect.engine.profile import load_profile, parse_size
    from kinspect.engine.replay import replay_trace
    from kinspect.engine.shadow import SCHEMES

    t, c = time.perf_counter(), time.process_time()
    if mode == "read":
        events = 0
        with lzma.open(trace, "rb") as f:
            for line in f:
                line.split()
                events += 1
    elif mode == "parse":
        with gc_paused():
            events = sum(1 for _ in TraceReader(trace))
    else:
        schemes = (
            ("flat",) + tuple(s for s in SCHEMES if s != "flat")
            if mode.startswith("all")
            else ("flat",)
        )
        machine = Machine(load_profile("x86_64", parse_size(mem)), schemes=schemes)
        if mode == "flat-q1G":
            machine.slub.set_quarantine_size(
                load_profile("x86_64", parse_size("1G")).mem_total, machine.profile.nr_cpus
            )
        _, replayer = replay_trace(machine, trace, parallel=not mode.endswith("-seq"))
        events = replayer.events
    dt, cpu = time.perf_counter() - t, time.process_time() - c
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(events, dt, cpu, rss, kids.ru_utime + kids.ru_stime, kids.ru_maxrss / 1024)


def lockstep_child(lines: str) -> None:
    """The Python engine's lockstep replay of a trace's first lines (a file of them), timed
    without the parsing: events, CPU seconds, wall seconds, and the kinspect it ran."""
    os.environ[native.VARIABLE] = "python"
    import kinspect
    from kinspect.engine.ftrace import TraceReader
    from kinspect.engine.machine import Machine
    from kinspect.engine.profile import load_profile, parse_size
    from kinspect.engine.replay import TraceReplayer, gc_paused
    from kinspect.engine.shadow import SCHEMES

    events = list(TraceReader(lines, engine="python"))
    schemes = ("flat",) + tuple(s for s in SCHEMES if s != "flat")
    machine = Machine(load_profile("x86_64", parse_size("1G")), schemes=schemes)
    replayer = TraceReplayer(machine, lines)
    with gc_paused():
        t, c = time.perf_counter(), time.process_time()
        replayer.replay(events)
        cpu, dt = time.process_time() - c, time.perf_counter() - t
    print(len(events), cpu, dt, Path(kinspect.__file__).parent.parent)


def python_lockstep(trace: str, n_lines: int, repeat: int, trees: list[str]) -> None:
    """Every scheme in lockstep on the Python engine, this tree and each of ``trees`` taking
    turns, best of ``repeat`` CPU seconds each."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        lines = os.path.join(tmp, "head.txt")
        opener = lzma.open if trace.endswith(".xz") else open
        with opener(trace, "rb") as f, open(lines, "wb") as out:
            for i, line in enumerate(f):
                if i == n_lines:
                    break
                out.write(line)
        here = str(Path(__file__).resolve().parent.parent)
        runs = {tree: [] for tree in [here, *trees]}
        for _ in range(repeat):
            for tree in runs:
                env = dict(os.environ, PYTHONPATH=tree, **{native.VARIABLE: "python"})
                out = subprocess.run(
                    [sys.executable, __file__, "--lockstep-child", lines],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=tmp,
                ).stdout.split()
                if Path(out[3]).resolve() != Path(tree).resolve():
                    sys.exit(f"{tree}: the child ran the kinspect of {out[3]}")
                runs[tree].append((float(out[1]), float(out[2]), int(out[0])))
        print(
            f"every scheme in lockstep, Python engine, --mem 1G, first {n_lines} lines "
            f"(load average {os.getloadavg()[0]:.2f}):"
        )
        for tree, times in runs.items():
            cpus = sorted(cpu for cpu, _, _ in times)
            print(
                f"  {tree}: {times[0][2]} events, CPU best {cpus[0]:.3f} s "
                f"(runs {', '.join(f'{c:.3f}' for c, _, _ in times)}), "
                f"wall best {min(w for _, w, _ in times):.3f} s"
            )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--lockstep-child":
        lockstep_child(sys.argv[2])
        return
    built = native.compiled(native.COMPILED[0]) is not None
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", nargs="?", default=str(TRACE))
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    ap.add_argument("--modes", help="comma-separated subset of " + ",".join(dict(RUNS)))
    ap.add_argument(
        "--engines",
        default="python,native" if built else "python",
        help="comma-separated: each mode but read runs on each (default: "
        "python,native when the native engine is built)",
    )
    ap.add_argument(
        "--python-lockstep",
        action="store_true",
        help="only the Python engine's lockstep over the trace's first --lines lines",
    )
    ap.add_argument("--lines", type=int, default=150_000, help="with --python-lockstep")
    ap.add_argument(
        "--tree",
        action="append",
        default=[],
        help="with --python-lockstep: another checkout of kinspect to run, in turns",
    )
    args = ap.parse_args()
    if args.python_lockstep:
        python_lockstep(args.trace, args.lines, args.repeat, args.tree)
        return
    wanted = set(args.modes.split(",")) if args.modes else None
    engines = args.engines.split(",")
    results = {}
    for mode, mem in RUNS:
        if wanted is not None and mode not in wanted:
            continue
        for engine in ("-",) if mode == "read" else engines:
            best = None
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, mem, args.trace, engine],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()
                run = (int(out[0]),) + tuple(float(x) for x in out[1:])
                if best is None or run[1] < best[1]:
                    best = run
            events, dt, cpu, rss, kid_cpu, kid_rss = best
            results[(mode, mem, engine)] = best
            kid = f" + reader {kid_cpu:.2f} s" if kid_cpu else ""
            kid_mem = f" (reader {kid_rss:.0f} MiB)" if kid_cpu else ""
            what = mode if mode in ("read", "parse") else f"{mode} --mem {mem}"
            if engine != "-":
                what += f" [{engine}]"
            print(
                f"{what:24}: {events} {'lines' if mode == 'read' else 'events'} in "
                f"{dt:.2f} s (cpu {cpu:.2f} s{kid}) = {events / dt:,.0f}/s, "
                f"peak RSS {rss:.0f} MiB{kid_mem}",
                flush=True,
            )
    read = results.get(("read", "1G", "-"))
    for engine in engines:
        parse = results.get(("parse", "1G", engine))
        for mode in ("parse", "flat-seq", "flat", "all-seq", "all"):
            run = results.get((mode, "1G", engine))
            if run and read:  # wall and CPU: on a shared machine the CPU ratio holds
                print(
                    f"{mode} [{engine}] / read: {run[1] / read[1]:.2f}x "
                    f"(cpu {run[2] / read[2]:.2f}x)"
                )
            if run and parse and mode != "parse":
                print(f"{mode} [{engine}] / parse [{engine}]: {run[1] / parse[1]:.2f}x")
        for all_mode, flat_mode in (("all-seq", "flat-seq"), ("all", "flat")):
            run = results.get((all_mode, "1G", engine))
            flat = results.get((flat_mode, "1G", engine))
            if run and flat:  # issue 12: every scheme in lockstep <= 1.5x flat
                print(
                    f"{all_mode} [{engine}] / {flat_mode} [{engine}]: {run[1] / flat[1]:.2f}x "
                    f"(cpu {run[2] / flat[2]:.2f}x)"
                )
        r1g = results.get(("flat", "1G", engine), (0,) * 6)[3]
        for mode in ("flat", "flat-q1G"):
            if r1g and (mode, "1T", engine) in results:
                r1t = results[(mode, "1T", engine)][3]
                print(f"peak RSS {mode} 1T vs flat 1G [{engine}]: {100 * (r1t - r1g) / r1g:+.1f} %")


if __name__ == "__main__":
    main()
