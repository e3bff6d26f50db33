#!/usr/bin/env bash
# Runs every libFuzzer target in a fuzz build for a bounded time each.
#   scripts/fuzz.sh BUILD_DIR [SECONDS]
# Seeds come from fuzz/corpus/<target>/ (written by make_fuzz_seeds, committed). A crash,
# leak or sanitizer report fails the run; the input is left in fuzz-out/<target>/ — copy it
# into fuzz/corpus/<target>/ so the normal build's replay test (ctest -L fuzz) keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/fuzz.sh BUILD_DIR [SECONDS]}
seconds=${2:-60}
passed=0 failed=0
for target in $(sed -n 's/^set(NYADS_FUZZ_TARGETS \(.*\))/\1/p' fuzz/CMakeLists.txt); do
  bin=$build/fuzz/$target
  [ -x "$bin" ] || { echo "fuzz.sh: $bin is missing: build with -DNYADS_FUZZ=ON" >&2; exit 1; }
  out=fuzz-out/$target
  rm -rf "$out" && mkdir -p "$out/corpus"
  echo "fuzzing $target for ${seconds}s"
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$out/" "$out/corpus" "fuzz/corpus/$target" > "$out/log" 2>&1; then
    passed=$((passed + 1))
    grep -E "stat::number_of_executed_units|cov:" "$out/log" | tail -2
  else
    failed=$((failed + 1))
    tail -n 40 "$out/log"
    echo "fuzz.sh: $target found a problem; input(s): $(ls "$out" | grep -v -e corpus -e log | tr '\n' ' ')" >&2
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
