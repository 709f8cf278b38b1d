"""The command line: ``kinspect``, ``kinspect run``, ``kinspect profiles``.

Bad input (a malformed profile or workload) is one line on stderr,
``kinspect: FILE:LINE:COL: what is wrong``, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from .engine.compare import format_compare, resolve_schemes, run_compare
from .engine.errors import KinspectError
from .engine.machine import Machine
from .engine.profile import format_profiles_table, format_size, list_profiles, load_profile, \
    parse_size
from .engine.report import format_report
from .engine.shadow import SCHEMES
from .engine.workload import WorkloadRunner, iter_workload

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
DEMO_WORKLOAD = SAMPLES / "workloads" / "demo.kw"
DEFAULT_PROFILE = "x86_64"


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"kinspect: {message}\n")


def _parser() -> argparse.ArgumentParser:
    ap = _ArgumentParser(prog="kinspect",
                         description="Watch generic KASAN shadow memory at work.")
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
    return ap


def _machine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=DEFAULT_PROFILE,
                   help="a profile name (see `kinspect profiles`) or a .toml file")
    p.add_argument("--mem", help="memory size of the machine, e.g. 1G or 1T")
    p.add_argument("--attach", choices=("byte-granular", "always"), default="byte-granular",
                   help="pageptr/pageext: which pages get a shadow block (default: only "
                        "pages that need byte-granular shadow)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command is None:
            return _run(_shown_path(DEMO_WORKLOAD), DEFAULT_PROFILE, None, "text")
        if args.command == "profiles":
            print(format_profiles_table(list_profiles()))
            return 0
        if args.command == "compare":
            return _compare(args)
        return _run(args.workload, args.profile, args.mem, args.format, args.scheme,
                    args.attach)
    except KinspectError as e:
        print(f"kinspect: {e}", file=sys.stderr)
        return 2


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
    workload = iter_workload(args.workload)
    options = {"attach": args.attach}
    if args.timeline:
        try:
            with open(args.timeline, "w", newline="") as timeline:
                result = run_compare(profile, workload, schemes, options, timeline)
        except OSError as e:
            raise KinspectError(f"cannot write the timeline: {e.strerror}", args.timeline) \
                from None
    else:
        result = run_compare(profile, workload, schemes, options)
    print(format_compare(result, args.format))
    return 0


def _run(workload_path: str, profile_name: str, mem: str | None, fmt: str,
         scheme: str = "flat", attach: str = "byte-granular") -> int:
    profile = load_profile(profile_name, _mem_option(mem))
    machine = Machine(profile, schemes=(scheme,), scheme_options={"attach": attach})
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


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
