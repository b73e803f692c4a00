"""`deribit-ts refresh`'s old snapshot rounds: bounded per run (the rounds left wait for the next refresh, counted),
written a batch per transaction, and the SVI fits in worker processes equal to the ones fitted in this process."""

from __future__ import annotations

import math
from datetime import timedelta

import psycopg
import pytest
from test_research_views import FAR, FORWARD, NEAR, SVI, R, _option

from deribit_ts.cli.refresh import describe_research
from deribit_ts.ingest import round_research
from deribit_ts.svi import svi_total_variance

ROUNDS = [R + timedelta(minutes=5 * n) for n in range(3)]


def plant(conn) -> None:
    """Three rounds of the same options: NEAR with 4 strikes (not fitted), FAR's smile drawn from SVI."""
    years = (FAR - R).total_seconds() / (365 * 86400)
    for strike in (70, 80, 90, 95, 100, 105, 110, 120, 135):
        iv = 100 * math.sqrt(svi_total_variance(math.log(strike / FORWARD), *SVI) / years)
        _option(conn, FAR, strike, "put" if strike < FORWARD else "call", iv, 1.0)
    for strike in (90, 100, 110, 120):
        _option(conn, NEAR, strike, "call", 50.0, 1.0)
    for ts in ROUNDS[1:]:
        conn.execute(
            """INSERT INTO deribit.option_ticker_snapshots (instrument_id, ts, quote_ts, underlying_price, index_price,
                   mark_price, mark_iv, delta, open_interest, greeks_source)
               SELECT instrument_id, %(ts)s, %(ts)s, underlying_price, index_price, mark_price, mark_iv, delta,
                      open_interest, greeks_source
                 FROM deribit.option_ticker_snapshots WHERE ts = %(first)s""",
            {"ts": ts, "first": R},
        )
    for ts in ROUNDS:
        conn.execute(
            "INSERT INTO deribit_ts.snapshot_rounds (currency, ts, options, bulk_only) VALUES ('BTC', %s, 13, true)",
            (ts,),
        )


def fits(conn) -> list[tuple]:
    return conn.execute("SELECT * FROM deribit.svi_fit ORDER BY ts, expiry").fetchall()


def test_a_bounded_refresh_leaves_the_rest_to_the_next_and_workers_fit_the_same(new_db, monkeypatch):
    monkeypatch.setattr(round_research, "BATCH_ROUNDS", 2)
    with psycopg.connect(new_db, autocommit=True) as conn:
        plant(conn)
        nothing = round_research.refresh(conn, seconds=0)  # the bound is reached before the first batch
        assert (nothing["rounds_summarized"], nothing["rounds_pending"], nothing["rounds_per_second"]) == (0, 3, None)
        assert fits(conn) == []
        progress: list[tuple[int, int]] = []
        summary = round_research.refresh(conn, on_progress=lambda *p: progress.append(p))
        assert (summary["rounds_summarized"], summary["rounds_pending"], summary["svi_fits"]) == (3, 0, 3)
        assert progress == [(2, 3), (3, 3)]  # a batch of 2 rounds, then the last one
        here = fits(conn)
        assert [(ts, expiry) for _, ts, expiry, *_ in here] == [(ts, FAR) for ts in ROUNDS]
        assert here[0][3:8] == pytest.approx(SVI, abs=1e-6)
        # an older version's rounds are fitted again, now in two worker processes: the same rows
        conn.execute("UPDATE deribit_ts.option_round_summaries SET version = 0")
        again = round_research.refresh(conn, workers=2)
        assert (again["rounds_summarized"], again["rounds_pending"], again["svi_fits"]) == (3, 0, 3)
        assert fits(conn) == here
        assert conn.execute("SELECT count(*) FROM deribit.max_pain").fetchone()[0] == 6  # 2 expiries x 3 rounds


def test_the_summary_says_what_is_left_and_how_long_it_takes():
    research = {"realized_variance_days": 0, "rounds_summarized": 1500, "svi_fits": 18000, "seconds": 300.0}
    line = describe_research({**research, "rounds_pending": 103_620, "rounds_per_second": 5.0})
    assert line.endswith("; 103,620 round(s) left for the next refresh (5 rounds/s: about 5.8 h more)")
    assert describe_research({**research, "rounds_pending": 90, "rounds_per_second": 2.0}).endswith("1 min more)")
    assert "left" not in describe_research({**research, "rounds_pending": 0, "rounds_per_second": 5.0})
