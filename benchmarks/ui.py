"""UI speed: one step and one step back with every visible view redrawn, and cold start.

The app runs headless (``App.run_test``) at 160x48. A step is timed from the key's action to
the end of the screen update that redraws every view it changed (the compositor's partial
render), without Pilot's idle waits:

    action_step() -> StepApplied handled -> views refreshed -> screen._on_timer_update()

Workloads:
- ``demo``: samples/workloads/demo.kw on x86_64 (1 GiB), as ``kinspect`` opens it;
- ``trace``: the real x86_64 kmem capture (samples/traces/kmem-trace-x86_64.txt.xz, 573 377
  events) on x86_64 with ``--mem 1T``, streamed as ``kinspect tui`` does: the cold start is
  the first frame, on the trace's first events; the time until it is read whole is printed
  too (the steps are measured after that);
- ``generated`` (``--events N``): a kmalloc/kfree/alloc_pages/access mix with some bad
  accesses, on x86_64 with ``--mem 1T``;
- ``jump``: the real trace at ``--mem 1T`` as above, ``j`` to event ``--to`` (500 000) from the
  start (the session's jump, as the app's worker runs it), then steps back there as for the
  others; printed: the jump's wall and CPU time split into the replay, the checkpoints taken
  and the restores, every piece of idle work (and their wall and CPU time in all), the
  checkpoints held, and the process's peak RSS (``ru_maxrss``). The load average is printed
  with it: two cores are shared.

Step back is measured three ways: as a person presses it (a pause between presses lets the
session prepare the previous states in the background: ``idle_work``), with the key held down
(the press right after a paused one: no pause in between), and held for ``HOLD`` presses in a
row after a pause (12, or as many as the workload allows: the first ones are swaps with the
spares made in the pause, the later ones restores of the ladder's checkpoints; each timed
alone, none merged with the next as queued presses are in the app). The pieces of idle work
done in the pauses are timed too: a key pressed during one waits for it to end.

    python benchmarks/ui.py [--events N] [--steps N] [--backs N] [--to N]
                            [--only demo|trace|generated|jump] [--spare-budget MiB]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kinspect.app import KinspectApp  # noqa: E402
from kinspect.engine.profile import format_size, load_profile  # noqa: E402
from kinspect.engine.workload import parse_workload  # noqa: E402
from kinspect.session import Session, load_trace  # noqa: E402

SIZE = (160, 48)
HOLD = 12  # presses of a long hold


def generate(n_events: int, seed: int = 7) -> list[str]:
    """A deterministic mix: kmalloc/kfree of many sizes, some page allocations, accesses
    (a few of them bad), at most 4096 live objects."""
    rng = random.Random(seed)
    sizes = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 9000]
    lines = ["task bench 1", "func bench_work 0x2000"]
    live: list[int] = []
    pages: list[int] = []
    free_slots = list(range(4096))
    for i in range(n_events):
        r = rng.random()
        if r < 0.02 and len(pages) < 64:
            lines.append(f"pg{i} = alloc_pages {rng.randrange(3)}")
            pages.append(i)
        elif r < 0.04 and pages:
            j = pages.pop(rng.randrange(len(pages)))
            lines.append(f"__free_pages pg{j} {lines_order(lines, j)}")
        elif r < 0.10 and live:
            j = rng.choice(live)
            bad = rng.random() < 0.02
            lines.append(
                f"read p{j}+{rng.randrange(1, 64) + (4096 if bad else 0)} 1"
                if bad
                else f"read p{j} 1"
            )
        elif live and (not free_slots or r < 0.55):
            j = live.pop(rng.randrange(len(live)))
            lines.append(f"kfree p{j}")
            free_slots.append(j)
        else:
            j = free_slots.pop()
            live.append(j)
            lines.append(f"p{j} = kmalloc {rng.choice(sizes)}")
    return lines


def lines_order(lines: list[str], j: int) -> int:
    prefix = f"pg{j} = alloc_pages "
    for line in reversed(lines):
        if line.startswith(prefix):
            return int(line[len(prefix) :])
    return 0


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3


async def settle(pilot) -> None:
    """Process the queued messages and render the screen update, without idle waits."""
    app = pilot.app
    for _ in range(3):
        await pilot._wait_for_screen()
        app.screen._on_timer_update()


class Work:
    """Time spent doing the work of an action: the session command, the views' refresh and
    the screen's render (Screen._on_timer_update), not the test harness's waiting."""

    def __init__(self, session, screen) -> None:
        self.total = 0.0
        for obj, name in (
            (session, "step"),
            (session, "back"),
            (session, "run"),
            (screen, "_refresh_all"),
            (screen, "_on_timer_update"),
        ):
            setattr(obj, name, self._wrap(getattr(obj, name)))

    def _wrap(self, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - t

        return timed


def idle(screen, pieces: list[float]) -> None:
    """The app's idle work, piece by piece, until there is none (a pause between keys); each
    piece's time is kept: a key pressed meanwhile waits for the piece under way."""
    while True:
        t = time.perf_counter()
        more = screen.idle_step()
        pieces.append(time.perf_counter() - t)
        if not more:
            return


