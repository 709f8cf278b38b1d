"""``kinspect tui`` and ``kinspect serve``: the inspector on a workload or a trace, in the
terminal or in browser tabs; ``kinspect tui --report FILE``: the report screen; ``kinspect tui
--vmcore DUMP --vmlinux V``: a crash dump's memory.  Bad input is
the one-line error and exit 2, before any UI starts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kinspect.commands.common import DEFAULT_PROFILE, machine_options, mem_option, number
from kinspect.commands.reports import print_no_report, symbolize_options
from kinspect.data import WORKLOADS_DIR, shown_path
from kinspect.engine.errors import KinspectError
from kinspect.engine.profile import load_profile
from kinspect.engine.replay import looks_like_trace
from kinspect.engine.tables import count
from kinspect.reports.reading import read_reports

DEMO_WORKLOAD = WORKLOADS_DIR / "demo.kw"
MAX_SESSIONS = 4
COMMANDS = ("tui", "serve")


def add_commands(sub) -> None:
    """Add ``tui`` and ``serve`` to the ``kinspect`` subcommands."""
    for name, text in (
        ("tui", "step through a workload in the inspector (the default, on the built-in demo)"),
        ("serve", "serve the inspector to a web browser (textual-serve)"),
    ):
        ui = sub.add_parser(name, help=text)
        ui.add_argument(
            "workload",
            nargs="?",
            help="a .kw workload file or an ftrace kmem capture (default: the built-in UI demo)",
        )
        machine_options(ui)
        ui.add_argument(
            "--scheme",
            help="the scheme shown first (all registered schemes run in lockstep; s switches)",
        )
        if name == "tui":
            ui.add_argument(
                "--report",
                metavar="FILE",
                help="open the report screen on the KASAN reports of a console log",
            )
            symbolize_options(ui, only_with="--report")
            ui.add_argument(
                "--vmcore",
                metavar="DUMP",
                help="inspect a crash dump's real memory (with --vmlinux, the dump's own)",
            )
        if name == "serve":
            ui.add_argument(
                "--host",
                default="localhost",
                help="the address to listen on (default: %(default)s)",
            )
            ui.add_argument(
                "--port",
                type=_port,
                default=8000,
                help="the TCP port, 1..65535 (default: %(default)s)",
            )
            ui.add_argument(
                "--max-sessions",
                type=_positive,
                default=MAX_SESSIONS,
                help="browser tabs served at once, each its own process (default: %(default)s)",
            )


def run_command(args) -> int:
    """Run ``tui`` (or ``kinspect`` alone: ``args.command`` None) or ``serve``."""
    if args.command is None:
        return _tui(None, DEFAULT_PROFILE, None, "byte-granular", None)
    if args.command == "tui" and args.vmcore:
        if not args.vmlinux:
            raise KinspectError("needs --vmlinux VMLINUX (the dump's)", "--vmcore")
        from kinspect.screens.vmcore import run_vmcore_ui

        return run_vmcore_ui(args.vmcore, args.vmlinux)
    if args.command == "tui" and (args.report or args.vmlinux or args.modules):
        return run_report_ui(args)
    if args.command == "tui":
        return _tui(args.workload, args.profile, args.mem, args.attach, args.scheme)
    return _serve(args)


def _port(text: str) -> int:
    """``--port``: a TCP port (asyncio would bind 99999 as 99999 & 0xffff)."""
    port = number(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1..65535)")
    return port


def _positive(text: str) -> int:
    value = number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _tui_session(
    workload_path: str | None, profile_name: str, mem: str | None, attach: str, scheme: str | None
):
    """Everything the UI needs, built (and checked) before any UI starts. A trace is read
    up to its first events here; the UI reads the rest while it runs."""
    from kinspect.engine.workload import parse_workload
    from kinspect.session import Session, load_trace

    profile = load_profile(profile_name, mem_option(mem))
    path = workload_path or shown_path(DEMO_WORKLOAD)
    workload = load_trace(path, stream=True) if looks_like_trace(path) else parse_workload(path)
    return Session(profile, workload, shown=scheme, scheme_options={"attach": attach})


def _tui(
    workload_path: str | None, profile_name: str, mem: str | None, attach: str, scheme: str | None
) -> int:
    """``kinspect tui``: bad input is the one-line error and exit 2, before the UI starts."""
    session = _tui_session(workload_path, profile_name, mem, attach, scheme)
    from kinspect.app import KinspectApp

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
    from kinspect.serve import KinspectServer, check_listen, http_origin

    check_listen(args.host, args.port)
    server = KinspectServer(shlex.join(command), args.host, args.port, args.max_sessions)
    print(
        f"kinspect: serving on {http_origin(args.host, args.port)}, at most "
        f"{count(args.max_sessions, 'session')} at once (ctrl+c stops)",
        flush=True,
    )
    try:
        server.serve()
    except OSError as e:  # the port taken between check_listen and the server's bind
        raise KinspectError(f"cannot listen: {e.strerror}", "--port") from None
    return 0


def run_report_ui(args) -> int:
    """``kinspect tui --report FILE``: the report screen.  Exit 1 when the log holds no KASAN
    report, 2 (the one-line error) when it or the vmlinux cannot be read; both before the UI
    starts."""
    if not args.report:
        raise KinspectError(
            "--vmlinux and --modules symbolize the stacks of a --report FILE", "tui"
        )
    if args.workload:
        raise KinspectError("give a workload or --report FILE, not both", "tui")
    reports, first = read_reports(args.report, args.vmlinux, args.modules, args.strip)
    if not reports:
        print_no_report(first)
        return 1
    from kinspect.app import ReportApp

    ReportApp(reports, args.report, symbolized=bool(args.vmlinux or args.modules)).run()
    return 0
