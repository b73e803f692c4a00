"""The report as one self-contained HTML page: plotly.js inlined once, so the file opens offline anywhere."""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from deribit_ts import __version__
from deribit_ts.report.data import Section, Table
from deribit_ts.report.text import EMPTY_MEANS, cell_text

MAX_TABLE_ROWS = 500  # a page, not a dump: --json / --csv give everything
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "height": 420,
    "hovermode": "closest",
    "legend": {"orientation": "h", "y": -0.18},
}

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2733;
       background: #f6f7f9; }
header { background: #1d2733; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 20px; } header p { margin: 4px 0 0; color: #b8c2cc; }
nav { padding: 8px 28px; background: #e8ecf0; } nav a { margin-right: 16px; color: #1d4e89; text-decoration: none; }
section { background: #fff; margin: 18px 28px; padding: 14px 20px; border-radius: 6px; box-shadow: 0 1px 3px #0002; }
h2 { margin: 4px 0 10px; font-size: 18px; } h3 { font-size: 15px; margin: 16px 0 6px; }
.note { color: #5b6875; } .missing { color: #9a4a00; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0; }
th, td { padding: 3px 9px; border-bottom: 1px solid #e3e7eb; text-align: left; white-space: nowrap; }
th { background: #f0f3f6; position: sticky; top: 0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { max-height: 360px; overflow: auto; }
"""


def render(sections: list[Section], *, database: str) -> str:
    """The whole page as a string."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = " ".join(f'<a href="#{s.name}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(_section(s) for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>deribit-ts report</title>
<style>{_STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<header><h1>deribit-ts report</h1>
<p>{html.escape(database)} &middot; generated {generated} by deribit-ts {__version__}</p></header>
<nav>{nav}</nav>
{body}
</body></html>
"""


def _section(section: Section) -> str:
    parts = [f'<section id="{section.name}"><h2>{html.escape(section.title)}</h2>']
    for figure in _FIGURES[section.name](section):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=False, config=_PLOT_CONFIG))
    for table in _page_tables(section):
        if table.missing:
            parts.append(
                f'<p class="missing"><b>{html.escape(table.title)}</b>: not available: {html.escape(table.missing)}</p>'
            )
        elif not table.rows:
            parts.append(
                f'<p class="note"><b>{html.escape(table.title)}</b>: '
                f"{html.escape(EMPTY_MEANS.get(table.name, 'no rows'))}"
                f"{html.escape('; ' + table.note) if table.note else ''}</p>"
            )
        else:
            parts.append(_html_table(table))
    parts.append("</section>")
    return "\n".join(parts)


def _page_tables(section: Section) -> list[Table]:
    """The tables a section shows on the page: its printable ones; for coverage, the summary and what is missing."""
    if section.name != "coverage" or section.main.missing:
        return [t for t in section.tables if not t.chart_only]
    main = section.main
    complete = main.columns.index("complete")
    incomplete = Table(
        "coverage_incomplete",
        "Keys with minutes never fetched",
        main.columns,
        [row for row in main.rows if not row[complete]],
    )
    summary = section.table("coverage_summary")
    return [Table(summary.name, summary.title, summary.columns, summary.rows, summary.missing), incomplete]


def _html_table(table: Table) -> str:
    rows = table.rows[:MAX_TABLE_ROWS]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(_html_cell(v) for v in row) + "</tr>" for row in rows)
    notes = [
        n
        for n in (
            table.note,
            f"first {MAX_TABLE_ROWS:,} of {len(table.rows):,} rows shown (--json or --csv print all)"
            if len(table.rows) > MAX_TABLE_ROWS
            else None,
        )
        if n
    ]
    note = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return (
        f'<h3>{html.escape(table.title)} ({len(table.rows):,} rows)</h3><div class="scroll"><table>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}"
    )


def _html_cell(value) -> str:
    numeric = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    attribute = ' class="num"' if numeric else ""
    return f"<td{attribute}>{html.escape(cell_text(value))}</td>"


def _usable(table: Table | None) -> bool:
    return table is not None and not table.missing and bool(table.rows)


def _figure(title: str, **layout) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(**{**_LAYOUT, "title": {"text": title, "x": 0.01}, **layout})
    return figure


def _by(rows: list[tuple], key_index: int) -> dict:
    groups: dict = defaultdict(list)
    for row in rows:
        groups[row[key_index]].append(row)
    return groups


# --- one function per section: the figures it draws (none where there is nothing to draw) -------------------


def _coverage_figures(section: Section) -> list[go.Figure]:
    cells = section.table("coverage_days")
    if not _usable(cells):
        return []
    labels = sorted({(r[0], r[1]) for r in cells.rows}, reverse=True)  # plotly draws the first row at the bottom
    days = sorted({r[2] for r in cells.rows})
    row_of = {label: i for i, label in enumerate(labels)}
    col_of = {day: j for j, day in enumerate(days)}
    z: list[list[float | None]] = [[None] * len(days) for _ in labels]
    for dataset, label, day, pct in cells.rows:
        z[row_of[(dataset, label)]][col_of[day]] = pct
    figure = _figure(
        "Coverage: share of each day's wanted minutes fetched",
        height=max(260, 110 + 18 * len(labels)),
        margin={"l": 230, "r": 20, "t": 50, "b": 40},
    )
    figure.add_trace(
        go.Heatmap(
            z=z,
            x=[d.isoformat() for d in days],
            y=[f"{d} · {k}" for d, k in labels],
            zmin=0,
            zmax=100,
            colorscale=[[0, "#d73027"], [0.5, "#fee08b"], [0.97, "#a6d96a"], [1, "#1a9850"]],
            colorbar={"title": {"text": "% fetched"}},
            xgap=1,
            ygap=1,
            hovertemplate="%{y}<br>%{x}: %{z:.1f}% fetched<extra></extra>",
        )
    )
    figure.update_yaxes(tickfont={"size": 10})
    return [figure]


def _gaps_figures(section: Section) -> list[go.Figure]:
    table = section.main
    if not _usable(table):
        return []
    # A timeline: one row per (dataset, instrument), a mark at each gap sized by its length, so an exchange-wide
    # outage reads as a column of marks at one instant.
    labels = sorted({f"{r[0]} · {r[1]}" for r in table.rows}, reverse=True)
    figure = _figure(
        "Gaps over time (mark size: missing minutes)",
        height=max(260, 120 + 16 * len(labels)),
        margin={"l": 230, "r": 20, "t": 50, "b": 40},
    )
    for cause, rows in sorted(_by(table.rows, 5).items()):
        figure.add_trace(
            go.Scatter(
                x=[r[2] for r in rows],
                y=[f"{r[0]} · {r[1]}" for r in rows],
                mode="markers",
                name=cause,
                marker={
                    "size": [min(28, 6 + r[4] ** 0.5) for r in rows],
                    "opacity": 0.7,
                    "color": "#d73027" if cause == "not_fetched" else "#4575b4",
                },
                text=[f"{r[2]:%Y-%m-%d %H:%M} to {r[3]:%Y-%m-%d %H:%M}: {r[4]:,} minutes" for r in rows],
                hovertemplate="%{y}<br>%{text}<extra>" + cause + "</extra>",
            )
        )
    figure.update_yaxes(categoryorder="array", categoryarray=labels, tickfont={"size": 10})
    return [figure]


def _sanity_figures(section: Section) -> list[go.Figure]:
    table = section.table("sanity_by_rule")
    if not _usable(table):
        return []
    figure = _figure(
        "Violations by rule", height=140 + 36 * len(table.rows), margin={"l": 200, "r": 20, "t": 50, "b": 40}
    )
    figure.add_trace(
        go.Bar(
            x=[r[1] for r in table.rows],
            y=[r[0] for r in table.rows],
            orientation="h",
            marker_color="#c0392b",
            width=0.6,
        )
    )
    figure.update_xaxes(title_text="candles")
    return [figure]


def _basis_figures(section: Section) -> list[go.Figure]:
    figures = []
    snapshots = section.table("basis_snapshots")
    if _usable(snapshots):
        by_currency = _by(snapshots.rows, 0)
        figure = make_subplots(rows=1, cols=len(by_currency), subplot_titles=list(by_currency))
        figure.update_layout(
            **{
                **_LAYOUT,
                "title": {
                    "text": "Basis term structure: annualized basis by days to expiry (simple, 365 days)",
                    "x": 0.01,
                },
            }
        )
        for col, (currency, rows) in enumerate(by_currency.items(), start=1):
            newest = rows[0][1]
            for ts, points in _by(rows, 1).items():
                age = (newest - ts).days
                name = f"{currency} {ts:%Y-%m-%d %H:%M}" + (" (newest)" if age == 0 else f" ({age} d before)")
                figure.add_trace(
                    go.Scatter(
                        x=[p[3] for p in points],
                        y=[p[4] for p in points],
                        mode="lines+markers",
                        name=name,
                        text=[p[5] for p in points],
                        line={"width": 3 if age == 0 else 1.5},
                        hovertemplate="%{text}<br>%{x:.1f} days: %{y:.2f}%/year<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
            figure.update_xaxes(title_text="days to expiry", row=1, col=col)
            figure.update_yaxes(title_text="% a year", row=1, col=col)
        figures.append(figure)
    history = section.table("basis_history")
    if _usable(history):
        by_currency = _by(history.rows, 0)
        figure = make_subplots(
            rows=len(by_currency), cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=list(by_currency)
        )
        figure.update_layout(
            **{
                **_LAYOUT,
                "height": 120 + 300 * len(by_currency),
                "legend": {"font": {"size": 10}},
                "title": {
                    "text": "Annualized basis of each future over time (daily at 00:00 UTC, % a year)",
                    "x": 0.01,
                },
            }
        )
        for row, rows in enumerate(by_currency.values(), start=1):
            for name, points in _by(rows, 2).items():
                figure.add_trace(
                    go.Scatter(
                        x=[p[1] for p in points],
                        y=[p[3] for p in points],
                        mode="lines",
                        name=name,
                        hovertemplate=name + "<br>%{x}: %{y:.2f}%/year<extra></extra>",
                    ),
                    row=row,
                    col=1,
                )
        figures.append(figure)
    return figures


_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def _funding_figures(section: Section) -> list[go.Figure]:
    series = section.table("funding_series")
    if not _usable(series):
        return []
    figure = _figure("Funding APR (% a year, simple): hourly, trailing 1 day and 7 days")
    for i, (name, rows) in enumerate(_by(series.rows, 0).items()):
        x, color = [r[1] for r in rows], _COLORS[i % len(_COLORS)]
        figure.add_trace(
            go.Scatter(
                x=x,
                y=[r[2] for r in rows],
                mode="lines",
                name=f"{name} hourly",
                line={"width": 0.7, "color": color},
                opacity=0.3,
            )
        )
        figure.add_trace(
            go.Scatter(
                x=x,
                y=[r[3] for r in rows],
                mode="lines",
                name=f"{name} 1 day",
                line={"width": 1.5, "color": color, "dash": "dot"},
            )
        )
        figure.add_trace(
            go.Scatter(
                x=x, y=[r[4] for r in rows], mode="lines", name=f"{name} 7 days", line={"width": 3, "color": color}
            )
        )
    figure.update_yaxes(title_text="% a year")
    return [figure]


def _smile_figures(section: Section) -> list[go.Figure]:
    figures = []
    smile = section.table("smile")
    if _usable(smile):
        by_currency = _by(smile.rows, 0)
        figure = make_subplots(rows=1, cols=len(by_currency), subplot_titles=list(by_currency))
        figure.update_layout(**{**_LAYOUT, "title": {"text": "IV smile per expiry (newest snapshot)", "x": 0.01}})
        for col, (currency, rows) in enumerate(by_currency.items(), start=1):
            for expiry, points in _by(rows, 2).items():
                figure.add_trace(
                    go.Scatter(
                        x=[p[5] for p in points],
                        y=[p[6] for p in points],
                        mode="lines+markers",
                        name=f"{currency} {expiry:%d%b%y}".upper(),
                        text=[f"{p[3]:g} {p[4]}" for p in points],
                        hovertemplate="%{text}<br>log-moneyness %{x:.3f}: %{y:.1f}%<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
            figure.update_xaxes(title_text="log-moneyness ln(K/F)", row=1, col=col)
            figure.update_yaxes(title_text="mark IV %", row=1, col=col)
        figures.append(figure)
    term = section.table("iv_term_structure")
    if _usable(term):
        figure = _figure("ATM implied volatility term structure (newest snapshot)")
        for currency, rows in _by(term.rows, 0).items():
            figure.add_trace(
                go.Scatter(
                    x=[r[3] for r in rows],
                    y=[r[4] for r in rows],
                    mode="lines+markers",
                    name=currency,
                    hovertemplate="%{x:.1f} days: %{y:.1f}%<extra></extra>",
                )
            )
        figure.update_xaxes(title_text="days to expiry")
        figure.update_yaxes(title_text="ATM IV %")
        figures.append(figure)
    return figures


_FIGURES = {
    "coverage": _coverage_figures,
    "gaps": _gaps_figures,
    "sanity": _sanity_figures,
    "basis": _basis_figures,
    "funding": _funding_figures,
    "smile": _smile_figures,
}
