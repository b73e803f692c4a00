"""The report's numbers: one function per section, each asking the research views in SQL.

A section is a list of tables. Its first table is what `--json` / `--csv` print; tables marked ``chart_only``
feed the HTML page's plots and are not printed. A view that this database does not have (yet) makes its
table ``missing`` with the reason, never an error: the report says what it cannot show.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

SECTIONS = ("coverage", "gaps", "sanity", "basis", "funding", "smile")

# A currency from an instrument or index name: BTC-PERPETUAL, BTC_USDC-PERPETUAL and btc_usd are all BTC.
_CURRENCY_OF = "upper(split_part(replace({col}, '_', '-'), '-', 1))"
# How far back the time-series plots reach when --since is not given (from the newest data).
DEFAULT_DAYS = {"coverage": 30, "basis": 90, "funding": 90, "sanity": 30}


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    currency: str | None = None  # upper case
    instrument: str | None = None
    limit: int | None = None  # rows per listing table (gaps, sanity)

    def params(self, **more) -> dict:
        return {
            "since": self.since,
            "until": self.until,
            "currency": self.currency,
            "instrument": self.instrument,
            "limit": self.limit,
            **more,
        }


@dataclass
class Table:
    name: str
    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    missing: str | None = None  # why this table cannot be shown (a view this database does not have yet)
    chart_only: bool = False  # plotted on the HTML page, not printed
    note: str | None = None  # a line printed under the table (a cut, a window)

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass
class Section:
    name: str
    title: str
    tables: list[Table]

    @property
    def main(self) -> Table:
        return self.tables[0]

    def table(self, name: str) -> Table | None:
        """The named table, or None when the section has none (e.g. basis on a database without futures)."""
        return next((t for t in self.tables if t.name == name), None)


def collect(conn: psycopg.Connection, names: list[str], filters: Filters) -> list[Section]:
    """Run the named sections' queries (read-only, one transaction, so the sections agree with each other)."""
    conn.read_only = True
    with conn.transaction():
        return [_BUILDERS[name](_Asker(conn), filters) for name in names]


class _Asker:
    """Runs a query into a Table, or marks the table missing when a view it needs does not exist."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def has(self, relation: str) -> bool:
        return self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()[0]

    def columns_of(self, relation: str) -> set[str]:
        schema, name = relation.split(".")
        rows = self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (schema, name),
        )
        return {r[0] for r in rows}

    def absent(self, needs: tuple[str, ...]) -> str | None:
        """Why a table needing these relations cannot be shown, or None when they all exist."""
        absent = [rel for rel in needs if not self.has(rel)]
        return (
            (
                f"{', '.join(absent)} does not exist in this database yet (a newer deribit-ts adds it: upgrade, "
                "then `deribit-ts db migrate`)"
            )
            if absent
            else None
        )

    def table(self, name: str, title: str, needs: tuple[str, ...], query: str, params: dict, **kwargs) -> Table:
        missing = self.absent(needs)
        if missing:
            return Table(name, title, missing=missing, **kwargs)
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return Table(name, title, [d.name for d in cur.description], cur.fetchall(), **kwargs)


def _cut(table: Table, filters: Filters) -> Table:
    if filters.limit is not None and len(table.rows) > filters.limit:
        table.note = f"first {filters.limit} of {len(table.rows)} rows (--limit)"
        table.rows = table.rows[: filters.limit]
    return table


# --- coverage ---------------------------------------------------------------------------------------------

_COVERAGE_EXTRA = ("first_ts", "last_ts", "expected_rows", "completeness_pct")  # issue 7's new columns

_COVERAGE = """
SELECT dataset, key, wanted_from, wanted_until, {extra}
       rows, complete,
       (SELECT coalesce(sum(extract(epoch FROM upper(m) - lower(m))), 0) / 60 FROM unnest(missing) AS m)::bigint
           AS missing_minutes
  FROM deribit.coverage
 WHERE (%(instrument)s::text IS NULL OR key = %(instrument)s)
   AND (%(currency)s::text IS NULL OR {currency} = %(currency)s)
 ORDER BY dataset, key
