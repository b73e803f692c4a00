"""Benchmark: the research views over a year of one currency, each against a baseline read in the same run.

A fresh database gets a year of synthetic history for BTC at realistic volume:
  * a year of 5-minute snapshot rounds of BTC and of ETH (105,120 each) as the round-time computation leaves
    them, written round after round: 12 live expiries per round in deribit_ts.option_round_expiries and svi_fits
    (1.26 million rows each a currency), 6 tenors per round in option_round_tenors (630,720 rows a currency);
    the views read BTC's year among both currencies' rows;
  * a year of BTC-PERPETUAL one-minute candles (525,600) and DVOL minutes (525,600), hourly funding from the
    perpetual's first day (2018-08-14: 56,000 hours) and a year of index history, 52 weekly futures with their
    delivery prices and their last week of candles.
Then `deribit-ts refresh`'s research step (realized variance of every day) is timed, and every view is read
under EXPLAIN ANALYZE (server time, no transfer) the way a quant reads a year of it, next to a baseline: the raw
rows the view would have to read without its materialization (a year of minute candles, of rounds' tenors).

    .venv/bin/python scripts/bench_research.py [--dsn DSN] [--json]

The role behind DSN needs CREATEDB (a database of its own, dropped at the end); without --dsn a private embedded
cluster is started.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import UTC, datetime

import psycopg
from benchlib import database_server, fresh_database, machine, server_version

from deribit_ts.ingest import round_research

START = "2024-01-01"
END = "2025-01-01"
FUNDING_START = "2018-08-14"  # BTC-PERPETUAL's funding from its first day (the trailing means' whole history)
TARGET_S = 1.0

_SYNTHETIC = f"""
INSERT INTO deribit.instruments (instrument_name, kind, is_perpetual, base_currency, settlement_currency,
                                 price_index, raw)
VALUES ('BTC-PERPETUAL', 'future', true, 'BTC', 'BTC', 'btc_usd', '{{}}');
INSERT INTO deribit.candles_1m
SELECT i.id, t, p, p * 1.0004, p * 0.9996, p, 1, p
  FROM deribit.instruments i,
       LATERAL (SELECT t, 50000 * exp(0.0006 * sum(random() - 0.5) OVER (ORDER BY t)) AS p
                  FROM generate_series('{START}'::timestamptz, '{END}'::timestamptz - interval '1 minute',
                                       interval '1 minute') t) x
 WHERE i.instrument_name = 'BTC-PERPETUAL';
INSERT INTO deribit.volatility_index
SELECT 'BTC', t, v, v, v, v FROM (SELECT t, 50 + 10 * sin(extract(epoch FROM t) / 864000) AS v
  FROM generate_series('{START}'::timestamptz, '{END}'::timestamptz - interval '1 minute', interval '1 minute') t) x;
INSERT INTO deribit.funding_rate_history
SELECT i.id, t, 0.00001 * (random() - 0.3), 0, 50000, 50000
  FROM deribit.instruments i, generate_series('{FUNDING_START}'::timestamptz, '{END}'::timestamptz - interval '1 hour',
                                              interval '1 hour') t
 WHERE i.instrument_name = 'BTC-PERPETUAL';
INSERT INTO deribit.index_price_history
SELECT 'btc_usd', t, 49990, interval '1 hour'
  FROM generate_series('{START}'::timestamptz, '{END}'::timestamptz - interval '1 hour', interval '1 hour') t;
INSERT INTO deribit.instruments (instrument_name, kind, base_currency, price_index, expiry, raw)
SELECT 'BTC-W' || n, 'future', 'BTC', 'btc_usd', '{START} 08:00+00'::timestamptz + n * interval '7 days', '{{}}'
  FROM generate_series(1, 52) n;
INSERT INTO deribit.candles_1m
SELECT i.id, t, 50000, 50000, 50000, 50000, 1, 1
  FROM deribit.instruments i, generate_series(i.expiry - interval '7 days', i.expiry - interval '1 minute',
                                              interval '1 minute') t
 WHERE i.instrument_name LIKE 'BTC-W%';
INSERT INTO deribit.delivery_prices
SELECT 'btc_usd', (expiry AT TIME ZONE 'UTC')::date, 50010 FROM deribit.instruments WHERE instrument_name LIKE 'BTC-W%';
INSERT INTO deribit_ts.snapshot_rounds (currency, ts, options, bulk_only)
SELECT c, t, 800, true
  FROM generate_series('{START}'::timestamptz, '{END}'::timestamptz - interval '5 minutes', interval '5 minutes') t,
       unnest(ARRAY['BTC', 'ETH']) c
 ORDER BY t, c;
