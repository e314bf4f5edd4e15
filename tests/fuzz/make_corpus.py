#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target (tests/fuzz/corpus/<target>/) from the repository's
fixtures and the offline MiniLM tokenizer, trimmed so that each seed stays small. Run from the
repository root after scripts/setup.sh; the output is committed, so this only reruns when the
formats change. Separator between the files of one input: "\\n----\\n" (fuzz_support.h)."""
import json
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fuzz" / "corpus"
SEP = b"\n----\n"
MINILM = ROOT / "models" / "all-MiniLM-L6-v2"
TEXT = ("Licensed under the Apache License, Version 2.0 (the \"License\"); naïve café — 東京 🙂 "
        "don't [MASK] it.").encode() + b" \xff\xfe invalid \xc3"


def seed(target, name, data):
    path = OUT / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def configs():
    for name in ["quickstart.json"]:
        seed("config", name, (ROOT / "configs" / name).read_bytes())
    for path in sorted((ROOT / "configs" / "smoke").glob("*.json"))[:6]:
        seed("config", f"smoke_{path.name}", path.read_bytes())
    base = (ROOT / "configs" / "quickstart.json").read_bytes()
    child = json.dumps({"extends": "base.json", "name": "child", "sweep": [{"attention.n_hashes": [1, 2]},
                       {"zip": [{"data.seq_len": [64, 128], "seed": [1, 2]}]}]}).encode()
    seed("config", "extends.json", child + SEP + base)


def tokenizers():
    full = json.loads((MINILM / "tokenizer.json").read_text())
    vocab = full["model"]["vocab"]
    kept = {t: i for t, i in vocab.items() if i < 200 or t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "the",
                                                                 "license", "##s", "don", "'", "t", ".")}
    full["model"]["vocab"] = kept
    full["truncation"], full["padding"] = None, None
    seed("tokenizer", "minilm_tokenizer_json", b"json" + SEP + json.dumps(full).encode() + SEP + TEXT)
    lines = (MINILM / "vocab.txt").read_text().splitlines()[:1100]
    config = (MINILM / "tokenizer_config.json").read_bytes()
    seed("tokenizer", "minilm_vocab_txt", b"wordpiece" + SEP + "\n".join(lines).encode() + SEP + config + SEP + TEXT)
    byte_chars = [chr(c) for c in range(33, 127)] + ["\u0120" + c for c in "thlia"]
    bpe_vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{t: i + 4 for i, t in enumerate(byte_chars)}}
    merges = "#version: 0.2\n\u0120 t\n\u0120t h\nL i\n"
    seed("tokenizer", "bpe", b"bpe" + SEP + json.dumps(bpe_vocab).encode() + SEP + merges.encode() + SEP + TEXT)


def datasets():
    glue = ROOT / "tests" / "data" / "glue"
    for task, folder in [("cola", "CoLA"), ("sst2", "SST-2"), ("mrpc", "MRPC"), ("stsb", "STS-B"), ("mnli", "MNLI"),
                         ("qnli", "QNLI")]:
        rows = (glue / folder / "train.tsv").read_bytes().splitlines(keepends=True)[:12]
        seed("glue", task, task.encode() + b"\n" + b"".join(rows))
    imdb = ROOT / "tests" / "data" / "aclImdb"
    files = sorted(p for p in imdb.rglob("*.txt") if "/train/" in str(p))[:4]
    parts = [str(p.relative_to(imdb)).encode() + b"\n" + p.read_bytes()[:600] for p in files]
    seed("imdb", "train_tree", SEP.join(parts))
    for name in ["0.jpg", "10.png", "11.png"]:
        seed("image", name, (ROOT / "tests" / "data" / "celebahq_tiny" / name).read_bytes())


def results():
    seed("results", "unchanged", b"")
    seed("results", "status_lies", bytes([2, 0, 2, 12, 1]))  # /runs/a attr status = "complete" (unchanged read)
    seed("results", "summary_as_array", bytes([11, 5, 2, 2]))
    seed("results", "config_broken", bytes([0, 0, 1, 1, 0, 2, 0, 2]))


def safetensors():
    import struct
    data = struct.pack("<6f", 0.5, -1.0, 2.0, 0.25, 3.0, -0.5) + struct.pack("<2q", 7, -7) + bytes([1, 0])
    header = {"__metadata__": {"format": "pt"},
              "encoder.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "ids": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
              "mask": {"dtype": "BOOL", "shape": [2, 1], "data_offsets": [40, 42]}}
    text = json.dumps(header).encode()
    seed("safetensors", "three_tensors", text + SEP + data)  # the target adds the length prefix
    seed("safetensors", "empty", b"{}" + SEP)
    seed("safetensors", "raw_file", struct.pack("<Q", len(text)) + text + data)  # no separator: the whole file


def captured():
    seed("captured", "unchanged", b"")
    seed("captured", "q_reshaped", bytes([2, 4, 3, 1, 2, 5]))  # /g/q as [1, 2, 5]
    seed("captured", "scale_nan", bytes([1, 2, 1, 7]))  # /g attr scale = NaN
    seed("captured", "k_sparse", bytes([3, 6, 2, 20, 20, 0]))  # /g/k chunked, 2^20 x 2^20 x 1, never written


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    configs()
    tokenizers()
    datasets()
    results()
    safetensors()
    captured()
    print(sorted(str(p.relative_to(OUT)) for p in OUT.rglob("*") if p.is_file()))
