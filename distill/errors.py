"""The two kinds of ending that are not bugs: a problem the user can fix, and a cancelled run.

Each module defines its own errors as subclasses of :class:`UserError` (``ConfigError``,
``DataFormatError``, ``SuiteError``, ``EngineError``, …); the CLI and the worker show any of them as
one line, never as a traceback.
"""


class UserError(Exception):
    """Bad input or an unreachable resource; the message is one line naming what was wrong."""


class RunCancelled(Exception):
    """The run was asked to stop; what was saved so far is consistent (checkpoint, logs, answers)."""


def first_line(err: BaseException) -> str:
    """The first line of an error's message (a driver's or a library's detail follows it), or its type's name."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def one_line(err: BaseException) -> str:
    """The whole message on one line (whitespace collapsed), at most 300 characters, or the type's name."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."
