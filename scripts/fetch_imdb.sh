#!/usr/bin/env bash
# Downloads the Large Movie Review Dataset (aclImdb v1, Maas et al. 2011) into DEST/aclImdb, the
# tree datasets/imdb.h reads: {train,test}/{neg,pos}/<id>_<rating>.txt (+ train/unsup, vocabulary).
# Needs internet access (it cannot run on the offline build machines; tests use tests/data/aclImdb).
#   scripts/fetch_imdb.sh data        -> data/aclImdb
# The archive is checked against its published sha256 before it is unpacked, and the unpacked
# tree against the published file counts. Re-running skips a finished tree (DEST/aclImdb/.fetched)
# and resumes a partial download. Then set "data": {"dir": "DEST/aclImdb"} in an IMDB config.
set -euo pipefail

URL=https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz
ARCHIVE=aclImdb_v1.tar.gz
# Published sha256 and size of the archive (listed for the http:// address of the same file):
#   Hugging Face `datasets`, datasets/imdb/dataset_infos.json, "download_checksums"
#     (commit 040102f100964a33fd334e2695f1c493fa6b92db), and
#   TensorFlow Datasets, tensorflow_datasets/url_checksums/imdb_reviews.txt
#     (commit 333639b37af6c6fedf3610a4a2d42f1c6ef6f7d5); both give the same values.
SHA256=c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe
BYTES=84125825
# Files per folder in the release (its README): 12,500 reviews per polarity and split, 50,000 unlabelled.
declare -A COUNT=([train/neg]=12500 [train/pos]=12500 [test/neg]=12500 [test/pos]=12500 [train/unsup]=50000)

usage() {
  cat <<EOF
usage: scripts/fetch_imdb.sh [--keep-archive] DEST

Downloads aclImdb_v1.tar.gz (84 MB) from $URL,
checks its sha256, and unpacks it into DEST/aclImdb (about 500 MB on disk, 100,000 small files).

  --keep-archive   keep DEST/.downloads/$ARCHIVE (default: delete once unpacked)
  -h, --help       this text

A finished tree is skipped on a re-run; an interrupted download resumes.
Then point an IMDB config at it: "data": {"dir": "DEST/aclImdb"}.
EOF
}

say() { echo "fetch_imdb: $*"; }
die() { echo "fetch_imdb: error: $*" >&2; exit 1; }

dest="" keep=0
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --keep-archive) keep=1; shift ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [[ -z "$dest" ]] || die "one DEST only (got '$dest' and '$1')"; dest=$1; shift ;;
  esac
done
[[ -n "$dest" ]] || { usage >&2; exit 2; }
for tool in tar sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' is needed"
done

tree="$dest/aclImdb"
if [[ -f "$tree/.fetched" ]]; then
  say "already in $tree, skipped (delete $tree/.fetched to fetch again)"
  exit 0
fi

downloads="$dest/.downloads"
out="$downloads/$ARCHIVE"
mkdir -p "$downloads"
verified() { echo "$SHA256  $1" | sha256sum -c --status; }

# Step 1: a verified archive (reuse one from an earlier run, finish a partial one, or download).
if [[ -f "$out" ]] && verified "$out"; then
  say "$ARCHIVE already downloaded and verified"
else
  rm -f "$out"
  if ! { [[ -f "$out.part" ]] && verified "$out.part"; }; then
    say "downloading $ARCHIVE ($BYTES bytes) from $URL"
    if command -v curl >/dev/null; then
      curl -fL --retry 3 --continue-at - -o "$out.part" "$URL" || die "could not download $URL (re-run to resume)"
    elif command -v wget >/dev/null; then
      wget --tries=3 --continue -O "$out.part" "$URL" || die "could not download $URL (re-run to resume)"
    else
      die "curl or wget is needed"
    fi
    if ! verified "$out.part"; then
      got=$(sha256sum "$out.part" | cut -d' ' -f1)
      size=$(wc -c < "$out.part")
      rm -f "$out.part"
      die "$ARCHIVE: sha256 $got ($size bytes) differs from the published $SHA256 ($BYTES bytes); deleted it, re-run to download again"
    fi
  fi
  mv "$out.part" "$out"
  say "$ARCHIVE: sha256 OK"
fi

# Step 2: unpack beside the destination, check the counts, then move into place.
tmp="$dest/.unpack-aclImdb"
rm -rf "$tmp"
mkdir -p "$tmp"
say "unpacking into $tree"
tar -xzf "$out" -C "$tmp"
[[ -d "$tmp/aclImdb" ]] || die "$ARCHIVE has no aclImdb/ folder; the archive layout changed"
for folder in "${!COUNT[@]}"; do
  n=$(find "$tmp/aclImdb/$folder" -maxdepth 1 -type f -name '*.txt' | wc -l)
  [[ $n == "${COUNT[$folder]}" ]] || die "$folder has $n reviews instead of ${COUNT[$folder]}"
done
rm -rf "$tree"
mv "$tmp/aclImdb" "$tree"
rm -rf "$tmp"
((keep)) || rm -f "$out"
rmdir "$downloads" 2>/dev/null || true
date -u +%Y-%m-%dT%H:%M:%SZ > "$tree/.fetched"
say "done: 25,000 train and 25,000 test reviews in $tree; set \"data\": {\"dir\": \"$tree\"} in an IMDB config"
