"""Real KASAN reports read from a log, explained and symbolized: what ``kinspect report`` prints
and the UI's report screen shows (:func:`read_reports`), with no UI and no printing here."""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass

from kinspect.engine.errors import ReportParseError
from kinspect.reports.explain import Explanation, explain
from kinspect.reports.kreport import CrashTitle, KasanReport, LogScan, iter_reports, read_log_lines
from kinspect.reports.symbols import ElfSymbolizer, ModuleSymbolizers, SourceFrame, parse_frame

__all__ = ["ExplainedReport", "Symbolizers", "input_lines", "read_reports", "stack_texts"]


class Symbolizers:
    """The vmlinux and the module files, opened once; frames resolved in batches."""

    def __init__(self, vmlinux: str | None, modules: str | None, strip: str | None) -> None:
        self.vmlinux = ElfSymbolizer(vmlinux) if vmlinux else None
        self.modules = ModuleSymbolizers(modules) if modules else None
        if strip is None and vmlinux:
            strip = os.path.dirname(os.path.realpath(vmlinux))
        self.strip = strip.rstrip("/") + "/" if strip else None

    def close(self) -> None:
        if self.vmlinux is not None:
            self.vmlinux.close()
        if self.modules is not None:
            self.modules.close()

    def for_module(self, module: str | None) -> ElfSymbolizer | None:
        if module is None:
            return self.vmlinux
        return self.modules.get(module) if self.modules is not None else None

    def frames(
        self, texts: list[str], return_address: bool = False
    ) -> list[list[SourceFrame] | None]:
        """Each frame text symbolized (None: not a frame, or not in the given files)."""
        out: list[list[SourceFrame] | None] = [None] * len(texts)
        groups: dict[str | None, list[int]] = {}
        for i, t in enumerate(texts):
            p = parse_frame(t)
            if p is not None:
                groups.setdefault(p[3], []).append(i)
        for module, idx in groups.items():
            sym = self.for_module(module)
            if sym is None:
                continue
            res = sym.symbolize_frames([texts[i] for i in idx], return_address=return_address)
            for i, r in zip(idx, res):
                out[i] = r
        return out

    def annotate(self, texts: list[str]) -> list[str]:
        """decode_stacktrace.sh style: inlined frames first, each frame with file:line."""
        lines: list[str] = []
        for text, frames in zip(texts, self.frames(texts)):
            if not frames:
                lines.append(text)
                continue
            for f in frames[:-1]:
                lines.append(f"{f.function or '??'} {f.location(self.strip)} [inline]")
            lines.append(f"{text} {frames[-1].location(self.strip)}")
        return lines


def stack_texts(rep: KasanReport) -> dict[str, list[str]]:
    out = {}
    for kind, st in (
        ("access stack", rep.access_stack),
        ("allocated", rep.alloc_stack),
        ("freed", rep.free_stack),
    ):
        if st is not None:
            out[kind] = list(st.frames)
    for i, st in enumerate(rep.aux_stacks):
        out[f"aux{i}"] = list(st.frames)
    return out


def input_lines(path: str):
    """The lines of a log (``-``: standard input) as the parser takes them, and its name."""
    if path == "-":
        raw = getattr(sys.stdin, "buffer", None)
        text = (
            sys.stdin if raw is None else io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
        )
        return read_log_lines(text, "<stdin>"), "<stdin>"
    if os.path.isdir(path):
        raise ReportParseError("cannot read the file: Is a directory", path)
    return path, path


@dataclass
class ExplainedReport:
    """One report as the UI's report screen shows it: the parsed record, its explanation, and
    its stacks symbolized (``{"access stack"|"allocated"|"freed"|"auxN": lines}``, as
    ``kinspect report --vmlinux`` prints them), or None without a vmlinux or modules."""

    report: KasanReport
    explanation: Explanation
    stacks: dict[str, list[str]] | None = None


def read_reports(
    path: str, vmlinux: str | None = None, modules: str | None = None, strip: str | None = None
) -> tuple[list[ExplainedReport], CrashTitle | None]:
    """Every KASAN report of a log, explained (and symbolized with a vmlinux or modules), and
    the log's first crash.  Unreadable input or ELF files raise a KinspectError."""
    if path == "-":
        raise ReportParseError(
            "the UI reads its keys from standard input: give the log as a file", "-"
        )
    source, name = input_lines(path)
    syms = Symbolizers(vmlinux, modules, strip) if (vmlinux or modules) else None
    scan = LogScan()
    out: list[ExplainedReport] = []
    try:
        for rep in iter_reports(source, path=name, partial=True, scan=scan):
            stacks = None
            if syms is not None:
                stacks = {k: syms.annotate(v) for k, v in stack_texts(rep).items()}
            out.append(ExplainedReport(rep, explain(rep), stacks))
    finally:
        if syms is not None:
            syms.close()
    return out, scan.first_crash
