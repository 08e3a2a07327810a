"""The user-error base class: a mistake in what was asked for, not a crash.

The entry point catches `UserError` by type: its message alone goes to stderr and the exit status
is 2 (in a sweep, the job fails with that one line and the sweep goes on). Anything else is a crash
with a traceback (exit status 1). Subclass it for every error whose message tells the user what to
change; never for a bug in the code.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user fixes by changing what they asked for; the message says what and how."""


class ConfigError(UserError, ValueError):
    """Settings that are not allowed; the message has one line per problem: the key, its value, what is allowed."""
