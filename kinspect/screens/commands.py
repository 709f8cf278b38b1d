"""A screen's actions written once: each :class:`Command` is the key binding (the footer's label,
the help screen's tooltip) and the command palette's entry (title, help line) of one action,
so that the two cannot drift apart.  :func:`bindings` makes a screen's ``BINDINGS`` from its
``ACTIONS``; :func:`palette_commands` the palette entries that apply now: those whose action
``check_action`` allows (as the footer would) and whose ``when`` holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from textual.actions import parse
from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.dom import DOMNode


@dataclass(frozen=True)
class Command:
    """One action: ``action`` is a Textual action string (``run('report')``, ``app.help``)."""

    action: str
    title: str | None  # the palette's title (None: not in the palette)
    help: str = ""  # the palette's help line; ``{screen}`` is the screen
    key: str | None = None  # the keys (None: the palette only)
    label: str = ""  # the footer's description (default: the title)
    tooltip: str = ""  # the help screen's text (default: the palette's help)
    id: str | None = None
    show: bool = True  # shown in the footer
    priority: bool = False
    when: Callable[[Any], bool] | None = None  # the palette offers it only when this holds


def bindings(commands: Iterable[Command]) -> list[BindingType]:
    """The key bindings of those commands that have keys, in their order."""
    return [
        Binding(
            c.key,
            c.action,
            c.label or c.title or "",
            show=c.show,
            priority=c.priority,
            tooltip=c.tooltip or c.help,
            id=c.id,
        )
        for c in commands
        if c.key is not None
    ]


def palette_commands(node: DOMNode, commands: Iterable[Command]) -> Iterator[SystemCommand]:
    """The palette entries of ``commands`` (actions of ``node``, or of its app for
    ``app.``) that apply now."""
    for c in commands:
        if c.title is None or (c.when is not None and not c.when(node)):
            continue
        namespace, name, params = parse(c.action)
        target: DOMNode = node.app if namespace == "app" else node
        if target.check_action(name, params) is not True:
            continue
        method = getattr(target, f"action_{name}")
        yield SystemCommand(
            c.title,
            c.help.format(screen=node),
            lambda method=method, params=params: method(*params),
        )
