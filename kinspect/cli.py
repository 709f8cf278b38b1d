"""The command line, its parser and dispatch: ``kinspect`` (the UI on the built-in demo),
``kinspect tui`` (a workload, or ``--report FILE``: the report screen) and ``kinspect serve``
(kinspect/commands/ui.py); ``kinspect run``, ``kinspect compare``, ``kinspect profiles`` (which,
like ``kinspect --version``, names the engine in use: native.py) (commands/simulate.py);
``kinspect report`` and ``kinspect symbolize`` (commands/reports.py); ``kinspect vmcore``
(kinspect/vmcore/command.py).

Bad input (a malformed profile or workload) is one line on stderr,
``kinspect: FILE:LINE:COL: what is wrong``, and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import sys
import traceback
from importlib import metadata

from kinspect.commands import reports, simulate, ui
from kinspect.commands.common import STDIN, drop_stdout
from kinspect.data import find_workload_path
from kinspect.engine import native
from kinspect.engine.errors import KinspectError
from kinspect.vmcore import command as vmcore_command


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"kinspect: {message}\n")


def _parser() -> argparse.ArgumentParser:
    ap = _ArgumentParser(prog="kinspect", description="Watch generic KASAN shadow memory at work.")
    ap.add_argument(
        "--version", action="store_true", help="print kinspect's version and the engine in use"
    )
    sub = ap.add_subparsers(dest="command")
    simulate.add_commands(sub)
    ui.add_commands(sub)
    reports.add_commands(sub)
    vmcore_command.add_command(sub)
    return ap


EXIT_INTERNAL_ERROR = 3  # a bug in kinspect (with its traceback): never 1, a failed expect
EXIT_BROKEN_PIPE = 128 + 13  # the reader of our output went away (`| head`), as SIGPIPE would


def main(argv: list[str] | None = None) -> int:
    """Exit statuses: 0 fine, 1 an ``expect`` failed, 2 bad input (one line on stderr),
    3 a bug in kinspect (its traceback), 130 interrupted, 141 output pipe closed."""
    try:
        rc = _main(argv)
        sys.stdout.flush()
        return rc
    except BrokenPipeError:
        drop_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO):
            return _internal_error()
        drop_stdout()
        print(f"kinspect: <stdout>: cannot write the output: {e.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kinspect: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: show it, but never as exit 1 or 2
        return _internal_error()


def _internal_error() -> int:
    traceback.print_exc()
    print(
        "kinspect: internal error (a bug in kinspect: the traceback above says where)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL_ERROR


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        engine = native.engine()
        if args.version:
            print(f"kinspect {_version()} ({engine} engine)")
            return 0
        if args.command in reports.COMMANDS:
            return reports.run_command(args)
        if args.command == "vmcore":
            return vmcore_command.run(args)
        if getattr(args, "workload", None) and args.workload != STDIN:
            args.workload = find_workload_path(args.workload)
        if args.command in simulate.COMMANDS:
            return simulate.run_command(args)
        return ui.run_command(args)
    except KinspectError as e:
        print(f"kinspect: {e}", file=sys.stderr)
        return 2


def _version() -> str:
    try:
        return metadata.version("kinspect")
    except metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
