"""The command line: ``kinspect`` (the UI on the built-in demo), ``kinspect tui`` (a workload,
or ``--report FILE``: the report screen), ``kinspect serve``, ``kinspect run``,
``kinspect compare``, ``kinspect profiles`` (which, like ``kinspect --version``, names the
engine in use: native.py).

Bad input (a malformed profile or workload) is one line on stderr,
``kinspect: FILE:LINE:COL: what is wrong``, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

from . import report_command
from .engine import native
from .engine.compare import format_compare, resolve_schemes, run_compare
from .engine.replay import looks_like_trace, replay_trace, trace_summary
from .engine.errors import KinspectError
from .engine.machine import Machine
from .engine.profile import format_profiles_table, format_size, list_profiles, load_profile, \
    parse_size
from .engine.report import format_report
from .engine.shadow import SCHEMES
from .engine.workload import WorkloadRunner, iter_workload

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
DEMO_WORKLOAD = SAMPLES / "workloads" / "demo.kw"
TUI_DEMO_WORKLOAD = SAMPLES / "workloads" / "tui-demo.kw"
DEFAULT_PROFILE = "x86_64"


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"kinspect: {message}\n")


def _parser() -> argparse.ArgumentParser:
    ap = _ArgumentParser(prog="kinspect",
                         description="Watch generic KASAN shadow memory at work.")
    ap.add_argument("--version", action="store_true",
                    help="print kinspect's version and the engine in use")
    sub = ap.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run a workload and print its KASAN reports")
    run.add_argument("workload", help="a .kw workload file")
    _machine_options(run)
    run.add_argument("--scheme", default="flat", choices=sorted(SCHEMES),
                     help="the shadow scheme (default: flat, mainline KASAN)")
    run.add_argument("--format", choices=("text", "json"), default="text")
    cmp = sub.add_parser("compare", help="run a workload under several shadow schemes at once "
                                         "and compare what each costs")
    cmp.add_argument("workload", help="a .kw workload file")
    _machine_options(cmp)
    cmp.add_argument("--schemes", default="all",
                     help=f"'all' or a comma list of: {', '.join(SCHEMES)}")
    cmp.add_argument("--format", choices=("table", "csv", "json"), default="table")
    cmp.add_argument("--timeline", metavar="FILE.csv",
                     help="also write every scheme's figures after every event")
    sub.add_parser("profiles", help="list the built-in architecture profiles")
    for name, text in (("tui", "step through a workload in the inspector (the default, on "
                               "the built-in demo)"),
                       ("serve", "serve the inspector to a web browser (textual-serve)")):
        ui = sub.add_parser(name, help=text)
        ui.add_argument("workload", nargs="?", help="a .kw workload file or an ftrace kmem "
                                                    "capture (default: the built-in UI demo)")
        _machine_options(ui)
        ui.add_argument("--scheme", help="the scheme shown first (all registered schemes run "
                                         "in lockstep; s switches)")
        if name == "tui":
            ui.add_argument("--report", metavar="FILE",
                            help="open the report screen on the KASAN reports of a console log")
            ui.add_argument("--vmlinux", metavar="PATH",
                            help="with --report: symbolize the stacks with this vmlinux")
            ui.add_argument("--modules", metavar="DIR",
                            help="with --report: where the .ko files of '[module]' frames are")
            ui.add_argument("--strip", metavar="PREFIX",
                            help="with --report: source path prefix to drop (default: the "
                                 "vmlinux's directory)")
        if name == "serve":
            ui.add_argument("--host", default="localhost")
            ui.add_argument("--port", type=int, default=8000)
    report_command.add_commands(sub)
    return ap


def _machine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=DEFAULT_PROFILE,
                   help="a profile name (see `kinspect profiles`) or a .toml file")
    p.add_argument("--mem", help="memory size of the machine, e.g. 1G or 1T")
    p.add_argument("--strict", action="store_true",
                   help="traces: stop at the first unreadable line (exit 2) instead of "
                        "counting it")
    p.add_argument("--attach", choices=("byte-granular", "always"), default="byte-granular",
                   help="pageptr/pageext: which pages get a shadow block (default: only "
                        "pages that need byte-granular shadow)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        engine = native.engine()
        if args.version:
            print(f"kinspect {_version()} ({engine} engine)")
            return 0
        rc = report_command.run_command(args)
        if rc is not None:
            return rc
        if args.command is None:
            return _tui(None, DEFAULT_PROFILE, None, "byte-granular", None)
        if args.command == "tui" and (args.report or args.vmlinux or args.modules):
            return report_command.run_report_ui(args)
        if args.command == "tui":
            return _tui(args.workload, args.profile, args.mem, args.attach, args.scheme)
        if args.command == "serve":
            return _serve(args)
        if args.command == "profiles":
            print(format_profiles_table(list_profiles()))
            print(f"\nengine: {engine} ({native.ENGINE_NOTES[engine]})")
            return 0
        if args.command == "compare":
            return _compare(args)
        return _run(args.workload, args.profile, args.mem, args.format, args.scheme,
                    args.attach, args.strict)
    except KinspectError as e:
        print(f"kinspect: {e}", file=sys.stderr)
        return 2


def _version() -> str:
    try:
        return metadata.version("kinspect")
    except metadata.PackageNotFoundError:           # run from a source tree, not installed
        return "unknown"


def _shown_path(path: Path) -> str:
    """A built-in file's path as a user would type it: relative when under the current directory."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _mem_option(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as e:
        raise KinspectError(str(e), "--mem") from None


