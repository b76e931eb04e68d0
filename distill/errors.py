"""The two kinds of ending that are not bugs: a problem the user can fix, and a cancelled run.

Each module defines its own errors as subclasses of :class:`UserError` (``ConfigError``,
``DataFormatError``, ``SuiteError``, ``EngineError``, …); the CLI and the worker show any of them as
one line, never as a traceback.
"""


class UserError(Exception):
    """Bad input or an unreachable resource; the message is one line naming what was wrong."""


class RunCancelled(Exception):
    """The run was asked to stop; what was saved so far is consistent (checkpoint, logs, answers)."""
