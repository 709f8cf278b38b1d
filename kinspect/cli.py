"""The command line: ``kinspect`` (the UI on the built-in demo), ``kinspect tui`` (a workload,
or ``--report FILE``: the report screen), ``kinspect serve``, ``kinspect run``,
``kinspect compare``, ``kinspect profiles`` (which, like ``kinspect --version``, names the
engine in use: native.py).

Bad input (a malformed profile or workload) is one line on stderr,
``kinspect: FILE:LINE:COL: what is wrong``, and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
import re
import stat
import sys
import traceback
from collections import Counter
from importlib import metadata
from pathlib import Path

from . import report_command
from .data import WORKLOADS_DIR, find_workload_path, shown_path
from .engine import native
from .engine.compare import format_compare, resolve_schemes, run_compare
from .engine.replay import looks_like_trace, replay_trace, trace_summary
from .engine.errors import KinspectError
from .engine.machine import Machine
from .engine.profile import find_profile_path, format_profiles_table, format_size, \
    list_profiles, load_profile, parse_size
from .engine.report import format_report
from .engine.tables import count
from .engine.shadow import SCHEMES
from .engine.workload import WorkloadRunner, iter_workload
from .vmcore import command as vmcore_command

DEMO_WORKLOAD = WORKLOADS_DIR / "demo.kw"
DEFAULT_PROFILE = "x86_64"
MAX_SESSIONS = 4
"""``kinspect serve``: how many browser tabs get a session at once, unless told."""


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
    run.add_argument("workload", help="a .kw workload file or a kmem trace ('-': standard "
                                      "input)")
    _machine_options(run)
    run.add_argument("--scheme", default="flat", choices=sorted(SCHEMES),
                     help="the shadow scheme (default: flat, mainline KASAN)")
    run.add_argument("--format", choices=("text", "json"), default="text")
    cmp = sub.add_parser("compare", help="run a workload under several shadow schemes at once "
                                         "and compare what each costs")
    cmp.add_argument("workload", help="a .kw workload file or a kmem trace ('-': standard "
                                      "input)")
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
            ui.add_argument("--host", default="localhost",
                            help="the address to listen on (default: %(default)s)")
            ui.add_argument("--port", type=_port, default=8000,
                            help="the TCP port, 1..65535 (default: %(default)s)")
            ui.add_argument("--max-sessions", type=_positive, default=MAX_SESSIONS,
                            help="browser tabs served at once, each its own process "
                                 "(default: %(default)s)")
    report_command.add_commands(sub)
    vmcore_command.add_command(sub)
    return ap


def _port(text: str) -> int:
    """``--port``: a TCP port (asyncio would bind 99999 as 99999 & 0xffff)."""
    port = _number(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1..65535)")
    return port


def _positive(text: str) -> int:
    value = _number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _number(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,20}", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return int(text)


def _machine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=DEFAULT_PROFILE,
                   help="a profile name (see `kinspect profiles`) or a .toml file "
                        "(default: %(default)s)")
    p.add_argument("--mem", help="memory size of the machine, e.g. 1G or 1T")
    p.add_argument("--strict", action="store_true",
                   help="traces: stop at the first unreadable line (exit 2) instead of "
                        "counting it")
    p.add_argument("--attach", choices=("byte-granular", "always"), default="byte-granular",
                   help="pageptr/pageext: which pages get a shadow block (default: only "
                        "pages that need byte-granular shadow)")


EXIT_INTERNAL_ERROR = 3       # a bug in kinspect (with its traceback): never 1, a failed expect
EXIT_BROKEN_PIPE = 128 + 13   # the reader of our output went away (`| head`), as SIGPIPE would


def main(argv: list[str] | None = None) -> int:
    """Exit statuses: 0 fine, 1 an ``expect`` failed, 2 bad input (one line on stderr),
    3 a bug in kinspect (its traceback), 130 interrupted, 141 output pipe closed."""
    try:
        rc = _main(argv)
        sys.stdout.flush()
        return rc
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO):
            return _internal_error()
        _stdout_to_devnull()
        print(f"kinspect: <stdout>: cannot write the output: {e.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kinspect: interrupted", file=sys.stderr)
        return 130
    except Exception:                   # a bug: show it, but never as exit 1 or 2
        return _internal_error()


def _internal_error() -> int:
    traceback.print_exc()
    print("kinspect: internal error (a bug in kinspect: the traceback above says where)",
          file=sys.stderr)
    return EXIT_INTERNAL_ERROR


def _stdout_to_devnull() -> None:
    """After a failed write, what is left in stdout's buffer goes nowhere (else Python's own
    flush at exit fails again, with a second message)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass                            # not a real file (tests capture it)


