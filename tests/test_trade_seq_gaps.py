"""deribit_ts.trade_seq_gaps, kept by deribit_ts.refresh_trade_seq_gaps where trades are written, always equals the
jumps among the stored trades (what gap_report's trade_seq_hole used to compute from the whole tape on each read),
whatever order the windows are written in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import psycopg

T0 = datetime(2024, 3, 1, tzinfo=UTC)
BRUTE = """
SELECT instrument_name, trade_seq, ts, prev_seq, prev_ts
  FROM (SELECT instrument_name, trade_seq, ts, lag(trade_seq) OVER w AS prev_seq, lag(ts) OVER w AS prev_ts
          FROM deribit.trades WINDOW w AS (PARTITION BY instrument_name ORDER BY trade_seq)) s
 WHERE trade_seq > prev_seq + 1 ORDER BY 1, 2"""
KEPT = "SELECT instrument_name, trade_seq, ts, prev_seq, prev_ts FROM deribit_ts.trade_seq_gaps ORDER BY 1, 2"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def write(conn: psycopg.Connection, name: str, trades: list[tuple[int, datetime]], lo: datetime, hi: datetime):
    """Store a window's trades (seq, ts) as a writer does: rows, then the refresh over the window's range."""
    for seq, ts in trades:
        conn.execute(
            """INSERT INTO deribit.trades (instrument_name, ts, trade_id, trade_seq, price, amount, direction)
               VALUES (%s, %s, %s, %s, 1, 1, 'buy')""",
            (name, ts, f"{name}-{seq}", seq),
        )
    conn.execute("SELECT deribit_ts.refresh_trade_seq_gaps(%s, %s, %s)", (name, lo, hi))


def test_jumps_follow_windows_written_out_of_order(new_db: str) -> None:
    with psycopg.connect(new_db, autocommit=True) as conn:
        write(conn, "X", [(1, at(1)), (2, at(2)), (3, at(3))], at(0), at(3.5))
        assert conn.execute(KEPT).fetchall() == []
        write(conn, "X", [(7, at(7)), (8, at(8)), (10, at(10))], at(6.5), at(11))
        assert conn.execute(KEPT).fetchall() == [("X", 7, at(7), 3, at(3)), ("X", 10, at(10), 8, at(8))]
        write(conn, "X", [(4, at(4)), (6, at(6))], at(3.5), at(6.5))  # between them: 3-7 becomes 4-6
        assert conn.execute(KEPT).fetchall() == [("X", 6, at(6), 4, at(4)), ("X", 10, at(10), 8, at(8))]
        write(conn, "X", [(5, at(5))], at(5), at(5.5))
        write(conn, "X", [(9, at(9))], at(9), at(9.5))
        assert conn.execute(KEPT).fetchall() == []
        write(conn, "Y", [(100, at(1)), (250, at(1))], at(1), at(1.001))  # many trades in one millisecond
        write(conn, "X", [], at(0), at(20))  # a window with nothing new changes nothing
        assert conn.execute(KEPT).fetchall() == [("Y", 250, at(1), 100, at(1))]


def test_jumps_equal_the_whole_tape_numbered_whatever_the_order(new_db: str) -> None:
    rng = random.Random(7)
    with psycopg.connect(new_db, autocommit=True) as conn:
        for name in ("A", "B"):
            tape = [(seq, at(seq // 3)) for seq in range(1, 400) if rng.random() > 0.05]  # 3 trades a minute, holes
            windows = [(m, m + 10) for m in range(0, 140, 10)]
            rng.shuffle(windows)
            for lo, hi in windows:
                write(conn, name, [t for t in tape if at(lo) <= t[1] < at(hi)], at(lo), at(hi))
                assert conn.execute(KEPT).fetchall() == conn.execute(BRUTE).fetchall()
        assert len(conn.execute(KEPT).fetchall()) > 20
