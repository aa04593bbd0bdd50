#!/usr/bin/env bash
# Runs the Strata / VictoriaMetrics / Prometheus comparison.
# Usage: scripts/bench.sh [run options], e.g. scripts/bench.sh --hosts 50 --hours 1
# Builds the strata binary in release mode first when its package exists; the report,
# chart and server logs land in bench-out/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
if cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q '"name":"strata"'; then
  cargo build --release -p strata
else
  echo "bench.sh: no strata package in the workspace yet; benchmarking the other targets" >&2
fi
exec cargo run --release -p strata-benches -- run "$@"
