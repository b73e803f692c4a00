"""`deribit-ts report` as a user meets it, after a small backfill from the simulator: terminal tables, JSON and CSV
that say what the views say, one-line errors, and the HTML page rendered in a real headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from datetime import UTC, datetime

import psycopg
import pytest
from helpers import run_cli

from deribit_ts.sim import SimConfig, run_in_thread

NOW = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
NO_LIMITER = {"DERIBIT_TS_RATE_LIMIT_SCALE": "off"}
CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def loaded(db):
    """BTC's instruments, its perpetual's and live futures' candles, funding and index of the last two days, the
    trades and candles of a small option chain (six strikes an expiry, dailies to quarterlies) and one snapshot
    round of it. Two days are enough: the oldest time a test asks for is 2024-02-28 11:00 (test_filters)."""
    dsn = db
    with run_in_thread(SimConfig(now=NOW, rate_limit="off", strikes_per_expiry=6)) as sim:
        result = run_cli(
            "backfill",
            "all",
            "--currency",
            "BTC",
            "--since",
            "2024-02-28",
            "--quiet",
            "--dsn",
            dsn,
            "--api-url",
            sim.url,
            env=NO_LIMITER,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        result = run_cli(
            "snapshot",
            "options",
            "--currency",
            "BTC",
            "--bulk-only",
            "--quiet",
            "--dsn",
            dsn,
            "--api-url",
            sim.url,
            env=NO_LIMITER,
        )
        assert result.returncode == 0, result.stderr
    return dsn


def report(dsn: str, *args: str):
    return run_cli("report", *args, "--dsn", dsn)


def query(dsn: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def has_view(dsn: str, name: str) -> bool:
    return query(dsn, "SELECT to_regclass(%s) IS NOT NULL", (name,))[0][0]


def one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deribit-ts: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# --- what each section prints --------------------------------------------------------------------------------


def test_coverage_json_and_csv_list_every_key(loaded):
    keys = query(loaded, "SELECT dataset, key, rows FROM deribit.coverage ORDER BY dataset, key")
    result = report(loaded, "coverage", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["dataset"], r["key"], r["rows"]) for r in rows] == [tuple(k) for k in keys]
    assert {"index", "funding", "candles"} <= {r["dataset"] for r in rows}
    assert all(r["complete"] and r["missing_minutes"] == 0 for r in rows)
    table = list(csv.DictReader(io.StringIO(report(loaded, "coverage", "--csv").stdout)))
    assert [(r["dataset"], r["key"], int(r["rows"])) for r in table] == [tuple(k) for k in keys]


def test_basis_is_the_newest_term_structure(loaded):
    newest = query(loaded, "SELECT ts FROM deribit.basis_term_structure ORDER BY ts DESC LIMIT 1")[0][0]
    expected = query(
        loaded,
        "SELECT instrument_name, expiry, index_source FROM deribit.basis_term_structure WHERE ts = %s ORDER BY expiry",
        (newest,),
    )
    rows = json.loads(report(loaded, "basis", "--json").stdout)
    # the simulator's now (2024-03-01 00:00): the funding index is known on that hour, the futures' last candles of
    # the hour before closed by then
    assert newest == datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
    assert [(r["instrument_name"], datetime.fromisoformat(r["expiry"]), r["index_source"]) for r in rows] == expected
    assert len(rows) >= 4 and {r["currency"] for r in rows} == {"BTC"}
    # The simulator prices futures at an annualized basis of -2 % to +20 % over its index; the hourly term
    # structure compares them with the funding history's index at the hour, so it must find that band again
    # (the candle's close is a trade price, a little noise around the fair price, amplified near expiry).
    assert all(-5 < r["annualized_basis_pct"] < 25 for r in rows if r["days_to_expiry"] > 7), rows
    text = report(loaded, "basis").stdout
    assert all(r["instrument_name"] in text for r in rows) and "annualized_basis_pct" in text


def test_funding_is_the_newest_apr_of_each_perpetual(loaded):
    last = query(
        loaded,
        "SELECT ts, apr, apr_1d, apr_7d FROM deribit.funding_apr "
        "WHERE instrument_name = 'BTC-PERPETUAL' ORDER BY ts DESC LIMIT 1",
    )[0]
    rows = json.loads(report(loaded, "funding", "--json").stdout)
    assert [r["instrument_name"] for r in rows] == ["BTC-PERPETUAL"]
    assert datetime.fromisoformat(rows[0]["ts"]) == last[0]
    assert (rows[0]["apr"], rows[0]["apr_1d"], rows[0]["apr_7d"]) == tuple(round(v, 2) for v in last[1:])


@pytest.mark.parametrize(
    ("section", "view", "columns"),
    [
        ("gaps", "deribit.gap_report", "dataset, instrument_name, gap_start, gap_end, missing_minutes, cause"),
        ("sanity", "deribit.sanity_violations", "dataset, instrument_name, ts, rule, detail"),
    ],
)
def test_quality_sections_list_what_their_view_says(loaded, section, view, columns):
    if not has_view(loaded, view):
        # Not in this database yet: the section says so and the report goes on; asked for rows, one line.
        text = report(loaded, section)
        assert text.returncode == 0 and f"not available: {view} does not exist" in text.stdout
        one_line_error(report(loaded, section, "--json"), f"report {section}", view)
        return
    expected = query(loaded, f"SELECT {columns} FROM {view}")
    rows = json.loads(report(loaded, section, "--json").stdout)
    assert sorted(json.dumps(list(r.values()), default=str) for r in rows) == sorted(
        json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in row]) for row in expected
    )


def test_smile_is_the_newest_snapshot_round(loaded):
    (newest,) = query(loaded, "SELECT max(ts) FROM deribit.option_snapshot_rounds WHERE currency = 'BTC'")[0]
    smile = query(
        loaded,
        "SELECT expiry, strike, option_type, mark_iv FROM deribit.iv_smile "
        "WHERE currency = 'BTC' AND ts = %s ORDER BY expiry, strike",
        (newest,),
    )
    term = query(
        loaded,
        "SELECT expiry, atm_iv FROM deribit.iv_term_structure WHERE currency = 'BTC' AND ts = %s ORDER BY expiry",
        (newest,),
    )
    rows = json.loads(report(loaded, "smile", "--json").stdout)
    assert len(smile) > 50 and len(term) >= 4  # a whole chain: dailies to quarterlies
    assert [(datetime.fromisoformat(r["expiry"]), r["strike"], r["option_type"], r["mark_iv"]) for r in rows] == smile
    text = report(loaded, "smile").stdout
    assert "ATM IV term structure" in text and f"({len(term)} rows)" in text


def test_all_sections_at_once(loaded):
    result = report(loaded)
    assert result.returncode == 0, result.stderr
    for title in ("Coverage per dataset and key", "Basis term structure", "Funding APR per perpetual"):
        assert title in result.stdout
    payload = json.loads(report(loaded, "--json").stdout)
    assert {"coverage", "basis", "funding"} <= set(payload)
    assert set(payload) | set(payload.get("unavailable", {})) >= {
        "coverage",
        "gaps",
        "sanity",
        "basis",
        "funding",
        "smile",
    }


def test_the_newest_term_structure_is_found_beyond_the_last_week_of_the_index(loaded):
    """basis_newest looks in the week before the newest index sample first; when the index runs on more than a
    week past the last hour with a term structure (a planted far sample), the whole history is searched."""
    from deribit_ts.db.queries import query as named
    from deribit_ts.report.data import Filters

    with psycopg.connect(loaded) as conn:
        newest = conn.execute("SELECT max(ts) FROM deribit.basis_term_structure").fetchone()[0]
        assert conn.execute(named("report", "basis_newest"), Filters().params()).fetchall() == [(newest,)]
        conn.execute(
            "INSERT INTO deribit.index_price_history (index_name, ts, price, resolution) "
            "VALUES ('btc_usd', %s, 60000, '1 hour')",
            (datetime(2024, 4, 1, tzinfo=UTC),),
        )
        assert conn.execute(named("report", "basis_newest"), Filters().params()).fetchall() == [(newest,)]
        until = Filters(until=datetime(2024, 2, 28, 12, tzinfo=UTC)).params()
        assert conn.execute(named("report", "basis_newest"), until).fetchall() == [
            (datetime(2024, 2, 28, 11, tzinfo=UTC),)
        ]
        conn.rollback()


def test_filters(loaded):
    rows = json.loads(report(loaded, "coverage", "--json", "--instrument", "BTC-PERPETUAL").stdout)
    assert {(r["dataset"], r["key"]) for r in rows} == {("candles", "BTC-PERPETUAL"), ("funding", "BTC-PERPETUAL")}
    assert json.loads(report(loaded, "funding", "--json", "--currency", "eth").stdout) == []
    earlier = json.loads(report(loaded, "basis", "--json", "--until", "2024-02-28T12:00").stdout)
    assert {r["ts"] for r in earlier} == {"2024-02-28T11:00:00+00:00"}


# --- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nosuch"], "unknown report section 'nosuch'"),
        (["basis", "--json", "--csv"], "--json and --csv exclude each other"),
        (["--csv"], "--csv prints one section"),
        (["basis", "--since", "yesterday"], "--since 'yesterday' is not an ISO-8601 date"),
        (["basis", "--since", "2024-02-02", "--until", "2024-02-01"], "is not before --until"),
    ],
)
def test_bad_input_is_one_line(loaded, args, fragment):
    one_line_error(report(loaded, *args), fragment)


def test_unreachable_database_is_one_line(tmp_path):
    result = run_cli(
        "report", "basis", "--dsn", "postgresql://nobody:secret@127.0.0.1:1/x", env={"DERIBIT_TS_HOME": str(tmp_path)}
    )
    one_line_error(result, "cannot connect to the database")
    assert "secret" not in result.stderr


def test_html_into_a_missing_directory_is_one_line(loaded, tmp_path):
    target = tmp_path / "no" / "such" / "report.html"
    one_line_error(report(loaded, "--html", str(target)), str(target.parent))
    assert not target.parent.exists()


# --- the page, in a real browser -----------------------------------------------------------------------------


def _browser_or_skip():
    """Playwright driving Debian's chromium; without them, skip with the reason, except in CI where it fails."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[dev]')"
    if missing is None and not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing = f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    if missing:
        if IN_CI:
            pytest.fail(f"CI needs a browser for the HTML report test: {missing}")
        pytest.skip(missing)
    return sync_playwright, CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


