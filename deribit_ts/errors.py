"""Errors a person can act on.

Anything raised as a ``UserError`` reaches the terminal as one line on stderr and a
non-zero exit status, never as a traceback. The message says what went wrong and,
where there is one, what to do about it.
"""


class UserError(Exception):
    """A failure the user can fix: bad input, an unreachable service, a refused migration."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class DatabaseUnavailable(UserError):
    """The database could not be reached or refused the connection."""

    exit_code = 2


class ExchangeUnavailable(UserError):
    """The exchange (or the simulator standing in for it) could not be reached."""

    exit_code = 3


class UsageError(UserError):
    """A flag or environment variable with a value that cannot be right (empty, malformed, out of range).

    Raised before anything is written; exits 2 like every other usage error of the command line.
    """

    exit_code = 2


class DiskFull(UserError):
    """The database server ran out of disk space while writing (what was being written is rolled back)."""

    exit_code = 2
