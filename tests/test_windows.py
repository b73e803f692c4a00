"""fetch_exact against endpoints that cut their answers in each plausible way (docs/deribit.md): the rows it
returns are exactly the series' rows in the range, whatever the cap, the end cut and the gaps."""

from __future__ import annotations

import asyncio

import pytest

from deribit_ts.ingest.windows import Reach, fetch_exact

STEP = 60_000


def series(points: int, gaps: list[range]) -> list[list[int]]:
    """Rows [ts, value] every STEP, except inside the gaps (given in point numbers)."""
    return [[i * STEP, i] for i in range(points) if not any(i in gap for gap in gaps)]


def endpoint(rows: list[list[int]], cap: int, counts: str, cut: str, calls: list):
    """An answer over [start, end]: at most `cap` buckets (counted from the end, or from the start) or `cap`
    rows (the newest or the oldest), as a server might cut it."""

    async def fetch_once(start: int, end: int) -> list[list[int]]:
        calls.append((start, end))
        if counts == "buckets":
            first_bucket = end // STEP * STEP - (cap - 1) * STEP if cut == "old" else start
            last_bucket = end if cut == "old" else -(-start // STEP) * STEP + (cap - 1) * STEP
            return [r for r in rows if max(start, first_bucket) <= r[0] <= min(end, last_bucket)]
        inside = [r for r in rows if start <= r[0] <= end]
        return inside[-cap:] if cut == "old" else inside[:cap]

    return fetch_once


@pytest.mark.parametrize("counts", ["buckets", "rows"])
@pytest.mark.parametrize("cut", ["old", "new"])
@pytest.mark.parametrize("cap", [1000, 2999, 5001])
def test_exact_whatever_the_cap_and_the_gaps(counts, cut, cap):
    """Any cap down to the assumed floor (1,000, ccxt's default page)."""
    rows = series(12_000, gaps=[range(0, 300), range(4_700, 5_000), range(6_000, 6_180), range(11_900, 12_000)])
    calls: list = []
    fetch_once = endpoint(rows, cap, counts, cut, calls)
    reach = Reach(1000)
    got = []
    for start in range(0, 12_000 * STEP, 5_000 * STEP):  # the engine's 5,000-point windows
        got += asyncio.run(fetch_exact(fetch_once, start, min(start + 5_000 * STEP, 12_000 * STEP), STEP, reach))
    assert got == rows
    if cap == 5001:
        assert len(calls) <= 6, "a cap wider than the window costs (almost) nothing more"


def test_a_cap_below_the_floor_is_learnt_from_an_answer_it_cut():
    """No strategy can trust an empty answer if the cap may be anything: below the floor, the cap is learnt from
    the first answer seen cut, and from then on empty answers are trusted only that far."""
    rows = series(12_000, gaps=[range(4_700, 5_000), range(6_000, 6_180)])
    fetch_once = endpoint(rows, 50, "buckets", "old", [])
    reach = Reach(1000)
    got = []
    for start in range(0, 12_000 * STEP, 5_000 * STEP):
        got += asyncio.run(fetch_exact(fetch_once, start, min(start + 5_000 * STEP, 12_000 * STEP), STEP, reach))
    assert got == rows and reach.points <= 50


def test_an_empty_answer_is_proof_within_the_known_reach():
    rows = series(3_000, gaps=[range(2_500, 3_000)])  # the newest 500 buckets are empty
    calls: list = []
    fetch_once = endpoint(rows, 400, "buckets", "old", calls)
    assert asyncio.run(fetch_exact(fetch_once, 0, 3_000 * STEP, STEP)) == []  # no reach: empty is taken as proof
    assert asyncio.run(fetch_exact(fetch_once, 0, 3_000 * STEP, STEP, Reach(1000))) == rows
