#!/usr/bin/env bash
# Fuzzes the readers of outside data with libFuzzer under AddressSanitizer and UBSan (clang), in a
# torch-free build of its own (build-fuzz/, or $SMYRF_FUZZ_BUILD_DIR).
#   scripts/fuzz.sh TARGET [SECONDS [libFuzzer options]]
#                                        fuzz one target (default 60 s; -runs=N stops after N inputs);
#                                        new inputs go to build-fuzz/corpus/TARGET, crashes to
#                                        build-fuzz/artifacts/TARGET/
#   scripts/fuzz.sh --smoke [SECONDS]    every target for SECONDS (default 5) from its seed corpus (CI)
#   scripts/fuzz.sh --list               the targets
# Targets (tests/fuzz/fuzz_<target>.cpp): config tokenizer glue imdb image results safetensors captured.
# A crash exits non-zero; put its input in tests/fuzz/regressions/TARGET/ with the fix, so ctest
# (FuzzReplay.TARGET) keeps it fixed in the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=(config tokenizer glue imdb image results safetensors captured)
BUILD_DIR="${SMYRF_FUZZ_BUILD_DIR:-build-fuzz}"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 ]] || usage
if [[ "$1" == "--list" ]]; then printf '%s\n' "${TARGETS[@]}"; exit 0; fi

build() {
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    command -v clang++ >/dev/null || { echo "fuzz: clang++ not found; run scripts/setup.sh (it installs clang)" >&2; exit 1; }
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMYRF_WITH_TORCH=OFF -DSMYRF_FUZZ=ON -DSMYRF_SANITIZE=address,undefined \
      -DSMYRF_BUILD_BENCHMARKS=OFF >/dev/null
  fi
  cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target "${@/#/smyrf_fuzz_}"
}

# fuzz TARGET SECONDS [libFuzzer options...]
fuzz() {
  local target=$1 seconds=$2; shift 2
  local corpus="$BUILD_DIR/corpus/$target" artifacts="$BUILD_DIR/artifacts/$target/"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzz: $target for ${seconds}s"
  # halt_on_error: the first sanitizer report ends the run and counts as a crash
  # the scratch files of every input live in memory (tmpfs), which speeds up the file-reading targets
  TMPDIR="${TMPDIR:-$( [[ -d /dev/shm && -w /dev/shm ]] && echo /dev/shm || echo /tmp)}" \
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    "$BUILD_DIR/tests/fuzz/smyrf_fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts" "$@" "$corpus" "tests/fuzz/corpus/$target"
}

if [[ "$1" == "--smoke" ]]; then
  seconds="${2:-5}"
  build "${TARGETS[@]}"
  for t in "${TARGETS[@]}"; do
    log="$BUILD_DIR/fuzz-$t.log"
    if ! fuzz "$t" "$seconds" >"$log" 2>&1; then
      tail -n 40 "$log" >&2
      echo "fuzz: $t crashed (log: $log; input in $BUILD_DIR/artifacts/$t/)" >&2
      exit 1
    fi
    echo "fuzz: $t ok, $(grep -o 'number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*') executions in ${seconds}s"
  done
  exit 0
fi
target="$1"
[[ " ${TARGETS[*]} " == *" $target "* ]] || { echo "fuzz: unknown target '$target'; the targets: ${TARGETS[*]}" >&2; exit 2; }
build "$target"
fuzz "$target" "${2:-60}" "${@:3}"