"""

# Per (dataset, key) and UTC day of the window: the share of the minutes asked for that have been fetched
# (deribit_ts.coverage; fetched and empty counts as fetched: the gaps section tells those apart). Options are
# grouped by expiry, so a chain of hundreds of strikes is one row.
_COVERAGE_DAYS = """
WITH win AS (
    SELECT coalesce(%(until)s::timestamptz, max(upper(t.wanted))) AS until FROM deribit_ts.targets t
), span AS (
    SELECT coalesce(%(since)s::timestamptz,
                    date_trunc('day', win.until, 'UTC') - make_interval(days => %(days)s)) AS since,
           win.until
      FROM win
), wanted AS (
    SELECT t.dataset, t.key, t.wanted * tstzmultirange(tstzrange(span.since, span.until)) AS wanted
      FROM deribit_ts.targets t, span
     WHERE t.wanted && tstzrange(span.since, span.until)
       AND (%(instrument)s::text IS NULL OR t.key = %(instrument)s)
       AND (%(currency)s::text IS NULL OR {currency} = %(currency)s)
), done AS (
    SELECT w.dataset, w.key, w.wanted,
           w.wanted * coalesce((SELECT range_agg(c.fetched) FROM deribit_ts.coverage c
                                 WHERE c.dataset = w.dataset AND c.key = w.key), '{{}}'::tstzmultirange) AS fetched
      FROM wanted w
), cells AS (
    SELECT d.dataset,
           CASE WHEN d.key ~ '-[CP]$' THEN regexp_replace(d.key, '-[^-]+-[CP]$', '') || ' options' ELSE d.key END
               AS label,
           day,
           (SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)
              FROM unnest(d.wanted * tstzmultirange(tstzrange(day, day + interval '24 hours'))) r) AS wanted_s,
           (SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)
              FROM unnest(d.fetched * tstzmultirange(tstzrange(day, day + interval '24 hours'))) r) AS fetched_s
      FROM done d, span,
           generate_series(date_trunc('day', span.since, 'UTC'), span.until - interval '1 microsecond',
                           interval '24 hours') day
)
SELECT dataset, label, (day AT TIME ZONE 'UTC')::date AS day,
       round(100 * sum(fetched_s) / sum(wanted_s), 2)::float8 AS fetched_pct
  FROM cells
 WHERE wanted_s > 0
 GROUP BY dataset, label, day
 ORDER BY dataset, label, day
"""


def coverage(ask: _Asker, f: Filters) -> Section:
    present = ask.columns_of("deribit.coverage") if ask.has("deribit.coverage") else set()
    extra = "".join(f"{c}, " for c in _COVERAGE_EXTRA if c in present)
    main = ask.table(
        "coverage",
        "Coverage per dataset and key",
        ("deribit.coverage",),
        _COVERAGE.format(extra=extra, currency=_CURRENCY_OF.format(col="key")),
        f.params(),
    )
    days = ask.table(
        "coverage_days",
        "Share of each day's wanted minutes fetched (%)",
        ("deribit.coverage",),
        _COVERAGE_DAYS.format(currency=_CURRENCY_OF.format(col="t.key")),
        f.params(days=DEFAULT_DAYS["coverage"]),
        chart_only=True,
    )
    return Section("coverage", "Coverage", [main, _coverage_summary(main), days])


def _coverage_summary(main: Table) -> Table:
    """Per dataset: keys, complete keys, rows, minutes never fetched. Added up from the rows already read,
    because deribit.coverage costs a pass over every key's history (seconds at full history)."""
    summary = Table(
        "coverage_summary",
        "Coverage per dataset",
        ["dataset", "keys", "complete_keys", "rows", "missing_minutes"],
        missing=main.missing,
        chart_only=True,
    )
    at = (
        {name: main.columns.index(name) for name in ("dataset", "complete", "rows", "missing_minutes")}
        if not main.missing
        else {}
    )
    for dataset, rows in itertools.groupby(main.rows, key=lambda r: r[at["dataset"]]):
        rows = list(rows)
        summary.rows.append(
            (
                dataset,
                len(rows),
                sum(bool(r[at["complete"]]) for r in rows),
                sum(r[at["rows"]] or 0 for r in rows),
                sum(r[at["missing_minutes"]] or 0 for r in rows),
            )
        )
    return summary


# --- gaps and sanity (issue 7 part 4's views) ---------------------------------------------------------------

_NAME_FILTER = """(%(instrument)s::text IS NULL OR instrument_name = %(instrument)s)
   AND (%(currency)s::text IS NULL OR {currency} = %(currency)s)""".format(
    currency=_CURRENCY_OF.format(col="instrument_name")
)

_GAPS = f"""
SELECT dataset, instrument_name, gap_start, gap_end, missing_minutes, cause
  FROM deribit.gap_report
 WHERE {_NAME_FILTER}
   AND (%(since)s::timestamptz IS NULL OR gap_end > %(since)s)
   AND (%(until)s::timestamptz IS NULL OR gap_start < %(until)s)
 ORDER BY dataset, instrument_name, gap_start
"""


def gaps(ask: _Asker, f: Filters) -> Section:
    main = _cut(
        ask.table(
            "gaps",
            "Gaps: maximal runs of missing minutes inside what was asked for",
            ("deribit.gap_report",),
            _GAPS,
            f.params(),
        ),
        f,
    )
    return Section("gaps", "Gaps", [main])


