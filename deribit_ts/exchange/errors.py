"""What a failed exchange call raises."""

from __future__ import annotations

from typing import Any

from deribit_ts.errors import ExchangeUnavailable, UserError

# Deribit errors that say "not now" rather than "never": rate limit, retry later, settlement, maintenance,
# overload, timeouts (docs/deribit.md, Transport; the same set NautilusTrader retries).
RETRYABLE_CODES = frozenset({10028, 10040, 10041, 10047, 10066, 11051, 11094, 13028, 13888})
TOO_MANY_REQUESTS = 10028


def _short_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in params.items())


class ExchangeError(UserError):
    """Deribit answered with an error that retrying will not fix (bad parameter, unknown instrument, ...).

    A UserError, so a CLI command that passes a user's instrument name straight through prints one line.
    """

    def __init__(self, code: int | None, message: str, data: Any, method: str, params: dict[str, Any]):
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        self.params = dict(params)
        super().__init__(self._describe())

    @property
    def reason(self) -> str | None:
        """Deribit's ``error.data.reason`` (e.g. ``instrument not found``), if it gave one."""
        return self.data.get("reason") if isinstance(self.data, dict) else None

    @property
    def param(self) -> str | None:
        return self.data.get("param") if isinstance(self.data, dict) else None

    def _describe(self) -> str:
        detail = f"Deribit error {self.code} {self.message}"
        if self.reason:
            detail += f": {self.reason}"
            if self.param:
                detail += f" ({self.param})"
        elif self.data not in (None, "", {}):
            detail += f": {self.data}"
        return f"{self.method}({_short_params(self.params)}) failed: {detail}"


class RetriesExhaustedError(ExchangeError):
    """A call kept failing with retryable errors while the exchange as a whole was reachable: it answered this
    call with Deribit error codes, or answered other calls meanwhile. Only the work that made this call fails
    (e.g. one backfill task); ExchangeUnavailableError is for an exchange that answers nobody.
    """

    def __init__(self, code: int | None, detail: str, method: str, params: dict[str, Any], attempts: int):
        self.detail = detail
        self.attempts = attempts
        super().__init__(code, detail, None, method, params)

    def _describe(self) -> str:
        params = _short_params(self.params)
        return f"{self.method}({params}) failed: {self.detail} (gave up after {self.attempts} attempts)"


class UnexpectedReplyError(UserError):
    """Deribit answered, but not in the shape its API documents (e.g. chart columns of different lengths).

    The task that asked fails with this message; retrying the same request would get the same answer.
    """


class ExchangeUnavailableError(ExchangeUnavailable):
    """The exchange could not be reached, or kept failing, within the retry budget."""

    def __init__(self, api_url: str, detail: str, *, method: str | None = None, attempts: int = 0):
        self.api_url = api_url
        self.detail = detail
        self.method = method
        self.attempts = attempts
        where = f"{method}, " if method else ""
        tries = f" ({where}{attempts} attempts)" if attempts else ""
        super().__init__(
            f"cannot reach the exchange at {api_url}: {detail}{tries} (check --api-url / DERIBIT_TS_API_URL)"
        )
