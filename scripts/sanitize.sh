#!/usr/bin/env bash
# Builds every target with AddressSanitizer and UBSan (GCC, LibTorch included) in a build of its
# own (build-sanitize/, or $SMYRF_SANITIZE_BUILD_DIR) and runs the whole C++ suite (ctest) under
# it. Any sanitizer report ends the test that triggered it, so the suite passes only when clean.
#   scripts/sanitize.sh [ctest options]     e.g. -R 'Smyrf' for a subset; default: every test
# LeakSanitizer runs too; tests/sanitizer/lsan.supp lists what it may ignore (allocations that
# LibTorch, OpenMP and HDF5 keep until exit) and why. Expects scripts/setup.sh to have run. About
# 2-3x slower than the normal build's suite; not part of .ci/run (see README, "Hostile input").
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${SMYRF_SANITIZE_BUILD_DIR:-build-sanitize}"
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  # -g1: line numbers in the reports without the full debug info of every LibTorch header
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-g1 \
    -DPython3_EXECUTABLE="$(command -v python3)" -DSMYRF_SANITIZE=address,undefined -DSMYRF_BUILD_BENCHMARKS=OFF \
    -DSMYRF_WITH_CUDA=OFF >/dev/null
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# Tests without their own limit get an hour: instrumented code runs a few times slower.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 3600 "$@"
