"""Benchmark: opening a real crash dump with its vmlinux (issue 15's speed targets), and the
page map of all RAM over the dump.

    python benchmarks/vmcore.py [--dump DUMP] [--vmlinux VMLINUX] [--kdump KDUMP]

Defaults: the shared after-KUnit dump and vmlinux, decompressed into the tests' cache
(tests/test_vmcore.py ``unpacked()``).  Each figure is CPU seconds (user + system, of a child
process for the opening runs: ``os.wait4``) and the child's peak RSS, measured in this run:

1. ``kinspect vmcore DUMP --vmlinux V --addr page_offset_base``: **cold** (an empty
   symbol/layout cache: the first DWARF read) and **warm** (the cache of the cold run).
   The issue's targets: cold <= 5 s, warm <= 1 s, RSS <= 300 MB.
2. ``kinspect vmcore DUMP --vmlinux V`` (every report, its object, tracks, quarantine, page
   and shadow rows), warm.
3. The same warm opening on makedumpfile's compressed file, when ``--kdump`` is given (or
   the tests made one).
4. The page map (kinspect/widgets/page_map.py over screens/vmcore.py DumpPages): one frame of
   48 rows of 128 pages on a fresh reader (the struct pages read and classified), the same
   frame again (cached strips), and every row of all RAM; at zoom 0 and zoomed out to one
   cell per 64 pages.  Target: a frame at UI rates (< 1/30 s).
5. The 2017 comparison on the dump (kinspect/vmcore/costs.py ``scheme_bills()``): the dump's
   blocks from its struct pages and shadow, then the four schemes of a simulated machine put
   in that state, in CPU seconds by step (the screen computes it on the first ``c``: lazy,
   as it takes more than ~0.3 s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def child(argv: list[str], env: dict) -> tuple[float, float, int]:
    """(CPU s, peak RSS MB, exit status) of one child process."""
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode not in (0, 1):
        raise SystemExit(f"{argv}: exit {p.returncode}: {err.strip()}")
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, p.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump")
    ap.add_argument("--vmlinux")
    ap.add_argument("--kdump")
    args = ap.parse_args()
    if args.dump is None or args.vmlinux is None:
        import test_vmcore

        if test_vmcore.SHARED is None:
            raise SystemExit("no shared dumps here: give --dump and --vmlinux")
        args.dump = args.dump or str(test_vmcore.unpacked("vmcore-after-kunit.elf"))
        args.vmlinux = args.vmlinux or str(test_vmcore.unpacked("vmlinux"))
        if args.kdump is None:
            made = Path(test_vmcore.unpacked("vmcore-first-report.elf")).with_name(
                "vmcore-first-report.elf.d0.kdump"
            )
            args.kdump = str(made) if made.is_file() else None
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    print(
        f"dump: {args.dump} ({os.path.getsize(args.dump) >> 20} MiB), vmlinux: "
        f"{args.vmlinux} ({os.path.getsize(args.vmlinux) >> 20} MiB)"
    )
    kinspect = [sys.executable, "-m", "kinspect.cli", "vmcore"]
    with tempfile.TemporaryDirectory(prefix="kinspect-bench-vmcore-") as cache:
        env = dict(os.environ, KINSPECT_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        addr = ["--addr", "0xffff888000000000"]
        cpu, rss, _ = child(kinspect + [args.dump, "--vmlinux", args.vmlinux] + addr, env)
        print(
            f"open, cold (empty cache): {cpu:.2f} CPU s, peak RSS {rss:.0f} MB "
            f"(target <= 5 s, <= 300 MB)"
        )
        best = min(
            child(kinspect + [args.dump, "--vmlinux", args.vmlinux] + addr, env)[:2]
            for _ in range(3)
        )
        print(f"open, warm: {best[0]:.2f} CPU s, peak RSS {best[1]:.0f} MB (target <= 1 s)")
        cpu, rss, rc = child(kinspect + [args.dump, "--vmlinux", args.vmlinux], env)
        print(
            f"every report of the dump (object, tracks, quarantine, page, shadow), warm: "
            f"{cpu:.2f} CPU s, peak RSS {rss:.0f} MB"
        )
        if args.kdump:
            cpu, rss, _ = child(kinspect + [args.kdump, "--vmlinux", args.vmlinux] + addr, env)
            print(
                f"open makedumpfile's compressed file, warm: {cpu:.2f} CPU s, "
                f"peak RSS {rss:.0f} MB ({args.kdump})"
            )
        os.environ["KINSPECT_CACHE_DIR"] = cache
        page_map(args.dump, args.vmlinux)
        costs(args.dump, args.vmlinux)
    return 0


def costs(dump: str, vmlinux: str) -> None:
    from kinspect.vmcore import Kernel
    from kinspect.vmcore.costs import scheme_bills
    from kinspect.vmcore.reader import DumpReader

    with Kernel(dump, vmlinux) as k:  # a fresh Kernel: nothing of the dump read yet
        t = time.process_time()
        real = DumpReader(k).footprint("generic")
        t_real = time.process_time() - t
        sb = scheme_bills(DumpReader(k), real)
        print(
            f"the schemes' bills for the dump: {sb.cpu_seconds:.2f} CPU s in all (the "
            f"dump's {len(sb.blocks.blocks)} blocks from its struct pages and shadow: "
            f"{sb.blocks_seconds:.2f} s; the simulated machine and its four schemes: "
            f"{sb.cpu_seconds - sb.blocks_seconds:.2f} s); the real kernel's bill before: "
            f"{t_real:.2f} s"
        )
        for name, f in sb.bills.items():
            print(
                f"  {name:8} {f.total_bytes():>10} bytes ({f.static_bytes} static, "
                f"{f.dynamic_bytes} dynamic, {f.metadata_bytes} metadata)"
            )
        print(f"  generic (the dump's) {real.total_bytes():>10} bytes")


def page_map(dump: str, vmlinux: str) -> None:
    from kinspect.screens.vmcore import DumpPages
    from kinspect.vmcore import Kernel
    from kinspect.vmcore.reader import DumpReader
    from kinspect.widgets.page_map import PageMap

    with Kernel(dump, vmlinux) as k:
        for zoom in (0, 6):
            pm = PageMap(DumpPages(DumpReader(k)))
            pm._fixed_width = 128 + pm.gutter_width
            pm.zoom = zoom
            rows = pm.rows
            t = time.process_time()
            for r in range(min(48, rows)):
                pm.row_strip(r)
            fresh = time.process_time() - t
            t = time.process_time()
            for r in range(min(48, rows)):
                pm.row_strip(r)
            again = time.process_time() - t
            pm2 = PageMap(DumpPages(DumpReader(k)))
            pm2._fixed_width = 128 + pm2.gutter_width
            pm2.zoom = zoom
            t = time.process_time()
            text = [pm2.row_text(r) for r in range(rows)]
            whole = time.process_time() - t
            print(
                f"page map, {1 << zoom} page(s) a cell, {pm.cols} cells a row, {rows} rows "
                f"for {pm.source.end_pfn} pfns: a 48-row frame {1000 * fresh:.1f} ms CPU on "
                f"a fresh reader, {1000 * again:.2f} ms cached; all rows "
                f"{1000 * whole:.0f} ms ({len(text)} rows)"
            )


if __name__ == "__main__":
    sys.exit(main())
