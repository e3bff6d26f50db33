#!/usr/bin/env bash
# Builds nyads three ways and runs every test:
#   1. build/        the normal build: every ctest label (unit, integration, fuzz, e2e)
#   2. build-asan/   AddressSanitizer + UndefinedBehaviorSanitizer: every label again
#   3. build-fuzz/   clang libFuzzer targets, each fuzzed for NYADS_FUZZ_SECONDS (default 60)
# Run scripts/install-deps.sh first on a fresh machine. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${NYADS_JOBS:-2}

section() { printf '\n=== %s ===\n' "$*"; }

section "normal build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest -j"$jobs" --output-on-failure)

section "ASan + UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNYADS_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest -j"$jobs" --output-on-failure)

section "libFuzzer"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DNYADS_FUZZ=ON -DNYADS_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$jobs"
scripts/fuzz.sh build-fuzz "${NYADS_FUZZ_SECONDS:-60}"
