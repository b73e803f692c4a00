"""Fetching a time range exactly, whatever the endpoint does at the edges of a window.

Deribit's history endpoints do not say how much they return: the chart endpoint silently cuts the old
end of a window that is too wide (docs/deribit.md, Endpoints), and whether another deployment cuts the
new end instead, or caps at another count, is unconfirmed. So a response is never assumed to cover what
was asked. When it holds every expected point, the window is complete. When its first point is later
than the window's start (or its last earlier than the end), the uncovered edge is asked for again: an
empty answer proves the edge empty; rows prove the server cut the window, and the edge is fetched
recursively. Gaps in the middle are the exchange's own (outages, no trades) and are recorded as such.

An empty answer is the one thing that cannot be checked against itself: Deribit's cap counts buckets from the
window's end, so a window whose newest buckets are all empty (an outage) answers no_data although older
buckets hold data. An empty answer therefore proves a window empty only when the window is no wider than
what answers of that endpoint are known to span (`Reach`); a wider window is asked for again in pieces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from deribit_ts.timeutil import ceil_ms

Row = Sequence  # a row's first element is its timestamp in ms
FetchOnce = Callable[[int, int], Awaitable[list[Row]]]


class Reach:
    """How many points one answer of an endpoint can be trusted to span, learnt from the answers.

    It starts from an assumed floor. Any answer's span is at most the cap if the cap counts buckets (if it counts
    rows, an empty answer is a proof anyway: the server had no row to send), so the widest span seen raises it;
    an answer the server is seen to have cut (its missing edge held rows) shows the cap itself and sets it, also
    below the floor. Shared by every task of a process: what one answer shows holds for all.
    """

    def __init__(self, floor_points: int):
        self.points = floor_points

    def saw(self, rows: list[Row], step_ms: int) -> None:
        self.points = max(self.points, _span(rows, step_ms))

    def cut(self, rows: list[Row], step_ms: int) -> None:
        self.points = _span(rows, step_ms)


def _span(rows: list[Row], step_ms: int) -> int:
    return (rows[-1][0] - rows[0][0]) // step_ms + 1


def expected_points(start_ms: int, end_ms: int, step_ms: int) -> int:
    first = ceil_ms(start_ms, step_ms)
    return max(0, -(-(end_ms - first) // step_ms))


async def fetch_exact(
    fetch_once: FetchOnce, start_ms: int, end_ms: int, step_ms: int, reach: Reach | None = None
) -> list[Row]:
    """All rows with start_ms <= ts < end_ms, sorted, with both edges of the range verified. Without `reach`,
    an empty answer is taken as proof that the whole range is empty."""
    if start_ms >= end_ms:
        return []
    rows = _in_order(await fetch_once(start_ms, end_ms), start_ms, end_ms)
    if not rows:
        if reach is None or expected_points(start_ms, end_ms, step_ms) <= reach.points:
            return rows
        piece_ms = reach.points * step_ms
        pieces = [
            await fetch_exact(fetch_once, a, min(a + piece_ms, end_ms), step_ms, reach)
            for a in range(start_ms, end_ms, piece_ms)
        ]
        return [row for piece in pieces for row in piece]
    if reach is not None:
        reach.saw(rows, step_ms)
    if len(rows) >= expected_points(start_ms, end_ms, step_ms):
        return rows
    head: list[Row] = []
    tail: list[Row] = []
    if rows[0][0] > ceil_ms(start_ms, step_ms):
        head = await fetch_exact(fetch_once, start_ms, rows[0][0], step_ms, reach)
    if rows[-1][0] + step_ms < end_ms:
        tail = await fetch_exact(fetch_once, rows[-1][0] + step_ms, end_ms, step_ms, reach)
    if (head or tail) and reach is not None:  # the server cut this answer: what it spans is its cap
        reach.cut(rows, step_ms)
    return head + rows + tail


def _in_order(rows: list[Row], start_ms: int, end_ms: int) -> list[Row]:
    """Rows inside [start_ms, end_ms), ascending, one per timestamp. Exchanges normally send exactly that,
    so check it first and only sort and dedupe when they did not (the check is cheap, the fix is not)."""
    inside = bool(rows) and start_ms <= rows[0][0] and rows[-1][0] < end_ms
    if inside and all(a[0] < b[0] for a, b in zip(rows, rows[1:], strict=False)):
        return rows
    return _dedupe(sorted((r for r in rows if start_ms <= r[0] < end_ms), key=lambda r: r[0]))


def _dedupe(rows: list[Row]) -> list[Row]:
    """Keep the last row of each timestamp (an exchange may repeat one, e.g. across a page edge)."""
    out: list[Row] = []
    for row in rows:
        if out and out[-1][0] == row[0]:
            out[-1] = row
        else:
            out.append(row)
    return out
