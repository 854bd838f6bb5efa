"""The one exception family of jobd: every error a user can meet is a `JobdError`.

Driver and library errors are wrapped once, with `from exc`, at the boundary where they
happen; the CLI turns any `JobdError` into a message and an exit code, never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class JobdError(Exception):
    """Base of all jobd errors. `exit_code` is what the CLI exits with."""

    exit_code = 1


class UsageError(JobdError):
    """Bad command-line usage or input: a clear message, exit 2."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file, located as precisely as we can."""

    file: str
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    path: str  # dotted key path, e.g. "resources.orders.triggers.process.scheduler_cron"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(JobdError):
    """The configuration is invalid; carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class DatabaseError(JobdError):
    """The database could not be reached or refused an operation jobd needed."""


class RowNotFound(UsageError):
    """A request named a row that does not exist (in the tenant given)."""


class UnknownTrigger(UsageError):
    """No such resource, trigger or scheduled action (or it is deleted)."""


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice `name` most likely meant: the same name in another case, else the
    closest spelling (difflib, cutoff 0.6); None when nothing is close."""
    known = list(choices)
    same = [c for c in known if c.lower() == name.lower() and c != name]
    if same:
        return same[0]
    close = difflib.get_close_matches(name, known, n=1)
    return close[0] if close else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A hint for an unknown `name`: "did you mean 'x'?", else the known names."""
    known = sorted(choices)
    match = closest(name, known)
    if match is not None:
        return f"did you mean {match!r}?"
    return f"known: {', '.join(known)}" if known else "none are defined"
