#!/usr/bin/env bash
# Install the node packages of the pytest `tsl` tier: PGlite with TimescaleDB (incl. the TSL module) and
# pglite-socket, pinned by tests/tsl/package-lock.json. Re-running is a no-op while the lock file is unchanged.
#
# Usage: scripts/install-tsl-tier.sh [--force]
# Then:  .venv/bin/pytest -m tsl
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tier_dir="$repo_root/tests/tsl"
stamp="$tier_dir/node_modules/.deribit-ts-lock.sha256"
min_node_major=18

die() {
    echo "install-tsl-tier: $*" >&2
    exit 1
}

command -v node >/dev/null 2>&1 || die "Node.js not found: install node >= $min_node_major (and npm), then re-run"
command -v npm >/dev/null 2>&1 || die "npm not found: install npm (it ships with Node.js), then re-run"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge "$min_node_major" ] || die "Node.js $(node --version) is too old: the tsl tier needs node >= $min_node_major"

lock_hash="$(sha256sum "$tier_dir/package-lock.json" | cut -d' ' -f1)"
if [ "${1:-}" != "--force" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ]; then
    echo "install-tsl-tier: node packages already installed in $tier_dir/node_modules" >&2
    exit 0
fi

# npm ci installs exactly the lock file (and wipes a stale node_modules first).
npm ci --prefix "$tier_dir" --no-audit --no-fund --no-update-notifier --loglevel=error >&2
echo "$lock_hash" >"$stamp"
echo "install-tsl-tier: installed into $tier_dir/node_modules" >&2
