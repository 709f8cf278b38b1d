"""The inspector screen: step through a workload and watch struct pages, shadow slabs and
shadow bytes change.

The screen drives an engine ``Session`` (step, back, run to a report or breakpoint, jump) and
feeds every view from the ``StepResult`` it returns, through one message, ``StepApplied``:
single steps post it directly, long runs from a cancellable thread worker (the views freeze
while the worker runs; the status line shows its progress). Views only read the engine.
"""

from __future__ import annotations

import contextlib
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterator

from rich.style import Style
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Footer, Header, Static
from textual.worker import Worker, get_current_worker

from kinspect.data import workload_name
from kinspect.engine import collector
from kinspect.engine.errors import KinspectError
from kinspect.engine.profile import format_size
from kinspect.engine.view import machine_view
from kinspect.screens.commands import Command, bindings
from kinspect.screens.dialogs import PromptScreen
from kinspect.session import SchemeView, Session, StepResult
from kinspect.session.queries import (
    find_poisoned_granule,
    parse_breakpoint,
    parse_jump,
    resolve_location,
)
from kinspect.widgets import (
    EventLog,
    FootprintPlot,
    Narration,
    PageMap,
    ReportView,
    SessionPages,
    ShadowBytes,
    ShadowLegend,
    ShadowSlabView,
    StructPageView,
)
from kinspect.widgets.footer import KeyFooter
from kinspect.widgets.palette import PAGE_PAINTS, REPORT_PAINT
from kinspect.widgets.pane import Pane
from kinspect.widgets.tab_bar import TabBar
from kinspect.widgets.text_lines import TextLines

# The detail tabs: (view id, label), in the order ``t`` cycles through them.
DETAIL_TABS = [
    ("report", "report"),
    ("structpage", "struct page"),
    ("shadowslab", "shadow slab"),
    ("footprint", "footprint"),
]
SYNC_RUN_LIMIT = 3000  # runs shorter than this happen at once, longer ones in a worker
IDLE_DELAY = 0.25  # seconds without a key before the session's background work
COLLECT_EVERY = 8192  # steps whose garbage may wait for a pause (30 KB or so each)
FULL_COLLECT_AFTER = 64  # collections of the young objects between two full ones...
FULL_COLLECT_DELAY = 5.0  # ...made after this many seconds without a key
NARROW = 100  # below this width the layout is narrow (kinspect.tcss)...
WIDE = 120  # ...from this one wide; below it the footer is compact


class StepApplied(Message):
    """The session moved: every view catches up with ``result``."""

    def __init__(self, result: StepResult) -> None:
        super().__init__()
        self.result = result


class RunProgress(Message):
    """A run in a worker got this far (a burst collapses into the newest)."""

    def __init__(self, done: int, planned: int) -> None:
        super().__init__()
        self.done = done
        self.planned = planned

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunProgress)


