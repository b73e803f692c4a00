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
