#!/usr/bin/env bash
# Runs every test: the GoogleTest suites through ctest, the Python oracle tests (pytest), then a
# short fuzz smoke (every fuzz target for a few seconds from its seed corpus, under ASan and UBSan,
# in its own clang build: scripts/fuzz.sh). Expects a built tree (scripts/setup.sh). Exit code
# non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${SMYRF_BUILD_DIR:-build}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
SMYRF_BUILD_DIR="$BUILD_DIR" python3 -m pytest -q tests/python
scripts/fuzz.sh --smoke 5
