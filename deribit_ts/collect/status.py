"""What `deribit-ts status` reports: per dataset the newest data, its lag and errors; who leads, its heartbeat.

Lags are measured on the exchange's clock as the leader last reported it (its heartbeat carries the exchange's
time), so a simulator running faster than real time is judged by its own clock; without any heartbeat, the
database's clock. The SQL is in sql/70_collector.sql (deribit_ts.collector_freshness, deribit_ts.collector_status).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from deribit_ts.db.queries import query
from deribit_ts.errors import UserError

# Seconds of lag after which a dataset is stale. Candles: a minute closes, it must be stored within 90 s; the
# lag counts from the end of the newest stored minute, so it is up to 60 s while the next minute forms.
DEFAULT_MAX_LAG = {
    "candles.perpetual": 150.0,
    "candles.future": 150.0,
    "candles.option": 300.0,  # the scan for traded options: their candles within 5 minutes
    "index": 150.0,
    "funding": 7200.0,
    "instruments": 900.0,
    "dvol": 150.0,
    "delivery": 93600.0,  # daily at 08:00 UTC: a day and two hours
    "option_snapshots": 900.0,
    "option_greeks": 7200.0,
    # The trade tape: the lag counts from the end of the newest scan (or the oldest trades task still filling a gap
    # beyond the by-currency route's reach). Every kind is scanned every minute: trades stored within 2 minutes.
    "trades.perpetual": 150.0,
    "trades.future": 150.0,
    "trades.option": 150.0,
}
DEFAULT_MAX_LAG_OTHER = 900.0  # datasets added later (snapshots, DVOL, ...) unless set
DEFAULT_MAX_HEARTBEAT_AGE = 60.0
MAX_LAG_ENV = "DERIBIT_TS_STATUS_MAX_LAG"
MAX_HEARTBEAT_AGE_ENV = "DERIBIT_TS_STATUS_MAX_HEARTBEAT_AGE"
# Which job's error counts belong to a dataset.
_JOB_OF = {
    "candles.perpetual": "candles",
    "candles.future": "candles",
    "candles.option": "options",
    "instruments": "catalogue",
    "trades.perpetual": "trades",
    "trades.future": "trades",
    "trades.option": "options",
}


@dataclass
class Thresholds:
    max_lag: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MAX_LAG))
    max_heartbeat_age: float = DEFAULT_MAX_HEARTBEAT_AGE

    def lag_of(self, dataset: str) -> float:
        return self.max_lag.get(dataset, DEFAULT_MAX_LAG_OTHER)

    @classmethod
    def parse(cls, items: list[str], heartbeat_age: float | None) -> Thresholds:
        """DATASET=SECONDS items from DERIBIT_TS_STATUS_MAX_LAG (comma-separated), then from the flags."""
        out = cls()
        env_items = [i for i in os.environ.get(MAX_LAG_ENV, "").split(",") if i.strip()]
        for item in [*env_items, *items]:
            name, sep, value = item.partition("=")
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not sep or not name.strip() or not seconds > 0:
                raise UserError(
                    f"--max-lag {item!r}: write DATASET=SECONDS, e.g. candles.perpetual=120 "
                    f"(datasets: {', '.join(DEFAULT_MAX_LAG)}, ...)"
                )
            out.max_lag[name.strip()] = seconds
        raw_age = os.environ.get(MAX_HEARTBEAT_AGE_ENV, "").strip()
        if heartbeat_age is None and raw_age:
            try:
                heartbeat_age = float(raw_age)
            except ValueError:
                raise UserError(f"{MAX_HEARTBEAT_AGE_ENV}={raw_age!r} is not a number of seconds") from None
        if heartbeat_age is not None:
            if not heartbeat_age > 0:
                raise UserError("--max-heartbeat-age must be a positive number of seconds")
            out.max_heartbeat_age = heartbeat_age
        return out


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def _iso(value: datetime | None) -> str | None:
    """Every timestamp of the report in one form: ISO-8601 in UTC (whatever the session's time zone)."""
    return None if value is None else value.astimezone(UTC).isoformat()


def stamp(value: str | datetime | None) -> str:
    """A timestamp for people, always in one form: 2024-03-08 08:10:00Z ('-' when unknown)."""
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def age(value: timedelta | float | None) -> str:
    """A duration for people, always in one form: 45s, 12m05s, 3h02m, 2d04h ('never' when unknown)."""
    if value is None:
        return "never"
    seconds = max(0, round(value.total_seconds() if isinstance(value, timedelta) else value))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def collect_status(conn: psycopg.Connection, thresholds: Thresholds) -> dict:
    processes = conn.execute(query("collect", "status_processes")).fetchall()
    names = (
        "process_id",
        "host",
        "pid",
        "role",
        "state",
        "started_at",
        "leader_since",
        "beat_at",
        "beat_age",
        "exchange_now",
        "run_id",
        "settings",
        "last_error",
        "last_error_at",
        "holds_lock",
    )
    rows = [dict(zip(names, row, strict=True)) for row in processes]
    live = [r for r in rows if r["role"] != "stopped"]
    leader = next((r for r in rows if r["holds_lock"]), None)
    problems: list[str] = []
    reference = conn.execute(query("collect", "status_reference")).fetchone()[0]
    if not rows:
        problems.append("no collector has run on this database (start `deribit-ts collect`)")
    elif leader is None:
        problems.append("no collector leads: none holds the leader lock")
    elif leader["beat_age"].total_seconds() > thresholds.max_heartbeat_age:
        problems.append(
            f"the leader's last heartbeat is {leader['beat_age'].total_seconds():.0f} s old "
            f"(threshold {thresholds.max_heartbeat_age:g} s)"
        )
    basis = leader or (rows[0] if rows else None)
    datasets = []
    if basis is not None:
        settings = basis["settings"] or {}
        wanted = settings.get("datasets") or []
        jobs = {
            job: (errors, last_error)
            for job, errors, last_error in conn.execute(query("collect", "status_jobs")).fetchall()
        }
        fresh = conn.execute(
            query("collect", "freshness"),
            {"now": reference, "currencies": settings.get("currencies") or [], "kinds": settings.get("kinds") or []},
        ).fetchall()
        found = {row[0]: row for row in fresh}
        for dataset in wanted:
            _, keys, newest, covered, lag, stalest = found.get(dataset, (dataset, 0, None, None, None, None))
            limit = thresholds.lag_of(dataset)
            errors, last_error = jobs.get(_JOB_OF.get(dataset, dataset), (0, None))
            stale = lag is None or lag.total_seconds() > limit
            if keys and stale:
                what = f"lag {lag.total_seconds():.0f} s" if lag is not None else f"nothing collected yet for {stalest}"
                problems.append(f"{dataset} is stale: {what} (threshold {limit:g} s)")
            datasets.append(
                {
                    "dataset": dataset,
                    "keys": keys,
                    "newest": _iso(newest),
                    "covered_until": _iso(covered),
                    "lag_s": _seconds(lag),
                    "threshold_s": limit,
                    "stale": bool(keys and stale),
                    "stalest_key": stalest,
                    "errors": errors,
                    "last_error": last_error,
                }
            )
    return {
        "ok": not problems,
        "reference_time": _iso(reference),
        "leader": _process(leader) if leader else None,
        "processes": [_process(r) for r in live],
        "datasets": datasets,
        "problems": problems,
    }


def _process(r: dict) -> dict:
    return {
        "process_id": r["process_id"],
        "host": r["host"],
        "pid": r["pid"],
        "role": r["role"],
        "state": r["state"],
        "holds_lock": r["holds_lock"],
        "leader_since": _iso(r["leader_since"]),
        "last_heartbeat": _iso(r["beat_at"]),
        "heartbeat_age_s": _seconds(r["beat_age"]),
        "exchange_time": _iso(r["exchange_now"]),
        "last_error": r["last_error"],
        "last_error_at": _iso(r["last_error_at"]),
    }
