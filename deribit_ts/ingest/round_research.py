"""The research rows of a snapshot round, written once: per expiry ATM IV, skew, open interest and max pain, the
constant-maturity tenors (SQL: deribit_ts.summarize_option_round) and the SVI fit of every smile (numpy/scipy:
deribit_ts.svi). `take_snapshot` writes them in the round's own transaction; `deribit-ts refresh` writes them for
rounds stored before (or summarized by an older VERSION), and refreshes the realized variance of changed days.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
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


# Rounds written per transaction by refresh: an interrupted refresh keeps what the batches before did.
BATCH_ROUNDS = 25


def refresh(
    conn: psycopg.Connection,
    *,
    full: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    seconds: float | None = None,
    workers: int = 1,
) -> dict:
    """Realized variance of changed days (every day with `full`), then the rounds not yet summarized (or by an
    older version), oldest first, BATCH_ROUNDS a transaction so an interrupted refresh keeps what it did.

    `seconds` bounds the rounds' part: no batch starts after that long, and the rounds left wait for the next
    refresh (a year of 5-minute rounds is hours of fitting: `rounds_pending` says what is left). `workers` > 1 fits
    the smiles in that many processes while this one runs the rounds' SQL. `conn` in autocommit mode;
    `on_progress(done, total)` after every batch."""
    started = time.monotonic()
    days = conn.execute(query("round_research", "realized_variance"), {"full": full}).fetchone()[0]
    rv_seconds = time.monotonic() - started
    pending = conn.execute(query("round_research", "pending"), {"version": VERSION}).fetchall()
    rounds_started = time.monotonic()
    deadline = None if seconds is None else rounds_started + seconds
    fits = done = 0
    with _fitter(workers) as fit:
        for first in range(0, len(pending), BATCH_ROUNDS):
            if deadline is not None and time.monotonic() >= deadline:
                break
            batch = pending[first : first + BATCH_ROUNDS]
            with conn.transaction():
                fits += _summarize_batch(conn, batch, fit)
            done += len(batch)
            if on_progress is not None:
                on_progress(done, len(pending))
    rounds_seconds = time.monotonic() - rounds_started
    return {
        "realized_variance_days": days,
        "realized_variance_seconds": round(rv_seconds, 3),
        "rounds_summarized": done,
        "rounds_pending": len(pending) - done,
        "rounds_per_second": round(done / rounds_seconds, 2) if done and rounds_seconds > 0 else None,
        "svi_fits": fits,
        "seconds": round(time.monotonic() - started, 3),
    }


Fit = Callable[[str, datetime, list[tuple]], Callable[[], list[tuple]]]


def _summarize_batch(conn: psycopg.Connection, batch: list[tuple[str, datetime]], fit: Fit) -> int:
    """Every round of the batch: its SQL research rows and smile first (the fits meanwhile under way), then its
    SVI fits and the round marked done. Returns the SVI slices fitted."""
    fitted = []
    for currency, ts in batch:
        params = {"currency": currency, "ts": ts, "version": VERSION}
        conn.execute(query("round_research", "summarize"), params)
        smile = conn.execute(query("round_research", "smile"), params).fetchall()
        fitted.append((params, fit(currency, ts, smile)))
    fits = 0
    for params, result in fitted:
        rows = result()
        conn.execute(query("round_research", "clear_fits"), params)
        with conn.cursor() as cur:
            cur.executemany(query("round_research", "insert_fit"), [_fit_params(row) for row in rows])
        conn.execute(query("round_research", "done"), params)
        fits += len(rows)
    return fits


def _fit_here(currency: str, ts: datetime, smile: list[tuple]) -> Callable[[], list[tuple]]:
    rows = svi_rows(currency, ts, smile)
    return lambda: rows


@contextmanager
def _fitter(workers: int) -> Iterator[Fit]:
    """fit(currency, ts, smile) -> a callable giving the round's svi_rows: computed here (workers <= 1) or in a
    pool of worker processes (spawned: they share nothing with this process' connection)."""
    if workers <= 1:
        yield _fit_here
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield lambda currency, ts, smile: pool.submit(svi_rows, currency, ts, smile).result
