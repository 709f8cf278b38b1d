"""kinspect's Textual Apps: :class:`KinspectApp`, the inspector on a session, and
:class:`ReportApp`, the report screen on the reports of a log (and the inspector on a replay
of one).  The screens are in :mod:`kinspect.screens`; the Apps hold the keys every screen
shares (help, screenshot, quit) and the command palette.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from kinspect.engine.errors import KinspectError
from kinspect.engine.profile import load_profile
from kinspect.engine.workload import parse_workload
from kinspect.reports.reading import ExplainedReport
from kinspect.screens.commands import Command, bindings, palette_commands
from kinspect.screens.dialogs import HelpScreen
from kinspect.screens.inspector import MainScreen
from kinspect.screens.report import ReportScreen
from kinspect.session import Session
from kinspect.widgets import PageMap

SCREENSHOTS_ENV = "KINSPECT_SCREENSHOTS"


def screenshot_dir() -> Path:
    """Where F12 saves its SVGs: ``$KINSPECT_SCREENSHOTS``, else ``kinspect`` in the user's
    pictures directory (XDG_PICTURES_DIR, ~/Pictures: where desktop screenshots go), never
    the working directory (a checkout, a build tree)."""
    env = os.environ.get(SCREENSHOTS_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_pictures_path

    return user_pictures_path() / "kinspect"


class KinspectApp(App):
    """kinspect: a KASAN shadow-memory inspector."""

    CSS_PATH = Path(__file__).resolve().parent / "kinspect.tcss"
    TITLE = "kinspect"
    ACTIONS = [
        Command(
            "svg_screenshot",
            "SVG screenshot",
            "save the screen as SVG",
            key="f12",
            id="screenshot",
            label="Screenshot",
            show=False,
            tooltip="Save an SVG screenshot in $KINSPECT_SCREENSHOTS, else in "
            "kinspect/ under the pictures directory (~/Pictures)",
        ),
        Command("quit", None, key="q", id="quit", label="Quit", tooltip="Quit (also ctrl+q)"),
    ]
    BINDINGS = bindings(ACTIONS)

    def __init__(self, session: Session | None, keymap: dict[str, str] | None = None) -> None:
        super().__init__()
        self.session = session  # (a ReportApp has one only while a replay is open)
        self._keymap = keymap or {}

    def get_default_screen(self) -> Screen:
        assert self.session is not None
        return MainScreen(self.session)

    def on_mount(self) -> None:
        if self._keymap:
            self.set_keymap(self._keymap)

    @property
    def main(self) -> MainScreen:
        return next(s for s in self.screen_stack if isinstance(s, MainScreen))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        rows = []
        seen = set()
        for binding in [*MainScreen.BINDINGS, *self.BINDINGS, *PageMap.BINDINGS]:
            assert isinstance(binding, Binding)  # (bindings() makes Bindings)
            key = ", ".join(
                self.get_key_display(Binding(k.strip(), "x")) for k in binding.key.split(",")
            )
            if key not in seen:
                seen.add(key)
                rows.append((key, binding.description, binding.tooltip))
        rows.append(("↑ ↓ h l", "Granule cursor", "in the shadow bytes pane, when it has focus"))
        rows += [
            ("ctrl+p", "Command palette", "every action, by name"),
            ("ctrl+q", "Quit", ""),
            ("tab", "Next pane", "focus the next pane (then m maximizes it)"),
        ]
        self.push_screen(HelpScreen(rows))

    def action_svg_screenshot(self) -> None:
        """An SVG of the screen in ``screenshot_dir()`` (in a browser: a download)."""
        if self.is_web:
            self.deliver_screenshot()
            return
        directory = screenshot_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = self.save_screenshot(path=str(directory))
        except OSError as e:
            self.notify(
                f"cannot save a screenshot in {directory}: {e.strerror or e} "
                f"(${SCREENSHOTS_ENV} names the directory)",
                title="screenshot",
                severity="error",
            )
            return
        self.notify(f"saved {path}", title="screenshot")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own, then the commands of the screen that has them (the one under a
        dialog), then the App's: each offered when it applies, as its key would be."""
        yield from super().get_system_commands(screen)
        target = next((s for s in reversed(self.screen_stack) if hasattr(s, "ACTIONS")), None)
        if target is not None:
            yield from palette_commands(target, target.ACTIONS)
        if isinstance(target, MainScreen):
            yield from target.scheme_commands()
        for cls in type(self).__mro__:
            if "ACTIONS" in cls.__dict__:
                yield from palette_commands(self, cls.__dict__["ACTIONS"])


class ReportApp(KinspectApp):
    """kinspect on the reports of a log: the report screen, and the inspector on a replay."""

    ACTIONS = [
        Command(
            "close_replay",
            "Back to the report",
            "leave the replay",
            key="escape",
            id="report.back",
            label="Back to the report",
            tooltip="Leave the replay, back to the report screen",
        )
    ]
    BINDINGS = bindings(ACTIONS)

    def __init__(
        self,
        reports: list[ExplainedReport],
        path: str,
        symbolized: bool = False,
        keymap: dict[str, str] | None = None,
    ) -> None:
        super().__init__(None, keymap)  # no session until a replay is opened
        self.reports = reports
        self.path = path
        self.symbolized = symbolized

    def get_default_screen(self) -> Screen:
        return ReportScreen(self.reports, self.path, self.symbolized)

    @property
    def report_screen(self) -> ReportScreen:
        return next(s for s in self.screen_stack if isinstance(s, ReportScreen))

    @property
    def replaying(self) -> bool:
        return any(isinstance(s, MainScreen) for s in self.screen_stack)

    def on_report_screen_open_replay(self, message: ReportScreen.OpenReplay) -> None:
        self.open_replay(message.lines, message.profile, message.name, message.notes)

    def open_replay(
        self, lines: list[str], profile: str, name: str, notes: Iterable[str] = ()
    ) -> None:
        """Open a replay workload (named ``name``) on ``profile`` in the inspector."""
        try:
            session = Session(load_profile(profile), parse_workload(name, lines))
        except KinspectError as e:
            self.notify(str(e), title="replay", severity="error")
            return
        self.session = session
        self.push_screen(MainScreen(session))
        self.notify(
            " ".join(
                [
                    f"{name}, profile {profile}: space steps, r runs to the report, "
                    "escape comes back.",
                    *notes,
                ]
            ),
            title="replay",
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_replay":
            return self.replaying
        return super().check_action(action, parameters)

    def action_close_replay(self) -> None:
        if isinstance(self.screen, MainScreen):
            self.pop_screen()
            self.session = None

    def action_help(self) -> None:
        if self.replaying:
            super().action_help()
        elif self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()
