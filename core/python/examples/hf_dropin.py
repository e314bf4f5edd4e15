#!/usr/bin/env python3
"""Drop one of our attention methods into a Hugging Face model from a folder and compare it with the
model's own eager attention on real text.

    python3 core/python/examples/hf_dropin.py                        # MiniLM, SMYRF 2x32, the GPL-3 text
    python3 core/python/examples/hf_dropin.py --model DIR --method hyper \
        --options '{"block_size": 64, "sample_size": 64, "min_seq_len": 128}' --text FILE

Paragraphs of --text (blank-line separated, at least 40 characters) become a padded batch, cut at
--max-length tokens. Printed: each layer's relative error of the hidden states at real tokens
(Frobenius, against eager), the cosine similarity of mean-pooled sentence embeddings, and the time
of one forward for both. Needs the smyrf_torch package (scripts/setup.sh installs it).
"""
import argparse
import json
import time

import torch
import transformers

import smyrf_torch


def arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/all-MiniLM-L6-v2", help="a Hugging Face model folder")
    p.add_argument("--text", default="/usr/share/common-licenses/GPL-3", help="a text file of paragraphs")
    p.add_argument("--method", default="smyrf", help=f"one of {sorted(smyrf_torch.methods())}")
    p.add_argument("--options", default='{"n_hashes": 2, "q_cluster_size": 32}', help="the method's options (JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=8, help="paragraphs in the batch")
    p.add_argument("--max-length", type=int, default=256)
    return p.parse_args()


def timed_forward(model, batch):
    with torch.no_grad():
        start = time.perf_counter()
        out = model(**batch, output_hidden_states=True)
        return out, time.perf_counter() - start


def main():
    args = arguments()
    names = smyrf_torch.register_with_transformers()
    name = smyrf_torch.registered_name(args.method)
    assert name in names, f"unknown method {args.method}"
    paragraphs = [" ".join(p.split()) for p in open(args.text, encoding="utf-8").read().split("\n\n")]
    paragraphs = [p for p in paragraphs if len(p) >= 40][:args.batch]
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
    batch = tokenizer(paragraphs, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
    keep = batch["attention_mask"].bool()
    print(f"{len(paragraphs)} paragraphs of {args.text}, padded to {keep.shape[1]} tokens ({int(keep.sum())} real)")

    eager = transformers.AutoModel.from_pretrained(args.model, attn_implementation="eager").eval()
    ours = transformers.AutoModel.from_pretrained(args.model, attn_implementation=name).eval()
    reference, eager_seconds = timed_forward(eager, batch)
    with smyrf_torch.attention_options(seed=args.seed, **{args.method: json.loads(args.options)}):
        approx, our_seconds = timed_forward(ours, batch)

    print(f"{args.method} {args.options} against eager attention, hidden states at real tokens:")
    for layer, (a, r) in enumerate(zip(approx.hidden_states, reference.hidden_states)):
        error = (a[keep] - r[keep]).norm() / r[keep].norm()
        print(f"  layer {layer}: relative error {error:.3e}")
    m = keep.unsqueeze(-1).float()
    pooled = [(h.last_hidden_state * m).sum(1) / m.sum(1) for h in (approx, reference)]
    cosine = torch.nn.functional.cosine_similarity(pooled[0], pooled[1], dim=-1)
    print(f"mean-pooled embedding cosine similarity: min {cosine.min():.4f}, mean {cosine.mean():.4f}")
    print(f"one forward: eager {eager_seconds * 1e3:.1f} ms, {args.method} {our_seconds * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
