#!/usr/bin/env bash
# The project's test command: format, lints, every test, and the PromQL conformance
# counts. Tests that need Prometheus or VictoriaMetrics skip with a printed reason
# when those are absent; scripts/install-deps.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
if command -v docker-compose >/dev/null 2>&1; then
  docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid"
else
  echo "docker-compose.yml: SKIPPED validation (docker-compose not installed; scripts/install-deps.sh installs it)"
fi
cargo clippy --workspace --all-targets -- -D warnings
# The crash and benchmark smoke tests run the real binary.
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
bash scripts/fuzz.sh  # every fuzz target for 10 s from its seeds (docs/fuzzing.md)
# Per-file pass counts of Prometheus's own PromQL test corpus (../shared/promqltest).
cargo test -p strata-promql --test promqltest -- --nocapture
# The build's footprint, for the day a CI machine's disk is small again.
du -sh target fuzz/target 2>/dev/null || true
df -h . | tail -1
