#!/usr/bin/env bash
# Downloads the GLUE tasks into DEST in the layout datasets/glue.h reads (the one written by the
# official download_glue_data.py): DEST/{CoLA,SST-2,MRPC,STS-B,QQP,MNLI,QNLI,RTE,WNLI}/*.tsv.
# Needs internet access (it cannot run on the offline build machines; tests use tests/data/glue).
#   scripts/fetch_glue.sh data/glue                  all nine tasks
#   scripts/fetch_glue.sh --tasks SST-2,MRPC data/glue
# Every download is checked against a published sha256 (sources below) before it is unpacked.
# Re-running skips finished tasks (DEST/<task>/.fetched) and resumes a partial download.
# Then set "data": {"dir": "data/glue"} in a GLUE config.
set -euo pipefail

BASE=https://dl.fbaipublicfiles.com
TASKS=(CoLA SST-2 MRPC STS-B QQP MNLI QNLI RTE WNLI)

# Archive per task, as in download_glue_data.py (QQP and QNLI are the re-released QQP-clean and
# QNLIv2 archives; they unpack into QQP/ and QNLI/).
declare -A ARCHIVE=(
  [CoLA]=CoLA.zip [SST-2]=SST-2.zip [STS-B]=STS-B.zip [QQP]=QQP-clean.zip
  [MNLI]=MNLI.zip [QNLI]=QNLIv2.zip [RTE]=RTE.zip [WNLI]=WNLI.zip
)
# Published sha256 and size of each file. Source: Hugging Face `datasets`, datasets/glue/dataset_infos.json
# ("download_checksums" for these dl.fbaipublicfiles.com URLs; commit 040102f100964a33fd334e2695f1c493fa6b92db).
# TensorFlow Datasets' tensorflow_datasets/url_checksums/glue.txt (commit 333639b37af6c6fedf3610a4a2d42f1c6ef6f7d5)
# lists the same sha256 and sizes for the older firebasestorage copies of every file here except
# QQP-clean.zip (it lists the older QQP.zip, a different file).
declare -A SHA256=(
  [CoLA.zip]=f212fcd832b8f7b435fb991f101abf89f96b933ab400603bf198960dfc32cbff
  [SST-2.zip]=d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa
  [STS-B.zip]=e60a6393de5a8b5b9bac5020a1554b54e3691f9d600b775bd131e613ac179c85
  [QQP-clean.zip]=40e7c862c04eb26ee04b67fd900e76c45c6ba8e6d8fab4f8f1f8072a1a3fbae0
  [MNLI.zip]=e7c1d896d26ed6caf700110645df426cc2d8ebf02a5ab743d5a5c68ac1c83633
  [QNLIv2.zip]=e634e78627a29adaecd4f955359b22bf5e70f2cbd93b493f2d624138a0c0e5f5
  [RTE.zip]=6bf86de103ecd335f3441bd43574d23fef87ecc695977a63b82d5efb206556ee
  [WNLI.zip]=ae0e8e4d16f4d46d4a0a566ec7ecceccfd3fbfaa4a7a4b4e02848c0f2561ac46
  [msr_paraphrase_train.txt]=60a9b09084528f0673eedee2b69cb941920f0b8cd0eeccefc464a98768457f89
  [msr_paraphrase_test.txt]=a04e271090879aaba6423d65b94950c089298587d9c084bf9cd7439bd785f784
  [mrpc_dev_ids.tsv]=971d7767d81b997fd9060ade0ec23c4fc31cbb226a55d1bd4a1bac474eb81dc7
)
declare -A BYTES=(
  [CoLA.zip]=376971 [SST-2.zip]=7439277 [STS-B.zip]=802872 [QQP-clean.zip]=41696084
  [MNLI.zip]=312783507 [QNLIv2.zip]=10627589 [RTE.zip]=697150 [WNLI.zip]=28999
  [msr_paraphrase_train.txt]=1047044 [msr_paraphrase_test.txt]=441275 [mrpc_dev_ids.tsv]=6222
)
# MRPC is built from the Microsoft Research files plus GLUE's list of dev pairs. The first dev-ids
# address is the one download_glue_data.py uses; the second is where Hugging Face fetches the same
# file (same sha256).
MRPC_DEV_IDS_URLS=(
  "https://firebasestorage.googleapis.com/v0/b/mtl-sentence-representations.appspot.com/o/data%2Fmrpc_dev_ids.tsv?alt=media&token=ec5c0836-31d5-48f4-b431-7480817f1adc"
  "$BASE/glue/data/mrpc_dev_ids.tsv"
)
MRPC_HEADER=$'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String'

