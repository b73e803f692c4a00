"""The instrument catalogue: active and expired instruments of every kind into deribit.instruments."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from datetime import datetime

from psycopg import AsyncConnection

from deribit_ts.db.queries import query
from deribit_ts.errors import UserError
from deribit_ts.exchange.client import DeribitClient
from deribit_ts.exchange.errors import ExchangeError
from deribit_ts.timeutil import from_ms

# Deribit marks perpetuals (and spot) with an expiration in the year 3000; we store NULL instead.
_NO_EXPIRY_AFTER = datetime(2999, 1, 1).timestamp() * 1000


def _number(value):
    return None if value in (None, "") else float(value)


def to_record(raw: dict) -> dict:
    """Deribit's instrument object as a row; unknown keys are kept in `raw`, unknown enum values as sent."""
    expiration = raw.get("expiration_timestamp")
    creation = raw.get("creation_timestamp")
    return {
        "instrument_name": raw["instrument_name"],
        "kind": raw.get("kind") or "unknown",
        "is_perpetual": raw.get("settlement_period") == "perpetual",
        "base_currency": raw.get("base_currency"),
        "quote_currency": raw.get("quote_currency"),
        "counter_currency": raw.get("counter_currency"),
        "settlement_currency": raw.get("settlement_currency"),
        "settlement_period": raw.get("settlement_period"),
        "instrument_type": raw.get("instrument_type"),
        "price_index": raw.get("price_index"),
        "instrument_id": raw.get("instrument_id"),
        "creation_ts": from_ms(int(creation)) if creation not in (None, "") else None,
        "expiry": from_ms(int(expiration)) if expiration and float(expiration) < _NO_EXPIRY_AFTER else None,
        "strike": _number(raw.get("strike")),
        "option_type": raw.get("option_type"),
        "tick_size": _number(raw.get("tick_size")),
        "contract_size": _number(raw.get("contract_size")),
        "min_trade_amount": _number(raw.get("min_trade_amount")),
        "maker_commission": _number(raw.get("maker_commission")),
        "taker_commission": _number(raw.get("taker_commission")),
        "max_leverage": _number(raw.get("max_leverage")),
        "is_active": raw.get("is_active"),
        "state": raw.get("state"),
        "raw": json.dumps(raw, sort_keys=True),
    }


ALL_CURRENCIES = "ALL"  # --currency all: every currency the exchange lists (get_currencies)


async def resolve_currencies(client: DeribitClient, currencies: Iterable[str]) -> list[str]:
    """The currencies asked for, upper-cased; `all` expands to the exchange's list. Unknown ones are refused
    with the exchange's list, before anything is written."""
    asked = [c.strip().upper() for c in currencies if c.strip()]
    if not asked:
        return []
    listed = sorted({c["currency"] for c in await client.get_currencies() if c.get("currency")})
    if ALL_CURRENCIES in asked:
        return listed
    unknown = [c for c in asked if c not in listed]
    if unknown:
        raise UserError(
            f"unknown currency {', '.join(unknown)}: the exchange lists {', '.join(listed)} (or use --currency all)"
        )
    return asked


async def fetch_catalogue(client: DeribitClient, currencies: Iterable[str]) -> list[dict]:
    """Active and (recently) expired instruments of every kind for each currency."""
    instruments: dict[str, dict] = {}
    for currency in currencies:
        for expired in (True, False):  # active last, so a name in both lists keeps its active state
            for raw in await client.get_instruments(currency=currency, expired=expired):
                instruments[raw["instrument_name"]] = raw
    return list(instruments.values())


async def store(conn: AsyncConnection, instruments: list[dict]) -> int:
    async with conn.transaction():
        async with conn.cursor() as cur:
            await cur.executemany(query("instruments", "upsert"), [to_record(raw) for raw in instruments])
    return len(instruments)


async def name_to_id(conn: AsyncConnection) -> dict[str, int]:
    cur = await conn.execute(query("instruments", "ids"))
    return dict(await cur.fetchall())


async def resolve_unknown(client: DeribitClient, conn: AsyncConnection, names: Iterable[str]) -> None:
    """Look up names missing from the catalogue (e.g. long-expired) one by one; refuse unknown ones."""
    known = await name_to_id(conn)
    missing = [n for n in names if n not in known]
    found = []
    for name in missing:
        try:
            found.append(await client.get_instrument(name))
        except ExchangeError as exc:
            if exc.code != -32602:
                raise
            nearest = difflib.get_close_matches(name, known.keys(), n=3, cutoff=0.6)
            hint = (
                f"; did you mean {', '.join(nearest)}?"
                if nearest
                else "; `deribit-ts backfill instruments` loads the catalogue"
            )
            raise UserError(f"unknown instrument {name!r}: the exchange does not know it{hint}") from None
    if found:
        await store(conn, found)


async def check_perpetuals(conn: AsyncConnection, names: Iterable[str]) -> None:
    """Funding exists only for perpetuals: refuse any other named instrument before anything is planned."""
    cur = await conn.execute(query("instruments", "not_perpetual"), {"names": list(names)})
    others = [row[0] for row in await cur.fetchall()]
    if others:
        raise UserError(
            f"{', '.join(others)}: not a perpetual, and funding rates exist only for perpetuals (e.g. BTC-PERPETUAL)"
        )


async def check_indexes(client: DeribitClient, names: Iterable[str], *, keep_unlisted: bool = True) -> list[str]:
    """The index names asked for, lower-cased. A name the exchange does not list is refused in one line with the
    nearest names, or, with keep_unlisted=False (names derived from currencies), dropped. get_index_price_names
    answers plain names, or objects with a `name` in newer API versions."""
    asked = [n.strip().lower() for n in names if n.strip()]
    listed = [item["name"] if isinstance(item, dict) else str(item) for item in await client.get_index_price_names()]
    unlisted = [name for name in asked if name not in listed]
    if unlisted and keep_unlisted:
        nearest = difflib.get_close_matches(unlisted[0], listed, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(nearest)}?" if nearest else f"the exchange lists {', '.join(listed)}"
        raise UserError(f"unknown index {unlisted[0]!r}: {hint}")
    return [name for name in asked if name in listed]