INSERT INTO deribit_ts.option_round_expiries
SELECT r.currency, r.ts, r.ts + e * interval '9 days', e * 9, 50 + e, -2, 1, 1000, 800, 5e7, 4e7, 50000, 1e6
  FROM deribit_ts.snapshot_rounds r, generate_series(1, 12) e
 ORDER BY r.ts, r.currency, e;
INSERT INTO deribit_ts.svi_fits
SELECT r.currency, r.ts, r.ts + e * interval '9 days', 0.01, 0.1, -0.4, 0.05, 0.15, 0.2, false, 30
  FROM deribit_ts.snapshot_rounds r, generate_series(1, 12) e
 ORDER BY r.ts, r.currency, e;
INSERT INTO deribit_ts.option_round_tenors
SELECT r.currency, tenor, r.ts, 55, -2, 1
  FROM deribit_ts.snapshot_rounds r, unnest(ARRAY[7, 14, 30, 60, 90, 180]) tenor
 ORDER BY r.ts, r.currency, tenor;
INSERT INTO deribit_ts.option_round_summaries
SELECT currency, ts, {round_research.VERSION} FROM deribit_ts.snapshot_rounds;
"""

YEAR = f"ts >= '{START}' AND ts < '{END}'"
DAYS = f"day >= '{START}' AND day < '{END}'"
LAST_30_DAYS = f"ts >= '{END}'::timestamptz - interval '30 days' AND ts < '{END}'"
# deribit.funding_apr as it was before its means were kept (0051): each row's means read from the primary key.
FUNDING_APR_ON_READ = """
SELECT i.instrument_name, f.ts, f.interest_1h * 24 * 365 * 100 AS apr, w.mean_1d * 24 * 365 * 100 AS apr_1d,
       w.mean_7d * 24 * 365 * 100 AS apr_7d, w.hours_1d, w.hours_7d
  FROM deribit.funding_rate_history f
  JOIN deribit.instruments i ON i.id = f.instrument_id
 CROSS JOIN LATERAL (
    SELECT avg(p.interest_1h) FILTER (WHERE p.ts > f.ts - interval '24 hours') AS mean_1d,
           avg(p.interest_1h) AS mean_7d,
           count(p.interest_1h) FILTER (WHERE p.ts > f.ts - interval '24 hours') AS hours_1d,
           count(p.interest_1h) AS hours_7d
      FROM deribit.funding_rate_history p
     WHERE p.instrument_id = f.instrument_id AND p.ts > f.ts - interval '168 hours' AND p.ts <= f.ts) w"""
# (name, the view read as a quant reads a year of it, the baseline: raw rows it stands on)
QUERIES = [
    (
        "iv_constant_maturity, BTC 30d, a year",
        f"SELECT * FROM deribit.iv_constant_maturity WHERE currency = 'BTC' AND tenor_days = 30 AND {YEAR} ORDER BY ts",
        f"SELECT * FROM deribit_ts.snapshot_rounds WHERE currency = 'BTC' AND {YEAR}",
    ),
    (
        "max_pain, BTC, a year",
        f"SELECT * FROM deribit.max_pain WHERE currency = 'BTC' AND {YEAR}",
        f"SELECT * FROM deribit_ts.option_round_expiries WHERE currency = 'BTC' AND {YEAR}",
    ),
    (
        "put_call_ratio, BTC, a year",
        f"SELECT * FROM deribit.put_call_ratio WHERE currency = 'BTC' AND {YEAR}",
        f"SELECT * FROM deribit_ts.option_round_expiries WHERE currency = 'BTC' AND {YEAR}",
    ),
    (
        "svi_fit, BTC, a year",
        f"SELECT * FROM deribit.svi_fit WHERE currency = 'BTC' AND {YEAR}",
        f"SELECT * FROM deribit_ts.svi_fits WHERE currency = 'BTC' AND {YEAR}",
    ),
    (
        "realized_vol_1d, BTC-PERPETUAL, a year",
        f"SELECT * FROM deribit.realized_vol_1d WHERE instrument_name = 'BTC-PERPETUAL' AND {DAYS}",
        f"SELECT * FROM deribit.candles_1m WHERE instrument_id = 1 AND {YEAR}",
    ),
    (
        "vol_risk_premium, BTC, a year",
        f"SELECT * FROM deribit.vol_risk_premium WHERE currency = 'BTC' AND {DAYS}",
        f"SELECT * FROM deribit.volatility_index WHERE currency = 'BTC' AND {YEAR}",
    ),
    (
        "perpetual_premium_1m, a year",
        f"SELECT * FROM deribit.perpetual_premium_1m WHERE instrument_name = 'BTC-PERPETUAL' AND {YEAR}",
        f"SELECT * FROM deribit.index_price_history WHERE index_name = 'btc_usd' AND {YEAR}",
    ),
    (
        "funding_carry, a year",
        f"SELECT * FROM deribit.funding_carry WHERE instrument_name = 'BTC-PERPETUAL' AND {YEAR}",
        f"SELECT * FROM deribit.funding_rate_history WHERE {YEAR}",
    ),
    (
        "funding_apr, BTC-PERPETUAL, 30 days",
        f"SELECT * FROM deribit.funding_apr WHERE instrument_name = 'BTC-PERPETUAL' AND {LAST_30_DAYS}",
        f"SELECT * FROM deribit.funding_rates WHERE instrument_name = 'BTC-PERPETUAL' AND {LAST_30_DAYS}",
    ),
    (
        "funding_apr on read (before 0051), 30 days",
        f"SELECT * FROM ({FUNDING_APR_ON_READ}) o WHERE instrument_name = 'BTC-PERPETUAL' AND {LAST_30_DAYS}",
        f"SELECT * FROM deribit.funding_rates WHERE instrument_name = 'BTC-PERPETUAL' AND {LAST_30_DAYS}",
    ),
    (
        "funding_apr, BTC-PERPETUAL, a year",
        f"SELECT * FROM deribit.funding_apr WHERE instrument_name = 'BTC-PERPETUAL' AND {YEAR}",
        f"SELECT * FROM deribit.funding_rates WHERE instrument_name = 'BTC-PERPETUAL' AND {YEAR}",
    ),
    (
        "futures_settlement, all",
        "SELECT * FROM deribit.futures_settlement",
        "SELECT * FROM deribit.delivery_prices",
    ),
]


def execution_ms(conn: psycopg.Connection, query: str) -> tuple[float, int]:
    """Server execution time (best of 3) and rows of `query`, from EXPLAIN ANALYZE without per-node timing."""
    best, rows = float("inf"), 0
    for _ in range(3):
        plan = conn.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {query}").fetchone()[0][0]
        best = min(best, plan["Execution Time"] + plan["Planning Time"])
        rows = plan["Plan"]["Actual Rows"]
    return best, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a server whose role has CREATEDB (default: a private embedded cluster)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()}
    with database_server(args.dsn) as (server, where), fresh_database(server, "research") as dsn:
        report["server"] = f"{server_version(server)}, {where}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.monotonic()
            for statement in filter(str.strip, _SYNTHETIC.split(";\n")):
                conn.execute(statement)
            summary = conn.execute("CALL deribit_ts.refresh_rollups(false, NULL)").fetchone()[0]
            report["rollups_refresh"] = summary
            conn.execute("VACUUM ANALYZE")  # as autovacuum leaves tables written once (the visibility map set)
            report["load_seconds"] = round(time.monotonic() - started, 1)
            started = time.monotonic()
            research = round_research.refresh(conn)
            report["refresh"] = {**research, "wall_seconds": round(time.monotonic() - started, 2)}
            started = time.monotonic()
            research = round_research.refresh(conn)
            report["refresh_again"] = {**research, "wall_seconds": round(time.monotonic() - started, 2)}
            report["views"] = []
            for name, query, baseline in QUERIES:
                view_ms, view_rows = execution_ms(conn, query)
                base_ms, base_rows = execution_ms(conn, baseline)
                report["views"].append(
                    {
                        "view": name,
                        "ms": round(view_ms, 1),
                        "rows": view_rows,
                        "baseline_ms": round(base_ms, 1),
                        "baseline_rows": base_rows,
                        "baseline": re.sub(r"\s+", " ", baseline),
                        "within_target": view_ms <= TARGET_S * 1000,
                    }
                )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['date']} on {report['machine']}; {report['server']}")
        print(f"synthetic year loaded in {report['load_seconds']} s")
        r, again = report["refresh"], report["refresh_again"]
        print(
            f"refresh (research step): {r['realized_variance_days']} days of realized variance in "
            f"{r['realized_variance_seconds']} s; again (nothing changed): {again['wall_seconds']} s"
        )
        kept = report["rollups_refresh"].get("funding_apr", {})
        print(
            f"rollups' refresh after the load: {report['rollups_refresh']['seconds']} s, of it the funding means "
            f"kept: {kept.get('days')} days, {kept.get('rows')} rows"
        )
        for v in report["views"]:
            mark = "ok" if v["within_target"] else f"SLOWER than {TARGET_S:g} s"
            print(
                f"  {v['view']:42} {v['ms']:9.1f} ms {v['rows']:>9,} rows | baseline {v['baseline_ms']:9.1f} ms "
                f"{v['baseline_rows']:>9,} rows   {mark}"
            )
    return 0 if all(v["within_target"] for v in report["views"]) else 1


if __name__ == "__main__":
    sys.exit(main())
