#!/usr/bin/env bash
# Runs every test: the GoogleTest suites through ctest, then the Python oracle tests (pytest).
# Expects a built tree (scripts/setup.sh). Exit code non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${SMYRF_BUILD_DIR:-build}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
SMYRF_BUILD_DIR="$BUILD_DIR" python3 -m pytest -q tests/python
