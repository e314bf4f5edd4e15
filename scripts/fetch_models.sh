#!/usr/bin/env bash
# Downloads Hugging Face models into models/<name>/ in the layout core/models reads: config.json,
# model.safetensors and the tokenizer files. Needs internet access to huggingface.co (it cannot run
# on the offline build machines; all-MiniLM-L6-v2 comes from pip there, linked by scripts/setup.sh).
#   scripts/fetch_models.sh                      bert-base-uncased and roberta-base
#   scripts/fetch_models.sh bert-large-uncased   any repository with model.safetensors
#   scripts/fetch_models.sh openai-community/gpt2 HuggingFaceTB/SmolLM2-360M
#                                                causal LMs for core/models/decoder.h (GPT-2, Llama;
#                                                SmolLM2 is configs/paper/lm_dropin_smollm2.json's)
#   HF_ENDPOINT=https://mirror.example scripts/fetch_models.sh   a mirror
#   HF_TOKEN=hf_... scripts/fetch_models.sh some/gated-model      a token for gated repositories
# Files already present with a non-zero size are kept, so a broken download resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
ENDPOINT="${HF_ENDPOINT:-https://huggingface.co}"
models=("$@")
((${#models[@]})) || models=(bert-base-uncased roberta-base)

fetch() {  # repo file [required]
  local repo=$1 file=$2 required=${3:-optional} dest="models/$1/$2"
  [[ -s "$dest" ]] && return 0
  local url="$ENDPOINT/$repo/resolve/main/$file"
  local auth=()
  [[ -n "${HF_TOKEN:-}" ]] && auth=(-H "Authorization: Bearer $HF_TOKEN")
  if curl -fsSL --retry 3 "${auth[@]}" --create-dirs -o "$dest.part" "$url" 2>/dev/null; then
    mv "$dest.part" "$dest"
  else
    rm -f "$dest.part"
    if [[ "$required" == required ]]; then
      echo "fetch_models: could not download $url: check the model name and your connection; repositories" \
           "whose weights are only pytorch_model.bin or sharded cannot be read (core/models reads one" \
           "model.safetensors); gated ones need HF_TOKEN" >&2
      exit 1
    fi
  fi
}

for repo in "${models[@]}"; do
  echo "fetch_models: $repo -> models/$repo"
  fetch "$repo" config.json required
  fetch "$repo" model.safetensors required
  # Tokenizers: tokenizer.json when the repository has one, and the classic files.
  for f in tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt vocab.json merges.txt; do
    fetch "$repo" "$f"
  done
  if [[ ! -s "models/$repo/tokenizer.json" && ! -s "models/$repo/vocab.txt" && ! -s "models/$repo/vocab.json" ]]; then
    echo "fetch_models: $repo has no tokenizer files that core/text reads" >&2
    exit 1
  fi
done
echo "fetch_models: done; use \"model\": {\"path\": \"models/<name>\"} in a config"
