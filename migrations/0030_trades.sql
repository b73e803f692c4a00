-- The trade tape: every trade of every instrument asked for, as public/get_last_trades_by_instrument(_and_time)
-- sends it, expired instruments included.
--
-- One trade per row, each field as the exchange sent it (NULL where the reply leaves it out). `ts` is the
-- trade's exchange time with its milliseconds.
--
-- Uniqueness of trade_id on a hypertable: a unique index there must contain the partitioning column, so
-- `UNIQUE (trade_id)` alone cannot exist. The key is (instrument_name, ts, trade_id) instead: a trade belongs to
-- one instrument and happened at one instant, so for a given trade_id both are fixed and this key admits each
-- trade exactly once, as a trade_id key would. It is also the index every query of the tape wants (one instrument
-- over a time range), so the table carries a single index, and on the columnstore (segmented by instrument,
-- ordered by time) the key's columns are the segment and the order: checking it only opens the batches of one
-- instrument and time range. The loader also refuses a window whose reply repeats a trade_id.
--
-- 7-day chunks: a busy perpetual trades a few hundred thousand times a day on Deribit, an option a few dozen.
CREATE TABLE deribit.trades (
    instrument_name       text NOT NULL,
    ts                    timestamptz NOT NULL,
    trade_id              text NOT NULL,
    trade_seq             bigint NOT NULL,
    price                 double precision NOT NULL,
    amount                double precision NOT NULL,
    direction             text NOT NULL CHECK (direction IN ('buy', 'sell')),
    tick_direction        smallint,
    mark_price            double precision,
    index_price           double precision,
    iv                    double precision,
    liquidation           text,
    block_trade_id        text,
    combo_id              text,
    contracts             double precision,
    block_trade_leg_count integer,
    combo_trade_id        text,
    PRIMARY KEY (instrument_name, ts, trade_id)
);
SELECT create_hypertable('deribit.trades', by_range('ts', INTERVAL '7 days'));
