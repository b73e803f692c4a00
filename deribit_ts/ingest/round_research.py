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

from deribit_ts.svi import fit_svi

log = logging.getLogger(__name__)

# Raise when what a round's rows hold changes: `deribit-ts refresh` then rewrites the rounds of older versions.
VERSION = 1

_SUMMARIZE = "SELECT deribit_ts.summarize_option_round(%(currency)s, %(ts)s)"
# The smile the fit reads: out-of-the-money mark IVs, k = ln(K/F) against each option's own forward.
_SMILE = """SELECT expiry, log_moneyness, mark_iv FROM deribit.iv_smile
             WHERE currency = %(currency)s AND ts = %(ts)s ORDER BY expiry, log_moneyness"""
_CLEAR_FITS = "DELETE FROM deribit_ts.svi_fits WHERE currency = %(currency)s AND ts = %(ts)s"
_INSERT_FIT = """INSERT INTO deribit_ts.svi_fits (currency, ts, expiry, a, b, rho, m, sigma, rmse_iv,
                     butterfly_arbitrage, strikes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""
_DONE = """INSERT INTO deribit_ts.option_round_summaries (currency, ts, version)
           VALUES (%(currency)s, %(ts)s, %(version)s)
           ON CONFLICT (currency, ts) DO UPDATE SET version = excluded.version, summarized_at = now()"""
_PENDING = """SELECT r.currency, r.ts FROM deribit_ts.snapshot_rounds r
                LEFT JOIN deribit_ts.option_round_summaries s ON s.currency = r.currency AND s.ts = r.ts
               WHERE s.ts IS NULL OR s.version < %s
               ORDER BY r.ts, r.currency"""
YEAR_SECONDS = 365 * 86400


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


def summarize_round(conn: psycopg.Connection, currency: str, ts: datetime) -> int:
    """Write one round's research rows (inside the caller's transaction); returns the SVI slices fitted."""
    params = {"currency": currency, "ts": ts, "version": VERSION}
    conn.execute(_SUMMARIZE, params)
    rows = svi_rows(currency, ts, conn.execute(_SMILE, params).fetchall())
    conn.execute(_CLEAR_FITS, params)
    with conn.cursor() as cur:
        cur.executemany(_INSERT_FIT, rows)
    conn.execute(_DONE, params)
    return len(rows)


async def summarize_round_async(conn: AsyncConnection, currency: str, ts: datetime) -> int:
    """summarize_round on an asyncio connection (the snapshot round's)."""
    params = {"currency": currency, "ts": ts, "version": VERSION}
    await conn.execute(_SUMMARIZE, params)
    smile = await (await conn.execute(_SMILE, params)).fetchall()
    rows = svi_rows(currency, ts, smile)
    await conn.execute(_CLEAR_FITS, params)
    async with conn.cursor() as cur:
        await cur.executemany(_INSERT_FIT, rows)
    await conn.execute(_DONE, params)
    return len(rows)


def refresh(
    conn: psycopg.Connection, *, full: bool = False, on_progress: Callable[[int, int], None] | None = None
) -> dict:
    """Realized variance of changed days (every day with `full`), then every round not yet summarized (or by an
    older version), one transaction per round so an interrupted refresh keeps what it did. `conn` in autocommit
    mode; `on_progress(done, total)` after every 100 rounds."""
    started = time.monotonic()
    days = conn.execute("SELECT deribit_ts.refresh_realized_variance(%s)", (full,)).fetchone()[0]
    rv_seconds = time.monotonic() - started
    pending = conn.execute(_PENDING, (VERSION,)).fetchall()
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
