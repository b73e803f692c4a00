#!/usr/bin/env bash
# The main job end to end on embedded defaults: set up what is missing, start the embedded TimescaleDB,
# backfill the instrument catalogue, the most recent month of perpetuals, futures, funding, index and DVOL,
# every delivery price, and the most recent days of every option (active and expired), and print a summary per
# dataset with the commands to try next.
#
# With DERIBIT_TS_API_URL unset, the local Deribit simulator stands in for the exchange (machines without
# network access); set DERIBIT_TS_API_URL=https://www.deribit.com to collect from the real exchange.
# QUICKSTART_DAYS (default 30) sets how much recent history to backfill, QUICKSTART_OPTION_DAYS (default 2)
# how much of the options': about 1,600 options are live and thousands more expire within a month, so a
# month of options would be most of the run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
cli=.venv/bin/deribit-ts
days=${QUICKSTART_DAYS:-30}
since=$(date -u -d "$days days ago" +%Y-%m-%d)
option_days=${QUICKSTART_OPTION_DAYS:-2}
option_since=$(date -u -d "$option_days days ago" +%Y-%m-%d)

if [ -z "${DERIBIT_TS_API_URL:-}" ]; then
    log=$(mktemp)
    "$cli" sim serve --port 0 >"$log" 2>&1 &
    sim_pid=$!
    trap 'kill "$sim_pid" 2>/dev/null || true; rm -f "$log"' EXIT
    for _ in $(seq 1 100); do
        grep -q '^http://' "$log" && break
        kill -0 "$sim_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    export DERIBIT_TS_API_URL=$(grep -m1 '^http://' "$log")
    echo "quickstart: the local Deribit simulator stands in for the exchange at $DERIBIT_TS_API_URL" >&2
fi

echo "quickstart: backfilling BTC and ETH since $since (options since $option_since) from $DERIBIT_TS_API_URL" >&2
"$cli" backfill all --since "$option_since"   # every dataset, options included, over the last days
for dataset in candles funding index dvol; do  # then the month, where it is cheap (perpetuals and futures)
    "$cli" backfill "$dataset" --since "$since"
done
"$cli" backfill delivery                       # every delivery price: a few thousand rows in all
echo >&2
"$cli" coverage --summary                      # one line per dataset (`coverage` alone: one per key)

# A new shell has no `deribit-ts` on PATH: everything lives in this checkout's .venv.
venv="$(pwd)/.venv"
cat >&2 <<EOF

quickstart: done. deribit-ts and its Python (with ccxt and psycopg) are installed in $venv:
    source $venv/bin/activate     # or call $venv/bin/deribit-ts and $venv/bin/python by path
Next, try:
    deribit-ts coverage --incomplete             # which keys still miss ranges
    deribit-ts report                            # gaps, sanity, basis, funding, smile in the terminal
    deribit-ts report --html report.html         # the same with plots, one page that opens offline
    psql "\$(deribit-ts db url)"                  # the data: select * from deribit.ohlcv_1h limit 5
    deribit-ts --help                            # every command, each with examples
EOF