async def timed(pilot, work: Work, action) -> tuple[float, float]:
    """(work, wall) of one action, up to the end of its screen update."""
    work.total = 0.0
    t = time.perf_counter()
    action()
    await settle(pilot)
    return work.total, time.perf_counter() - t


async def measure(
    path: str,
    profile,
    steps: int,
    backs: int,
    label: str,
    jumps: int = 4,
    trace: bool = False,
    spread: float = 1.0,
) -> dict:
    out: dict = {}
    t0 = time.perf_counter()
    workload = load_trace(path, stream=True) if trace else parse_workload(path)
    session = Session(profile, workload)
    t1 = time.perf_counter()
    app = KinspectApp(session)

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        out["cold start"] = time.perf_counter() - t0
        out["first events"] = session.total
        while session.loading:  # the app reads the rest in a worker
            await pilot.pause(0.02)
        out["read whole"] = time.perf_counter() - t0
        screen = app.main
        screen.idle_work_enabled = False
        work = Work(session, screen)
        out["parse+boot"] = t1 - t0
        pieces: list[float] = []
        rng = random.Random(1)
        span = int(session.total * spread)
        starts = (
            [0] + sorted(rng.randrange(span // 4, span - steps - 10) for _ in range(jumps - 1))
            if session.total > 4 * steps
            else [0]
        )
        per = max(1, steps // len(starts))
        for follow in (True, False):
            step_times: list[float] = []
            screen.follow = follow
            for start in starts:
                session.jump(start + (0 if follow else per // 2))
                screen._refresh_all(None)
                await settle(pilot)
                idle(screen, pieces)
                for _ in range(per):
                    if session.at_end:
                        break
                    step_times.append(await timed(pilot, work, screen.action_step))
            out["step (cursor follows)" if follow else "step (cursor stays)"] = step_times
        screen.follow = True
        back_idle: list[float] = []
        back_held: list[float] = []
        back_long: list[float] = []
        hold = min(HOLD, session.total - backs)
        for start in starts:
            session.jump(max(start + per, backs + hold))
            screen._refresh_all(None)
            await settle(pilot)
            for i in range(backs):
                if i % 2 == 0:
                    idle(screen, pieces)  # the pause between two key presses
                (back_idle if i % 2 == 0 else back_held).append(
                    await timed(pilot, work, screen.action_back)
                )
            idle(screen, pieces)
            for _ in range(hold):
                back_long.append(await timed(pilot, work, screen.action_back))
        out["back (paused before)"] = back_idle
        out["back (key held)"] = back_held
        out["back (long hold)"] = back_long
        out["checkpoints"] = session.checkpoint_stats()
        out["idle pieces"] = pieces
    print(
        f"\n{label}: {session.total} events, profile {profile.name} "
        f"{format_size(profile.mem_total)}, schemes {', '.join(session.scheme_names)}, "
        f"terminal {SIZE[0]}x{SIZE[1]}"
    )
    print(f"  parse + boot            {out['parse+boot'] * 1e3:8.1f} ms")
    print(
        f"  cold start, first frame {out['cold start'] * 1e3:8.1f} ms"
        + (
            f" ({out['first events']} events read; all read at {out['read whole'] * 1e3:.0f} ms)"
            if trace
            else ""
        )
    )
    print(f"  {'':<23} {'work: step + views + render':>30}   {'wall (with test harness)':>28}")
    for key in (
        "step (cursor follows)",
        "step (cursor stays)",
        "back (paused before)",
        "back (key held)",
        "back (long hold)",
    ):
        v = out[key]
        if v:
            w = [a for a, _ in v]
            wall = [b for _, b in v]
            print(
                f"  {key:<23} p50 {pct(w, 0.5):6.2f} p99 {pct(w, 0.99):6.2f} ms"
                f"      p50 {pct(wall, 0.5):6.2f} p99 {pct(wall, 0.99):6.2f} ms"
                f"   (n={len(v)})"
            )
    v = out["idle pieces"]
    print(
        f"  idle work, one piece    p50 {pct(v, 0.5):6.2f} p99 {pct(v, 0.99):6.2f} ms"
        f" max {max(v) * 1e3:.0f} ms (n={len(v)}; a key pressed meanwhile waits for it)"
    )
    c = out["checkpoints"]
    print(
        f"  checkpoints: {c['checkpoints']} + {c['dense']} dense, "
        f"{c['bytes'] / 2**20:.0f} MiB, every {c['every']} events; {c['spares']} spares"
    )
    return out


class Costs:
    """Wall and CPU time spent in a few of the session's methods (wrapped in place)."""

    def __init__(self, targets: dict[str, tuple[object, str]]) -> None:
        self.wall = dict.fromkeys(targets, 0.0)
        self.cpu = dict.fromkeys(targets, 0.0)
        self.calls = dict.fromkeys(targets, 0)
        for label, (obj, name) in targets.items():
            setattr(obj, name, self._wrap(label, getattr(obj, name)))

    def _wrap(self, label: str, fn):
        def timed(*args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[label] += time.perf_counter() - w
                self.cpu[label] += time.process_time() - c
                self.calls[label] += 1

        return timed

    def reset(self) -> None:
        for d in (self.wall, self.cpu, self.calls):
            for k in d:
                d[k] = 0


def checkpoint_costs(session) -> Costs:
    """The checkpoint store's take and restore (or, before kinspect/session/checkpoints.py, the
    session's pickling and unpickling of its state)."""
    store = getattr(session, "checkpoints", None)
    if store is not None:
        return Costs({"checkpoint take": (store, "take"), "checkpoint restore": (store, "restore")})
    return Costs({"checkpoint take": (session, "_state"), "checkpoint restore": (session, "_load")})


async def measure_jump(
    path: str, profile, to: int, backs: int, spare_budget: int | None = None
) -> dict:
    """``j`` to event ``to`` from the start of the trace, then steps back there (the session's
    spare budget ``spare_budget`` bytes, else its default)."""
    out: dict = {}
    options = {} if spare_budget is None else {"spare_budget": spare_budget}
    session = Session(profile, load_trace(path, stream=True), **options)
    app = KinspectApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        while session.loading:
            await pilot.pause(0.02)
        screen = app.main
        screen.idle_work_enabled = False
        work = Work(session, screen)
        costs = checkpoint_costs(session)
        to = min(to, session.total)
        w, c = time.perf_counter(), time.process_time()
        session.jump(to)
        screen._refresh_all(None)
        await settle(pilot)
        out["jump wall"], out["jump cpu"] = time.perf_counter() - w, time.process_time() - c
        out["jump parts"] = {k: (costs.wall[k], costs.cpu[k], costs.calls[k]) for k in costs.wall}
        pieces: list[float] = []
        back_idle: list[float] = []
        back_held: list[float] = []
        back_long: list[float] = []
        costs.reset()
        idle_cpu = 0.0
        for i in range(backs):
            if i % 2 == 0:
                c = time.process_time()
                idle(screen, pieces)
                idle_cpu += time.process_time() - c
            (back_idle if i % 2 == 0 else back_held).append(
                await timed(pilot, work, screen.action_back)
            )
        c = time.process_time()
        idle(screen, pieces)
        idle_cpu += time.process_time() - c
        for _ in range(HOLD):
            back_long.append(await timed(pilot, work, screen.action_back))
        out["back parts"] = {k: (costs.wall[k], costs.cpu[k], costs.calls[k]) for k in costs.wall}
        out["checkpoints"] = session.checkpoint_stats()
    out["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
    print(
        f"\njump: real trace, {session.total} events, profile {profile.name} "
        f"{format_size(profile.mem_total)}, schemes {', '.join(session.scheme_names)}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
        f"{session.spares_wanted} spares wanted, spare budget {format_size(session.standby.budget)}"
    )
    print(f"  j {to:<21} wall {out['jump wall']:7.2f} s   cpu {out['jump cpu']:7.2f} s")
    replay_w, replay_c = out["jump wall"], out["jump cpu"]
    for k, (wall, cpu, n) in out["jump parts"].items():
        print(f"    {k:<21} wall {wall:7.2f} s   cpu {cpu:7.2f} s   (n={n})")
        replay_w, replay_c = replay_w - wall, replay_c - cpu
    print(f"    {'replay and the rest':<21} wall {replay_w:7.2f} s   cpu {replay_c:7.2f} s")
    for key, v in (
        ("back (paused before)", back_idle),
        ("back (key held)", back_held),
        ("back (long hold)", back_long),
    ):
        w = [a for a, _ in v]
        print(f"  {key:<23} p50 {pct(w, 0.5):7.2f} p99 {pct(w, 0.99):7.2f} ms (n={len(v)})")
    for k, (wall, cpu, n) in out["back parts"].items():
        print(f"    {k:<21} wall {wall:7.2f} s   cpu {cpu:7.2f} s   (n={n}, with idle work)")
    print(
        f"  idle work, one piece    p50 {pct(pieces, 0.5):7.2f} p99 {pct(pieces, 0.99):7.2f} ms"
        f" max {max(pieces) * 1e3:.0f} ms (n={len(pieces)}; in all wall {sum(pieces):.2f} s,"
        f" cpu {idle_cpu:.2f} s)"
    )
    c = out["checkpoints"]
    print(
        f"  checkpoints: {c['checkpoints']} + {c['dense']} dense, "
        f"{c['bytes'] / 2**20:.0f} MiB held, every {c['every']} events; {c['spares']} spares"
    )
    if "stored_bytes" in c:
        print(
            f"    {c['takes']} taken: {c['stored_bytes'] / 2**20:.0f} MiB stored, "
            f"{c['full_bytes'] / 2**20:.0f} MiB whole; {c['chunks']} chunks "
            f"({c['chunk_bytes'] / 2**20:.0f} MiB) and pickles "
            f"({c['pickle_bytes'] / 2**20:.0f} MiB) held"
        )
    print(f"  peak RSS                {out['rss'] / 2**20:7.0f} MiB")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--events", type=int, default=0, help="also a generated workload of this many events"
    )
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--backs", type=int, default=200)
    ap.add_argument("--to", type=int, default=500_000, help="the jump's event (jump)")
    ap.add_argument(
        "--only", choices=("demo", "trace", "generated", "jump"), help="measure only this workload"
    )
    ap.add_argument(
        "--spare-budget",
        type=int,
        default=None,
        metavar="MiB",
        help="the session's spare budget (jump; default: the session's)",
    )
    args = ap.parse_args()
    if args.only in (None, "demo"):
        asyncio.run(
            measure(
                str(ROOT / "samples/workloads/demo.kw"),
                load_profile("x86_64"),
                steps=17,
                backs=8,
                label="demo",
                jumps=1,
            )
        )
    trace = ROOT / "samples/traces/kmem-trace-x86_64.txt.xz"
    if trace.exists() and args.only == "jump":
        asyncio.run(
            measure_jump(
                str(trace),
                load_profile("x86_64", 1 << 40),
                args.to,
                args.backs,
                None if args.spare_budget is None else args.spare_budget << 20,
            )
        )
    if trace.exists() and args.only in (None, "trace"):
        # positions anywhere in the trace (reaching them is a run of the engine: seconds)
        asyncio.run(
            measure(
                str(trace),
                load_profile("x86_64", 1 << 40),
                steps=args.steps,
                backs=args.backs,
                label="trace (real, x86_64)",
                trace=True,
            )
        )
    if args.events and args.only in (None, "generated"):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "big.kw")
            Path(path).write_text("\n".join(generate(args.events)) + "\n")
            asyncio.run(
                measure(
                    path,
                    load_profile("x86_64", 1 << 40),
                    steps=args.steps,
                    backs=args.backs,
                    label="generated",
                )
            )


if __name__ == "__main__":
    main()