_SANITY = f"""
SELECT dataset, instrument_name, ts, rule, detail
  FROM deribit.sanity_violations
 WHERE {_NAME_FILTER}
   AND (%(since)s::timestamptz IS NULL OR ts >= %(since)s)
   AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
 ORDER BY ts, dataset, instrument_name, rule
"""


# Checking every candle takes minutes at full history (the spike rule reads each instrument's recent range), so
# without --since the sanity section looks at the last days of data: a window the user can widen.
_NEWEST_CANDLE = "SELECT max(covered_until) FROM deribit_ts.watermarks WHERE dataset = 'candles'"


def sanity(ask: _Asker, f: Filters) -> Section:
    since, note = f.since, None
    if since is None:
        newest = ask.conn.execute(_NEWEST_CANDLE).fetchone()[0]
        if newest is not None:
            since = newest - timedelta(days=DEFAULT_DAYS["sanity"])
            note = (
                f"since {since:%Y-%m-%d %H:%M} (the last {DEFAULT_DAYS['sanity']} days of data; "
                "--since to look further back)"
            )
    main = _cut(
        ask.table("sanity", "Sanity violations", ("deribit.sanity_violations",), _SANITY, f.params(since=since)), f
    )
    if note and not main.missing:
        main.note = "; ".join(n for n in (note, main.note) if n)
    by_rule = Table(
        "sanity_by_rule", "Violations by rule", ["rule", "violations"], chart_only=True, missing=main.missing
    )
    if not main.missing:
        counts: dict[str, int] = {}
        for row in main.rows:
            counts[row[3]] = counts.get(row[3], 0) + 1
        by_rule.rows = sorted(counts.items(), key=lambda kv: -kv[1])
    return Section("sanity", "Sanity", [main, by_rule])


# --- basis (sql/50_basis_funding.sql) ---------------------------------------------------------------------

_CURRENCY_IS = "(%(currency)s::text IS NULL OR currency = %(currency)s)"
_INSTRUMENT_IS = "(%(instrument)s::text IS NULL OR instrument_name = %(instrument)s)"

# The newest hour that has a term structure (as of --until): the view walks back from the newest hour.
_BASIS_NEWEST = f"""
SELECT ts FROM deribit.basis_term_structure
 WHERE {_CURRENCY_IS} AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
 ORDER BY ts DESC LIMIT 1
"""

_BASIS_LATEST = f"""
SELECT currency, ts, instrument_name, expiry, round(days_to_expiry::numeric, 2)::float8 AS days_to_expiry,
       future_price, index_price, round(basis_pct::numeric, 4)::float8 AS basis_pct,
       round(annualized_basis_pct::numeric, 2)::float8 AS annualized_basis_pct, index_source
  FROM deribit.basis_term_structure
 WHERE ts = %(newest)s AND {_CURRENCY_IS} AND {_INSTRUMENT_IS}
 ORDER BY currency, expiry
"""

# The same at the newest hour and a day, a week and a month before it: how the curve moved. The plots leave
# out a future's last day, where annualizing turns a few dollars of basis into hundreds of percent a year.
PLOT_MIN_DAYS_TO_EXPIRY = 1  # the term structure now; the lines over time leave out the last 3 days
HISTORY_MIN_DAYS_TO_EXPIRY = 3
_BASIS_SNAPSHOTS = f"""
SELECT currency, ts, expiry, days_to_expiry, annualized_basis_pct, instrument_name
  FROM deribit.basis_term_structure
 WHERE {_CURRENCY_IS}
   AND ts IN (%(newest)s, %(newest)s - interval '1 day', %(newest)s - interval '7 days',
              %(newest)s - interval '30 days')
   AND annualized_basis_pct IS NOT NULL AND days_to_expiry >= %(min_days)s
 ORDER BY currency, ts DESC, expiry
"""

# Every live future's annualized basis over the window, once a day at 00:00 UTC: the term structure is
# computed hour by hour, so a daily line over months costs as much as a few days of hourly points.
_BASIS_HISTORY = f"""
SELECT currency, ts, instrument_name, annualized_basis_pct
  FROM deribit.basis_term_structure
 WHERE {_CURRENCY_IS} AND {_INSTRUMENT_IS}
   AND ts > coalesce(%(since)s::timestamptz, %(newest)s - make_interval(days => %(days)s)) AND ts <= %(newest)s
   AND ts = date_trunc('day', ts, 'UTC')
   AND annualized_basis_pct IS NOT NULL AND days_to_expiry >= %(min_days)s
 ORDER BY currency, instrument_name, ts
"""


