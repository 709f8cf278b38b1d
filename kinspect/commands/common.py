"""What the subcommands share: the machine options and their checks, standard input, and
what is done with stdout once it cannot be written."""

from __future__ import annotations

import argparse
import io
import os
import re
import sys

from kinspect.engine.errors import KinspectError
from kinspect.engine.profile import parse_size

DEFAULT_PROFILE = "x86_64"
STDIN = "-"


def number(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,20}", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return int(text)


def machine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help="a profile name (see `kinspect profiles`) or a .toml file (default: %(default)s)",
    )
    p.add_argument("--mem", help="memory size of the machine, e.g. 1G or 1T")
    p.add_argument(
        "--strict",
        action="store_true",
        help="traces: stop at the first unreadable line (exit 2) instead of counting it",
    )
    p.add_argument(
        "--attach",
        choices=("byte-granular", "always"),
        default="byte-granular",
        help="pageptr/pageext: which pages get a shadow block (default: only "
        "pages that need byte-granular shadow)",
    )


def mem_option(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as e:
        raise KinspectError(str(e), "--mem") from None


def drop_stdout() -> None:
    """After a failed write, what is left in stdout's buffer goes nowhere: Python flushes
    stdout once more at exit, and that write would fail again ("Exception ignored ...")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # not a real file (tests capture it)
