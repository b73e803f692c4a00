"""The 24/7 collector: `deribit-ts collect` keeps every dataset current, catching up through the backfill engine.

Modules: clock (the exchange's clock, which a simulator may run faster), budget (one prioritised rate budget),
leader (the advisory-lock leadership and the heartbeat), health (healthchecks.io pings), plan (what each job
wants fetched, as backfill tasks), engine (the backfill engine, run for as long as the collector leads),
collector (the scheduler that ties them together), status (what `deribit-ts status` reports).
"""
