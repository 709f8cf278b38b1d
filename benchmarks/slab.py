"""The slab allocator alone: kmalloc/kfree through Machine, on both engines (issue 12).

A fixed script of ``--events`` calls (half kmalloc of the real trace's commonest sizes, half
kfree of a live object, at most 4096 live; seeded, the same for both engines), run on a fresh
x86_64 machine with the flat scheme, best of ``--repeat`` runs, in CPU seconds
(time.process_time) and wall seconds; the load average is printed beside them (the machine
may be shared). Per call: Machine.kmalloc() or Machine.kfree(), the KASAN hooks, the
quarantine, slabs made and discarded; no workload parsing.

    python benchmarks/slab.py [--events N] [--repeat N] [--mem 1G]
"""

from __future__ import annotations

import argparse
import os
import random
import time

from kinspect.engine import native
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile, parse_size

SIZES = [8, 16, 24, 32, 40, 64, 96, 100, 128, 192, 200, 256, 300, 512, 700, 1024, 2048, 4096]
WEIGHTS = [8, 10, 6, 10, 4, 12, 6, 3, 8, 5, 2, 6, 2, 4, 1, 3, 2, 1]


def script(n: int, seed: int = 1) -> list[int]:
    """Positive: kmalloc of that size; negative: kfree of live slot -x - 1."""
    rng = random.Random(seed)
    out: list[int] = []
    live: list[int] = []
    free_slots = list(range(4096))
    for _ in range(n):
        if live and (not free_slots or rng.random() < 0.5):
            slot = live.pop(rng.randrange(len(live)))
            free_slots.append(slot)
            out.append(-slot - 1)
        else:
            slot = free_slots.pop()
            live.append(slot)
            out.append(rng.choices(SIZES, WEIGHTS)[0] << 16 | slot)
    return out


def run(engine: str, calls: list[int], mem: int) -> tuple[float, float]:
    m = Machine(load_profile("x86_64", mem), engine=engine)
    kmalloc, kfree = m.kmalloc, m.kfree
    ptr = [0] * 4096
    t, c = time.perf_counter(), time.process_time()
    for x in calls:
        if x < 0:
            kfree(ptr[-x - 1])
        else:
            ptr[x & 0xFFFF] = kmalloc(x >> 16)
    return time.process_time() - c, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mem", default="1G")
    args = ap.parse_args()
    calls = script(args.events)
    engines = ["python"] + (["native"] if native.compiled("_slab") is not None else [])
    best = {e: (float("inf"), float("inf")) for e in engines}
    for _ in range(args.repeat):
        for e in engines:  # alternating: the machine's load weighs on both
            best[e] = min(best[e], run(e, calls, parse_size(args.mem)))
    print(f"load average {os.getloadavg()[0]:.2f}")
    for e in engines:
        cpu, wall = best[e]
        print(
            f"{e:6}: {args.events} kmalloc/kfree calls, --mem {args.mem}: "
            f"{cpu * 1e9 / args.events:.0f} ns a call (cpu), {wall * 1e9 / args.events:.0f} "
            f"ns (wall), best of {args.repeat}"
        )
    if len(engines) == 2:
        print(f"native / python (cpu): {best['native'][0] / best['python'][0]:.2f}")


if __name__ == "__main__":
    main()
