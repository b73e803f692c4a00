"""One or two example command lines for every command's --help, kept in one place.

tests/test_cli.py checks that every command has an entry here and that each example parses (every option and
argument exists and takes the value given): a renamed flag fails the test instead of misleading a reader.
"""

from __future__ import annotations

SIM = "--api-url http://127.0.0.1:8765"

EXAMPLES_BY_PATH: dict[tuple[str, ...], list[str]] = {
    (): ["deribit-ts db up", "deribit-ts backfill all --since 2024-06-01", "deribit-ts coverage --dataset candles"],
    ("db",): ["deribit-ts db up", "deribit-ts db status"],
    ("db", "up"): ["deribit-ts db up"],
    ("db", "down"): ["deribit-ts db down"],
    ("db", "status"): ["deribit-ts db status --json"],
    ("db", "url"): ["psql \"$(deribit-ts db url)\" -c 'select count(*) from deribit.instruments'"],
    ("db", "psql"): ["deribit-ts db psql", "deribit-ts db psql -- -c 'select * from deribit.coverage limit 5'"],
    ("db", "logs"): ["deribit-ts db logs -n 100", "deribit-ts db logs --follow"],
    ("db", "size"): ["deribit-ts db size --json"],
    ("db", "compress"): ["deribit-ts db compress"],
    ("db", "jobs"): ["deribit-ts db jobs"],
    ("db", "reader"): ["deribit-ts db reader analyst", "deribit-ts db reader grafana --json"],
    ("db", "migrate"): ["deribit-ts db migrate --dry-run", "deribit-ts db migrate --dsn postgresql://me@host/db"],
    ("sim",): ["deribit-ts sim serve --port 8765"],
    ("sim", "serve"): ["deribit-ts sim serve --port 8765", "deribit-ts sim serve --port 8765 --no-pathologies"],
    ("backfill",): ["deribit-ts backfill all --since 2024-06-01", "deribit-ts backfill candles --kind perpetual"],
    ("backfill", "instruments"): ["deribit-ts backfill instruments --currency BTC"],
    ("backfill", "candles"): [
        "deribit-ts backfill candles --instrument BTC-PERPETUAL --since 2024-06-01 --until 2024-07-01",
        "deribit-ts backfill candles --currency ETH --kind future",
    ],
    ("backfill", "funding"): ["deribit-ts backfill funding --since 2024-01-01"],
    ("backfill", "index"): ["deribit-ts backfill index --index btc_usd --since 2024-01-01"],
    ("backfill", "resume"): ["deribit-ts backfill resume", "deribit-ts backfill resume --workers 8"],
    ("backfill", "trades"): [
        "deribit-ts backfill trades --currency BTC --kind option --since 2024-03-01 --until 2024-04-01",
        "deribit-ts backfill trades --instrument BTC-PERPETUAL --since 2024-03-01",
    ],
    ("backfill", "options"): ["deribit-ts backfill options --currency BTC --dry-run"],
    ("backfill", "dvol"): ["deribit-ts backfill dvol --currency BTC"],
    ("backfill", "delivery"): ["deribit-ts backfill delivery --index btc_usd"],
    ("backfill", "all"): [
        "deribit-ts backfill all --since 2024-06-01",
        f"deribit-ts backfill all {SIM} --since 2026-11-01 --currency BTC",
    ],
    ("snapshot",): ["deribit-ts snapshot options --currency BTC"],
    ("snapshot", "options"): ["deribit-ts snapshot options --currency BTC", "deribit-ts snapshot options --bulk-only"],
    ("collect",): ["deribit-ts collect", "deribit-ts collect --currency BTC --kinds perpetual,future"],
    ("status",): ["deribit-ts status", "deribit-ts status --json --max-lag candles=300"],
    ("coverage",): [
        "deribit-ts coverage --summary",
        "deribit-ts coverage --incomplete",
        "deribit-ts coverage --dataset funding --json",
    ],
    ("runs",): ["deribit-ts runs -n 5", "deribit-ts runs --run 3"],
    ("report",): ["deribit-ts report", "deribit-ts report smile --currency BTC", "deribit-ts report --html out.html"],
    ("export",): [
        "deribit-ts export ohlcv_1d --format parquet --out d.parquet",
        "deribit-ts export ohlcv_1m --where \"instrument_name = 'BTC-PERPETUAL'\" --since 2024-01-01 --format csv "
        "--out m.csv",
        'deribit-ts export --sql "select currency, ts, atm_iv from iv_constant_maturity where tenor_days = 30" '
        "--out cm.parquet",
    ],
    ("refresh",): ["deribit-ts refresh", "deribit-ts refresh --json"],
    ("backup",): ["deribit-ts backup --keep 7"],
    ("restore",): ["deribit-ts restore backups/deribit-20261206T000000Z.dump --dsn postgresql://me@host/empty_db"],
    ("config",): ["deribit-ts config --json"],
}


def epilog(examples: list[str]) -> str:
    """The examples as a help epilog; click keeps a paragraph that starts with \\b as it is (no re-wrapping)."""
    return "\b\nExamples:\n" + "\n".join(f"  {example}" for example in examples)