def basis(ask: _Asker, f: Filters) -> Section:
    needs = ("deribit.basis_term_structure",)
    title = "Basis term structure (newest hour; annualized, simple, 365 days)"
    newest = ask.table("basis", title, needs, _BASIS_NEWEST, f.params())
    if newest.missing or not newest.rows:
        return Section("basis", "Basis", [newest])
    at = newest.rows[0][0]
    latest = ask.table("basis", title, needs, _BASIS_LATEST, f.params(newest=at))
    snapshots = ask.table(
        "basis_snapshots",
        "Term structure now, a day, a week and a month before",
        needs,
        _BASIS_SNAPSHOTS,
        f.params(newest=at, min_days=PLOT_MIN_DAYS_TO_EXPIRY),
        chart_only=True,
    )
    history = ask.table(
        "basis_history",
        "Annualized basis of each future over time (daily, 00:00 UTC)",
        needs,
        _BASIS_HISTORY,
        f.params(newest=at, days=DEFAULT_DAYS["basis"], min_days=HISTORY_MIN_DAYS_TO_EXPIRY),
        chart_only=True,
    )
    return Section("basis", "Basis", [latest, snapshots, history])


# --- funding ----------------------------------------------------------------------------------------------

_FUNDING_WINDOW = f"""
WITH newest AS (
    SELECT coalesce(%(until)s::timestamptz, max(ts) + interval '1 microsecond') AS until
      FROM deribit.funding_rate_history
), rows AS (
    SELECT a.* FROM deribit.funding_apr a, newest
     WHERE {_NAME_FILTER}
       AND a.ts < newest.until
       AND a.ts >= coalesce(%(since)s::timestamptz, newest.until - make_interval(days => %(days)s))
)
"""

_FUNDING_SERIES = (
    _FUNDING_WINDOW
    + """
SELECT instrument_name, ts, apr, apr_1d, apr_7d FROM rows ORDER BY instrument_name, ts
"""
)


def funding(ask: _Asker, f: Filters) -> Section:
    series = ask.table(
        "funding_series",
        "Funding APR over time",
        ("deribit.funding_apr",),
        _FUNDING_SERIES,
        f.params(days=DEFAULT_DAYS["funding"]),
        chart_only=True,
    )
    latest = Table(
        "funding",
        "Funding APR per perpetual (newest hour; % a year, simple)",
        ["instrument_name", "ts", "apr", "apr_1d", "apr_7d", "apr_window_mean", "window_from"],
        missing=series.missing,
    )
    # The summary is read off the series (its last row and mean): the window functions run once.
    for name, rows in itertools.groupby(series.rows, key=lambda r: r[0]):
        rows = list(rows)
        mean = sum(r[2] for r in rows if r[2] is not None) / max(1, sum(r[2] is not None for r in rows))
        last = rows[-1]
        latest.rows.append((name, last[1], *(_round2(v) for v in last[2:5]), _round2(mean), rows[0][1]))
    return Section("funding", "Funding", [latest, series])


def _round2(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --- smile (issue 8's views) ------------------------------------------------------------------------------

# The newest snapshot round of each currency (as of --until). deribit.option_snapshot_rounds is the indexed way
# (issue 8); without it, the smile view itself.
_ROUNDS = f"""
SELECT currency, max(ts) FROM {{source}}
 WHERE {_CURRENCY_IS} AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
 GROUP BY currency ORDER BY currency
"""

_SMILE = """
SELECT currency, ts, expiry, strike, option_type, log_moneyness, mark_iv, delta
  FROM deribit.iv_smile WHERE currency = %(round_currency)s AND ts = %(round_ts)s
 ORDER BY expiry, strike
"""

_IV_TERM = """
SELECT currency, ts, expiry, days_to_expiry, atm_iv
  FROM deribit.iv_term_structure WHERE currency = %(round_currency)s AND ts = %(round_ts)s
 ORDER BY expiry
"""


def smile(ask: _Asker, f: Filters) -> Section:
    smile_ = Table("smile", "IV smile (newest snapshot; out-of-the-money options)")
    term = Table("iv_term_structure", "ATM IV term structure (newest snapshot)")
    for table, view, query in ((smile_, "deribit.iv_smile", _SMILE), (term, "deribit.iv_term_structure", _IV_TERM)):
        table.missing = ask.absent((view,))
        if table.missing:
            continue
        source = "deribit.option_snapshot_rounds" if ask.has("deribit.option_snapshot_rounds") else view
        for currency, ts in ask.conn.execute(_ROUNDS.format(source=source), f.params()).fetchall():
            part = ask.table(table.name, table.title, (view,), query, f.params(round_currency=currency, round_ts=ts))
            table.columns, table.rows = part.columns, table.rows + part.rows
    return Section("smile", "Implied volatility", [smile_, term])


_BUILDERS: dict[str, Callable[[_Asker, Filters], Section]] = {
    "coverage": coverage,
    "gaps": gaps,
    "sanity": sanity,
    "basis": basis,
    "funding": funding,
    "smile": smile,
}
