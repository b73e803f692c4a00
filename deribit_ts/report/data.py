"""The report's numbers: one function per section, each asking the research views in SQL
(the queries are in sql/queries/report.sql).

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
from psycopg import sql

from deribit_ts.db.queries import compose, query

SECTIONS = ("coverage", "gaps", "sanity", "basis", "funding", "smile")

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
        return self.conn.execute(query("report", "relation_exists"), {"relation": relation}).fetchone()[0]

    def columns_of(self, relation: str) -> set[str]:
        schema, name = relation.split(".")
        rows = self.conn.execute(query("report", "columns_of"), {"schema": schema, "name": name})
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

    def table(
        self, name: str, title: str, needs: tuple[str, ...], statement: str | sql.Composed, params: dict, **kwargs
    ) -> Table:
        missing = self.absent(needs)
        if missing:
            return Table(name, title, missing=missing, **kwargs)
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
            return Table(name, title, [d.name for d in cur.description], cur.fetchall(), **kwargs)


def _cut(table: Table, filters: Filters) -> Table:
    if filters.limit is not None and len(table.rows) > filters.limit:
        table.note = f"first {filters.limit} of {len(table.rows)} rows (--limit)"
        table.rows = table.rows[: filters.limit]
    return table


# --- coverage ---------------------------------------------------------------------------------------------

# Columns deribit.coverage gained after its first release: shown where this database has them.
_COVERAGE_EXTRA = ("first_ts", "last_ts", "expected_rows", "completeness_pct")


def coverage(ask: _Asker, f: Filters) -> Section:
    present = ask.columns_of("deribit.coverage") if ask.has("deribit.coverage") else set()
    extra = sql.SQL("").join(sql.SQL("{}, ").format(sql.Identifier(c)) for c in _COVERAGE_EXTRA if c in present)
    main = ask.table(
        "coverage",
        "Coverage per dataset and key",
        ("deribit.coverage",),
        compose("report", "coverage", extra=extra),
        f.params(),
    )
    days = ask.table(
        "coverage_days",
        "Share of each day's wanted minutes fetched (%)",
        ("deribit.coverage",),
        query("report", "coverage_days"),
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


# --- gaps and sanity ------------------------------------------------------------------------------------


def gaps(ask: _Asker, f: Filters) -> Section:
    main = _cut(
        ask.table(
            "gaps",
            "Gaps: maximal runs of missing minutes inside what was asked for",
            ("deribit.gap_report",),
            query("report", "gaps"),
            f.params(),
        ),
        f,
    )
    return Section("gaps", "Gaps", [main])


# Checking every candle takes minutes at full history (the spike rule reads each instrument's recent range), so
# without --since the sanity section looks at the last days of data: a window the user can widen.
def sanity(ask: _Asker, f: Filters) -> Section:
    since, note = f.since, None
    if since is None:
        newest = ask.conn.execute(query("report", "newest_candle")).fetchone()[0]
        if newest is not None:
            since = newest - timedelta(days=DEFAULT_DAYS["sanity"])
            note = (
                f"since {since:%Y-%m-%d %H:%M} (the last {DEFAULT_DAYS['sanity']} days of data; "
                "--since to look further back)"
            )
    main = _cut(
        ask.table(
            "sanity",
            "Sanity violations",
            ("deribit.sanity_violations",),
            query("report", "sanity"),
            f.params(since=since),
        ),
        f,
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

# The plots leave out a future's last day(s), where annualizing turns a few dollars of basis into hundreds of
# percent a year: the term structure now leaves out the last day, the lines over time the last 3 days.
PLOT_MIN_DAYS_TO_EXPIRY = 1
HISTORY_MIN_DAYS_TO_EXPIRY = 3


def basis(ask: _Asker, f: Filters) -> Section:
    needs = ("deribit.basis_term_structure",)
    title = "Basis term structure (newest hour; annualized, simple, 365 days)"
    newest = ask.table("basis", title, needs, query("report", "basis_newest"), f.params())
    if newest.missing or not newest.rows:
        return Section("basis", "Basis", [newest])
    at = newest.rows[0][0]
    latest = ask.table("basis", title, needs, query("report", "basis_latest"), f.params(newest=at))
    snapshots = ask.table(
        "basis_snapshots",
        "Term structure now, a day, a week and a month before",
        needs,
        query("report", "basis_snapshots"),
        f.params(newest=at, min_days=PLOT_MIN_DAYS_TO_EXPIRY),
        chart_only=True,
    )
    history = ask.table(
        "basis_history",
        "Annualized basis of each future over time (daily, 00:00 UTC)",
        needs,
        query("report", "basis_history"),
        f.params(newest=at, days=DEFAULT_DAYS["basis"], min_days=HISTORY_MIN_DAYS_TO_EXPIRY),
        chart_only=True,
    )
    return Section("basis", "Basis", [latest, snapshots, history])


# --- funding ----------------------------------------------------------------------------------------------


def funding(ask: _Asker, f: Filters) -> Section:
    series = ask.table(
        "funding_series",
        "Funding APR over time",
        ("deribit.funding_apr",),
        query("report", "funding_series"),
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


# --- smile ------------------------------------------------------------------------------------------------


def smile(ask: _Asker, f: Filters) -> Section:
    smile_ = Table("smile", "IV smile (newest snapshot; out-of-the-money options)")
    term = Table("iv_term_structure", "ATM IV term structure (newest snapshot)")
    for table, view in ((smile_, "iv_smile"), (term, "iv_term_structure")):
        table.missing = ask.absent((f"deribit.{view}",))
        if table.missing:
            continue
        # The newest round of each currency: deribit.option_snapshot_rounds is the indexed way, where it exists.
        source = "option_snapshot_rounds" if ask.has("deribit.option_snapshot_rounds") else view
        rounds = compose("report", "smile_rounds", source=sql.Identifier("deribit", source))
        for currency, ts in ask.conn.execute(rounds, f.params()).fetchall():
            part = ask.table(
                table.name,
                table.title,
                (f"deribit.{view}",),
                query("report", table.name),
                f.params(round_currency=currency, round_ts=ts),
            )
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
