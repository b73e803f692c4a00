#!/usr/bin/env bash
# Set up deribit-ts from a checkout: a virtualenv with the package, the private PostgreSQL 17 +
# TimescaleDB prefix (when no suitable server is installed), the Node packages of the `tsl` test tier,
# and the embedded cluster, started and migrated. Idempotent: seconds when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    "$PYTHON" -m venv .venv
fi
echo "bootstrap: installing deribit-ts and its dev tools into .venv" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

bash scripts/install-timescaledb.sh
if [ -f scripts/install-tsl-tier.sh ]; then
    bash scripts/install-tsl-tier.sh || echo "bootstrap: the tsl test tier could not be installed (its tests will be skipped)" >&2
fi

.venv/bin/deribit-ts db up
.venv/bin/deribit-ts db status
