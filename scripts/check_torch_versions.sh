#!/usr/bin/env bash
# Builds the harness against several torch versions and runs the CLI and light tests against each,
# once with libstdc++ linked ahead of LibTorch (SMYRF_LIBSTDCXX_FIRST=ON, the default) and once
# without it (OFF), to show the crash that the link order prevents (cmake/SmyrfLinkOrder.cmake).
#
#   scripts/check_torch_versions.sh [VERSION...]    default: 2.4 2.11 newest
#     VERSION is a torch release prefix (2.4 installs torch==2.4.*) or "newest".
#   SMYRF_TORCH_MATRIX_DIR   where the venvs and build trees go (default ~/.cache/smyrf/torch-matrix);
#                            a second run reuses them and only rebuilds what changed.
#
# Each venv sees the system's site-packages, so a version already installed there (the newest, on
# a machine set up by scripts/setup.sh) is not downloaded again; others come from PyPI (several
# GiB each with their CUDA libraries). A first build is a full build of the project (torch 2.4's
# took 23 minutes on 2 cores with other work running), and switching the link order only relinks. Not part of .ci/run (too long); its table is in the
# README's Build section.
#
# Per version and link order it prints: the build's result; `smyrf run` on the fidelity smoke config
# (exit code; 139 is a segfault); the RuntimeBindings tests (the loader's binding log); the light
# tests (smyrf_tests_light) and the CLI tests (Cli.*) as "passed/total" from their gtest summaries.
# Logs: $SMYRF_TORCH_MATRIX_DIR/logs/. Exit status 0 when every ON row passes everything.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="${SMYRF_TORCH_MATRIX_DIR:-$HOME/.cache/smyrf/torch-matrix}"
LOGS="$ROOT/logs"
mkdir -p "$LOGS"
versions=("$@")
((${#versions[@]})) || versions=(2.4 2.11 newest)

# "passed/total" of a gtest run's log, or "-" when it printed no summary (crashed before it).
gtest_score() {
  local log=$1 total passed
  total=$(sed -n 's/^\[==========\] \([0-9]*\) tests\? from .* ran\..*/\1/p' "$log" | tail -1)
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\..*/\1/p' "$log" | tail -1)
  [[ -n "$total" ]] && echo "${passed:-0}/$total" || echo "-"
}

setup_venv() {  # $1 version -> prints the venv's python
  local v=$1 venv="$ROOT/torch-$1" spec
  [[ "$v" == newest ]] && spec="torch" || spec="torch==$v.*"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv --system-site-packages "$venv" >&2 || return 1
  fi
  if ! "$venv/bin/python" - "$v" <<'EOF' 2>/dev/null; then
import sys, torch
want = sys.argv[1]
sys.exit(0 if want == "newest" or torch.__version__.startswith(want + ".") else 1)
EOF
    echo "check_torch_versions: installing $spec into $venv" >&2
    "$venv/bin/pip" install -q "$spec" numpy >&2 || return 1
  fi
  echo "$venv/bin/python"
}

ok=0
rows=()
for v in "${versions[@]}"; do
  python=$(setup_venv "$v") || { rows+=("| $v | - | pip install failed | | | | |"); ok=1; continue; }
  torch_version=$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null)
  build="$ROOT/build-$v"
  # a build tree configured from another checkout cannot be reused
  if [[ -f "$build/CMakeCache.txt" ]] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$PWD" "$build/CMakeCache.txt"; then
    rm -rf "$build"
  fi
  for order in OFF ON; do
    tag="$v-$order"
    echo "check_torch_versions: torch $torch_version, SMYRF_LIBSTDCXX_FIRST=$order (log: $LOGS/$tag-*.log)" >&2
    if ! { cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$python" \
             -DSMYRF_BUILD_BENCHMARKS=OFF -DSMYRF_LIBSTDCXX_FIRST=$order &&
           cmake --build "$build" --target smyrf smyrf_tests smyrf_tests_light; } > "$LOGS/$tag-build.log" 2>&1; then
      rows+=("| $torch_version | $order | failed (see $tag-build.log) | | | | |")
      [[ $order == ON ]] && ok=1
      continue
    fi
    out=$(mktemp -d)
    "$build/bin/smyrf" run configs/smoke/fidelity_tiny.json --output "$out/r.h5" --no-progress > "$LOGS/$tag-run.log" 2>&1
    run_rc=$?
    rm -rf "$out"
    "$build/tests/smyrf_tests" --gtest_filter='RuntimeBindings.*' > "$LOGS/$tag-bindings.log" 2>&1
    "$build/tests/smyrf_tests_light" > "$LOGS/$tag-light.log" 2>&1
    "$build/tests/smyrf_tests" --gtest_filter='Cli.*' > "$LOGS/$tag-cli.log" 2>&1
    bindings=$(gtest_score "$LOGS/$tag-bindings.log") light=$(gtest_score "$LOGS/$tag-light.log")
    cli=$(gtest_score "$LOGS/$tag-cli.log")
    rows+=("| $torch_version | $order | ok | $run_rc | $bindings | $light | $cli |")
    if [[ $order == ON ]]; then
      for score in "$bindings" "$light" "$cli"; do [[ "$score" == "-" || "${score%/*}" != "${score#*/}" ]] && ok=1; done
      [[ $run_rc -eq 0 ]] || ok=1
    fi
  done
done

echo
echo "| torch | SMYRF_LIBSTDCXX_FIRST | build | smyrf run (exit) | RuntimeBindings | light tests | CLI tests |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $ok
