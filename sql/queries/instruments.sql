-- Queries of the instrument catalogue (deribit_ts/ingest/instruments.py).

-- name: upsert
-- One instrument as the exchange describes it: new, or its row brought up to date (an id or creation time the
-- exchange no longer sends is kept).
INSERT INTO deribit.instruments AS i (
    instrument_name, kind, is_perpetual, base_currency, quote_currency, counter_currency, settlement_currency,
    settlement_period, instrument_type, price_index, deribit_instrument_id, creation_ts, expiry, strike,
    option_type, tick_size, contract_size, min_trade_amount, maker_commission, taker_commission, max_leverage,
    is_active, state, raw)
VALUES (%(instrument_name)s, %(kind)s, %(is_perpetual)s, %(base_currency)s, %(quote_currency)s,
    %(counter_currency)s, %(settlement_currency)s, %(settlement_period)s, %(instrument_type)s, %(price_index)s,
    %(instrument_id)s, %(creation_ts)s, %(expiry)s, %(strike)s, %(option_type)s, %(tick_size)s,
    %(contract_size)s, %(min_trade_amount)s, %(maker_commission)s, %(taker_commission)s, %(max_leverage)s,
    %(is_active)s, %(state)s, %(raw)s)
ON CONFLICT (instrument_name) DO UPDATE SET
    kind = EXCLUDED.kind, is_perpetual = EXCLUDED.is_perpetual, base_currency = EXCLUDED.base_currency,
    quote_currency = EXCLUDED.quote_currency, counter_currency = EXCLUDED.counter_currency,
    settlement_currency = EXCLUDED.settlement_currency, settlement_period = EXCLUDED.settlement_period,
    instrument_type = EXCLUDED.instrument_type, price_index = EXCLUDED.price_index,
    deribit_instrument_id = coalesce(EXCLUDED.deribit_instrument_id, i.deribit_instrument_id),
    creation_ts = coalesce(EXCLUDED.creation_ts, i.creation_ts), expiry = EXCLUDED.expiry,
    strike = EXCLUDED.strike, option_type = EXCLUDED.option_type, tick_size = EXCLUDED.tick_size,
    contract_size = EXCLUDED.contract_size, min_trade_amount = EXCLUDED.min_trade_amount,
    maker_commission = EXCLUDED.maker_commission, taker_commission = EXCLUDED.taker_commission,
    max_leverage = EXCLUDED.max_leverage, is_active = EXCLUDED.is_active, state = EXCLUDED.state,
    raw = EXCLUDED.raw, last_seen = now();

-- name: ids
SELECT instrument_name, id FROM deribit.instruments;

-- name: not_perpetual
-- Those of %(names)s that are not perpetuals.
SELECT instrument_name FROM deribit.instruments WHERE instrument_name = ANY(%(names)s) AND NOT is_perpetual
 ORDER BY 1;
