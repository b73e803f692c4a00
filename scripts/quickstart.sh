#!/usr/bin/env bash
# The main job end to end on embedded defaults: set up what is missing, start the embedded TimescaleDB,
# backfill the instrument catalogue and the most recent month of perpetuals, futures, funding and index,
# and print the coverage.
#
# With DERIBIT_TS_API_URL unset, the local Deribit simulator stands in for the exchange (machines without
# network access); set DERIBIT_TS_API_URL=https://www.deribit.com to collect from the real exchange.
# QUICKSTART_DAYS (default 30) sets how much recent history to backfill.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
cli=.venv/bin/deribit-ts
days=${QUICKSTART_DAYS:-30}
since=$(date -u -d "$days days ago" +%Y-%m-%d)

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

echo "quickstart: backfilling BTC and ETH since $since from $DERIBIT_TS_API_URL" >&2
"$cli" backfill all --since "$since"
"$cli" coverage

# A new shell has no `deribit-ts` on PATH: everything lives in this checkout's .venv.
venv="$(pwd)/.venv"
cat >&2 <<EOF

quickstart: done. deribit-ts and its Python (with ccxt and psycopg) are installed in $venv:
    source $venv/bin/activate     # then: deribit-ts --help, deribit-ts db status, python -c "import ccxt"
or call them by path: $venv/bin/deribit-ts, $venv/bin/python
EOF
