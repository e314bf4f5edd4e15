#!/usr/bin/env bash
# Submits the paper's tables to Slurm, one job array per row config (configs/paper/), with resources
# that fit each pipeline: GLUE rows (9 tasks each, one GPU per task), IMDB rows (one run at 512
# tokens), CelebA-HQ BigGAN rows (120k iterations: long tasks that checkpoint before their time
# limit and requeue themselves). Each array's last job merges its shards and writes its report;
# `smyrf status results/paper_<row>.slurm` follows a row, and running this script again submits only
# what is missing. Then `smyrf report --paper glue results/paper_glue_*.h5` prints the table.
#
#   scripts/slurm/submit_paper.sh glue|imdb|celeba|all [extra smyrf submit options...]
#   e.g. scripts/slurm/submit_paper.sh glue --partition gpu --account myproj \
#          --setup 'source ~/venvs/smyrf/bin/activate'
#        scripts/slurm/submit_paper.sh all --dry-run        (prints the scripts; needs no Slurm)
#
# Needs the data and weights in place first (scripts/fetch_glue.sh, scripts/fetch_imdb.sh,
# scripts/fetch_celebahq.md, scripts/fetch_models.sh) and build/bin/smyrf built on a shared filesystem.
set -euo pipefail
cd "$(dirname "$0")/../.."
SMYRF=${SMYRF:-build/bin/smyrf}
table=${1:-}
[[ -n "$table" ]] || { sed -n '2,13p' "$0"; exit 2; }
shift

submit() {  # config, then options for it
  local config=$1; shift
  echo "== $config"
  "$SMYRF" submit "$config" --slurm "$@"
}

case "$table" in glue|all)
  for row in bert128 bert64 bert32 smyrf_2x32 smyrf_2x16; do
    submit "configs/paper/glue_$row.json" --gpus-per-task 1 --cpus-per-task 8 --mem 32G --time 12:00:00 "$@"
  done ;;
esac
case "$table" in imdb|all)
  for row in bert roberta smyrf_bert smyrf_roberta; do
    submit "configs/paper/imdb_$row.json" --gpus-per-task 1 --cpus-per-task 8 --mem 48G --time 24:00:00 "$@"
  done ;;
esac
case "$table" in celeba|all)
  for row in dense_64 smyrf_128 smyrf_256; do
    submit "configs/paper/celeba_biggan_$row.json" --gpus-per-task 1 --cpus-per-task 8 --mem 64G --time 24:00:00 \
      --signal-lead 600 "$@"
  done ;;
esac
case "$table" in glue|imdb|celeba|all) ;; *) echo "unknown table '$table': glue, imdb, celeba or all" >&2; exit 2 ;; esac
