#!/usr/bin/env bash
# Installs what the tests and benchmarks need on a fresh Debian machine: a real
# Prometheus (remote-write client and PromQL oracle), VictoriaMetrics (benchmark
# peer) and docker-compose (validates docker-compose.yml; no engine needed) from
# Debian's packages, and cargo-nextest when missing.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# Debian's packages start their services where an init system runs; the tests start
# their own instances on free loopback ports, so stop those if present.
for svc in prometheus victoria-metrics; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest || echo "cargo-nextest unavailable; scripts/test.sh falls back to cargo test"
fi
