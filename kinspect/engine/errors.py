"""One error hierarchy for everything kinspect reads.

Every error names the file (and, where known, the line and column) it is about,
so the command line can print ``kinspect: FILE:LINE:COL: what is wrong`` and the
UI can show the same text in a notification.
"""

from __future__ import annotations


class KinspectError(Exception):
    """Bad input: a profile, workload, trace, report or ELF that kinspect cannot use."""

    def __init__(
        self, message: str, path: str | None = None, line: int | None = None, col: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.col = col

    def location(self) -> str:
        """``FILE:LINE:COL`` (as much of it as is known)."""
        parts = [self.path or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"


class ProfileError(KinspectError):
    """A malformed or inconsistent architecture profile."""


class WorkloadError(KinspectError):
    """A malformed workload (``.kw``) file."""


class TraceError(KinspectError):
    """A malformed ftrace capture."""


class ReportParseError(KinspectError):
    """A KASAN report that cannot be parsed."""


class SymbolizationError(KinspectError):
    """A vmlinux or module ELF that cannot be read."""
