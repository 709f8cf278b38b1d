"""Engine speed and memory: 1 million mixed kmalloc/kfree events on the x86_64 profile.

Prints events/s for running the events (parsing excluded and included), and the peak RSS of a
whole run at --mem 1G and --mem 1T (each in a fresh process, so the figures do not mix).

    python benchmarks/engine.py [--events N]
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time

SIZES = [8, 16, 24, 32, 40, 64, 96, 100, 128, 192, 200, 256, 300, 512, 700, 1024, 2048, 4096]
WEIGHTS = [8, 10, 6, 10, 4, 12, 6, 3, 8, 5, 2, 6, 2, 4, 1, 3, 2, 1]


def mixed_workload(n_events: int, live_max: int = 4096, seed: int = 1) -> list[str]:
    """A deterministic kmalloc/kfree mix with at most live_max live objects."""
    rng = random.Random(seed)
    lines = ["task bench 1", "func bench_alloc_free 0x1000"]
    free_slots = list(range(live_max))
    live: list[int] = []
    for _ in range(n_events):
        if live and (not free_slots or rng.random() < 0.5):
            i = live.pop(rng.randrange(len(live)))
            lines.append(f"kfree p{i}")
            free_slots.append(i)
        else:
            i = free_slots.pop()
            live.append(i)
            size = rng.choices(SIZES, WEIGHTS)[0]
            lines.append(f"p{i} = kmalloc {size}")
    return lines


def run_once(n_events: int, mem: str) -> dict:
    from kinspect.engine.machine import Machine
    from kinspect.engine.profile import load_profile, parse_size
    from kinspect.engine.workload import WorkloadRunner, parse_workload

    lines = mixed_workload(n_events)
    t0 = time.perf_counter()
    workload = parse_workload("<bench>", lines)
    t1 = time.perf_counter()
    machine = Machine(load_profile("x86_64", parse_size(mem)))
    runner = WorkloadRunner(machine, workload)
    t2 = time.perf_counter()
    runner.run()
    t3 = time.perf_counter()
    return {"events": len(workload.events), "parse_s": t1 - t0, "run_s": t3 - t2,
            "reports": len(machine.reports),
            "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        r = run_once(args.events, args.child)
        print(f"{r['events']} {r['parse_s']} {r['run_s']} {r['reports']} {r['maxrss_mib']}")
        return
    results = {}
    for mem in ("1G", "1T"):
        out = subprocess.run([sys.executable, __file__, "--events", str(args.events),
                              "--child", mem], check=True, capture_output=True, text=True)
        events, parse_s, run_s, reports, rss = out.stdout.split()
        results[mem] = (int(events), float(parse_s), float(run_s), int(reports), float(rss))
    for mem, (events, parse_s, run_s, reports, rss) in results.items():
        print(f"--mem {mem}: {events} events, run {run_s:.2f} s = {events / run_s:,.0f} events/s "
              f"(with parsing {events / (run_s + parse_s):,.0f} events/s), {reports} reports, "
              f"peak RSS {rss:.1f} MiB")
    rss_1g, rss_1t = results["1G"][4], results["1T"][4]
    print(f"peak RSS 1T vs 1G: {100 * (rss_1t - rss_1g) / rss_1g:+.1f} %")


if __name__ == "__main__":
    main()
