-- The instrument catalogue: every instrument ever seen, of every kind, active or expired.
--
-- Market-data hypertables reference instruments by a small surrogate `id` (4 bytes a row instead of
-- a 15-30 byte name), which keeps one-minute candles compact; the public views join the name back.
-- The typed columns are the fields Deribit documents (../shared/deribit_api.md 3.1); `raw` keeps the
-- whole payload as received, so fields Deribit adds later are never lost.
CREATE TABLE deribit.instruments (
    id                      integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    instrument_name         text PRIMARY KEY,
    kind                    text NOT NULL,                -- future | option | spot | future_combo | option_combo
    is_perpetual            boolean NOT NULL DEFAULT false,
    base_currency           text,
    quote_currency          text,
    counter_currency        text,
    settlement_currency     text,
    settlement_period       text,                         -- perpetual | month | week | day | ...
    instrument_type         text,                         -- reversed (inverse) | linear
    price_index             text,                         -- e.g. btc_usd
    deribit_instrument_id   bigint,                       -- Deribit's own numeric id, when sent
    creation_ts             timestamptz,
    expiry                  timestamptz,                  -- NULL for perpetuals and spot (Deribit sends year 3000)
    strike                  double precision,
    option_type             text,                         -- call | put
    tick_size               double precision,
    contract_size           double precision,
    min_trade_amount        double precision,
    maker_commission        double precision,
    taker_commission        double precision,
    max_leverage            double precision,
    is_active               boolean,
    state                   text,                         -- open | settlement | delivered | closed | ... (kept as sent)
    first_seen              timestamptz NOT NULL DEFAULT now(),
    last_seen               timestamptz NOT NULL DEFAULT now(),
    raw                     jsonb NOT NULL
);

CREATE INDEX instruments_currency_kind_idx ON deribit.instruments (base_currency, kind, expiry);

COMMENT ON TABLE deribit.instruments IS 'Every Deribit instrument deribit-ts has seen (active and expired), one row per instrument_name';
COMMENT ON COLUMN deribit.instruments.expiry IS 'Expiration (08:00 UTC for dated instruments); NULL for perpetuals and spot';
COMMENT ON COLUMN deribit.instruments.raw IS 'The instrument object exactly as the exchange last sent it';
