"""Which options traded: the collector fetches candles only for those.

A chart request per option per minute would need ~27 requests a second for Deribit's ~1,600 live options, more
than the allowance, and most minutes of most options have no trade (their candle is a filler at the last close).
So every minute one bulk request per currency, public/get_last_trades_by_currency_and_time with kind=option,
lists the trades since the last scan, paged by time (1,000 trades a page; collect/trades.py, which also stores
them): its instrument names are exactly the options whose candles changed. Why trades and not
get_book_summary_by_currency: the book summary's 24-hour volume and last price only hint at a trade (a trade at
the last price, or one that offsets a volume falling out of the 24-hour window, changes neither), while a trade
list is exact, and pages by time, so after an outage the scan simply starts at its watermark. The cost is a
request per 1,000 trades, a few a minute at Deribit's volumes.

Every 2 minutes (every other scan), each option that traded gets its candles planned from its own watermark (or the
collector's origin) to the last closed minute, like any instrument, reading again the last `trail()` before its
watermark. A candle counts as final only when fetched after it settled (the candles' settling time after its minute
closed), so each scan reads back from where the previous one ended the settling time, plus the minute itself, plus a
minute for the clocks: the first scan after an option's traded minute settled, however late it runs (a busy machine,
a slow scan), still sees its trade and plans that minute once more, now final, even if the option does not trade
again. (Trailing by the settling time from the scan's own start, the last scan to see the trade ran before the
minute settled: the option's last traded minute stayed unsettled until its next trade, and a late correction of it
was never fetched.) As candles are planned every other scan, a scan that plans reads back the trail from where the
previous plan's scan ended, not from the scan just before it (collect/jobs.py).
"""

from __future__ import annotations

from datetime import timedelta

from deribit_ts.ingest import candles


def trail() -> timedelta:
    """How far before the previous scan's end each option scan reads again (and each plan before an option's
    candle watermark)."""
    return candles.DATASET.settle + timedelta(minutes=2)
