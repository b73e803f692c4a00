"""Benchmark: 1-minute chart data served by the Deribit simulator, in candles per second.

Starts `deribit-ts sim serve` in a separate process (rate limit off, frozen clock), then requests 5000-candle
windows of one instrument with a few concurrent aiohttp requests: first a cold pass walking back through distinct
history (every day block generated on first touch, each read once: what a backfill sees), then a warm pass over
the same windows (served from the block cache). Each repeat starts a fresh server, so every cold pass is cold.
The machine may be shared: compare cold with warm of the same run (the ratio), not with other runs.

    .venv/bin/python scripts/bench_sim.py [--windows 60] [--concurrency 4] [--repeat 3] [--instrument BTC-PERPETUAL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import aiohttp

NOW_MS = 1709294400000  # 2024-03-01T12:00Z
WINDOW_MS = 5000 * 60_000


async def _pass(url: str, instrument: str, windows: int, concurrency: int) -> tuple[int, float]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for k in range(windows):
        queue.put_nowait(NOW_MS - (k + 1) * WINDOW_MS)
    served = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal served
        while not queue.empty():
            start = queue.get_nowait()
            params = {
                "instrument_name": instrument,
                "resolution": "1",
                "start_timestamp": str(start),
                "end_timestamp": str(start + WINDOW_MS - 1),
            }
            async with session.get(f"{url}/api/v2/public/get_tradingview_chart_data", params=params) as resp:
                body = await resp.read()
            ticks = body.index(b'"ticks":[')
            if body[ticks + 9 : ticks + 10] != b"]":
                served += body.count(b",", ticks, body.index(b"]", ticks)) + 1

    began = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return served, time.perf_counter() - began


def _run_once(args: argparse.Namespace) -> tuple[float, float]:
    cmd = [
        sys.executable,
        "-m",
        "deribit_ts",
        "sim",
        "serve",
        "--port",
        "0",
        "--rate-limit",
        "off",
        "--now",
        "2024-03-01T12:00:00",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    rates = []
    try:
        url = proc.stdout.readline().strip()
        for label in ("cold", "warm"):
            candles, seconds = asyncio.run(_pass(url, args.instrument, args.windows, args.concurrency))
            rates.append(candles / seconds)
            print(
                f"{label}: {candles} candles in {seconds:.2f} s = {candles / seconds:,.0f} candles/s "
                f"({args.windows} requests of 5000 of {args.instrument}, concurrency {args.concurrency})"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"cold/warm: {rates[0] / rates[1]:.2f}")
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=60, help="5000-candle windows per pass")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--repeat", type=int, default=1, help="runs, each with a fresh server")
    parser.add_argument("--instrument", default="BTC-PERPETUAL", help="instrument to chart")
    args = parser.parse_args()
    runs = [_run_once(args) for _ in range(args.repeat)]
    if args.repeat > 1:
        cold, warm = zip(*runs, strict=True)
        print(
            f"median of {args.repeat}: cold {statistics.median(cold):,.0f} candles/s, "
            f"warm {statistics.median(warm):,.0f} candles/s"
        )


if __name__ == "__main__":
    main()