def _main(argv: list[str] | None) -> int:
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
        if args.command == "vmcore":
            return vmcore_command.run(args)
        if getattr(args, "workload", None) and args.workload != STDIN:
            args.workload = find_workload_path(args.workload)
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


def _mem_option(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as e:
        raise KinspectError(str(e), "--mem") from None


STDIN = "-"


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
                regular = True                  # the reader says what is wrong with it
            if not regular:
                try:
                    self.stream = open(path, "rb")
                except OSError as e:
                    raise KinspectError(f"cannot read: {e.strerror}", path) from None
        if self.stream is None:
            self.trace = looks_like_trace(path)
        else:
            if not hasattr(self.stream, "peek"):
                self.stream = io.BufferedReader(self.stream)
            try:
                head = self.stream.peek(4096)[:4096]
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
            continue                            # one of them does not exist (yet)
        if same:
            raise KinspectError(f"{output} is an input of this run: refusing to write over "
                                "it", option)


def _compare(args) -> int:
    profile = load_profile(args.profile, _mem_option(args.mem))
    schemes = resolve_schemes(args.schemes)
    source = _Input(args.workload)
    trace = source.trace
    if args.timeline:
        _refuse_to_overwrite(args.timeline, "--timeline",
                             [args.workload, args.profile, find_profile_path(args.profile)])
    workload = source.name if trace else source.workload()
    options = {"attach": args.attach}
    progress = Progress(args.workload) if trace else None
    if args.timeline:
        try:
            with open(args.timeline, "w", newline="") as timeline:
                result = run_compare(profile, workload, schemes, options, timeline,
                                     args.strict, progress, source.stream)
        except OSError as e:
            raise KinspectError(f"cannot write the timeline: {e.strerror}", args.timeline) \
                from None
    else:
        result = run_compare(profile, workload, schemes, options, None, args.strict, progress,
                             source.stream)
    if progress is not None:
        progress.done()
    print(format_compare(result, args.format))
    return 130 if result.notes and result.notes[0].startswith("interrupted") else 0


def _run(workload_path: str, profile_name: str, mem: str | None, fmt: str,
         scheme: str = "flat", attach: str = "byte-granular", strict: bool = False) -> int:
    profile = load_profile(profile_name, _mem_option(mem))
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
        json.dump({"reports": [r.to_json() for r in machine.reports],
                   "summary": summary, "expect_failures": failures}, sys.stdout, indent=1)
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
    failed = s.get("failed_allocations")
    return "\n".join([
        f"kinspect: {count(s['events'], 'event')}, {count(s['reports'], 'report')}"
        + (f" ({kinds})" if kinds else "")
        + f"; profile {s['profile']}, {format_size(s['mem_total'])} of memory",
        f"pages in use: {s['pages_in_use']} ({format_size(s['pages_in_use'] * page)}), "
        f"slabs: {s['slabs']}, objects in use: {s['objects_in_use']}, "
        f"quarantine: {format_size(s['quarantine_bytes'])}",
        f"shadow ({machine.shadow.name}): {format_size(s['shadow_static_bytes'])} reserved at "
        f"boot, {format_size(s['shadow_dynamic_bytes'])} allocated on demand",
    ] + ([f"failed allocations (NULL, -ENOMEM): "
          + ", ".join(f"{call} {n}" for call, n in failed.items())] if failed else []))


def _tui_session(workload_path: str | None, profile_name: str, mem: str | None, attach: str,
                 scheme: str | None):
    """Everything the UI needs, built (and checked) before any UI starts. A trace is read
    up to its first events here; the UI reads the rest while it runs."""
    from .session import Session, load_trace
    from .engine.workload import parse_workload
    profile = load_profile(profile_name, _mem_option(mem))
    path = workload_path or shown_path(DEMO_WORKLOAD)
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
        command.append(str(Path(args.workload).absolute()))
    command += ["--profile", args.profile, "--attach", args.attach]
    if args.mem:
        command += ["--mem", args.mem]
    if args.scheme:
        command += ["--scheme", args.scheme]
    from .serve import KinspectServer, check_listen, http_origin
    check_listen(args.host, args.port)
    server = KinspectServer(shlex.join(command), args.host, args.port, args.max_sessions)
    print(f"kinspect: serving on {http_origin(args.host, args.port)}, at most "
          f"{count(args.max_sessions, 'session')} at once (ctrl+c stops)", flush=True)
    try:
        server.serve()
    except OSError as e:        # the port taken between check_listen and the server's bind
        raise KinspectError(f"cannot listen: {e.strerror}", "--port") from None
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
