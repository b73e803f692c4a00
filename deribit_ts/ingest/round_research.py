"""The research rows of a snapshot round, written once: per expiry ATM IV, skew, open interest and max pain, the
constant-maturity tenors (SQL: deribit_ts.summarize_option_round) and the SVI fit of every smile (numpy/scipy:
deribit_ts.svi). `take_snapshot` writes them in the round's own transaction; `deribit-ts refresh` writes them for
rounds stored before (or summarized by an older VERSION), and refreshes the realized variance of changed days.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

import psycopg
from psycopg import AsyncConnection

from deribit_ts.db.queries import query
from deribit_ts.svi import fit_svi

log = logging.getLogger(__name__)

# Raise when what a round's rows hold changes: `deribit-ts refresh` then rewrites the rounds of older versions.
VERSION = 1

YEAR_SECONDS = 365 * 86400
# The columns of an svi_fits row, in the order svi_rows gives them.
FIT_COLUMNS = (
    "currency",
    "ts",
    "expiry",
    "a",
    "b",
    "rho",
    "m",
    "sigma",
    "rmse_iv",
    "butterfly_arbitrage",
    "strikes",
)


def svi_rows(currency: str, ts: datetime, smile: list[tuple]) -> list[tuple]:
    """svi_fits rows of one round from its smile rows (expiry, log_moneyness, mark_iv)."""
    by_expiry: dict[datetime, list[tuple[float, float]]] = defaultdict(list)
    for expiry, k, iv in smile:
        by_expiry[expiry].append((k, iv))
    rows = []
    for expiry, points in sorted(by_expiry.items()):
        years = (expiry - ts).total_seconds() / YEAR_SECONDS
        try:
            fit = fit_svi([p[0] for p in points], [p[1] for p in points], years)
        except (ValueError, ArithmeticError, FloatingPointError) as exc:  # a degenerate smile: no fit, not a failure
            log.warning("SVI fit of %s %s at %s failed: %s", currency, expiry, ts, exc)
            continue
        if fit is not None:
            rows.append(
                (
                    currency,
                    ts,
                    expiry,
                    fit.a,
                    fit.b,
                    fit.rho,
                    fit.m,
                    fit.sigma,
                    fit.rmse_iv,
                    fit.butterfly_arbitrage,
                    len({p[0] for p in points}),
                )
            )
    return rows


def _fit_params(row: tuple) -> dict:
    """An svi_rows row as the parameters of the insert_fit query."""
    return dict(zip(FIT_COLUMNS, row, strict=True))


def summarize_round(conn: psycopg.Connection, currency: str, ts: datetime) -> int:
    """Write one round's research rows (inside the caller's transaction); returns the SVI slices fitted."""
    params = {"currency": currency, "ts": ts, "version": VERSION}
    conn.execute(query("round_research", "summarize"), params)
    rows = svi_rows(currency, ts, conn.execute(query("round_research", "smile"), params).fetchall())
    conn.execute(query("round_research", "clear_fits"), params)
    with conn.cursor() as cur:
        cur.executemany(query("round_research", "insert_fit"), [_fit_params(row) for row in rows])
    conn.execute(query("round_research", "done"), params)
    return len(rows)


async def summarize_round_async(conn: AsyncConnection, currency: str, ts: datetime) -> int:
    """summarize_round on an asyncio connection (the snapshot round's)."""
    params = {"currency": currency, "ts": ts, "version": VERSION}
    await conn.execute(query("round_research", "summarize"), params)
    smile = await (await conn.execute(query("round_research", "smile"), params)).fetchall()
    rows = svi_rows(currency, ts, smile)
    await conn.execute(query("round_research", "clear_fits"), params)
    async with conn.cursor() as cur:
        await cur.executemany(query("round_research", "insert_fit"), [_fit_params(row) for row in rows])
    await conn.execute(query("round_research", "done"), params)
    return len(rows)


def refresh(
    conn: psycopg.Connection, *, full: bool = False, on_progress: Callable[[int, int], None] | None = None
) -> dict:
    """Realized variance of changed days (every day with `full`), then every round not yet summarized (or by an
    older version), one transaction per round so an interrupted refresh keeps what it did. `conn` in autocommit
    mode; `on_progress(done, total)` after every 100 rounds."""
    started = time.monotonic()
    days = conn.execute(query("round_research", "realized_variance"), {"full": full}).fetchone()[0]
    rv_seconds = time.monotonic() - started
    pending = conn.execute(query("round_research", "pending"), {"version": VERSION}).fetchall()
    fits = 0
    for done, (currency, ts) in enumerate(pending, 1):
        with conn.transaction():
            fits += summarize_round(conn, currency, ts)
        if on_progress is not None and (done % 100 == 0 or done == len(pending)):
            on_progress(done, len(pending))
    return {
        "realized_variance_days": days,
        "realized_variance_seconds": round(rv_seconds, 3),
        "rounds_summarized": len(pending),
        "svi_fits": fits,
        "seconds": round(time.monotonic() - started, 3),
    }
