"""``kinspect run``, ``kinspect compare`` and ``kinspect profiles``: a workload or a kmem trace
through the simulated machine, its reports and summary printed (``compare``: under several
shadow schemes at once, and what each costs)."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from collections import Counter
from typing import cast

from kinspect.commands.common import STDIN, machine_options, mem_option
from kinspect.engine import native
from kinspect.engine.compare import format_compare, resolve_schemes, run_compare
from kinspect.engine.errors import KinspectError
from kinspect.engine.machine import Machine
from kinspect.engine.profile import (
    find_profile_path,
    format_profiles_table,
    format_size,
    list_profiles,
    load_profile,
)
from kinspect.engine.replay import looks_like_trace, replay_trace, trace_summary
from kinspect.engine.report import format_report
from kinspect.engine.shadow import SCHEMES
from kinspect.engine.tables import count
from kinspect.engine.workload import WorkloadRunner, iter_workload

COMMANDS = ("run", "compare", "profiles")


def add_commands(sub) -> None:
    """Add ``run``, ``compare`` and ``profiles`` to the ``kinspect`` subcommands."""
    run = sub.add_parser("run", help="run a workload and print its KASAN reports")
    run.add_argument("workload", help="a .kw workload file or a kmem trace ('-': standard input)")
    machine_options(run)
    run.add_argument(
        "--scheme",
        default="flat",
        choices=sorted(SCHEMES),
        help="the shadow scheme (default: flat, mainline KASAN)",
    )
    run.add_argument("--format", choices=("text", "json"), default="text")
    cmp = sub.add_parser(
        "compare",
        help="run a workload under several shadow schemes at once and compare what each costs",
    )
    cmp.add_argument("workload", help="a .kw workload file or a kmem trace ('-': standard input)")
    machine_options(cmp)
    cmp.add_argument(
        "--schemes", default="all", help=f"'all' or a comma list of: {', '.join(SCHEMES)}"
    )
    cmp.add_argument("--format", choices=("table", "csv", "json"), default="table")
    cmp.add_argument(
        "--timeline", metavar="FILE.csv", help="also write every scheme's figures after every event"
    )
    sub.add_parser("profiles", help="list the built-in architecture profiles")


def run_command(args) -> int:
    """Run ``run``, ``compare`` or ``profiles`` (the workload's path already resolved)."""
    if args.command == "profiles":
        engine = native.engine()
        print(format_profiles_table(list_profiles()))
        print(f"\nengine: {engine} ({native.ENGINE_NOTES[engine]})")
        return 0
    if args.command == "compare":
        return _compare(args)
    return _run(
        args.workload, args.profile, args.mem, args.format, args.scheme, args.attach, args.strict
    )


class _Input:
    """The input of ``run`` and ``compare``: a file, or ``-`` (standard input). A regular file
    is read by its path (a trace in a child process, with progress); anything else (a pipe,
    a FIFO, ``<(...)``, /dev/stdin) is opened once and read as a stream, never seeked, its
    kind told from its first bytes, peeked, not consumed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = "<stdin>" if path == STDIN else path
        self.stream = None
        if path == STDIN:
            if sys.stdin is None:
                raise KinspectError("no standard input to read", self.name)
            self.stream = sys.stdin.buffer
        else:
            try:
                regular = stat.S_ISREG(os.stat(path).st_mode)
            except OSError:
                regular = True  # the reader says what is wrong with it
            if not regular:
                try:
                    self.stream = open(path, "rb")  # noqa: SIM115 (read by events())
                except OSError as e:
                    raise KinspectError(f"cannot read: {e.strerror}", path) from None
        if self.stream is None:
            self.trace = looks_like_trace(path)
        else:
            if not hasattr(self.stream, "peek"):
                self.stream = io.BufferedReader(self.stream)
            try:
                head = cast(io.BufferedReader, self.stream).peek(4096)[:4096]
            except OSError as e:
                raise KinspectError(f"cannot read: {e.strerror}", self.name) from None
            self.trace = looks_like_trace("" if path == STDIN else path, head)

    def workload(self):
        """The workload, streamed (parsed as it runs)."""
        if self.stream is None:
            return iter_workload(self.path)
        return iter_workload(self.name, io.TextIOWrapper(self.stream, encoding="utf-8"))


def _refuse_to_overwrite(output: str, option: str, inputs: list[str]) -> None:
    """Never write over an input (``--timeline w.kw`` would truncate the workload unread)."""
    for path in inputs:
        try:
            same = os.path.samefile(output, path)
        except OSError:
            continue  # one of them does not exist (yet)
        if same:
            raise KinspectError(
                f"{output} is an input of this run: refusing to write over it", option
            )


def _compare(args) -> int:
    profile = load_profile(args.profile, mem_option(args.mem))
    schemes = resolve_schemes(args.schemes)
    source = _Input(args.workload)
    trace = source.trace
    if args.timeline:
        _refuse_to_overwrite(
            args.timeline,
            "--timeline",
            [args.workload, args.profile, find_profile_path(args.profile)],
        )
    workload = source.name if trace else source.workload()
    options = {"attach": args.attach}
    progress = Progress(args.workload) if trace else None
    if args.timeline:
        try:
            with open(args.timeline, "w", newline="") as timeline:
                result = run_compare(
                    profile,
                    workload,
                    schemes,
                    options,
                    timeline,
                    args.strict,
                    progress,
                    source.stream,
                )
        except OSError as e:
            raise KinspectError(f"cannot write the timeline: {e.strerror}", args.timeline) from None
    else:
        result = run_compare(
            profile, workload, schemes, options, None, args.strict, progress, source.stream
        )
    if progress is not None:
        progress.done()
    print(format_compare(result, args.format))
    return 130 if result.notes and result.notes[0].startswith("interrupted") else 0


def _run(
    workload_path: str,
    profile_name: str,
    mem: str | None,
    fmt: str,
    scheme: str = "flat",
    attach: str = "byte-granular",
    strict: bool = False,
) -> int:
    profile = load_profile(profile_name, mem_option(mem))
    source = _Input(workload_path)
    machine = Machine(profile, schemes=(scheme,), scheme_options={"attach": attach})
    if source.trace:
        return _run_trace(machine, source.name, fmt, strict, source.stream)
    runner = WorkloadRunner(machine, source.workload())

    def print_reports(reports):
        for r in reports:
            print(format_report(r), flush=False)

    try:
        failures = runner.run(print_reports if fmt == "text" else None)
    finally:
        sys.stdout.flush()
    summary = machine.summary()
    summary["events"] = runner.position
    summary["profile"] = profile.name
    summary["mem_total"] = profile.mem_total
    if fmt == "json":
        json.dump(
            {
                "reports": [r.to_json() for r in machine.reports],
                "summary": summary,
                "expect_failures": failures,
            },
            sys.stdout,
            indent=1,
        )
        print()
    else:
        print(_format_summary(summary, machine))
    for failure in failures:
        print(f"kinspect: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _run_trace(machine: Machine, path: str, fmt: str, strict: bool, stream=None) -> int:
    """Replay a kmem trace: reports as they come (there should be none), then the summary."""
    progress = Progress(path)
    reader, replayer = replay_trace(machine, path, strict, progress, stream=stream)
    progress.done()
    summary = machine.summary()
    summary["events"] = replayer.events
    summary["profile"] = machine.profile.name
    summary["mem_total"] = machine.profile.mem_total
    notes = trace_summary(reader.stats, replayer.stats)
    if replayer.interrupted:
        notes.insert(0, f"interrupted after {replayer.events} events: partial summary")
    if fmt == "json":
        json.dump(
            {"reports": [r.to_json() for r in machine.reports], "summary": summary, "trace": notes},
            sys.stdout,
            indent=1,
        )
        print()
    else:
        for r in machine.reports:
            print(format_report(r))
        print(_format_summary(summary, machine))
        print("\n".join(notes))
    return 130 if replayer.interrupted else 0


class Progress:
    """A progress line on stderr for long replays (events/s, how far into the file, ETA);
    silent when stderr is not a terminal."""

    def __init__(self, path: str) -> None:
        import time

        self._time = time.monotonic
        self._start = self._time()
        self.enabled = sys.stderr.isatty()

    def __call__(self, events: int, line: int, fraction: float) -> None:
        if not self.enabled:
            return
        elapsed = max(self._time() - self._start, 1e-6)
        width = 24
        bar = "#" * int(width * fraction) + "-" * (width - int(width * fraction))
        eta = f", ETA {elapsed * (1 - fraction) / fraction:.0f} s" if fraction > 0.01 else ""
        sys.stderr.write(
            f"\rkinspect: [{bar}] {fraction:4.0%} line {line:,}, {events:,} "
            f"events, {events / elapsed:,.0f} events/s{eta}  "
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _format_summary(s: dict, machine: Machine) -> str:
    types = Counter(r.bug_type for r in machine.reports)
    kinds = ", ".join(f"{t} x{n}" for t, n in types.items())
    page = machine.page_size
    failed = s.get("failed_allocations")
    return "\n".join(
        [
            f"kinspect: {count(s['events'], 'event')}, {count(s['reports'], 'report')}"
            + (f" ({kinds})" if kinds else "")
            + f"; profile {s['profile']}, {format_size(s['mem_total'])} of memory",
            f"pages in use: {s['pages_in_use']} ({format_size(s['pages_in_use'] * page)}), "
            f"slabs: {s['slabs']}, objects in use: {s['objects_in_use']}, "
            f"quarantine: {format_size(s['quarantine_bytes'])}",
            f"shadow ({machine.shadow.name}): {format_size(s['shadow_static_bytes'])} reserved at "
            f"boot, {format_size(s['shadow_dynamic_bytes'])} allocated on demand",
        ]
        + (
            [
                "failed allocations (NULL, -ENOMEM): "
                + ", ".join(f"{call} {n}" for call, n in failed.items())
            ]
            if failed
            else []
        )
    )
