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
# The tsl tier is skipped only where Node.js is missing; with Node present but its packages absent it fails.
# CI must run it, so there an install failure stops the bootstrap instead of surfacing later as a skip.
if ! bash scripts/install-tsl-tier.sh; then
    case "${CI:-}" in
        true | 1)
            echo "bootstrap: the tsl test tier could not be installed and CI runs it: fix the error above" >&2
            exit 1
            ;;
    esac
    echo "bootstrap: the tsl test tier is not installed: its tests are skipped without Node.js and fail with it" \
        "until scripts/install-tsl-tier.sh succeeds" >&2
fi

.venv/bin/deribit-ts db up
# `psql "$(deribit-ts db url)"` (README) on a machine with no psql: the private prefix's own, in .venv/bin.
if ! command -v psql >/dev/null 2>&1 && [ ! -e .venv/bin/psql ]; then
    bindir=$(.venv/bin/deribit-ts db status --json | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin).get("bindir") or "")')
    if [ -x "$bindir/psql" ]; then
        ln -s "$bindir/psql" .venv/bin/psql
        echo "bootstrap: no psql on PATH: linked the private prefix's psql into .venv/bin" >&2
    fi
fi
.venv/bin/deribit-ts db status
