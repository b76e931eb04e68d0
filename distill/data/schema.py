"""The normalized example every data source is turned into, and the data errors."""

from __future__ import annotations

from dataclasses import dataclass

from distill.errors import UserError


@dataclass(frozen=True)
class ReasoningExample:
    prompt: str
    reasoning: str
    answer: str
    system: str | None = None
    # The short final answer ("42") when the source lets us know it; evaluation compares against it.
    ground_truth: str | None = None
    domain: str | None = None


class BadRow(ValueError):
    """One row cannot be used; `reason` is a short code that data reports count by."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class DataFormatError(UserError, ValueError):
    """A whole file (or source) is not in a supported format; the message is one line naming where."""


class DataSourceError(UserError, RuntimeError):
    """A data source could not be opened at all (e.g. the Hub is unreachable)."""
