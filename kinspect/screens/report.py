"""The report screen (``kinspect tui --report FILE``): real KASAN reports, one at a time.

A summary (title, bug type, the access, the machine, where the access fell), the memory state
as a coloured grid with the first bad granule and the object's region marked, the legend of
every byte in it (decoded by :mod:`kinspect.reports.explain` for the report's era and mode), and
the stacks (symbolized when a vmlinux was given) with the page.  ``n``/``p`` go through the
reports of the log, ``l`` lists them, ``/`` finds text in them, ``i`` re-enacts the shown report
in the engine (:func:`~kinspect.reports.explain.replay_workload`) and asks the App
(:class:`kinspect.app.ReportApp`, by a :class:`ReportScreen.OpenReplay` message) to open it in
the inspector; ``escape`` there comes back.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.style import Style
from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Label, OptionList, Static

from kinspect.engine.tables import count
from kinspect.reports.explain import ReplayUnsupported, replay_workload
from kinspect.reports.kreport import KasanReport
from kinspect.reports.reading import ExplainedReport
from kinspect.screens.commands import Command, bindings
from kinspect.screens.dialogs import PromptScreen
from kinspect.widgets.kreport_view import MemoryStateGrid, legend_text, stacks_text, summary_text
from kinspect.widgets.text_lines import TextLines


class ReportListScreen(ModalScreen[int | None]):
    """Every report of the log by its title; Enter shows one, Escape closes."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="report_list.cancel")]
    # the colour of a report's function after its title (kinspect.tcss)
    COMPONENT_CLASSES = {"report-list--function"}

    DEFAULT_CSS = """
    ReportListScreen { align: center middle; }
    #report-list { width: 120; max-width: 95%; height: 80%; padding: 1 2;
                   border: thick $accent; background: $surface; }
    #report-list-title { text-style: bold; }
    #report-options { height: 1fr; }
    """

    def __init__(self, reports: list[ExplainedReport], current: int) -> None:
        super().__init__()
        self.reports = reports
        self.current = current

    def compose(self):
        with Vertical(id="report-list"):
            yield Label(
                f"{count(len(self.reports), 'KASAN report')} (enter shows one, escape closes)",
                id="report-list-title",
            )
            yield OptionList(id="report-options")

    @staticmethod
    def _entry(i: int, rep: KasanReport, function_style: Style) -> Text:
        """The title of one report, and the function of its BUG line (titles repeat)."""
        t = Text(f"{i + 1:>4}  line {rep.line:<7} {rep.title or 'KASAN: ' + rep.bug_type}")
        if rep.function:
            t.append(f"  {rep.function}", function_style)
        return t

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        # filled here, where the component class is styled
        function_style = self.get_component_rich_style("report-list--function", partial=True)
        options.add_options(
            [self._entry(i, r.report, function_style) for i, r in enumerate(self.reports)]
        )
        options.highlighted = self.current
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option_index)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReportScreen(Screen):
    """One report of the log at a time."""

    class OpenReplay(Message):
        """Step through this replay workload in the inspector (the App opens it)."""

        def __init__(self, lines: list[str], profile: str, name: str, notes: Iterable[str]) -> None:
            super().__init__()
            self.lines, self.profile, self.name, self.notes = lines, profile, name, notes

    ACTIONS = [
        Command(
            "report(1)",
            "Next report",
            "the next report of the log",
            key="n",
            id="report.next",
            tooltip="Show the next report of the log",
        ),
        Command(
            "report(-1)",
            "Previous report",
            "the previous report of the log",
            key="p",
            id="report.prev",
            label="Prev report",
            tooltip="Show the previous report of the log",
        ),
        Command(
            "list",
            "List the reports",
            "every report of the log by title",
            key="l",
            id="report.list",
            label="Reports",
            tooltip="List the reports of the log by title",
        ),
        Command(
            "inspect",
            "Inspect the replay",
            "re-enact this report in the engine and step through it",
            key="i",
            id="report.inspect",
            label="Inspect replay",
            tooltip="Re-enact this report in the engine and step through it in the "
            "inspector (escape comes back)",
        ),
        Command(
            "search",
            "Find…",
            "text in the reports: a function, an address, a cache",
            key="slash",
            id="report.search",
            label="Find",
            tooltip="Find text in the reports (a function, an address, a cache); / and "
            "enter again finds the next match",
        ),
        Command(
            "app.help",
            "Keys",
            "show or hide the keys",
            key="question_mark,f1",
            id="report.help",
            tooltip="Show or hide the keys",
        ),
        Command(
            "search_again(1)",
            "Find next",
            "the next match of {screen.search_query!r}",
            when=lambda screen: bool(screen.search_query),
        ),
        Command(
            "search_again(-1)",
            "Find previous",
            "the previous match of {screen.search_query!r}",
            when=lambda screen: bool(screen.search_query),
        ),
    ]
    BINDINGS = bindings(ACTIONS)
    # the report's texts' colours (kreport_view.Styles; kinspect.tcss): secondary facts, an
    # incomplete report, the bug type, a frame's file:line
    COMPONENT_CLASSES = {"kreport--dim", "kreport--warn", "kreport--bug", "kreport--location"}

    # Narrow (< 120 columns): the panes one under the other, the whole screen scrolls (tab to a
    # pane scrolls it into view).
    DEFAULT_CSS = """
    #report-main { height: 1fr; }
    #report-summary { height: auto; padding: 0 1; background: $boost; }
    #report-body { height: 1fr; }
    #report-left { width: 76; }
    #memory-pane { height: auto; }
    #memory-grid { padding: 0 1; }
    #granule-info { height: auto; padding: 0 1; }
    #legend-pane { height: 1fr; }
    #legend { padding: 0 1; }
    #stacks-pane { width: 1fr; }
    #stacks { padding: 0 1; overflow-x: hidden; }
    ReportScreen.narrow #report-main { overflow-y: auto; }
    ReportScreen.narrow #report-body { layout: vertical; height: auto; }
    ReportScreen.narrow #report-left { width: 1fr; height: auto; }
    ReportScreen.narrow #legend-pane { height: auto; }
    ReportScreen.narrow #stacks-pane { width: 1fr; height: 24; }
    """

    def __init__(self, reports: list[ExplainedReport], path: str, symbolized: bool = False) -> None:
        super().__init__()
        self.reports = reports
        self.path = path
        self.symbolized = symbolized
        self.index = 0
        self.search_query = ""
        self.found: tuple[int, int] | None = None  # (report, line) of the last match
        self._search_lines: dict[int, list[tuple[str, int, str]]] = {}

    def compose(self):
        yield Header(show_clock=False, icon="≡")
        with Vertical(id="report-main"):
            yield Static("", id="report-summary")
            with Horizontal(id="report-body"):
                with Vertical(id="report-left"):
                    with Vertical(id="memory-pane", classes="pane"):
                        yield MemoryStateGrid(id="memory-grid")
                        yield Static("", id="granule-info")
                    with VerticalScroll(id="legend-pane", classes="pane"):
                        yield Static("", id="legend")
                with Vertical(id="stacks-pane", classes="pane"):
                    yield TextLines(id="stacks", wrap=True)  # long frames fold
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#legend-pane").border_title = "the bytes of the dump, decoded"
        self.query_one("#stacks-pane").border_title = (
            "stacks, symbolized · the page" if self.symbolized else "stacks · the page"
        )
        self.show_report(0)
        self.query_one(MemoryStateGrid).focus()
        self._apply_width(self.app.size.width)

    def on_screen_resume(self) -> None:
        self._set_sub_title()

    def on_resize(self, event) -> None:
        self._apply_width(event.size.width)

    def _apply_width(self, width: int) -> None:
        narrow = width < 120
        self.set_class(narrow, "narrow")
        self.query_one(Footer).compact = narrow

    @property
    def shown(self) -> ExplainedReport:
        return self.reports[self.index]

    def show_report(self, index: int) -> None:
        """Show report ``index`` (0-based) of the log."""
        self.index = index
        item = self.shown
        rep, exp = item.report, item.explanation
        self.query_one("#report-summary", Static).update(
            summary_text(rep, exp, index, len(self.reports), self._style)
        )
        grid = self.query_one(MemoryStateGrid)
        grid.show(rep, exp)
        self._show_granule(grid.current)
        title = "memory state around the buggy address"
        if grid.object_region is not None and rep.memory_rows and grid.granule is not None:
            first = rep.memory_rows[0].addr
            last = rep.memory_rows[-1].addr + grid.granule * len(rep.memory_rows[-1].values)
            lo, hi = grid.object_region
            if lo < first:
                title += " · the region starts above"
            if hi > last:
                title += " · the region goes on below"
        self.query_one("#memory-pane").border_title = title
        self.query_one("#legend", Static).update(legend_text(rep, exp, self._style))
        self.query_one("#legend-pane").scroll_home(animate=False)
        self.query_one("#stacks", TextLines).set_text(
            stacks_text(rep, item.stacks, self._style), scroll_home=True
        )
        self._set_sub_title()
        self.refresh_bindings()

    def _style(self, role: str) -> Style:
        """A role of the report's texts (kreport_view.Styles): component class kreport--ROLE."""
        return self.get_component_rich_style(f"kreport--{role}", partial=True)

    def _set_sub_title(self) -> None:
        self.app.sub_title = f"{self.path} · report {self.index + 1} of {len(self.reports)}"

    def _show_granule(self, addr: int | None) -> None:
        info = self.query_one("#granule-info", Static)
        text = self.query_one(MemoryStateGrid).describe(addr)
        info.display = bool(text)
        info.update(text)

    @on(MemoryStateGrid.GranuleSelected)
    def _granule_selected(self, message: MemoryStateGrid.GranuleSelected) -> None:
        self._show_granule(message.addr)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "report":
            if len(self.reports) == 1:
                return False
            step = parameters[0]
            assert isinstance(step, int)
            return 0 <= self.index + step < len(self.reports) or None
        if action == "list":
            return len(self.reports) > 1
        return True

    def action_report(self, step: int) -> None:
        index = self.index + step
        if 0 <= index < len(self.reports):
            self.show_report(index)

    def action_list(self) -> None:
        def chosen(index: int | None) -> None:
            if index is not None:
                self.show_report(index)

        self.app.push_screen(ReportListScreen(self.reports, self.index), chosen)

    # ------------------------------------------------------------------ search

    def searched_lines(self, index: int) -> list[tuple[str, int, str]]:
        """Report ``index``'s text as the screen shows it: (pane, line in the pane, text) for
        the summary, the decoded bytes and the stacks (made once, when first searched)."""
        lines = self._search_lines.get(index)
        if lines is None:
            item = self.reports[index]
            rep, exp = item.report, item.explanation
            lines = self._search_lines[index] = [
                (pane, n, line)
                for pane, text in (
                    ("summary", summary_text(rep, exp, index, len(self.reports))),
                    ("legend", legend_text(rep, exp)),
                    ("stacks", stacks_text(rep, item.stacks)),
                )
                for n, line in enumerate(text.plain.splitlines())
            ]
        return lines

    def find(self, query: str, direction: int = 1) -> tuple[int, int, bool] | None:
        """The next (or previous) line holding ``query`` in any case, from the last match in
        the report shown, else from its start (its end, going back), on through the reports
        of the log and round: (report, line of ``searched_lines``, whether it wrapped)."""
        query = query.casefold()
        total = len(self.reports)
        if self.found is not None and self.found[0] == self.index:
            line = self.found[1] + direction
        else:
            line = 0 if direction > 0 else len(self.searched_lines(self.index)) - 1
        for step in range(total + 1):
            index = (self.index + direction * step) % total
            lines = self.searched_lines(index)
            if step:
                line = 0 if direction > 0 else len(lines) - 1
            span = range(line, len(lines)) if direction > 0 else range(line, -1, -1)
            for k in span:
                if query in lines[k][2].casefold():
                    wrapped = (index - self.index) * direction < 0 or (
                        index == self.index and step > 0
                    )
                    return index, k, wrapped
        return None

    def action_search(self) -> None:
        def chosen(text: str | None) -> None:
            if text:
                self.search_query = text
                self.action_search_again(1)

        self.app.push_screen(
            PromptScreen(
                "Find in the reports",
                "text as the screen shows it, any case (a function, an address, a "
                "cache name): on from the last match; / and enter again for the next",
                value=self.search_query,
            ),
            chosen,
        )

    def action_search_again(self, direction: int) -> None:
        if not self.search_query:
            self.action_search()
            return
        found = self.find(self.search_query, direction)
        if found is None:
            self.notify(f"not found: {self.search_query!r}", title="find", severity="warning")
            return
        index, k, wrapped = found
        if index != self.index:
            self.show_report(index)
        self.found = (index, k)
        pane, line, text = self.searched_lines(index)[k]
        if pane == "stacks":
            stacks = self.query_one("#stacks", TextLines)
            stacks.scroll_to(y=stacks.row_of_line(line), animate=False)
        elif pane == "legend":
            self.query_one("#legend-pane").scroll_to(y=line, animate=False)
        self.notify(
            ("search wrapped: " if wrapped else "") + f"report {index + 1}, {pane}: {text.strip()}",
            title="find",
        )

    def action_inspect(self) -> None:
        rep = self.shown.report
        try:
            plan = replay_workload(rep)
        except ReplayUnsupported as e:
            self.notify(str(e), title="this report cannot be replayed", severity="warning")
            return
        self.post_message(
            self.OpenReplay(
                plan.lines, plan.profile, f"replay of {rep.path}:{rep.line}", plan.notes
            )
        )