usage() {
  cat <<EOF
usage: scripts/fetch_glue.sh [--tasks LIST] [--keep-archives] DEST

Downloads GLUE (${TASKS[*]}) into DEST/<task>/ as
train.tsv, dev.tsv (MNLI: dev_matched.tsv, dev_mismatched.tsv) and test.tsv, checking each download
against its published sha256. About 380 MB to download (MNLI alone 313 MB).

  --tasks LIST       comma-separated subset, e.g. SST-2,MRPC (default: all)
  --keep-archives    keep the downloaded .zip files in DEST/.downloads (default: delete once unpacked)
  -h, --help         this text

Finished tasks are skipped on a re-run; an interrupted download resumes.
Then point a GLUE config at it: "data": {"dir": "DEST"}.
EOF
}

say() { echo "fetch_glue: $*"; }
die() { echo "fetch_glue: error: $*" >&2; exit 1; }

dest="" keep=0 selected=("${TASKS[@]}")
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --tasks) [[ $# -ge 2 ]] || die "--tasks needs a list, e.g. --tasks SST-2,MRPC"
             IFS=, read -r -a selected <<< "$2"; shift 2 ;;
    --keep-archives) keep=1; shift ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [[ -z "$dest" ]] || die "one DEST only (got '$dest' and '$1')"; dest=$1; shift ;;
  esac
done
[[ -n "$dest" ]] || { usage >&2; exit 2; }
for t in "${selected[@]}"; do
  [[ " ${TASKS[*]} " == *" $t "* ]] || die "unknown task '$t'; tasks: ${TASKS[*]} (directory names, case-sensitive)"
done
for tool in unzip sha256sum awk; do
  command -v "$tool" >/dev/null || die "'$tool' is needed (Debian: apt-get install ${tool/sha256sum/coreutils})"
done
if command -v curl >/dev/null; then
  download_cmd() { curl -fL --retry 3 --continue-at - -o "$1" "$2"; }
elif command -v wget >/dev/null; then
  download_cmd() { wget --tries=3 --continue -O "$1" "$2"; }
else
  die "curl or wget is needed"
fi

mkdir -p "$dest/.downloads"
downloads="$dest/.downloads"

# fetch NAME URL...: DEST/.downloads/NAME, checked against SHA256[NAME]; tries each URL in turn.
fetch() {
  local name=$1 out="$downloads/$1" url
  shift
  if [[ -f "$out" ]] && echo "${SHA256[$name]}  $out" | sha256sum -c --status; then
    say "$name already downloaded and verified"
    return 0
  fi
  rm -f "$out"
  # A download that finished before the script was stopped: nothing left to resume.
  if [[ -f "$out.part" ]] && echo "${SHA256[$name]}  $out.part" | sha256sum -c --status; then
    mv "$out.part" "$out"
    return 0
  fi
  for url in "$@"; do
    say "downloading $name (${BYTES[$name]} bytes) from $url"
    if download_cmd "$out.part" "$url"; then
      if echo "${SHA256[$name]}  $out.part" | sha256sum -c --status; then
        mv "$out.part" "$out"
        say "$name: sha256 OK"
        return 0
      fi
      local got size
      got=$(sha256sum "$out.part" | cut -d' ' -f1)
      size=$(wc -c < "$out.part")
      rm -f "$out.part"
      echo "fetch_glue: $name from $url: sha256 $got ($size bytes) differs from the published" \
           "${SHA256[$name]} (${BYTES[$name]} bytes); not using it" >&2
    else
      echo "fetch_glue: could not download $url" >&2
    fi
  done
  die "no verified copy of $name; check your connection (the file may also have moved: see datasets/README.md)"
}

expected_files() {  # task -> the .tsv files the loader reads
  if [[ $1 == MNLI ]]; then echo "train.tsv dev_matched.tsv dev_mismatched.tsv"; else echo "train.tsv dev.tsv"; fi
}

done_already() {
  local task=$1 f
  [[ -f "$dest/$task/.fetched" ]] || return 1
  for f in $(expected_files "$task"); do [[ -s "$dest/$task/$f" ]] || return 1; done
}

unpack_task() {
  local task=$1 archive=${ARCHIVE[$1]} tmp="$dest/.unpack-$1" found
  fetch "$archive" "$BASE/glue/data/$archive"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  unzip -q "$downloads/$archive" -d "$tmp"
  # The archive holds one folder (e.g. QNLIv2.zip -> QNLI/); find it by its train.tsv.
  found=$(find "$tmp" -name train.tsv -not -path '*/__MACOSX/*' | head -n 1)
  [[ -n "$found" ]] || die "$archive has no train.tsv; the archive layout changed (see datasets/README.md)"
  rm -rf "${dest:?}/$task"
  mv "$(dirname "$found")" "$dest/$task"
  rm -rf "$tmp"
  ((keep)) || rm -f "$downloads/$archive"
}

# MRPC as download_glue_data.py builds it: rows of msr_paraphrase_train.txt whose (#1 ID, #2 ID)
# pair is listed in mrpc_dev_ids.tsv go to dev.tsv, the others to train.tsv; msr_paraphrase_test.txt
# becomes test.tsv with an index column instead of the label. Lines are stripped of surrounding
# whitespace ('\r' included) as that script does; the header is written without the BOM the
# Microsoft file may carry.
build_mrpc() {
  local out="$dest/MRPC" tmp="$dest/.unpack-MRPC"
  fetch msr_paraphrase_train.txt "$BASE/senteval/senteval_data/msr_paraphrase_train.txt"
  fetch msr_paraphrase_test.txt "$BASE/senteval/senteval_data/msr_paraphrase_test.txt"
  fetch mrpc_dev_ids.tsv "${MRPC_DEV_IDS_URLS[@]}"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp "$downloads/msr_paraphrase_train.txt" "$downloads/msr_paraphrase_test.txt" "$tmp/"
  cp "$downloads/mrpc_dev_ids.tsv" "$tmp/dev_ids.tsv"
  # strip(): drop a UTF-8 BOM and surrounding whitespace (bytes: awk runs with LC_ALL=C).
  LC_ALL=C awk -v header="$MRPC_HEADER" -v train="$tmp/train.tsv" -v dev="$tmp/dev.tsv" '
    function strip(s) {
      if (substr(s, 1, 3) == "\357\273\277") s = substr(s, 4)
      gsub(/^[ \t\r\n\f\v]+|[ \t\r\n\f\v]+$/, "", s); return s
    }
    FNR == NR { line = strip($0); if (line != "") { split(line, id, "\t"); is_dev[id[1] "\t" id[2]] = 1 } next }
    FNR == 1 {
      if (strip($0) != header) { print "unexpected header in msr_paraphrase_train.txt: " $0 > "/dev/stderr"; exit 1 }
      print header > train; print header > dev; next
    }
    {
      line = strip($0)
      if (split(line, f, "\t") != 5) { print "msr_paraphrase_train.txt:" FNR ": expected 5 tab-separated fields" > "/dev/stderr"; exit 1 }
      key = f[2] "\t" f[3]
      if (key in is_dev) print line > dev; else print line > train
    }' "$tmp/dev_ids.tsv" "$tmp/msr_paraphrase_train.txt"
  LC_ALL=C awk -v test="$tmp/test.tsv" '
    function strip(s) {
      if (substr(s, 1, 3) == "\357\273\277") s = substr(s, 4)
      gsub(/^[ \t\r\n\f\v]+|[ \t\r\n\f\v]+$/, "", s); return s
    }
    FNR == 1 { print "index\t#1 ID\t#2 ID\t#1 String\t#2 String" > test; next }
    {
      if (split(strip($0), f, "\t") != 5) { print "msr_paraphrase_test.txt:" FNR ": expected 5 tab-separated fields" > "/dev/stderr"; exit 1 }
      print (FNR - 2) "\t" f[2] "\t" f[3] "\t" f[4] "\t" f[5] > test
    }' "$tmp/msr_paraphrase_test.txt"
  # GLUE's MRPC has 3668 train, 408 dev and 1725 test pairs (Hugging Face glue/mrpc card).
  local n_train n_dev n_test
  n_train=$(($(wc -l < "$tmp/train.tsv") - 1))
  n_dev=$(($(wc -l < "$tmp/dev.tsv") - 1))
  n_test=$(($(wc -l < "$tmp/test.tsv") - 1))
  [[ $n_train == 3668 && $n_dev == 408 && $n_test == 1725 ]] ||
    die "MRPC came out as $n_train train / $n_dev dev / $n_test test pairs instead of 3668 / 408 / 1725"
  rm -rf "${dest:?}/MRPC"
  mv "$tmp" "$out"
  ((keep)) || rm -f "$downloads/msr_paraphrase_train.txt" "$downloads/msr_paraphrase_test.txt" "$downloads/mrpc_dev_ids.tsv"
}

for task in "${selected[@]}"; do
  if done_already "$task"; then
    say "$task: already in $dest/$task, skipped"
    continue
  fi
  say "$task: fetching"
  if [[ $task == MRPC ]]; then build_mrpc; else unpack_task "$task"; fi
  for f in $(expected_files "$task"); do
    [[ -s "$dest/$task/$f" ]] || die "$task: $dest/$task/$f is missing after unpacking"
  done
  date -u +%Y-%m-%dT%H:%M:%SZ > "$dest/$task/.fetched"
  say "$task: done ($(expected_files "$task"))"
done
rmdir "$downloads" 2>/dev/null || true
say "all done; set \"data\": {\"dir\": \"$dest\"} in a GLUE config"
