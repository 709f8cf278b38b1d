"""``kinspect report`` and ``kinspect symbolize``: real KASAN reports, explained.

``kinspect report FILE|-`` reads a console log, a dmesg or a syzbot email (``-``: standard
input), streaming, and prints each KASAN report: its syzkaller-style title, a summary, what the
shadow bytes around the address mean, where the access fell relative to the object, and its
stacks (symbolized with ``--vmlinux``/``--modules``).  ``--replay`` re-enacts each report in the
engine.  Exit status: 0 when a report was found, 1 when none ("no KASAN report found"), 2 when
the input (or the vmlinux) cannot be read: one line, ``kinspect: FILE[:LINE]: what is wrong``.

``kinspect symbolize --vmlinux PATH ADDR|FUNC+OFF...`` looks frames up one by one.

``kinspect tui --report FILE`` shows the same reports on the UI's report screen
(:func:`kinspect.commands.ui.run_report_ui`; read, explained and symbolized by
:func:`kinspect.reports.reading.read_reports` before the UI starts, with the same exit
statuses).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from kinspect.commands.common import drop_stdout
from kinspect.engine.errors import KinspectError
from kinspect.reports.explain import (
    ReplayUnsupported,
    explain,
    format_explanation,
    headline,
    replay_workload,
    run_replay,
)
from kinspect.reports.kreport import CrashTitle, KasanReport, LogScan, iter_reports
from kinspect.reports.reading import Symbolizers, input_lines, stack_texts
from kinspect.reports.symbols import SourceFrame, parse_frame

COMMANDS = ("report", "symbolize")

NO_REPORT = "no KASAN report found"


def add_commands(subparsers) -> None:
    """Add ``report`` and ``symbolize`` to the ``kinspect`` subcommands."""
    rp = subparsers.add_parser(
        "report",
        help="explain the KASAN reports of a console log (FILE, or - for stdin)",
        description="Find every KASAN report in a console log, dmesg or syzbot text, and "
        "explain it. Exit 0: reports found; 1: none; 2: unreadable input.",
    )
    rp.add_argument("input", metavar="FILE", help="the log to read; - reads standard input")
    rp.add_argument("--format", choices=("text", "json"), default="text")
    symbolize_options(rp)
    rp.add_argument(
        "--replay",
        action="store_true",
        help="re-enact each report in the engine and compare the outcome",
    )
    rp.add_argument(
        "--profile", help="the profile for --replay (default: one that fits the report's addresses)"
    )
    rp.add_argument(
        "--workload-out",
        metavar="FILE.kw",
        help="with --replay, also write the workload (FILE-2.kw, ... for more reports)",
    )
    sp = subparsers.add_parser(
        "symbolize",
        help="symbolize addresses or func+0xOFF frames with a vmlinux",
        description="Print the source lines (with inlined frames) of addresses or "
        "FUNC+0xOFF[/0xLEN] [module] frames, as addr2line -f -i would.",
    )
    sp.add_argument(
        "frames",
        nargs="+",
        metavar="ADDR|FUNC+OFF",
        help="0xADDRESS or FUNC+0xOFF[/0xLEN], optionally followed by [module]",
    )
    sp.add_argument("--vmlinux", metavar="PATH", required=True)
    sp.add_argument("--modules", metavar="DIR")
    sp.add_argument("--strip", metavar="PREFIX")
    sp.add_argument(
        "--return-address",
        action="store_true",
        help="FUNC+OFF frames are return addresses: look up OFF-1 (as syzkaller)",
    )
    sp.add_argument("--format", choices=("text", "json"), default="text")


def symbolize_options(p, only_with: str = "") -> None:
    """``--vmlinux``, ``--modules`` and ``--strip``: the files that symbolize a report's stacks
    (``only_with``: the option they go with, named in their help)."""
    before = f"with {only_with}: " if only_with else ""
    p.add_argument(
        "--vmlinux", metavar="PATH", help=f"{before}symbolize the stacks with this vmlinux"
    )
    p.add_argument(
        "--modules",
        metavar="DIR",
        help=f"{before}where the .ko files of '[module]' frames are (searched recursively)",
    )
    p.add_argument(
        "--strip",
        metavar="PREFIX",
        help=f"{before}source path prefix to drop (default: the vmlinux's directory)",
    )


def run_command(args) -> int:
    """Run ``report`` or ``symbolize``."""
    command = args.command
    try:
        rc = _report(args) if command == "report" else _symbolize(args)
        sys.stdout.flush()
        return rc
    except KinspectError as e:
        _flush()
        print(f"kinspect: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (``kinspect report log | head``): nothing more to say
        drop_stdout()
        return 0
    except OSError as e:
        if e.filename is not None:  # (a file error names its file: not ours to hide)
            raise
        drop_stdout()  # stdout cannot be written (``> /dev/full``)
        print(f"kinspect: <stdout>: cannot write the output: {e.strerror or e}", file=sys.stderr)
        return 2


def _flush() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        drop_stdout()


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (the same inode, or the same resolved path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _workload_path(args, index: int) -> Path:
    """Where ``--workload-out`` writes the workload of report ``index`` (1-based); never over
    an input of the command (the log, the vmlinux, a module file)."""
    out = Path(args.workload_out)
    if index > 1:
        out = out.with_name(f"{out.stem}-{index}{out.suffix}")
    inputs = [p for p in (args.input, args.vmlinux) if p and p != "-"]
    if args.modules and os.path.isdir(args.modules):
        inputs += [str(p) for p in Path(args.modules).rglob("*.ko")]
    for src in inputs:
        if _same_file(str(out), src):
            raise KinspectError(
                f"--workload-out would write over the input {src}: give another file", str(out)
            )
    return out


def _report(args) -> int:
    syms = (
        Symbolizers(args.vmlinux, args.modules, args.strip)
        if (args.vmlinux or args.modules)
        else None
    )
    source, name = input_lines(args.input)
    if args.replay and args.workload_out:
        _workload_path(args, 1)  # (refused before anything is read or printed)
    scan = LogScan()
    found = 0
    json_reports: list[dict] = []
    try:
        for rep in iter_reports(source, path=name, partial=True, scan=scan):
            found += 1
            stacks = None
            if syms is not None:
                stacks = {k: syms.annotate(v) for k, v in stack_texts(rep).items()}
            exp = explain(rep)
            replay = _replay(rep, args, found) if args.replay else None
            if args.format == "json":
                doc = rep.to_json()
                doc["headline"] = headline(rep)
                doc["explanation"] = exp.to_json()
                if stacks is not None:
                    doc["symbolized_stacks"] = stacks
                if args.replay:
                    doc["replay"] = (
                        replay
                        if isinstance(replay, dict)
                        else (None if replay is None else replay.to_json())
                    )
                json_reports.append(doc)
                continue
            if found > 1:
                print()
            print(headline(rep))
            print(format_explanation(rep, exp, stacks))
            if args.replay:
                print(_format_replay(replay))
    finally:
        if syms is not None:
            syms.close()
    first = scan.first_crash
    if args.format == "json":
        doc = {
            "input": name,
            "reports": json_reports,
            "first_crash": None
            if first is None
            else {
                "title": first.title,
                "line": first.line,
                "kasan": first.kasan,
                "corrupted": first.corrupted,
            },
        }
        if not found:
            doc["message"] = NO_REPORT
        json.dump(doc, sys.stdout, indent=1)
        print()
        return 0 if found else 1
    if not found:
        print_no_report(first)
        return 1
    if first is not None and not first.kasan:
        print()
        print(f"the log's first crash is not a KASAN report: {first.title} (line {first.line})")
    return 0


def print_no_report(first: CrashTitle | None) -> None:
    """What is printed when a log holds no KASAN report (exit status 1)."""
    if first is not None and not first.kasan:
        print(f"the log's first crash is not a KASAN report: {first.title} (line {first.line})")
    print(NO_REPORT)


def _replay(rep: KasanReport, args, index: int):
    try:
        plan = replay_workload(rep, args.profile)
    except ReplayUnsupported as e:
        return {"unsupported": str(e)}
    if args.workload_out:
        out = _workload_path(args, index)
        try:
            out.write_text(plan.text)
        except OSError as e:
            raise KinspectError(f"cannot write the workload: {e.strerror}", str(out)) from None
    return run_replay(plan, path=args.workload_out or "<replay>")


def _format_replay(result) -> str:
    if isinstance(result, dict):
        return f"  replay: not possible: {result['unsupported']}"
    plan = result.plan
    lines = [f"  replay (profile {plan.profile}), the workload:"]
    lines += [f"    {ln}" for ln in plan.lines]
    for n in plan.notes:
        lines.append(f"  note: {n}")
    if result.engine_type is None:
        lines.append(
            f"  engine: no report; the report says {plan.expect_type}: "
            "the engine does not reach the same bug"
        )
        return "\n".join(lines)
    same = "same" if result.type_matches else "a different"
    verdict = f"  engine: {result.engine_type} ({same} bug type"
    reg = result.engine_region
    if result.region_matches is not None and reg is None:
        verdict += "; no region line, the report has one"
    elif result.region_matches is not None:
        verdict += (
            f"; region line {reg[0]} bytes {reg[1]} of {reg[2] + ' ' if reg[2] else ''}"
            f"{reg[3]}-byte region: "
            f"{'same as' if result.region_matches else 'differs from'} the report's"
        )
    verdict += ")"
    lines.append(verdict)
    lines.append("  the engine's report:")
    lines += [f"    {ln}" for ln in result.report_text.splitlines()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- symbolize


def _shown(text: str) -> str:
    """``text`` quoted for an error line, shortened when long."""
    return repr(text) if len(text) <= 80 else repr(text[:60]) + f"... ({len(text)} characters)"


def _check_address(addr: int, text: str) -> None:
    """A kernel address is 64 bits at most (the input is named as it was given)."""
    if addr >= 1 << 64:
        raise KinspectError(
            f"the address of {_shown(text)} does not fit in 64 bits", "<command line>"
        )


def _symbolize(args) -> int:
    syms = Symbolizers(args.vmlinux, args.modules, args.strip)
    results = []
    try:
        for text in args.frames:
            entry = {"input": text, "address": None, "frames": None}
            frames: list[SourceFrame] | None = None
            t = text.strip()
            frame = parse_frame(t)
            if frame is not None:
                module = frame[3]
                sym = syms.for_module(module)
                if sym is None:
                    entry["error"] = f"no file for module {module}" if module else "no vmlinux"
                else:
                    addr = sym.frame_address(t, return_address=args.return_address)
                    if addr is None:
                        entry["error"] = f"no symbol {frame[0]!r} in {sym.path}"
                    else:
                        _check_address(addr, text)
                        entry["address"] = f"{addr:#x}"
                        frames = sym.symbolize(addr)
            else:
                try:
                    addr = (
                        int(t, 16)
                        if t.lower().startswith("0x")
                        or all(c in "0123456789abcdefABCDEF" for c in t)
                        else None
                    )
                except ValueError:
                    addr = None
                if addr is None:
                    raise KinspectError(
                        "not an address or FUNC+0xOFF frame (offsets fit in "
                        f"64 bits): {_shown(text)}",
                        "<command line>",
                    )
                _check_address(addr, text)
                entry["address"] = f"{addr:#x}"
                assert syms.vmlinux is not None  # (--vmlinux is required)
                frames = syms.vmlinux.symbolize(addr)
            if frames is not None:
                entry["frames"] = [
                    {
                        "function": f.function,
                        "file": f.file,
                        "line": f.line,
                        "location": f.location(syms.strip),
                        "inlined": f.inlined,
                    }
                    for f in frames
                ]
            results.append(entry)
    finally:
        syms.close()
    if args.format == "json":
        json.dump({"vmlinux": args.vmlinux, "results": results}, sys.stdout, indent=1)
        print()
    else:
        for e in results:
            head = (
                e["input"]
                + (f" ({e['address']})" if e["address"] and e["address"] != e["input"] else "")
                + ":"
            )
            print(head)
            if e.get("error"):
                print(f"  ?? ({e['error']})")
                continue
            for f in e["frames"]:
                print(
                    f"  {f['function'] or '??'} {f['location']}"
                    + (" [inline]" if f["inlined"] else "")
                )
    return 0 if all(e.get("frames") for e in results) else 1
