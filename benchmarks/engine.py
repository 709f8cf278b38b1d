"""Engine speed and memory: 1 million mixed kmalloc/kfree events on the x86_64 profile.

For each mix, in a fresh process per memory size:
- events/s (and µs an event, wall and CPU: on a shared machine the CPU figure holds) of the
  engine on pre-parsed events (``WorkloadRunner.run``), best of 3,
- events/s of a streamed run as ``kinspect run`` does it (parse and run interleaved),
- peak RSS of the streamed run, at --mem 1G and --mem 1T.

Then the lockstep cost (issue 3): the engine on the mixed workload with every shadow scheme at
once versus flat alone (best of 5 runs each, alternating).

Mixes:
- ``small``: kmalloc sizes 1..32 (the commonest kernel requests). Its frees (about 22 MB of
  slots) stay under the 1 GiB machine's quarantine (RAM/32 - 2 MiB = 30 MiB), so the simulated
  kernel does the same at 1 GiB and 1 TiB: any RSS difference is the simulator's own cost of
  a bigger machine.
- ``mixed``: sizes 8..4096. Its frees overflow the 1 GiB quarantine, which evicts, while the
  1 TiB machine's 32 GiB quarantine keeps every freed object: the simulated kernels differ,
  and so does RSS.

    python benchmarks/engine.py [--events N] [--lockstep-only]
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

MIXES = {
    "small": ([1, 2, 4, 6, 8, 12, 16, 20, 24, 32], [3, 3, 6, 2, 10, 4, 10, 3, 6, 8]),
    "mixed": (
        [8, 16, 24, 32, 40, 64, 96, 100, 128, 192, 200, 256, 300, 512, 700, 1024, 2048, 4096],
        [8, 10, 6, 10, 4, 12, 6, 3, 8, 5, 2, 6, 2, 4, 1, 3, 2, 1],
    ),
}


def mixed_workload(n_events: int, sizes: str, live_max: int = 4096, seed: int = 1) -> Iterator[str]:
    """A deterministic kmalloc/kfree mix with at most live_max live objects."""
    values, weights = MIXES[sizes]
    rng = random.Random(seed)
    yield "task bench 1"
    yield "func bench_alloc_free 0x1000"
    free_slots = list(range(live_max))
    live: list[int] = []
    for _ in range(n_events):
        if live and (not free_slots or rng.random() < 0.5):
            i = live.pop(rng.randrange(len(live)))
            yield f"kfree p{i}"
            free_slots.append(i)
        else:
            i = free_slots.pop()
            live.append(i)
            yield f"p{i} = kmalloc {rng.choices(values, weights)[0]}"


def lockstep_events_per_s(
    n_events: int, schemes: tuple[str, ...], sizes: str = "mixed", repeat: int = 5
) -> tuple[float, float]:
    """Events/s of the engine on pre-parsed events at --mem 1G, flat alone and ``schemes`` in
    lockstep: best of ``repeat`` runs each, the two alternating so that whatever else the
    machine does weighs on both alike."""
    from kinspect.engine.machine import Machine
    from kinspect.engine.profile import load_profile
    from kinspect.engine.workload import WorkloadRunner, parse_workload

    profile = load_profile("x86_64", 1 << 30)
    workload = parse_workload("<bench>", mixed_workload(n_events, sizes))
    best = {("flat",): float("inf"), schemes: float("inf")}
    for _ in range(repeat):
        for which in best:
            runner = WorkloadRunner(Machine(profile, schemes=which), workload)
            t = time.perf_counter()
            runner.run()
            best[which] = min(best[which], time.perf_counter() - t)
    return len(workload.events) / best[("flat",)], len(workload.events) / best[schemes]


def run_once(n_events: int, mem: str, sizes: str) -> dict:
    from kinspect.engine.machine import Machine
    from kinspect.engine.profile import load_profile, parse_size
    from kinspect.engine.workload import WorkloadRunner, iter_workload, parse_workload

    profile = load_profile("x86_64", parse_size(mem))
    machine = Machine(profile)
    t0 = time.perf_counter()
    runner = WorkloadRunner(machine, iter_workload("<bench>", mixed_workload(n_events, sizes)))
    runner.run()
    t1 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    events = runner.position
    quarantine = machine.slub.quarantine_bytes()
    # The engine alone on pre-parsed events: best of 3 runs (timeit's rule: the other runs
    # measure what else the machine was doing).
    workload = parse_workload("<bench>", mixed_workload(n_events, sizes))
    run_s, run_cpu = [], []
    for _ in range(3):
        machine = Machine(profile)
        runner = WorkloadRunner(machine, workload)
        t2, c2 = time.perf_counter(), time.process_time()
        runner.run()
        run_s.append(time.perf_counter() - t2)
        run_cpu.append(time.process_time() - c2)
    return {
        "events": events,
        "stream_s": t1 - t0,
        "run_s": min(run_s),
        "run_cpu": min(run_cpu),
        "rss": rss,
        "quarantine": quarantine,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--lockstep-only", action="store_true", help="only the lockstep cost")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.child:
        from kinspect.engine import native

        print(f"engine: {native.engine()} ({native.VARIABLE}=python|native chooses)")
    if args.child:
        r = run_once(args.events, *args.child)
        print(r["events"], r["stream_s"], r["run_s"], r["run_cpu"], r["rss"], r["quarantine"])
        return
    for sizes in () if args.lockstep_only else MIXES:
        rss = {}
        for mem in ("1G", "1T"):
            out = subprocess.run(
                [sys.executable, __file__, "--events", str(args.events), "--child", mem, sizes],
                check=True,
                capture_output=True,
                text=True,
            )
            events, stream_s, run_s, run_cpu, peak, quarantine = out.stdout.split()
            events, stream_s, run_s, run_cpu = (
                int(events),
                float(stream_s),
                float(run_s),
                float(run_cpu),
            )
            rss[mem] = float(peak)
            print(
                f"{sizes:5} --mem {mem}: {events} events: engine {events / run_s:,.0f} "
                f"events/s ({run_s / events * 1e6:.3f} µs an event, CPU "
                f"{run_cpu / events * 1e6:.3f} µs; issue 12: <= 0.3), "
                f"streamed with parsing {events / stream_s:,.0f} events/s, "
                f"quarantine at end {int(quarantine) / 2**20:.1f} MiB, "
                f"peak RSS {rss[mem]:.1f} MiB"
            )
        print(f"{sizes:5} peak RSS 1T vs 1G: {100 * (rss['1T'] - rss['1G']) / rss['1G']:+.1f} %")
    from kinspect.engine.shadow import SCHEMES

    everyone = ("flat",) + tuple(s for s in SCHEMES if s != "flat")
    flat, lockstep = lockstep_events_per_s(args.events, everyone)
    print(
        f"lockstep {'+'.join(everyone)}: {lockstep:,.0f} events/s vs flat alone "
        f"{flat:,.0f} events/s: {flat / lockstep:.2f}x the cost"
    )


if __name__ == "__main__":
    main()
