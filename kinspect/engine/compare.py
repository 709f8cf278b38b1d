"""Several shadow schemes on one event stream: their bills, side by side.

The schemes run in lockstep on one machine (``LockstepShadow``): the allocators run once,
every shadow write goes to every scheme, and every shadow read is checked against the flat
reference, so the figures are those of the same kernel in the same state.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from .machine import Machine
from .profile import ArchProfile, format_size
from .replay import replay_trace, trace_summary
from .shadow import SCHEMES
from .shadow.base import Footprint
from .tables import count, format_blocks
from .workload import Workload, WorkloadRunner

REFERENCE = "flat"

# (key, table header, kind): kind "bytes" prints in human units in tables.
COLUMNS = [
    ("static_bytes", "static", "bytes"),
    ("dynamic_bytes", "dynamic", "bytes"),
    ("dynamic_peak_bytes", "dyn. peak", "bytes"),
    ("metadata_bytes", "metadata", "bytes"),
    ("total_peak_bytes", "total peak", "bytes"),
    ("virtual_range_bytes", "virt. range", "bytes"),
    ("shadow_pages_mapped", "shadow pages", "count"),
    ("shadow_pages_needed", "needed", "count"),
    ("page_table_pages", "pt pages", "count"),
    ("blocks_in_use", "blocks", "count"),
    ("blocks_capacity", "capacity", "count"),
    ("shadow_slab_pages", "slab pages", "count"),
    ("checks", "checks", "count"),
    ("loads", "loads", "count"),
    ("inline_possible", "inline", "bool"),
    ("stack_possible", "stack", "bool"),
]

# The table's blocks (indices into the table's columns, 0 the scheme): what the shadow costs in
# bytes, in pages and shadow blocks, and per check; each block fits 80 columns.
BLOCKS = [(0, 1, 2, 3, 4, 5, 6), (0, 7, 8, 9, 10, 11, 12), (0, 13, 14, 15, 16)]


def resolve_schemes(spec: str) -> list[str]:
    """``all`` or a comma list; flat always comes first (it is the reference)."""
    names = list(SCHEMES) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    for name in names:
        if name not in SCHEMES:
            from .errors import KinspectError

            raise KinspectError(
                f"unknown shadow scheme {name!r} (known: {', '.join(SCHEMES)})", "--schemes"
            )
    return [REFERENCE] + [n for n in names if n != REFERENCE]


def figures(fp: Footprint, peak_total: int) -> dict:
    d = fp.as_dict()
    d["total_peak_bytes"] = peak_total
    return d


def csv_cells(row: dict) -> list[int]:
    """A row of figures as CSV cells, in COLUMNS order: bytes and counts as integers, yes/no
    as 1/0 (the same in the table's CSV and in ``--timeline``)."""
    return [int(row[k]) for k, _, _ in COLUMNS]


@dataclass
class CompareResult:
    profile: ArchProfile
    events: int
    reports: int
    rows: dict[str, dict]  # scheme -> figures at the end (with peaks)
    notes: list[str]  # what a trace held besides what was replayed


def run_compare(
    profile: ArchProfile,
    workload: Workload | str,
    schemes: list[str],
    options: dict | None = None,
    timeline=None,
    strict: bool = False,
    progress=None,
    stream=None,
) -> CompareResult:
    """Run a workload (or replay a trace file, given its path) once with ``schemes`` in
    lockstep; figures per scheme. ``timeline`` (a text file) gets a CSV row per event and
    scheme. ``stream``: the trace as an open binary file (a pipe), named by the path."""
    machine = Machine(profile, schemes=schemes, scheme_options=options)
    peak = {s.name: 0 for s in machine.schemes}
    writer = None
    if timeline is not None:
        writer = csv.writer(timeline)
        writer.writerow(["event", "line", "scheme"] + [k for k, _, _ in COLUMNS])

    done = [0]  # events so far (trace events carry no index)

    def after_event(ev) -> None:
        done[0] += 1
        for scheme in machine.schemes:
            fp = scheme.footprint()
            total = fp.total_bytes()
            if total > peak[scheme.name]:
                peak[scheme.name] = total
            if writer is not None:
                writer.writerow(
                    [done[0] - 1, ev.line, scheme.name] + csv_cells(figures(fp, peak[scheme.name]))
                )

    if isinstance(workload, str):  # a kmem trace
        reader, replayer = replay_trace(
            machine, workload, strict, progress, after_event, stream=stream
        )
        events, notes = replayer.events, trace_summary(reader.stats, replayer.stats)
        if replayer.interrupted:
            notes.insert(0, f"interrupted after {events} events: partial figures")
    else:
        runner = WorkloadRunner(machine, workload)
        runner.run(after_event=after_event)
        events, notes = runner.position, []
        if machine.failed:
            notes.append(
                "failed allocations (NULL, -ENOMEM): "
                + ", ".join(f"{call} {n}" for call, n in sorted(machine.failed.items()))
            )
    rows = {}
    for scheme in machine.schemes:
        fp = scheme.footprint()
        # the peak of static + dynamic + metadata, where dynamic peaked between events
        peak_total = max(
            peak[scheme.name], fp.static_bytes + fp.metadata_bytes + fp.dynamic_peak_bytes
        )
        rows[scheme.name] = figures(fp, peak_total)
    return CompareResult(profile, events, len(machine.reports), rows, notes)


def format_compare(result: CompareResult, fmt: str) -> str:
    """The comparison as ``table`` (human units), ``csv`` or ``json`` (bytes and counts)."""
    if fmt == "json":
        return json.dumps(
            {
                "profile": result.profile.name,
                "mem_total": result.profile.mem_total,
                "events": result.events,
                "reports": result.reports,
                "schemes": result.rows,
                "notes": result.notes,
            },
            indent=1,
        )
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["scheme"] + [k for k, _, _ in COLUMNS])
        for name, row in result.rows.items():
            w.writerow([name] + csv_cells(row))
        return out.getvalue().rstrip("\n")
    rows = [["scheme"] + [h for _, h, _ in COLUMNS]]
    for name, row in result.rows.items():
        cells = [name]
        for key, _, kind in COLUMNS:
            v = row[key]
            cells.append(
                format_size(v)
                if kind == "bytes"
                else ("yes" if v else "no")
                if kind == "bool"
                else str(v)
            )
        rows.append(cells)
    p = result.profile
    title = [
        f"{count(result.events, 'event')}, {count(result.reports, 'report')}, "
        "identical under every scheme",
        f"profile {p.name}, {format_size(p.mem_total)} of memory",
    ]
    table = format_blocks(rows, BLOCKS, [False] + [True] * len(COLUMNS))
    return "\n".join(title + ["", table] + ([""] + result.notes if result.notes else []))
