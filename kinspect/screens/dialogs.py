"""The modal dialogs: a one-line prompt (go to, jump, find, breakpoint) and the help screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from kinspect.widgets import ShadowLegend
from kinspect.widgets.palette import ATTACHED_GLYPH, PAGE_PAINTS, REPORT_PAINT


class PromptScreen(ModalScreen[str | None]):
    """One line of input with a hint; Enter gives the text, Escape gives None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]

    def __init__(self, title: str, hint: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.hint = hint
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.title_text, id="prompt-title")
            yield Input(value=self.value, id="prompt-input")
            yield Label(self.hint, id="prompt-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


# One paragraph, wrapped by the help screen to its width (no newlines of its own).
HELP_INTRO = (
    "kinspect steps through a workload on a simulated Linux 6.12 kernel with generic KASAN. "
    "Each event is one kernel call (kmalloc, kfree, alloc_pages...) or one instrumented "
    "access. Every shadow scheme runs at once on the same machine: flat (mainline), pshadow "
    "(Kim 2017), pageptr (Vyukov 2017) and pageext (Murzin 2017); `s` chooses which one the "
    "views show.\n"
)


class HelpScreen(ModalScreen[None]):
    """The key map and the colour legends."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close", id="help.close")]
    # the key map's colours (kinspect.tcss): a key, its tip
    COMPONENT_CLASSES = {"help--key", "help--tip"}

    def __init__(self, bindings: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.keymap = bindings

    def compose(self) -> ComposeResult:
        from rich.text import Text

        pages = Text()
        for code, paint in PAGE_PAINTS.items():
            glyph = paint.glyph if paint.glyph != " " else "␠"
            pages.append(f" {glyph} ", paint.rich())
            up = ATTACHED_GLYPH[code]
            pages.append(
                f"{paint.meaning}"
                + (f" ({up} with shadow attached)" if up != paint.glyph else "")
                + "\n"
            )
        pages.append(f" {REPORT_PAINT.glyph} ", REPORT_PAINT.rich())
        pages.append(f"{REPORT_PAINT.meaning}\n")
        with VerticalScroll(id="help"):
            yield Static(Text("kinspect — help (Escape closes)", "bold"))
            yield Static(HELP_INTRO)
            yield Static(Text("Keys", "bold underline"))
            yield Static(id="help-keys")  # on_mount: the component classes are styled
            yield Static(
                Text(
                    "\nPage map (one cell = one page, or 2^z pages zoomed out; "
                    "a cell shows its most telling page)",
                    "bold underline",
                )
            )
            yield Static(pages)
            yield Static(
                Text(
                    "Shadow bytes (one byte per 8-byte granule; rows as in the "
                    'kernel\'s "Memory state around the buggy address")',
                    "bold underline",
                )
            )
            yield ShadowLegend()
            yield Static(
                Text(
                    "\nEvent log: ▶ last event applied (what the views show), "
                    "! made a report, + / - attached / detached shadow, "
                    "● breakpoint."
                ),
                id="help-log",
            )

    def on_mount(self) -> None:
        from rich.table import Table
        from rich.text import Text

        key_style = self.get_component_rich_style("help--key", partial=True)
        tip_style = self.get_component_rich_style("help--tip", partial=True)
        keys = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        for key, desc, tip in self.keymap:
            keys.add_row(Text(key, key_style), desc, Text(tip, tip_style))
        self.query_one("#help-keys", Static).update(keys)

    def action_close(self) -> None:
        self.dismiss(None)
