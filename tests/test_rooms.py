"""The layout's rule (docs/architecture.md, "Rooms"): a module imports only from its own room and
the rooms listed before it, and the rooms below the UI import neither textual nor rich.  Read
from the syntax trees of kinspect/*: nothing is imported or run."""

from __future__ import annotations

import ast

from conftest import ROOT

PACKAGE = ROOT / "kinspect"
# The rooms, lowest first.  engine/errors.py is the error hierarchy every room raises: any room
# may import it (data/, below the engine, raises its WorkloadError).
ROOMS = [
    "data",
    "engine",
    "session",
    "reports",
    "vmcore",
    "widgets",
    "screens",
    "app",
    "commands",
    "cli",
]
UI_ROOMS = {"widgets", "screens", "app"}
ANYWHERE = {"kinspect.engine.errors"}


def room_of(module: str) -> str | None:
    """The room of a module of the package (``kinspect.serve`` is the Apps' web server)."""
    parts = module.split(".")
    if parts[0] != "kinspect" or len(parts) < 2:
        return None
    return {"serve": "app"}.get(parts[1], parts[1])


def imports(path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module of the package."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if path.name == "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, name))
    return found


def violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mine = room_of(module)
        for line, name in imports(path):
            where = f"{path.relative_to(ROOT)}:{line}: {name}"
            if mine not in UI_ROOMS and name.split(".")[0] in ("textual", "rich"):
                out.append(f"{where} (below the UI)")
            theirs = room_of(name)
            if (
                mine in ROOMS
                and theirs in ROOMS
                and name not in ANYWHERE
                and ROOMS.index(theirs) > ROOMS.index(mine)
            ):
                out.append(f"{where} (from {mine}/ up to {theirs}/)")
    return out


def test_the_check_reads_relative_imports_as_the_interpreter_does():
    got = dict((name, line) for line, name in imports(PACKAGE / "widgets" / "event_log.py"))
    assert "kinspect.widgets.base_style" in got
    assert room_of("kinspect.serve") == "app" and room_of("kinspect.cli") == "cli"


def test_no_module_imports_a_room_above_its_own():
    assert violations() == []
