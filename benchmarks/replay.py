"""Replaying the real x86_64 kmem trace: parsing alone, the flat scheme, all schemes.

Each figure comes from a fresh process (so peak RSS is that run's own):
- parse only: reading and decoding every line (the floor),
- replay with the flat scheme alone, at --mem 1G and --mem 1T,
- replay with every scheme in lockstep, at --mem 1G.

    python benchmarks/replay.py [TRACE]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

TRACE = Path(__file__).resolve().parent.parent / "samples" / "traces" / "kmem-trace-x86_64.txt.xz"


def child(mode: str, mem: str, trace: str) -> None:
    from kinspect.engine.ftrace import TraceReader
    from kinspect.engine.machine import Machine
    from kinspect.engine.profile import load_profile, parse_size
    from kinspect.engine.replay import replay_trace
    from kinspect.engine.shadow import SCHEMES
    from kinspect.engine.workload import gc_paused

    t = time.perf_counter()
    if mode == "parse":
        with gc_paused():
            events = sum(1 for _ in TraceReader(trace))
    else:
        schemes = ("flat",) if mode == "flat" else \
            ("flat",) + tuple(s for s in SCHEMES if s != "flat")
        machine = Machine(load_profile("x86_64", parse_size(mem)), schemes=schemes)
        _, replayer = replay_trace(machine, trace)
        events = replayer.events
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(events, dt, rss)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    trace = sys.argv[1] if len(sys.argv) > 1 else str(TRACE)
    results = {}
    for mode, mem in (("parse", "1G"), ("flat", "1G"), ("flat", "1T"), ("all", "1G")):
        out = subprocess.run([sys.executable, __file__, "--child", mode, mem, trace],
                             check=True, capture_output=True, text=True).stdout.split()
        events, dt, rss = int(out[0]), float(out[1]), float(out[2])
        results[(mode, mem)] = (events, dt, rss)
        print(f"{mode:5} --mem {mem}: {events} events in {dt:.2f} s = {events / dt:,.0f} "
              f"events/s, peak RSS {rss:.0f} MiB")
    parse = results[("parse", "1G")][1]
    flat = results[("flat", "1G")][1]
    print(f"flat replay / parse only: {flat / parse:.2f}x")
    r1g, r1t = results[("flat", "1G")][2], results[("flat", "1T")][2]
    print(f"peak RSS 1T vs 1G (flat): {100 * (r1t - r1g) / r1g:+.1f} %")


if __name__ == "__main__":
    main()
