#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (docs/fuzzing.md): builds them all once, then
# runs each for FUZZ_SECONDS (default 10 s, about two minutes in all) from its seeds
# (fuzz/seeds/<target>, committed) and its working corpus (fuzz/corpus/<target>,
# kept between runs, not committed). Fails on the first crash, leak, timeout or
# out-of-memory with the artifact path and the command that reproduces it.
#
#   scripts/fuzz.sh                 every target, 10 s each (CI): unoptimised build
#                                   without AddressSanitizer (about 5 minutes to build
#                                   on 2 cores instead of 40), overflow checks on
#   scripts/fuzz.sh --long          every target, 600 s each (or FUZZ_SECONDS):
#                                   optimised build with AddressSanitizer
#   scripts/fuzz.sh wal_segment     only the named targets
#
# Only stable Rust is installed: RUSTC_BOOTSTRAP=1 lets it take the nightly flags
# cargo-fuzz passes (-Z sanitizer coverage, -Zsanitizer=address).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${FUZZ_SECONDS:-10}
long=0
targets=()
for a in "$@"; do
  case $a in
    --long) secs=${FUZZ_SECONDS:-600}; long=1 ;;
    -*) echo "fuzz.sh: unknown option $a" >&2; exit 2 ;;
    *) targets+=("$a") ;;
  esac
done

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz missing (scripts/install-deps.sh installs it: cargo install cargo-fuzz --locked)" >&2
  exit 1
fi
export RUSTC_BOOTSTRAP=1
# The same flags for build and run, or `cargo fuzz run` rebuilds. Eight codegen units
# instead of cargo-fuzz's one: the targets pull in parquet, arrow, object_store and
# axum, and one unit per crate makes the instrumented release build several times
# slower on a small machine for little gain in a short run.
# The short CI run builds unoptimised and without ASan (the crates forbid unsafe
# code, so ASan mostly guards the C dependencies): building the instrumented release
# profile of parquet, arrow, object_store and axum took 41 minutes on 2 shared cores,
# the dev profile under 7; the dev targets still run about 10k inputs a second.
if [ $long -eq 1 ]; then
  flags=(--codegen-units 8)
else
  flags=(--dev --sanitizer none)
fi
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

start=$SECONDS
(cd fuzz && cargo fuzz build "${flags[@]}")
build_secs=$((SECONDS - start))

logs=fuzz/target/logs
mkdir -p "$logs"
summary=()
failed=0
run_start=$SECONDS
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
  log="$logs/$t.log"
  echo "fuzz: $t for ${secs}s"
  set +e
  (cd fuzz && cargo fuzz run "${flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1) >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  if [ $rc -ne 0 ]; then
    failed=1
    tail -n 60 "$log"
    artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')
    echo "fuzz: $t FAILED (exit $rc); log: $log"
    if [ -n "$artifact" ]; then
      # cargo fuzz runs libFuzzer from fuzz/, so the artifact path is relative to it.
      echo "fuzz: crash artifact: fuzz/${artifact#./}"
      echo "fuzz: reproduce with: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${flags[*]} $t ${artifact#./})"
    fi
    summary+=("$(printf '%-18s %12s  FAILED' "$t" "${execs:-?}")")
    break
  fi
  summary+=("$(printf '%-18s %12s  ok' "$t" "${execs:-?}")")
done

echo "fuzz: build ${build_secs}s, runs $((SECONDS - run_start))s"
printf '%-18s %12s\n' target executions
printf '%s\n' "${summary[@]}"
exit $failed