class TraceLoading(Message):
    """A streamed trace read more events (the session says how many; a burst is one)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TraceLoading)


class TraceLoaded(Message):
    """A streamed trace is read (to its end, or to what stopped the reading)."""


class SearchDone(Message):
    """A search of the event log ended: ``found`` is (row, wrapped), or None."""

    def __init__(
        self, query: str, direction: int, found: tuple[int, bool] | None, cancelled: bool
    ) -> None:
        super().__init__()
        self.query = query
        self.direction = direction
        self.found = found
        self.cancelled = cancelled


# ----------------------------------------------------------------------- modal screens


class MainScreen(Screen):
    """The inspector: page map, shadow bytes, event log and the detail tabs."""

    # The layouts (kinspect.tcss): side by side from 120 columns, stacked below.
    HORIZONTAL_BREAKPOINTS = [(0, "narrow"), (NARROW, "medium"), (WIDE, "wide")]
    # The status line's colours (kinspect.tcss): a label, what is still coming (a trace being
    # read, the next event), a bad access or breakpoint, an attach, a stop.
    COMPONENT_CLASSES = {
        "status--label",
        "status--next",
        "status--bad",
        "status--attach",
        "status--stop",
    }
    VERTICAL_BREAKPOINTS = [(0, "short"), (30, "tall")]  # short: no legends

    # Every action once: its key (the footer, the help screen) and its palette entry.
    ACTIONS = [
        Command(
            "step",
            "Step",
            "apply the next event",
            key="space,right",
            id="step",
            priority=True,
            tooltip="Apply the next event",
        ),
        Command(
            "back",
            "Step back",
            "undo the last event",
            key="left,backspace",
            id="back",
            label="Back",
            priority=True,
            tooltip="Undo the last event (checkpoint + replay)",
        ),
        Command(
            "run('report')",
            "Run to the next report",
            "stop at a KASAN report, a breakpoint or the end",
            key="r",
            id="run_report",
            label="Run→report",
            tooltip="Run to the next KASAN report (or breakpoint, or the end)",
        ),
        Command(
            "app.help",
            "Help",
            "keys and colour legends",
            key="question_mark,f1",
            id="help",
            tooltip="Keys and legends",
        ),
        Command(
            "next_scheme",
            "Next scheme",
            "show the next shadow scheme",
            key="s",
            id="scheme",
            label="Scheme",
            tooltip="Show the next shadow scheme (the position stays)",
        ),
        Command(
            "goto",
            "Go to address, pfn or symbol…",
            "select a page and granule",
            key="g",
            id="goto",
            label="Go to",
            tooltip="Go to an address, a pfn or a symbol (a workload variable, a global, a cache)",
        ),
        Command(
            "run('breakpoint')",
            "Run to the end",
            "stop at a breakpoint or the end",
            key="e",
            id="run_end",
            label="Run→end",
            tooltip="Run to the next breakpoint or the end",
        ),
        Command(
            "breakpoint",
            "Breakpoint…",
            "set or clear a breakpoint",
            key="b",
            id="breakpoint",
            label="Break",
            tooltip="Set or clear a breakpoint: a line, an address, a pfn, attach",
        ),
        Command(
            "jump",
            "Jump to event…",
            "the state after event N or line L",
            key="j",
            id="jump",
            label="Jump",
            tooltip="Jump to event N or line L",
        ),
        Command(
            "search",
            "Find…",
            "text in the event log: a call site, a pointer, a cache, a comment",
            key="slash",
            id="search",
            label="Find",
            tooltip="Find text in the event log (a call site, a pointer, a cache, a comment)",
        ),
        # The keys the footer leaves out (help lists them).
        Command(
            "cancel_run",
            "Stop the run",
            "stop a running run or search",
            key="escape",
            id="cancel_run",
            label="Stop",
            show=False,
            tooltip="Stop a running run",
        ),
        Command(
            "search_again(1)",
            "Find next",
            "the next match of {screen.search_query!r}",
            key="n",
            id="search_next",
            show=False,
            tooltip="Find the next match (wraps at the end)",
            when=lambda screen: bool(screen.search_query),
        ),
        Command(
            "search_again(-1)",
            "Find previous",
            "the previous match of {screen.search_query!r}",
            key="N",
            id="search_prev",
            show=False,
            tooltip="Find the previous match (wraps at the start)",
            when=lambda screen: bool(screen.search_query),
        ),
        Command(
            "poisoned(1)",
            "Next poisoned granule",
            "in an allocated page",
            key="p",
            id="next_poisoned",
            label="Next poisoned",
            show=False,
            tooltip="Select the next poisoned granule of an allocated page",
        ),
        Command(
            "poisoned(-1)",
            "Previous poisoned granule",
            "in an allocated page",
            key="P",
            id="prev_poisoned",
            label="Prev poisoned",
            show=False,
            tooltip="Select the previous poisoned granule",
        ),
        Command(
            "attached(1)",
            "Next attached page",
            "a page with shadow of its own",
            key="a",
            id="next_attached",
            label="Next attached",
            show=False,
            tooltip="Select the next page with shadow attached",
        ),
        Command(
            "attached(-1)",
            "Previous attached page",
            key="A",
            id="prev_attached",
            label="Prev attached",
            show=False,
            tooltip="Select the previous page with shadow attached",
        ),
        Command(
            "zoom(-1)",
            "Zoom in",
            "fewer pages per cell",
            key="plus,equals_sign",
            id="zoom_in",
            show=False,
            tooltip="Fewer pages per cell",
        ),
        Command(
            "zoom(1)",
            "Zoom out",
            "more pages per cell",
            key="minus",
            id="zoom_out",
            show=False,
            tooltip="More pages per cell",
        ),
        Command(
            "copy_address",
            "Copy address",
            "the selected address, to the clipboard",
            key="y",
            id="copy_address",
            label="Copy addr",
            show=False,
            tooltip="Copy the selected address",
            when=lambda screen: screen.addr is not None,
        ),
        Command(
            "copy_row",
            "Copy shadow row",
            "the selected shadow row",
            key="Y",
            id="copy_row",
            label="Copy row",
            show=False,
            tooltip="Copy the selected shadow row",
            when=lambda screen: screen.addr is not None,
        ),
        Command(
            "next_tab",
            "Next tab",
            "report / struct page / shadow slab / footprint",
            key="t",
            id="next_tab",
            show=False,
            tooltip="Cycle report / struct page / shadow slab / footprint",
        ),
        Command(
            "toggle_follow",
            "Toggle follow",
            "move the cursor to what each step touches",
            key="f",
            id="follow",
            label="Follow",
            show=False,
            tooltip="Follow the action: move the cursor to what each step touched",
        ),
        Command(
            "maximize_pane",
            None,
            key="m",
            id="maximize",
            label="Maximize",
            show=False,
            tooltip="Maximize the focused pane (again to restore)",
        ),
        Command(
            "clear_breakpoints",
            "Clear breakpoints",
            "remove every breakpoint",
            when=lambda screen: bool(screen.session.breakpoints),
        ),
    ]
    BINDINGS = bindings(ACTIONS)

    def scheme_commands(self) -> Iterator[SystemCommand]:
        """The palette's "Show scheme NAME" of every scheme but the one shown."""
        s = self.session
        for name in s.scheme_names:
            if name != s.shown:
                yield SystemCommand(
                    f"Show scheme {name}", "the position stays", lambda n=name: self.show_scheme(n)
                )

    running = reactive(False, bindings=True)

    def watch_running(self, running: bool) -> None:
        if self.is_mounted:
            self.query_one(PageMap).frozen = running

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.views: dict[str, SchemeView] = {}
        self.pfn = session.profile.min_pfn
        self.addr: int | None = None
        self.follow = True
        self.last_step_text = ""
        self._last_report_key: tuple[int, int | None] | None = None
        self._worker: Worker | None = None
        self._idle_timer: Timer | None = None
        self.idle_work_enabled = True
        self._binding_state: tuple[bool, bool, bool] | None = None
        self._steps_since_collect = 0
        self._collected_at = 0
        self._young_collections = 0
        self._gc_was_enabled = True
        self._pending_back = 0
        self.search_query = ""  # the last search's text (n / N repeat it)
        self._search_worker: Worker | None = None
        self._found_at: int | None = None  # the position the last match moved to

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        yield TextLines("", id="status")
        # One grid, no column containers: every layer under a line costs each frame its share.
        with Grid(id="body"):
            with Pane(id="map-pane", classes="pane"):
                yield PageMap(id="pagemap")
                yield Static("", id="map-legend")
            with Pane(id="shadow-pane", classes="pane"):
                yield ShadowBytes(
                    bits=self.session.profile.bits,
                    page_size=self.session.profile.page_size,
                    id="shadow",
                )
                yield ShadowLegend(id="shadow-legend")
            with Pane(id="log-pane", classes="pane"):
                yield EventLog(id="eventlog")
                yield Narration(id="narration")
            with Vertical(id="details"):
                yield TabBar(DETAIL_TABS, "structpage", id="detail-tabs")
                with ContentSwitcher(id="detail-views", initial="structpage"):
                    yield ReportView(id="report")
                    yield StructPageView(id="structpage")
                    yield ShadowSlabView(id="shadowslab")
                    yield FootprintPlot(id="footprint")
        yield KeyFooter()

    def on_mount(self) -> None:
        s = self.session
        # The engine holds millions of long-lived objects, and frees its own by reference
        # counting: no automatic collections while the inspector is up; it collects in its
        # idle time (_collect_young), the objects alive now are left out.
        self._gc_was_enabled = collector.pause_for_ui()
        self.query_one("#map-pane").border_title = "page map"
        self.query_one("#shadow-pane").border_title = "shadow bytes"
        self.query_one("#log-pane").border_title = f"events · {workload_name(s.path)}"
        self._view(s.shown)
        pagemap = self.query_one(PageMap)
        pagemap.set_source(SessionPages(s, self._view(s.shown)))
        self.query_one(EventLog).set_session(s, s.shown)
        self.query_one(Narration).display = self.query_one(EventLog).lines is not None
        self.query_one(FootprintPlot).set_session(s)
        self._update_map_legend()
        pagemap.focus()
        self._select_pfn(self._initial_pfn(), follow_addr=None)
        self._refresh_all(None)
        self._apply_width(self.app.size.width)
        if s.loading:
            self.load_in_thread()

    def on_unmount(self) -> None:
        collector.resume_after_ui(self._gc_was_enabled)

    def on_resize(self, event) -> None:
        self._apply_width(event.size.width)

    def _apply_width(self, width: int) -> None:
        footer = self.query_one(Footer)
        footer.compact = width < WIDE
        footer.show_command_palette = width >= WIDE  # ctrl+p is in the help

    def _initial_pfn(self) -> int:
        """Where the cursor starts: the highest allocated page (where SLUB's first slabs are)."""
        pfn = machine_view(self.session).highest_allocated_pfn()
        return pfn if pfn is not None else self.session.profile.min_pfn

    # ---------------------------------------------------------------- state helpers

    def _view(self, name: str) -> SchemeView:
        view = self.views.get(name)
        if view is None:
            view = self.views[name] = SchemeView(self.session, name)
        elif view.generation < 0:
            view.rebuild()
        return view

    @property
    def view(self) -> SchemeView:
        return self._view(self.session.shown)

    def _update_map_legend(self) -> None:
        from rich.text import Text

        legend = Text()
        shown = [PAGE_PAINTS[c] for c in (0, 3, 2, 1, 4, 5, 8, 6, 10)]
        for paint in shown:
            legend.append(paint.glyph, paint.rich())
            legend.append(f" {paint.label}  ")
        legend.append(
            "UPPER",
            self.get_component_rich_style("status--attach", partial=True) + Style(bold=True),
        )
        legend.append(" shadow attached  ")
        legend.append("!", REPORT_PAINT.rich())
        legend.append(" bad access  ? help")
        self.query_one("#map-legend", Static).update(legend)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_run":
            return self.running or self._search_worker is not None
        if self.running and action in (
            "step",
            "back",
            "run",
            "jump",
            "next_scheme",
            "breakpoint",
            "search",
            "search_again",
        ):
            return None
        if action in ("step", "run") and self.session.at_end:
            return None
        if action == "back" and self.session.position == 0:
            return None
        return True

    # ---------------------------------------------------------------- stepping

    def action_step(self) -> None:
        s = self.session
        if self.running or s.at_end:
            return
        if s.waiting:
            self.notify(
                f"event {s.position + 1} is not read yet (reading the trace: "
                f"{s.load_fraction():.0%})",
                title="step",
            )
            return
        self.post_message(StepApplied(s.step()))

    def action_run(self, until: str) -> None:
        s = self.session
        if self.running or s.at_end:
            return
        if not s.loading and s.total - s.position <= SYNC_RUN_LIMIT:
            self.post_message(StepApplied(s.run(until=until)))
            return
        self._run_in_worker(
            f"running to the next {'report' if until == 'report' else 'stop'}",
            lambda cancelled, progress: s.run(
                until=until, cancelled=cancelled, progress=progress, wait=True
            ),
        )

    def _run_in_worker(self, what: str, command, cancellable: bool = True) -> None:
        """A long session command in a worker thread (the views freeze meanwhile); ``command``
        takes ``cancelled`` and ``progress`` callables and returns a StepResult.
        ``cancellable``: it heeds them (a restore going back does not)."""
        self.running = True
        self._set_status(f"{what}… (escape stops)" if cancellable else f"{what}…")
        self._worker = self.run_in_thread(command)

    @work(thread=True, exclusive=True, group="engine")
    def run_in_thread(self, command) -> None:
        worker = get_current_worker()
        result = command(
            lambda: worker.is_cancelled,
            lambda done, planned: self.post_message(RunProgress(done, planned)),
        )
        self.post_message(StepApplied(result))

    @work(thread=True, group="load")
    def load_in_thread(self) -> None:
        """Read the rest of a streamed trace while the session steps on the events read."""
        worker = get_current_worker()

        def loading(_read: int, _fraction: float) -> None:
            self.post_message(TraceLoading())

        with contextlib.suppress(KinspectError):  # kept as session.load_error: TraceLoaded shows it
            self.session.load(progress=loading, cancelled=lambda: worker.is_cancelled)
        self.post_message(TraceLoaded())

    def on_trace_loading(self, message: TraceLoading) -> None:
        self.query_one(EventLog).sync_length()
        if not self.running:  # a run's worker owns the engine: no reading it now
            self._refresh_status(None)

    def on_trace_loaded(self, message: TraceLoaded) -> None:
        s = self.session
        self.query_one(EventLog).sync_length()
        collector.freeze()  # the events are read: long-lived, out of the collector's way
        if s.load_error is not None:
            self.notify(
                f"{s.load_error}; the {s.total} events before it can be stepped",
                title="trace",
                severity="error",
                timeout=10,
            )
        for bp in s.drop_unmatched_breakpoints():
            self.notify(
                f"breakpoint cleared: the trace has no event on {bp.describe()}",
                title="breakpoint",
                severity="warning",
            )
        if not self.running:
            self._refresh_status(None)
            self.query_one(EventLog).refresh()

    def action_cancel_run(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        if self._search_worker is not None:
            self._search_worker.cancel()

    def on_run_progress(self, message: RunProgress) -> None:
        if self.running:
            pct = 100 * message.done // max(1, message.planned)
            reading = (
                f" (reading the trace: {self.session.load_fraction():.0%})"
                if self.session.loading
                else ""
            )
            self._set_status(
                f"running… {message.done}/{message.planned} events ({pct}%){reading} — escape stops"
            )

    def on_step_applied(self, message: StepApplied) -> None:
        self.running = False
        self._worker = None
        self._refresh_all(message.result)
        self._schedule_idle_work()

    def _schedule_idle_work(self, delay: float = IDLE_DELAY) -> None:
        """Checkpoints and the step-back standby are made while the user looks, not on keys."""
        if self._idle_timer is not None:
            self._idle_timer.stop()
        if self.idle_work_enabled:
            self._idle_timer = self.set_timer(delay, self._idle_work)

    def _idle_work(self) -> None:
        self._idle_timer = None
        if self.running or not self.idle_work_enabled:
            return
        if self.idle_step():
            self._schedule_idle_work(0.02)
        elif self._young_collections >= FULL_COLLECT_AFTER:
            self._idle_timer = self.set_timer(FULL_COLLECT_DELAY, self._collect_all)

    def idle_step(self) -> bool:
        """One piece of background work; False when there is none left."""
        s = self.session
        if s.idle_work():
            return True
        if self._steps_since_collect or s.machines_discarded != self._collected_at:
            self._collect_young()
            return True
        return False

    # The cyclic collector is off while the inspector is up (on_mount): an automatic
    # collection in the middle of a key's work would stall it. The garbage of the steps (the
    # views' old strips: cycles) is collected in idle time, young objects only, and the
    # survivors frozen; a crowd of them (a machine just made by a jump) is frozen as it is
    # (collector.collect_young).

    def _collect_young(self) -> None:
        """Collect the garbage among the objects made since the last collection, and freeze
        the rest out of the way of the next ones: milliseconds."""
        self._collected_at = self.session.machines_discarded
        self._steps_since_collect = 0
        self._young_collections += 1
        collector.collect_young()

    def _collect_all(self) -> None:
        """Collect the cycles that became garbage after they were frozen (a strip evicted from
        a cache): a scan of everything (45-50 ms late in the real trace at 1 TiB, about
        100 000 objects, most of them the app's), so only after a pause of
        FULL_COLLECT_DELAY, every FULL_COLLECT_AFTER young collections."""
        self._idle_timer = None
        self._young_collections = 0
        collector.collect_all()

    def action_back(self) -> None:
        """Step back; presses that queue up while a slow one runs are done as one."""
        if self.running or self.session.position == 0:
            return
        self._pending_back += 1
        if self._pending_back == 1:
            self.call_later(self._flush_back)

    def _flush_back(self) -> None:
        n, self._pending_back = self._pending_back, 0
        if n and not self.running:
            self.post_message(StepApplied(self.session.back(n)))

    # ---------------------------------------------------------------- refreshing

    def _refresh_all(self, result: StepResult | None) -> None:
        s = self.session
        if result is not None:
            view = self.views.get(s.shown)
            if view is not None and view.generation >= 0:
                view.update(result)
            for name, other in self.views.items():
                if name != s.shown:
                    other.generation = -1  # rebuilt when shown again
        self._steps_since_collect += 1
        if self._steps_since_collect >= COLLECT_EVERY:  # no pause for that long
            self._collect_young()
        pagemap = self.query_one(PageMap)
        if result is not None:
            pagemap.apply_dirty(result.generation, result.dirty)
        report = s.latest_report()
        pagemap.set_report_pfn(self._report_pfn(report))
        target_pfn, target_addr = self._follow_target(result)
        if target_pfn is not None or target_addr is not None:
            self._select_pfn(target_pfn, follow_addr=target_addr)
        else:
            self._refresh_details()
        log = self.query_one(EventLog)
        log.show_position()
        self.query_one(Narration).show(log.narration())
        if self.tab == "footprint":
            self.query_one(FootprintPlot).update_plot()
        self._refresh_report(result)
        self._refresh_status(result)
        if result is not None and result.stopped:
            if result.stopped.startswith("error"):
                self.notify(
                    result.stopped[len("error: ") :],
                    title="workload error",
                    severity="error",
                    timeout=8,
                )
            elif result.stopped.startswith("breakpoint"):
                self.notify(result.stopped, title="stopped")
            elif result.stopped == "cancelled":
                self.notify(f"run stopped at event {s.position}", title="cancelled")
        state = (self.running, s.at_end, s.position == 0)
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def _report_pfn(self, report) -> int | None:
        if report is None:
            return None
        if report.pfn is not None:
            return report.pfn
        return machine_view(self.session).addr_to_pfn(report.addr)

    def _follow_target(self, result: StepResult | None) -> tuple[int | None, int | None]:
        """Where the cursor goes after a step: the bad access, an attach, the event's address.
        Going back, what the last event applied now (``▶``, what the views show) touched."""
        if result is None or not self.follow or not result.moved:
            return None, None
        s = self.session
        if result.reports:
            r = result.reports[-1]
            return self._report_pfn(r), r.first_bad_addr
        if result.position < result.previous:
            if s.position == 0:
                return None, None  # no event applied: the cursor stays
            latest = s.latest_report()
            if latest is not None and latest.event_index == s.position - 1:
                return self._report_pfn(latest), latest.first_bad_addr
            addr = s.event_address(s.position - 1)
            return (machine_view(s).addr_to_pfn(addr), addr) if addr is not None else (None, None)
        mine = [a for a in result.attach if a.scheme == s.shown and a.pfn is not None]
        addr = s.event_address(result.position - 1)
        if addr is not None:
            pfn = machine_view(s).addr_to_pfn(addr)
            if pfn is not None or not mine:
                return pfn, addr
        if mine:
            a = mine[-1]
            return a.pfn, None
        return None, None

    def _select_pfn(
        self, pfn: int | None, follow_addr: int | None = None, from_map: bool = False
    ) -> None:
        s = self.session
        p = s.profile
        if pfn is None and follow_addr is not None:
            pfn = self.pfn
        if pfn is None:
            return
        self.pfn = pfn
        if follow_addr is not None:
            self.addr = follow_addr
        elif p.is_lowmem_pfn(pfn) and p.pfn_valid(pfn):
            self.addr = machine_view(s).page_address(pfn)
        else:
            self.addr = None
        if not from_map:
            self.query_one(PageMap).select(pfn)
        self._refresh_details()

    def _refresh_details(self) -> None:
        s = self.session
        shadow = self.query_one(ShadowBytes)
        report = s.latest_report()
        bad = report.first_bad_addr if report is not None else None
        if self.addr is None:
            note = (
                "no shadow: a hole in the memory map"
                if not s.profile.pfn_valid(self.pfn)
                else "no shadow: highmem has no direct map"
            )
            shadow.show(None, None, note=note)
            self._set_title("#shadow-pane", f"shadow bytes · pfn {self.pfn:#x}")
        else:
            shadow.show(
                machine_view(s).shadow_reader(s.shown), self.addr, selected=self.addr, bad=bad
            )
            w = s.profile.bits // 4
            base = self.addr - self.addr % s.profile.page_size
            link = self.view.link(self.pfn) if self.pfn is not None else None
            title = f"shadow of {base:0{w}x} · pfn {self.pfn:#x}"
            if link and s.shown != "flat":
                title += f" · {link}"
            self._set_title("#shadow-pane", title)
        active = self.tab
        if active == "structpage":
            self.query_one(StructPageView).show(s, self.pfn)
        elif active == "shadowslab":
            slab = self.query_one(ShadowSlabView)
            slab.refresh_view(s, self.view)
            slab.select_pfn(self.pfn)
        pm = self.query_one(PageMap)
        zoom = f" · {pm.ppc} pages/cell" if pm.ppc > 1 else ""
        self._set_title(
            "#map-pane",
            f"page map · {s.shown} · pfn {self.pfn:#x}{zoom} · "
            f"{pm.source.describe(self.pfn) if pm.source else ''}",
        )

    def _set_title(self, selector: str, title: str) -> None:
        """Set a pane's border title (repainting its top border when it changes)."""
        self.query_one(selector, Pane).set_title(title)

    def _refresh_report(self, result: StepResult | None) -> None:
        s = self.session
        reports = s.reports
        key = (len(reports), id(reports[-1]) if reports else None)
        if key == self._last_report_key:
            return
        self._last_report_key = key
        report = reports[-1] if reports else None
        line = None
        if report is not None and report.event_index is not None:
            line = s.events[report.event_index].line
        self.query_one(ReportView).show(
            report, len(reports) if reports else None, len(reports), line
        )
        if result is not None and result.reports:
            self.show_tab("report")

    def _refresh_status(self, result: StepResult | None) -> None:
        s = self.session
        from rich.text import Text

        def colour(name: str) -> Style:
            return self.get_component_rich_style(f"status--{name}", partial=True)

        t = Text()
        t.append(f"event {s.position}/{s.total}", "bold")
        if s.loading:  # a trace still being read: more events to come
            t.append(f"+ (reading {s.load_fraction():.0%})", colour("stop"))
        last = s.last_event()
        if last is not None:
            t.append(f"  line {last.line}: ", colour("label"))
            t.append(s.event_text(s.position - 1)[:60])
        extra = []
        if result is not None:
            if result.reports and result.moved and result.position > result.previous:
                extra.append(
                    (
                        "KASAN: " + ", ".join(r.bug_type for r in result.reports[-3:]),
                        colour("bad") + Style(bold=True),
                    )
                )
            mine = [a for a in result.attach if a.scheme == s.shown]
            if mine:
                # going back, the changes are those of the events stepped back over, undone:
                # said so, not read as the work of the event now shown
                undone = "stepped back: " if result.position < result.previous else ""
                extra.append(
                    (
                        undone
                        + "; ".join(a.describe().split(": ", 1)[1] for a in mine[:2])
                        + (" …" if len(mine) > 2 else ""),
                        colour("attach"),
                    )
                )
            if result.stopped and result.stopped not in ("end", "limit", "report", None):
                extra.append((f"[{result.stopped}]", colour("stop")))
            elif result.stopped == "end" and s.at_end:
                extra.append(("[end of workload]", colour("stop")))
        for text, style in extra:
            t.append("   ")
            t.append(text, style)
        if s.breakpoints:
            t.append(f"   ● {len(s.breakpoints)}", colour("bad"))
        # the next event last: a narrow status line cuts it first (the log highlights it)
        nxt = s.next_event()
        t.append("   next: ", colour("label"))
        t.append(
            f"line {nxt.line}: {s.event_text(s.position)[:40]}"
            if nxt
            else "not read yet"
            if s.loading
            else "end of workload",
            colour("next"),
        )
        self.query_one("#status", TextLines).set_text(t)
        sub = (
            f"{workload_name(s.path)} · {s.profile.name} {format_size(s.profile.mem_total)}"
            f" · scheme {s.shown}"
        )
        if self.app.sub_title != sub:
            self.app.sub_title = sub

    def _set_status(self, text: str) -> None:
        self.query_one("#status", TextLines).set_text(text)

    # ---------------------------------------------------------------- widget messages

    @on(PageMap.PfnSelected)
    def _pfn_selected(self, message: PageMap.PfnSelected) -> None:
        self._select_pfn(message.pfn, from_map=True)

    @on(ShadowBytes.GranuleSelected)
    def _granule_selected(self, message: ShadowBytes.GranuleSelected) -> None:
        self.addr = message.addr

    @on(ShadowSlabView.PfnChosen)
    def _slab_pfn(self, message: ShadowSlabView.PfnChosen) -> None:
        self._select_pfn(message.pfn)

    @on(EventLog.LineClicked)
    def _line_clicked(self, message: EventLog.LineClicked) -> None:
        if self.running:
            return
        index = self.session.index_of_line(message.line)
        if index is not None:
            self._go_to_position(index + 1)

    @on(TabBar.Chosen)
    def _tab_chosen(self, message: TabBar.Chosen) -> None:
        self.show_tab(message.tab)

    @property
    def tab(self) -> str:
        """The detail view shown: report, structpage, shadowslab or footprint."""
        current = self.query_one("#detail-views", ContentSwitcher).current
        assert current is not None  # (compose() sets it)
        return current

    def show_tab(self, tab: str) -> None:
        """Show a detail view, brought up to date."""
        if tab == self.tab:
            return
        self.query_one("#detail-views", ContentSwitcher).current = tab
        self.query_one(TabBar).set_active(tab)
        if tab == "shadowslab":
            slab = self.query_one(ShadowSlabView)
            slab.refresh_view(self.session, self.view)
            slab.select_pfn(self.pfn)
        elif tab == "structpage":
            self.query_one(StructPageView).show(self.session, self.pfn)
        elif tab == "footprint":
            self.query_one(FootprintPlot).update_plot()

    # ---------------------------------------------------------------- commands

    def action_next_scheme(self) -> None:
        names = self.session.scheme_names
        i = names.index(self.session.shown)
        self.show_scheme(names[(i + 1) % len(names)])

    def show_scheme(self, name: str) -> None:
        if self.running:
            return
        try:
            result = self.session.set_shown_scheme(name)
        except KinspectError as e:
            self.notify(str(e), severity="error")
            return
        view = self._view(name)
        self.query_one(PageMap).set_source(SessionPages(self.session, view))
        self.query_one(EventLog).set_session(self.session, name)
        self._update_map_legend()
        self._refresh_all(result)
        self._select_pfn(self.pfn, follow_addr=self.addr)

    def action_zoom(self, delta: int) -> None:
        pm = self.query_one(PageMap)
        pm.set_zoom(pm.zoom + delta)
        self._refresh_details()

    def action_next_tab(self) -> None:
        order = [tab for tab, _label in DETAIL_TABS]
        self.show_tab(order[(order.index(self.tab) + 1) % len(order)])

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.notify(
            f"follow {'on' if self.follow else 'off'}: the cursor "
            f"{'moves to' if self.follow else 'stays, whatever'} each step touches"
        )

    def action_maximize_pane(self) -> None:
        if self.maximized is not None:
            self.minimize()
        elif self.focused is not None:
            self.maximize(self.focused)

    def action_copy_address(self) -> None:
        if self.addr is None:
            self.notify("nothing selected has an address", severity="warning")
            return
        w = self.session.profile.bits // 4
        text = f"{self.addr:0{w}x}"
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {text}")

    def action_copy_row(self) -> None:
        row = None
        if self.addr is not None:
            row = self.query_one(ShadowBytes).row_text_at(self.addr)
        if row is None:
            self.notify("no shadow row selected", severity="warning")
            return
        self.app.copy_to_clipboard(row.strip())
        self.notify("copied the shadow row")

    def action_attached(self, direction: int) -> None:
        att = self.view.attached
        if not att:
            self.notify(f"{self.session.shown}: no page has shadow attached now")
            return
        if direction > 0:
            i = bisect_right(att, self.pfn)
            pfn = att[i] if i < len(att) else att[0]
        else:
            i = bisect_left(att, self.pfn) - 1
            pfn = att[i]
        self._select_pfn(pfn)

    def action_poisoned(self, direction: int) -> None:
        found = find_poisoned_granule(self.session, self.addr, direction)
        if found is None:
            self.notify("no poisoned granule in an allocated page that way")
            return
        self._select_pfn(machine_view(self.session).addr_to_pfn(found), follow_addr=found)

    def action_goto(self) -> None:
        self.app.push_screen(
            PromptScreen(
                "Go to",
                "an address (0xffff888000100000), a pfn (pfn 0x1234), "
                "or a symbol: a workload variable (buf, buf+8), a global, "
                "a kmem_cache name",
            ),
            self._goto,
        )

    def _goto(self, text: str | None) -> None:
        if not text:
            return
        try:
            pfn, addr = resolve_location(self.session, text)
        except KinspectError as e:
            self.notify(e.message, title="go to", severity="error")
            return
        self._select_pfn(pfn, follow_addr=addr)

    def action_jump(self) -> None:
        s = self.session
        self.app.push_screen(
            PromptScreen(
                "Jump to event",
                f"N (0..{s.total}: the state after N events), or "
                "line L (the state after the event on line L)",
            ),
            self._jump,
        )

    def _jump(self, text: str | None) -> None:
        if not text or self.running:
            return
        s = self.session
        try:
            index = parse_jump(s, text)
        except ValueError:
            self.notify(
                f"not an event number or 'line L': {text!r}", title="jump", severity="error"
            )
            return
        except KinspectError as e:
            self.notify(e.message, title="jump", severity="error")
            return
        self._go_to_position(index)

    def _go_to_position(self, index: int) -> None:
        """The state after ``index`` events: at once, or in the worker when that replays more
        than SYNC_RUN_LIMIT events or waits for a trace still being read."""
        s = self.session
        if index > s.total:  # not read yet: the jump follows the reading
            self._run_in_worker(
                f"jumping to event {index} as the trace is read",
                lambda cancelled, progress: s.jump(
                    index, wait=True, cancelled=cancelled, progress=progress
                ),
            )
        elif s.replay_cost(index) > SYNC_RUN_LIMIT:  # a long replay: not on the keys
            self._run_in_worker(
                f"jumping to event {index}",
                lambda cancelled, progress: s.jump(index, cancelled=cancelled, progress=progress),
                cancellable=index > s.position,
            )
        else:
            self.post_message(StepApplied(s.jump(index)))

    # ---------------------------------------------------------------- search

    # The event log's selection is the session's position: a click on a line jumps there, and
    # ``▶`` marks the last event applied, which every view shows. So a match moves the
    # session (a jump, in the worker when long), and the views show that event's state; a
    # match in a comment goes to the state after the events above it (the comment sits
    # between ``▶`` and the next event), and is marked in its row.

    def action_search(self) -> None:
        self.app.push_screen(
            PromptScreen(
                "Find in the event log",
                "text as the log shows it, any case (a call site, ptr=ffff8881..., a "
                "cache name, a comment): forward from the cursor, n next, N "
                "previous",
                value=self.search_query,
            ),
            self._search,
        )

    def _search(self, text: str | None) -> None:
        if text:
            self.search_query = text
            self.action_search_again(1)

    def action_search_again(self, direction: int) -> None:
        if not self.search_query:
            self.action_search()
            return
        if self.running or self._search_worker is not None:
            self.notify("a search or a run is going on (escape stops it)", title="find")
            return
        log = self.query_one(EventLog)
        s = self.session
        after = log.row_of_position(s.position)
        if log.found is not None and self._found_at == s.position:
            after = log.found[0]  # a match in a comment: on from it, not from ▶
        self._set_status(f"finding {self.search_query!r}… (escape stops)")
        self._search_worker = self.search_in_thread(log, self.search_query, after, direction)
        self.refresh_bindings()

    @work(thread=True, exclusive=True, group="search")
    def search_in_thread(self, log: EventLog, query: str, after: int, direction: int) -> None:
        """The log's rows as text (2 s for the 573 377 events of the real trace): in a thread,
        escape stops it."""
        worker = get_current_worker()

        def cancelled() -> bool:
            time.sleep(0)  # the GIL to the UI's thread, if it waits for it (keys)
            return worker.is_cancelled

        found = log.find(query, after, direction, cancelled=cancelled)
        self.post_message(SearchDone(query, direction, found, worker.is_cancelled))

    def on_search_done(self, message: SearchDone) -> None:
        self._search_worker = None
        self.refresh_bindings()
        self._refresh_status(None)
        if message.cancelled:
            self.notify("search stopped", title="find")
            return
        if message.found is None:
            self.notify(f"not found: {message.query!r}", title="find", severity="warning")
            return
        row, wrapped = message.found
        log = self.query_one(EventLog)
        log.set_found((row, message.query))
        self._found_at = log.position_of_row(row)
        if wrapped:
            self.notify(
                "search hit BOTTOM, continuing at TOP"
                if message.direction > 0
                else "search hit TOP, continuing at BOTTOM",
                title="find",
            )
        if self._found_at != self.session.position and not self.running:
            self._go_to_position(self._found_at)

    def action_breakpoint(self) -> None:
        s = self.session
        current = ", ".join(b.describe() for b in s.breakpoints) or "none"
        nxt = s.next_event()
        self.app.push_screen(
            PromptScreen(
                "Breakpoint (set, or clear if set)",
                f"line L · an address or symbol (buf+8) · pfn P · attach · clear\n"
                f"set now: {current}",
                value=f"line {nxt.line}" if nxt else "",
            ),
            self._breakpoint,
        )

    def action_clear_breakpoints(self) -> None:
        self._breakpoint("clear")

    def _breakpoint(self, text: str | None) -> None:
        if not text:
            return
        s = self.session
        try:
            if text == "clear":
                s.breakpoints.clear()
                self.notify("breakpoints cleared")
            else:
                bp = parse_breakpoint(s, text)
                on = s.toggle_breakpoint(bp)
                self.notify(f"breakpoint {'set' if on else 'cleared'}: {bp.describe()}")
        except KinspectError as e:
            self.notify(e.message, title="breakpoint", severity="error")
            return
        except ValueError:
            self.notify(f"not a breakpoint: {text!r}", title="breakpoint", severity="error")
            return
        self.query_one(EventLog).refresh()
        self._refresh_status(None)
