"""The ftrace reader: every era's line format, bad input, hashed pointers; and the replay."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import pytest

from kinspect.cli import main
from kinspect.engine.errors import TraceError
from kinspect.engine.ftrace import (KFREE, KMALLOC, KMEM_CACHE_ALLOC, KMEM_CACHE_FREE,
                                    PAGE_ALLOC, PAGE_FREE, TraceReader)
from kinspect.engine.machine import Machine
from kinspect.engine.profile import load_profile
from kinspect.engine.replay import replay_trace

ROOT = Path(__file__).resolve().parent.parent
X86_TRACE = ROOT / "samples" / "traces" / "kmem-trace-x86_64.txt.xz"

# Real lines quoted in ../shared/data/ftrace/FORMATS.md (its SOURCE.md names their origins).
ERA_LINES = [
    # 2.6.33: no flags column, decimal pfn
    ("  gnome-terminal-1567  [000]  4415.246466: mm_page_free_direct: page=ffffea0003db9f40 "
     "pfn=1155800 order=0", PAGE_FREE, dict(pfn=1155800, order=0, comm="gnome-terminal",
                                            pid=1567)),
    # 3.x: 4 flag characters, raw call site, 32-bit pointers
    ("            init-1     [000] .N..     0.170000: kmalloc: call_site=c104de4f ptr=c143de20 "
     "bytes_req=29 bytes_alloc=32 gfp_flags=GFP_KERNEL", KMALLOC,
     dict(ptr=0xc143de20, bytes_req=29, bytes_alloc=32, call_site="c104de4f", comm="init")),
    # 5.4: %pS call site, hashed pointer (a single line is not enough to refuse it)
    ("          <idle>-0     [003] ..s. 312444.111637: kmem_cache_alloc: "
     "call_site=__build_skb+0x24/0x60 ptr=0000000003218205 bytes_req=224 bytes_alloc=256 "
     "gfp_flags=GFP_ATOMIC", KMEM_CACHE_ALLOC,
     dict(bytes_req=224, bytes_alloc=256, call_site="__build_skb+0x24/0x60", comm="<idle>")),
    # 6.12: 5 flag characters, node= and accounted=, hex pfn
    ("          <idle>-0       [000] d....     2.246921: mm_page_alloc: page=ffff88813ef91300 "
     "pfn=0x10644c order=0 migratetype=0 gfp_flags=__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP",
     PAGE_ALLOC, dict(pfn=0x10644C, order=0)),
    # kmem_cache_free with name= (5.x+), NULL on 64-bit
    ("   kworker/u4:2-40  [001] ..... 10.5: kmem_cache_free: call_site=rcu_core+0x6a2/0xec0 "
     "ptr=ffff888004e74000 name=test_cache", KMEM_CACHE_FREE,
     dict(ptr=0xFFFF888004E74000, name="test_cache", comm="kworker/u4:2", pid=40)),
    ("   a-b-c-7  [001] ..... 10.5: kfree: call_site=foo+0x1/0x2 ptr=          (null)", KFREE,
     dict(ptr=0, comm="a-b-c", pid=7)),
    # options/fields output: hex plus decimal, real addresses
    ("  sh-90 [001] ..... 10.5: kmalloc: call_site=0xffffffff92d10d97 (-1831793257) "
     "ptr=0xffff9e0e8571e000 (-107689771147264) bytes_req=0x1000 (4096) bytes_alloc=0x1000 "
     "(4096) gfp_flags=0xcc0 (3264) node=0xffffffff (-1) accounted=(0)", KMALLOC,
     dict(ptr=0xFFFF9E0E8571E000, bytes_req=4096, bytes_alloc=4096)),
    # patched kernels add fields; function_graph embeds events as comments
    ("  sh-90 [001] ..... 10.5: mm_page_alloc: page=00000000d2be5665 pfn=970744 order=0 "
     "migratetype=0 nr_free=3650 gfp_flags=GFP_HIGHUSER|__GFP_ZERO", PAGE_ALLOC,
     dict(pfn=970744)),
    (" 1)               |  /* mm_page_alloc: page=0000000000000000 pfn=0 order=9 "
     "migratetype=1 gfp_flags=GFP_KERNEL */", PAGE_ALLOC, dict(pfn=0, order=9)),
    # pasted without the task prefix
    ("kmalloc: call_site=c104de4f ptr=c143de20 bytes_req=29 bytes_alloc=32 gfp_flags=GFP_KERNEL",
     KMALLOC, dict(ptr=0xC143DE20)),
]


def _write(tmp_path, text: str, name="t.txt", opener=open) -> str:
    path = tmp_path / name
    with opener(path, "wt") as f:
        f.write(text)
    return str(path)


@pytest.mark.parametrize("line,kind,fields", ERA_LINES)
def test_every_era_line_format(tmp_path, line, kind, fields):
    [ev] = list(TraceReader(_write(tmp_path, "# tracer: nop\n" + line + "\n")))
    assert ev.kind == kind and ev.line == 2
    for key, value in fields.items():
        assert getattr(ev, key) == value, key


@pytest.mark.parametrize("opener,name", [(gzip.open, "t.txt.gz"), (lzma.open, "t.txt.xz")])
def test_compressed_traces(tmp_path, opener, name):
    path = _write(tmp_path, ERA_LINES[1][0] + "\n", name, opener)
    assert [e.kind for e in TraceReader(path)] == [KMALLOC]


def test_bad_lines_are_counted_with_line_numbers_or_strict(tmp_path):
    text = ("\n".join([ERA_LINES[1][0], "garbage here", ERA_LINES[1][0][:60],
                       "  x-1 [000] ..... 1.0: sched_switch: prev=a next=b"]) + "\n")
    path = _write(tmp_path, text)
    reader = TraceReader(path)
    assert [e.kind for e in reader] == [KMALLOC]
    assert reader.stats.bad_lines == 2
    assert [n for n, _ in reader.stats.first_bad] == [2, 3]
    assert reader.stats.other_events == {"sched_switch": 1}
    with pytest.raises(TraceError) as e:
        list(TraceReader(path, strict=True))
    assert (e.value.line, str(e.value).split(": ")[0]) == (2, f"{path}:2")


def test_not_a_trace_and_binary_files(tmp_path):
    with pytest.raises(TraceError, match="not an ftrace text file"):
        list(TraceReader(_write(tmp_path, "hello\nworld\n")))
    binary = tmp_path / "b.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(TraceError, match="not an ftrace text file"):
        list(TraceReader(str(binary)))


def test_hashed_pointers_are_explained(tmp_path):
    lines = [f"  sh-9 [000] ..... 1.{i}: kmalloc: call_site=f+0x1/0x2 ptr={0x3e4c3799 + i:016x} "
             f"bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL" for i in range(300)]
    with pytest.raises(TraceError, match="hashed.*no_hash_pointers"):
        list(TraceReader(_write(tmp_path, "\n".join(lines) + "\n")))


def test_cli_bad_trace_is_one_line_exit_2(tmp_path, capsys):
    path = _write(tmp_path, "x", name="t.txt.gz")
    assert main(["run", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kinspect: ") and err.count("\n") == 1


def test_replay_of_the_real_trace_prefix(tmp_path):
    """The first 20 000 lines of the real x86_64 trace replay with no report and keep every
    traced key mapped (the simulated allocator places objects and pages itself)."""
    with lzma.open(X86_TRACE, "rt") as f:
        head = "".join(next(f) for _ in range(20_000))
    path = _write(tmp_path, head)
    m = Machine(load_profile("x86_64-q35-3g"))
    reader, replayer = replay_trace(m, path)
    assert m.reports == []
    s = replayer.stats
    assert sum(reader.stats.events.values()) == replayer.events
    assert s.replayed["kmem_cache_alloc"] > 200 and s.replayed["kmalloc"] > 5000
    assert s.slab_pages > 0
    assert not s.failed
    live = len(replayer.objects)
    assert live == s.replayed["kmalloc"] + s.replayed["kmem_cache_alloc"] \
        - s.replayed["kfree"] - s.replayed["kmem_cache_free"] - s.freed_before_trace["lost free"]
