"""The one exception type a user sees: it names the file (and line) at fault.

The CLI prints `str(error)` and exits non-zero; it never shows a traceback for
these. Anything else escaping is a bug in mmsent, not in the user's input.
"""

from __future__ import annotations

from pathlib import Path


class MmsentError(Exception):
    """A problem with the user's input or settings, reported without a traceback."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        return f"{where}{self.message}"


class BadInput(MmsentError):
    """A data file is missing, unreadable or malformed."""


class BadSetting(MmsentError):
    """A setting given a value it cannot take; `option` is its dotted name (train.lr)."""

    def __init__(self, option: str, problem: str, path: str | Path | None = None):
        self.option, self.problem = option, problem
        super().__init__(f"option {option} {problem}", path)


class UsageError(MmsentError):
    """A bad value typed on the command line: the command's usage and one line, exit 2 (as argparse)."""
