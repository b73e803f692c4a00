"""A backfill whose stderr is not a terminal prints plain progress lines every few seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from helpers import run_cli

from deribit_ts.errors import UserError
from deribit_ts.ingest.progress import plain_line, progress_interval
from deribit_ts.sim import SimConfig, run_in_thread

LINE = re.compile(r"^deribit-ts: candles: [\d,]+/[\d,]+ tasks, \d+/\d+ keys, [\d,]+ rows, [\d,]+ rows/s, ETA \S+$")


@pytest.mark.slow
def test_a_redirected_backfill_reports_progress_in_plain_lines(new_db):
    # 300 ms per answer: a run of a few seconds, as a long backfill looks to someone tailing its log.
    config = SimConfig(now=datetime(2024, 3, 1, tzinfo=UTC), rate_limit="off", latency_ms=300)
    with run_in_thread(config) as sim:
        result = run_cli(
            "backfill",
            "candles",
            "--instrument",
            "BTC-PERPETUAL",
            "--since",
            "2024-01-01",
            "--until",
            "2024-02-15",
            "--dsn",
            new_db,
            "--api-url",
            sim.url,
            env={
                "DERIBIT_TS_PROGRESS_INTERVAL": "0.5",
                "DERIBIT_TS_WORKERS": "1",
                "DERIBIT_TS_RATE_LIMIT_SCALE": "off",
            },
        )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("deribit-ts: candles:")]
    assert len(lines) >= 3, result.stderr  # periodic ones, and the last where it ended
    assert all(LINE.match(line) for line in lines), lines
    assert "\x1b[" not in result.stderr and "━" not in result.stderr  # no bar drawing into a file
    assert lines[-1].startswith("deribit-ts: candles: ") and "ETA -" in lines[-1]
    done, total = map(int, re.search(r"([\d,]+)/([\d,]+) tasks", lines[-1]).groups())
    assert done == total > 0
    # A finished dataset's line is printed once, not again at every interval until the run ends.
    assert [line for line in lines if f"{total:,}/{total:,} tasks" in line] == [lines[-1]]


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "1e400", "nan"])
def test_a_bad_interval_is_refused(raw: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DERIBIT_TS_PROGRESS_INTERVAL", raw)
    with pytest.raises(UserError, match="DERIBIT_TS_PROGRESS_INTERVAL=.* is not a number of seconds"):
        progress_interval()


def test_plain_line_format():
    assert plain_line("candles", 120, 300, "4/12", 1_234_567, 45_000.4, 192) == (
        "deribit-ts: candles: 120/300 tasks, 4/12 keys, 1,234,567 rows, 45,000 rows/s, ETA 0:03:12"
    )
    assert plain_line("index", 3, 3, "1/1", 10, 1.0, None).endswith("ETA -")