# What every plot on the page holds: its traces and how many points each has.
_PLOTS = """Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => ({
    title: (plot.layout && plot.layout.title && plot.layout.title.text) || '',
    points: (plot.data || []).map(trace => (trace.z || trace.x || trace.y || []).filter(v => v !== null).length),
    drawn: plot.querySelectorAll('.main-svg').length}))"""


def test_html_page_renders_offline_with_every_plot_drawn(loaded, tmp_path):
    sync_playwright, chromium = _browser_or_skip()
    page_file = tmp_path / "report.html"
    result = report(loaded, "--html", str(page_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and f"wrote {page_file}" in result.stderr

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            # Offline: any request that leaves the file fails the test (and is refused).
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith("file:")
                    else (requests.append(route.request.url), route.abort())
                ),
            )
            page.goto(page_file.as_uri())
            page.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot').length > 0 && Array.from("
                "document.querySelectorAll('.js-plotly-plot')).every(p => p.querySelector("
                "'.main-svg'))",
                timeout=60_000,
            )
            plots = page.evaluate(_PLOTS)
            external_scripts = page.evaluate("document.querySelectorAll('script[src], link[href]').length")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()

    assert errors == [] and requests == [] and external_scripts == 0  # all inlined, nothing fetched
    titles = " | ".join(p["title"] for p in plots)
    for expected in (
        "Coverage",
        "Basis term structure",
        "Annualized basis",
        "Funding APR",
        "IV smile",
        "ATM implied volatility",
    ):
        assert expected in titles, titles
    for plot in plots:  # no empty plot: every trace drawn has points
        assert plot["drawn"] >= 1 and plot["points"] and all(n > 0 for n in plot["points"]), plot
    assert (tmp_path / "report.png").stat().st_size > 50_000