def _compare(args) -> int:
    profile = load_profile(args.profile, _mem_option(args.mem))
    schemes = resolve_schemes(args.schemes)
    trace = looks_like_trace(args.workload)
    workload = args.workload if trace else iter_workload(args.workload)
    options = {"attach": args.attach}
    progress = Progress(args.workload) if trace else None
    if args.timeline:
        try:
            with open(args.timeline, "w", newline="") as timeline:
                result = run_compare(profile, workload, schemes, options, timeline,
                                     args.strict, progress)
        except OSError as e:
            raise KinspectError(f"cannot write the timeline: {e.strerror}", args.timeline) \
                from None
    else:
        result = run_compare(profile, workload, schemes, options, None, args.strict, progress)
    if progress is not None:
        progress.done()
    print(format_compare(result, args.format))
    return 130 if result.notes and result.notes[0].startswith("interrupted") else 0


def _run(workload_path: str, profile_name: str, mem: str | None, fmt: str,
         scheme: str = "flat", attach: str = "byte-granular", strict: bool = False) -> int:
    profile = load_profile(profile_name, _mem_option(mem))
    machine = Machine(profile, schemes=(scheme,), scheme_options={"attach": attach})
    if looks_like_trace(workload_path):
        return _run_trace(machine, workload_path, fmt, strict)
    runner = WorkloadRunner(machine, iter_workload(workload_path))

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
        json.dump({"reports": [r.to_json() for r in machine.reports],
                   "summary": summary, "expect_failures": failures}, sys.stdout, indent=1)
        print()
    else:
        print(_format_summary(summary, machine))
    for failure in failures:
        print(f"kinspect: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _run_trace(machine: Machine, path: str, fmt: str, strict: bool) -> int:
    """Replay a kmem trace: reports as they come (there should be none), then the summary."""
    progress = Progress(path)
    reader, replayer = replay_trace(machine, path, strict, progress)
    progress.done()
    summary = machine.summary()
    summary["events"] = replayer.events
    summary["profile"] = machine.profile.name
    summary["mem_total"] = machine.profile.mem_total
    notes = trace_summary(reader.stats, replayer.stats)
    if replayer.interrupted:
        notes.insert(0, f"interrupted after {replayer.events} events: partial summary")
    if fmt == "json":
        json.dump({"reports": [r.to_json() for r in machine.reports], "summary": summary,
                   "trace": notes}, sys.stdout, indent=1)
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
        sys.stderr.write(f"\rkinspect: [{bar}] {fraction:4.0%} line {line:,}, {events:,} "
                         f"events, {events / elapsed:,.0f} events/s{eta}  ")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _format_summary(s: dict, machine: Machine) -> str:
    types = Counter(r.bug_type for r in machine.reports)
    kinds = ", ".join(f"{t} x{n}" for t, n in types.items())
    page = machine.page_size
    return "\n".join([
        f"kinspect: {s['events']} events, {s['reports']} reports"
        + (f" ({kinds})" if kinds else "")
        + f"; profile {s['profile']}, {format_size(s['mem_total'])} of memory",
        f"pages in use: {s['pages_in_use']} ({format_size(s['pages_in_use'] * page)}), "
        f"slabs: {s['slabs']}, objects in use: {s['objects_in_use']}, "
        f"quarantine: {format_size(s['quarantine_bytes'])}",
        f"shadow ({machine.shadow.name}): {format_size(s['shadow_static_bytes'])} reserved at "
        f"boot, {format_size(s['shadow_dynamic_bytes'])} allocated on demand",
    ])


def _tui_session(workload_path: str | None, profile_name: str, mem: str | None, attach: str,
                 scheme: str | None):
    """Everything the UI needs, built (and checked) before any UI starts. A trace is read
    up to its first events here; the UI reads the rest while it runs."""
    from .engine.session import Session, load_trace
    from .engine.workload import parse_workload
    profile = load_profile(profile_name, _mem_option(mem))
    path = workload_path or _shown_path(TUI_DEMO_WORKLOAD)
    if looks_like_trace(path):
        workload = load_trace(path, stream=True)
    else:
        workload = parse_workload(path)
    return Session(profile, workload, shown=scheme, scheme_options={"attach": attach})


def _tui(workload_path: str | None, profile_name: str, mem: str | None, attach: str,
         scheme: str | None) -> int:
    """``kinspect tui``: bad input is the one-line error and exit 2, before the UI starts."""
    session = _tui_session(workload_path, profile_name, mem, attach, scheme)
    from .app import KinspectApp
    KinspectApp(session).run()
    return 0


def _serve(args) -> int:
    """``kinspect serve``: the same UI, one per browser tab, through textual-serve."""
    import shlex
    # check the input (a trace: its first events), then let the server's process read it
    _tui_session(args.workload, args.profile, args.mem, args.attach, args.scheme).close()
    command = [sys.executable, "-m", "kinspect.cli", "tui"]
    if args.workload:
        command.append(str(Path(args.workload).resolve()))
    command += ["--profile", args.profile, "--attach", args.attach]
    if args.mem:
        command += ["--mem", args.mem]
    if args.scheme:
        command += ["--scheme", args.scheme]
    try:
        from textual_serve.server import Server
    except ImportError:
        raise KinspectError("textual-serve is not installed (pip install textual-serve)",
                            "serve") from None
    print(f"kinspect: serving on http://{args.host}:{args.port} (ctrl+c stops)", flush=True)
    Server(shlex.join(command), host=args.host, port=args.port, title="kinspect").serve()
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
