// Tests for core/text (tokenizers) on cases small enough to check by hand: the Unicode rules
// (categories as HF sees them, NFD, Rust lower-casing, strict UTF-8), the BERT normalizer and
// pre-tokenizer, WordPiece (## continuation, [UNK] for unknown and over-long words), the byte-level
// BPE (byte table, GPT-2 regex split, merge order), the pipeline (special tokens, pairs,
// longest_first truncation, padding) and every loading error, whose message must name the file.
// Tokenizer folders are written into a temporary directory per test. Equality with the Hugging
// Face library on real text is tests/python/test_tokenizers.py.
// Run: smyrf_tests_light --gtest_filter='Unicode*:Bert*:WordPiece*:ByteLevel*:Bpe*:Tokenizer*:PadBatch*'
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "core/text/byte_level_bpe.h"
#include "core/text/tokenizer.h"
#include "core/text/unicode.h"
#include "core/text/wordpiece.h"
#include "core/util/check.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace text;

using test::contains;
using test::error_of;

std::string u8(std::u32string_view s) { return utf8_encode(s); }

std::vector<std::string> words_of(const std::vector<std::u32string>& words) {
  std::vector<std::string> out;
  for (const auto& w : words) out.push_back(u8(w));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Unicode

TEST(Unicode, Utf8RoundTrip) {
  const std::string s = "H\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80";  // Héllo 世界 😀
  const std::u32string cps = utf8_decode(s);
  EXPECT_EQ(cps, (std::u32string{U'H', 0xE9, U'l', U'l', U'o', U' ', 0x4E16, 0x754C, U' ', 0x1F600}));
  EXPECT_EQ(utf8_encode(cps), s);
  EXPECT_EQ(utf8_decode(std::string("a\0b", 3)), (std::u32string{U'a', 0, U'b'}));  // NUL is a character
}

TEST(Unicode, InvalidUtf8ThrowsNamingTheByte) {
  EXPECT_TRUE(contains(error_of<Error>([] { utf8_decode("ab\xC3"); }), "byte 2"));            // truncated
  EXPECT_TRUE(contains(error_of<Error>([] { utf8_decode("\xC0\xAF"); }), "byte 0"));          // overlong '/'
  EXPECT_TRUE(contains(error_of<Error>([] { utf8_decode("x\xED\xA0\x80"); }), "byte 1"));     // surrogate
  EXPECT_TRUE(contains(error_of<Error>([] { utf8_decode("\xF4\x90\x80\x80"); }), "byte 0"));  // > U+10FFFF
  EXPECT_TRUE(contains(error_of<Error>([] { utf8_decode("a\x80"); }), "byte 1"));             // stray continuation
  EXPECT_TRUE(contains(error_of<Error>([] { utf8_decode("\xE4\xB8" "x"); }), "byte 2"));      // bad continuation
}

TEST(Unicode, CategoriesAreHuggingFacesUnicode9Tables) {
  for (char32_t c : {U'!', U'$', U'+', U'^', U'`', U'~', U'/', U'@', char32_t{0xBF}, char32_t{0x3001}})
    EXPECT_TRUE(is_bert_punctuation(c)) << std::hex << static_cast<uint32_t>(c);
  for (char32_t c : {U'a', U'0', U' ', char32_t{0xE9}, char32_t{0x4E2D}}) EXPECT_FALSE(is_bert_punctuation(c));
  EXPECT_FALSE(is_bert_punctuation(0x2E43));  // punctuation since Unicode 10, not in HF's tables
  EXPECT_TRUE(is_bert_punctuation(0x166D));   // Po in Unicode 9, So today: HF still splits it

  EXPECT_TRUE(is_other_unicode9(0x01));
  EXPECT_TRUE(is_other_unicode9(0x200B));     // Cf
  EXPECT_TRUE(is_other_unicode9(0xE000));     // Co
  EXPECT_TRUE(is_other_unicode9(0x10FFFD));   // plane 16 private use
  EXPECT_FALSE(is_other_unicode9(0x13430));   // Cf only since Unicode 12
  EXPECT_FALSE(is_other_unicode9(0x0378));    // unassigned (Cn) is not "other" for HF
  EXPECT_FALSE(is_other_unicode9(U'a'));

  EXPECT_TRUE(is_mark_nonspacing_unicode9(0x0301));
  EXPECT_FALSE(is_mark_nonspacing_unicode9(0x1885));  // Lo in Unicode 9, Mn since 10
  EXPECT_FALSE(is_mark_nonspacing_unicode9(U'e'));

  EXPECT_TRUE(is_cjk_ideograph(0x4E2D));
  EXPECT_TRUE(is_cjk_ideograph(0xF900));
  EXPECT_TRUE(is_cjk_ideograph(0x2B81F));
  EXPECT_FALSE(is_cjk_ideograph(0x2B820));  // HF's list skips U+2B820..U+2B91F
  EXPECT_TRUE(is_cjk_ideograph(0x2B920));
  EXPECT_FALSE(is_cjk_ideograph(0x3042));   // hiragana: space-separated scripts are not split
  EXPECT_FALSE(is_cjk_ideograph(0xAC00));   // hangul

  EXPECT_TRUE(is_whitespace(0x3000));
  EXPECT_TRUE(is_whitespace(0x85));
  EXPECT_FALSE(is_whitespace(0x200B));
  EXPECT_FALSE(is_whitespace(0x180E));  // no longer White_Space
  EXPECT_FALSE(is_whitespace(0x1C));    // Python's isspace() says yes, Rust says no
}

TEST(Unicode, LettersAndNumbersForTheByteLevelRegex) {
  EXPECT_TRUE(is_letter(U'a'));
  EXPECT_TRUE(is_letter(0x4E2D));
  EXPECT_TRUE(is_letter(0x02B0));   // Lm
  EXPECT_FALSE(is_letter(0x0301));  // Mn is not \p{L}
  EXPECT_TRUE(is_letter(0x1C89));   // new in Unicode 16: HF's Oniguruma knows it
  EXPECT_TRUE(is_number(0x10D40));  // new in Unicode 16
  EXPECT_TRUE(is_number(U'7'));
  EXPECT_TRUE(is_number(0x00BD));   // No
  EXPECT_TRUE(is_number(0x2160));   // Nl
  EXPECT_FALSE(is_number(U'x'));
}

TEST(Unicode, NfdDecomposesAndOrdersMarks) {
  EXPECT_EQ(nfd(U"\u00e9"), U"e\u0301");
  EXPECT_EQ(nfd(U"\uac00"), U"\u1100\u1161");          // Hangul, algorithmic
  EXPECT_EQ(nfd(U"e\u0301\u0323"), U"e\u0323\u0301");  // ccc 230 after ccc 220
  EXPECT_EQ(nfd(U"\u1e69"), U"s\u0323\u0307");         // ṩ: nested decomposition, ordered
  EXPECT_EQ(nfd(U"\U00011938"), U"\U00011938");        // HF's tables predate its decomposition
  EXPECT_EQ(nfd(U"\ufb01"), U"\ufb01");                // compatibility ligature: not canonical
}

TEST(Unicode, LowercaseIsRusts) {
  const auto lower = [](std::u32string_view s) {
    std::u32string out;
    for (char32_t c : s) append_lowercase(out, c);
    return out;
  };
  EXPECT_EQ(lower(U"ABC\u00c9"), U"abc\u00e9");
  EXPECT_EQ(lower(U"\u0130"), U"i\u0307");              // full mapping, two code points
  EXPECT_EQ(lower(U"\u03a3\u039f\u03a3"), U"\u03c3\u03bf\u03c3");  // no final sigma
  EXPECT_EQ(lower(U"\u1e9e"), U"\u00df");
  EXPECT_EQ(lower(U"\ua7cb"), U"\u0264");               // Unicode 16 pair utf8proc 2.8 lacks
  EXPECT_EQ(lower(U"\U00010d50"), U"\U00010d70");
}

// ---------------------------------------------------------------------------------------------
// BERT normalizer and pre-tokenizer

TEST(BertNormalizer, StripsAccentsBeforeLowercasing) {
  BertNormalizerOptions o;
  EXPECT_EQ(u8(bert_normalize(U"H\u00e9llo", o)), "hello");
  EXPECT_EQ(u8(bert_normalize(U"\u0130", o)), "i");  // İ -> I + U+0307 -> I -> i
  o.strip_accents = false;
  EXPECT_EQ(u8(bert_normalize(U"H\u00e9llo", o)), "h\u00e9llo");
  EXPECT_EQ(u8(bert_normalize(U"\u0130", o)), "i\u0307");
  BertNormalizerOptions cased;
  cased.lowercase = false;  // strip_accents unset follows lowercase: no stripping either
  EXPECT_EQ(u8(bert_normalize(U"H\u00e9llo", cased)), "H\u00e9llo");
}

TEST(BertNormalizer, CleansControlsAndWhitespace) {
  BertNormalizerOptions o;
  // NUL, U+FFFD, U+0001 and the zero-width space (Cf) vanish; tab and NBSP become spaces.
  EXPECT_EQ(u8(bert_normalize(std::u32string(U"a\0b\ufffdc\u0001d\te\u00a0f\u200bg", 13), o)), "abcd e fg");
  o.clean_text = false;
  EXPECT_EQ(bert_normalize(U"a\u200bb", o), U"a\u200bb");
}

TEST(BertNormalizer, SurroundsCjkWithSpaces) {
  BertNormalizerOptions o;
  EXPECT_EQ(u8(bert_normalize(U"ab\u4e2d\u6587c\u3042", o)), "ab \u4e2d  \u6587 c\u3042");
  o.handle_chinese_chars = false;
  EXPECT_EQ(u8(bert_normalize(U"ab\u4e2d", o)), "ab\u4e2d");
}

TEST(BertPreTokenizer, SplitsWhitespaceAndIsolatesPunctuation) {
  // HF's own unit-test sentence
  EXPECT_EQ(words_of(bert_pre_tokenize(U"Hey friend!     How are you?!?")),
            (std::vector<std::string>{"Hey", "friend", "!", "How", "are", "you", "?", "!", "?"}));
  EXPECT_EQ(words_of(bert_pre_tokenize(U"don't 3.14 a\u00bfb \u3000 x")),
            (std::vector<std::string>{"don", "'", "t", "3", ".", "14", "a", "\u00bf", "b", "x"}));
  EXPECT_TRUE(bert_pre_tokenize(U"  \t ").empty());
}

// ---------------------------------------------------------------------------------------------
// WordPiece model

Vocab tiny_wordpiece_vocab() {
  Vocab v;
  int64_t id = 0;
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "hello", ",", "!",
                        "##s", "a", "##a", "##b", "x", "[", "]", "mask", "h\xc3\xa9llo"})
    v.add(t, id++);
  return v;
}

std::vector<std::string> wordpiece(const WordPieceModel& m, const std::string& word) {
  std::vector<int64_t> ids;
  std::vector<std::string> tokens;
  m.tokenize_word(word, ids, &tokens);
  EXPECT_EQ(ids.size(), tokens.size());
  return tokens;
}

TEST(WordPiece, GreedyLongestMatchWithContinuationPrefix) {
  const WordPieceModel m(tiny_wordpiece_vocab(), {}, "test");
  EXPECT_EQ(wordpiece(m, "unaffable"), (std::vector<std::string>{"un", "##aff", "##able"}));
  EXPECT_EQ(wordpiece(m, "unaffables"), (std::vector<std::string>{"un", "##aff", "##able", "##s"}));
  EXPECT_EQ(wordpiece(m, "ab"), (std::vector<std::string>{"a", "##b"}));
  EXPECT_EQ(wordpiece(m, "h\xc3\xa9llo"), (std::vector<std::string>{"h\xc3\xa9llo"}));
}

TEST(WordPiece, UnknownPiecesMakeTheWholeWordUnknown) {
  const WordPieceModel m(tiny_wordpiece_vocab(), {}, "test");
  EXPECT_EQ(wordpiece(m, "zebra"), (std::vector<std::string>{"[UNK]"}));
  EXPECT_EQ(wordpiece(m, "unaffablex"), (std::vector<std::string>{"[UNK]"}));  // "##x" missing: no partial pieces
  EXPECT_EQ(wordpiece(m, "xa"), (std::vector<std::string>{"x", "##a"}));
}

TEST(WordPiece, WordsLongerThanMaxInputCharsAreUnknown) {
  const WordPieceModel m(tiny_wordpiece_vocab(), {}, "test");
  EXPECT_EQ(wordpiece(m, std::string(100, 'a')).size(), 100u);  // a ##a ##a ...: at the limit
  EXPECT_EQ(wordpiece(m, std::string(101, 'a')), (std::vector<std::string>{"[UNK]"}));
  // The limit counts code points, not bytes: 60 two-byte characters are 60.
  WordPieceOptions o;
  o.max_input_chars_per_word = 3;
  const WordPieceModel short_words(tiny_wordpiece_vocab(), o, "test");
  EXPECT_EQ(wordpiece(short_words, "aaa"), (std::vector<std::string>{"a", "##a", "##a"}));
  EXPECT_EQ(wordpiece(short_words, "aaaa"), (std::vector<std::string>{"[UNK]"}));
}

// ---------------------------------------------------------------------------------------------
// Byte-level BPE

TEST(ByteLevel, ByteTableIsABijectionOntoPrintableCodePoints) {
  const auto& table = bytes_to_unicode();
  const std::set<char32_t> distinct(table.begin(), table.end());
  EXPECT_EQ(distinct.size(), 256u);
  EXPECT_EQ(table['A'], U'A');
  EXPECT_EQ(table['!'], U'!');
  EXPECT_EQ(table[0xE9], char32_t{0xE9});
  EXPECT_EQ(table[0x00], char32_t{0x100});
  EXPECT_EQ(table[' '], char32_t{0x120});   // "Ġ"
  EXPECT_EQ(table['\n'], char32_t{0x10A});  // "Ċ"
  EXPECT_EQ(table[0xAD], char32_t{0x143});  // the last non-printable byte
  for (char32_t c : table) EXPECT_FALSE(is_whitespace(c) || is_other_unicode9(c)) << static_cast<uint32_t>(c);
  EXPECT_EQ(byte_level_map(U"a \u00e9"), "a\xc4\xa0\xc3\x83\xc2\xa9");  // a Ġ Ã ©
}

TEST(ByteLevel, Gpt2RegexSplit) {
  EXPECT_EQ(words_of(gpt2_split(U"Hello world's  end!!\n")),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " end", "!!", "\n"}));
  EXPECT_EQ(words_of(gpt2_split(U"I'M 123abc they'll x''s")),
            (std::vector<std::string>{"I", "'", "M", " 123", "abc", " they", "'ll", " x", "''", "s"}));
  EXPECT_EQ(words_of(gpt2_split(U"a   \t b")), (std::vector<std::string>{"a", "   \t", " b"}));
  EXPECT_EQ(words_of(gpt2_split(U"a \u4e2d\u6587 \u00e9t\u00e9 \u00bd")),
            (std::vector<std::string>{"a", " \u4e2d\u6587", " \u00e9t\u00e9", " \u00bd"}));
  EXPECT_EQ(words_of(gpt2_split(U"x  ")), (std::vector<std::string>{"x", "  "}));  // trailing run stays whole
}

TEST(ByteLevel, PrefixSpaceOnlyWhenMissing) {
  ByteLevelOptions o;
  o.add_prefix_space = true;
  EXPECT_EQ(byte_level_pre_tokenize(U"hi", o), (std::vector<std::string>{"\xc4\xa0hi"}));
  EXPECT_EQ(byte_level_pre_tokenize(U" hi", o), (std::vector<std::string>{"\xc4\xa0hi"}));
  o.add_prefix_space = false;
  EXPECT_EQ(byte_level_pre_tokenize(U"hi", o), (std::vector<std::string>{"hi"}));
}

Vocab letters_vocab(const std::vector<std::string>& extra) {
  Vocab v;
  int64_t id = 0;
  for (const char* t : {"h", "e", "l", "o"}) v.add(t, id++);
  for (const auto& t : extra) v.add(t, id++);
  return v;
}

std::vector<std::string> bpe(const BpeModel& m, const std::string& word) {
  std::vector<int64_t> ids;
  std::vector<std::string> tokens;
  m.tokenize_word(word, ids, &tokens);
  return tokens;
}

TEST(Bpe, MergesFollowRankNotPosition) {
  // h e l l o -> (h e) he l l o -> (l l) he ll o -> (he ll) hell o -> (hell o) hello
  const BpeModel full(letters_vocab({"he", "ll", "hell", "hello"}),
                      {{"h", "e", 1}, {"l", "l", 2}, {"he", "ll", 3}, {"hell", "o", 4}}, {}, "test");
  EXPECT_EQ(bpe(full, "hello"), (std::vector<std::string>{"hello"}));
  EXPECT_EQ(bpe(full, "helo"), (std::vector<std::string>{"he", "l", "o"}));
  EXPECT_EQ(bpe(full, "llll"), (std::vector<std::string>{"ll", "ll"}));  // leftmost first on equal rank
  // "hell" with (l l) ranked before (e l): ll wins although (e l) is further left ...
  const BpeModel ll_first(letters_vocab({"ll", "el"}), {{"l", "l", 1}, {"e", "l", 2}}, {}, "test");
  EXPECT_EQ(bpe(ll_first, "hell"), (std::vector<std::string>{"h", "e", "ll"}));
  // ... and the other way round el wins and leaves a lone l.
  const BpeModel el_first(letters_vocab({"ll", "el"}), {{"e", "l", 1}, {"l", "l", 2}}, {}, "test");
  EXPECT_EQ(bpe(el_first, "hell"), (std::vector<std::string>{"h", "el", "l"}));
}

TEST(Bpe, UnknownSymbolsAreDroppedOrBecomeUnk) {
  const BpeModel no_unk(letters_vocab({}), {}, {}, "test");
  EXPECT_EQ(bpe(no_unk, "hxxo"), (std::vector<std::string>{"h", "o"}));  // HF drops them
  BpeOptions o;
  o.unk_token = "<unk>";
  const BpeModel unk(letters_vocab({"<unk>"}), {}, o, "test");
  EXPECT_EQ(bpe(unk, "hxxo"), (std::vector<std::string>{"h", "<unk>", "<unk>", "o"}));
  o.fuse_unk = true;
  const BpeModel fused(letters_vocab({"<unk>"}), {}, o, "test");
  EXPECT_EQ(bpe(fused, "hxxo"), (std::vector<std::string>{"h", "<unk>", "o"}));
}

TEST(Bpe, MergeWithUnknownTokenNamesTheSource) {
  const std::string msg = error_of<IoError>(
      [] { BpeModel(letters_vocab({}), {{"h", "e", 7}}, {}, "dir/merges.txt"); });
  EXPECT_TRUE(contains(msg, "dir/merges.txt: line 7"));
  EXPECT_TRUE(contains(msg, "'he'"));
}

// ---------------------------------------------------------------------------------------------
// Whole tokenizers loaded from files

class TokenizerFiles : public test::TempDirTest {
 protected:
  void write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary) << content;
  }
  // vocab.txt of tiny_wordpiece_vocab(): ids 0.. in line order.
  void write_vocab_txt(const std::vector<std::string>& drop = {}) {
    std::string content;
    const Vocab v = tiny_wordpiece_vocab();
    for (int64_t id = 0; id < v.end_id(); ++id) {
      const std::string t = *v.token(id);
      content += (std::find(drop.begin(), drop.end(), t) == drop.end() ? t : "unused" + std::to_string(id)) + "\n";
    }
    write("vocab.txt", content);
  }
  // A byte-level BPE: <s> <pad> </s> <unk> <mask> = 0..4, the 256 byte symbols = 5..260, then
  // "hi" (261) and "Ġt" (262) from the merges "h i" and "Ġ t".
  void write_bpe_classic() {
    json vocab = {{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}, {"<mask>", 4}};
    for (int b = 0; b < 256; ++b) {
      std::string s;
      utf8_append(s, bytes_to_unicode()[static_cast<std::size_t>(b)]);
      vocab[s] = 5 + b;
    }
    vocab["hi"] = 261;
    vocab["\xc4\xa0t"] = 262;
    write("vocab.json", vocab.dump());
    write("merges.txt", "#version: 0.2\nh i\n\xc4\xa0 t\n");
  }
  static int64_t byte_id(char c) { return 5 + static_cast<unsigned char>(c); }
  std::string dir() const { return dir_.string(); }

};

TEST_F(TokenizerFiles, WordPieceFromVocabTxt) {
  write_vocab_txt();
  const auto tok = load_tokenizer(dir());
  EXPECT_EQ(tok->kind(), "wordpiece");
  EXPECT_TRUE(contains(tok->source(), "vocab.txt"));
  EXPECT_EQ(tok->tokenize("H\xc3\xa9llo, unaffable!"),
            (std::vector<std::string>{"hello", ",", "un", "##aff", "##able", "!"}));
  const Encoding e = tok->encode("H\xc3\xa9llo, unaffable!");
  EXPECT_EQ(e.ids, (std::vector<int64_t>{2, 8, 9, 5, 6, 7, 10, 3}));
  EXPECT_EQ(e.type_ids, std::vector<int64_t>(8, 0));
  EXPECT_EQ(tok->special_tokens_added(false), 2u);
  EXPECT_EQ(tok->special_tokens_added(true), 3u);
  EXPECT_EQ(tok->pad_id(), 0);
  EXPECT_EQ(tok->vocab_size(), 20u);
  EXPECT_EQ(tok->token_to_id("##able"), 7);
  EXPECT_EQ(tok->token_to_id("nope"), std::nullopt);
  EXPECT_EQ(tok->id_to_token(6), "##aff");
  // Special tokens written in the text are matched before normalisation; lower-case ones are not.
  EXPECT_EQ(tok->ids_of("x [MASK] x"), (std::vector<int64_t>{15, 4, 15}));
  EXPECT_EQ(tok->ids_of("[mask]"), (std::vector<int64_t>{16, 18, 17}));
}

TEST_F(TokenizerFiles, WordPieceConfigOptions) {
  write_vocab_txt();
  write("tokenizer_config.json", R"({"do_lower_case": false, "model_max_length": 512})");
  const auto cased = load_tokenizer(dir());
  EXPECT_EQ(cased->tokenize("Hello h\xc3\xa9llo"), (std::vector<std::string>{"[UNK]", "h\xc3\xa9llo"}));
  write("tokenizer_config.json", R"({"do_lower_case": true, "strip_accents": false})");
  const auto keep_accents = load_tokenizer(dir());
  EXPECT_EQ(keep_accents->tokenize("H\xc3\xa9llo hello"), (std::vector<std::string>{"h\xc3\xa9llo", "hello"}));
}

TEST_F(TokenizerFiles, PairsAndLongestFirstTruncation) {
  write_vocab_txt();
  const auto tok = load_tokenizer(dir());
  const Encoding p = tok->encode_pair("hello!", "a, x");
  EXPECT_EQ(p.ids, (std::vector<int64_t>{2, 8, 10, 3, 12, 9, 15, 3}));
  EXPECT_EQ(p.type_ids, (std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1}));

  const std::string seven = "a a a a a a a", six = "x x x x x x", three = "x x x";
  const auto lengths = [&](const Encoding& e) {  // tokens of a and b, from the type ids less the specials
    const auto n_b = static_cast<std::size_t>(std::count(e.type_ids.begin(), e.type_ids.end(), 1));
    return std::make_pair(e.type_ids.size() - n_b - 2, n_b - 1);
  };
  // Budget 8 (11 - 3 specials), a=7, b=3: the shorter keeps 3, the longer gets 5.
  EXPECT_EQ(lengths(tok->encode_pair(seven, three, 11)), std::make_pair(5ul, 3ul));
  // Budget 8, a=7, b=6: neither fits beside the other: 4 each.
  EXPECT_EQ(lengths(tok->encode_pair(seven, six, 11)), std::make_pair(4ul, 4ul));
  // Budget 7: 3 and 4, the odd one to the longer (a).
  EXPECT_EQ(lengths(tok->encode_pair(seven, six, 10)), std::make_pair(4ul, 3ul));
  EXPECT_EQ(lengths(tok->encode_pair(six, seven, 10)), std::make_pair(3ul, 4ul));
  // Fits already: untouched.
  EXPECT_EQ(lengths(tok->encode_pair(six, three, 12)), std::make_pair(6ul, 3ul));
  EXPECT_EQ(tok->encode_pair(seven, six, 3).ids, (std::vector<int64_t>{2, 3, 3}));  // budget 0
  // Singles keep their first max_length - 2 tokens.
  EXPECT_EQ(tok->encode("hello , a !", 4).ids, (std::vector<int64_t>{2, 8, 9, 3}));
  EXPECT_EQ(tok->encode("hello", 4).ids, (std::vector<int64_t>{2, 8, 3}));
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { tok->encode_pair("a", "b", 2); }), "3 special tokens"));
  // Without special tokens the budget is the ids alone; type ids still follow the template.
  const Encoding plain = tok->post_process({12, 12, 12}, std::vector<int64_t>{15, 15}, 4, false);
  EXPECT_EQ(plain.ids, (std::vector<int64_t>{12, 12, 15, 15}));
  EXPECT_EQ(plain.type_ids, (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(tok->with_special_tokens({12}, std::vector<int64_t>{15}).ids, (std::vector<int64_t>{2, 12, 3, 15, 3}));
}

TEST(TruncateLongestFirst, MatchesHuggingFaceCases) {
  std::vector<int64_t> a(10, 1), b(2, 2);
  truncate_longest_first(a, b, 9);
  EXPECT_EQ(a.size(), 7u);
  EXPECT_EQ(b.size(), 2u);
  std::vector<int64_t> c(20, 1), d(15, 2);
  truncate_longest_first(c, d, 9);  // shorter > max_length: halves, odd one to the longer
  EXPECT_EQ(c.size(), 5u);
  EXPECT_EQ(d.size(), 4u);
}

TEST_F(TokenizerFiles, WordPieceFromTokenizerJson) {
  json vocab = json::object();
  const Vocab v = tiny_wordpiece_vocab();
  for (int64_t id = 0; id < v.end_id(); ++id) vocab[*v.token(id)] = id;
  const json j = {
      {"version", "1.0"},
      {"truncation", {{"max_length", 3}}},  // ignored: callers choose max_length
      {"added_tokens", {{{"id", 2}, {"content", "[CLS]"}, {"special", true}}, {{"id", 4}, {"content", "[MASK]"}}}},
      {"normalizer", {{"type", "BertNormalizer"}, {"lowercase", false}, {"clean_text", true},
                      {"handle_chinese_chars", true}, {"strip_accents", nullptr}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor", {{"type", "BertProcessing"}, {"sep", {"[SEP]", 3}}, {"cls", {"[CLS]", 2}}}},
      {"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                 {"max_input_chars_per_word", 100}, {"vocab", vocab}}}};
  write("tokenizer.json", j.dump());
  write("vocab.txt", "ignored when tokenizer.json is present\n");
  const auto tok = load_tokenizer(dir());
  EXPECT_TRUE(contains(tok->source(), "tokenizer.json"));
  EXPECT_EQ(tok->encode("Hello hello [MASK]").ids, (std::vector<int64_t>{2, 1, 8, 4, 3}));  // cased: Hello is unknown
  EXPECT_EQ(tok->encode_pair("a", "x").type_ids, (std::vector<int64_t>{0, 0, 0, 1, 1}));
  EXPECT_EQ(tok->pad_id(), 0);  // no padding section: the [PAD] of the vocabulary
}

TEST_F(TokenizerFiles, ByteLevelBpeFromVocabJsonAndMerges) {
  write_bpe_classic();
  const auto tok = load_tokenizer(dir());
  EXPECT_EQ(tok->kind(), "bpe");
  // "hi there" -> "hi" | " there" -> hi | Ġt h e r e
  EXPECT_EQ(tok->tokenize("hi there"), (std::vector<std::string>{"hi", "\xc4\xa0t", "h", "e", "r", "e"}));
  const Encoding e = tok->encode("hi there");
  EXPECT_EQ(e.ids, (std::vector<int64_t>{0, 261, 262, byte_id('h'), byte_id('e'), byte_id('r'), byte_id('e'), 2}));
  const Encoding p = tok->encode_pair("hi", "hi");
  EXPECT_EQ(p.ids, (std::vector<int64_t>{0, 261, 2, 2, 261, 2}));
  EXPECT_EQ(p.type_ids, std::vector<int64_t>(6, 0));  // RoBERTa: all zero
  EXPECT_EQ(tok->special_tokens_added(false), 2u);
  EXPECT_EQ(tok->special_tokens_added(true), 4u);
  EXPECT_EQ(tok->pad_id(), 1);
  EXPECT_EQ(tok->vocab_size(), 263u);
  // <mask> swallows the space before it (lstrip, as RoBERTa's tokenizer does); <s> does not.
  EXPECT_EQ(tok->ids_of("hi <mask>"), (std::vector<int64_t>{261, 4}));
  EXPECT_EQ(tok->ids_of("hi <s>"), (std::vector<int64_t>{261, byte_id(' '), 0}));
  // Bytes of a multi-byte character are separate symbols: é = C3 A9.
  EXPECT_EQ(tok->ids_of("\xc3\xa9"), (std::vector<int64_t>{byte_id('\xc3'), byte_id('\xa9')}));
  write("tokenizer_config.json", R"({"add_prefix_space": true})");
  EXPECT_EQ(load_tokenizer(dir())->ids_of("there"), tok->ids_of(" there"));
}

TEST(PadBatch, RightPadsToTheLongestOrTheMinimum) {
  const PaddedBatch b = pad_batch({{{5, 6, 7}, {0, 0, 0}}, {{5, 6, 7, 8, 9}, {0, 0, 1, 1, 1}}, {{}, {}}}, 1);
  EXPECT_EQ(b.batch, 3u);
  EXPECT_EQ(b.length, 5u);
  EXPECT_EQ(b.ids_BN, (std::vector<int64_t>{5, 6, 7, 1, 1, 5, 6, 7, 8, 9, 1, 1, 1, 1, 1}));
  EXPECT_EQ(b.type_ids_BN, (std::vector<int64_t>{0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0}));
  EXPECT_EQ(b.mask_BN, (std::vector<int64_t>{1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0}));
  // A minimum length pads every member past the longest, masked.
  const PaddedBatch wide = pad_batch({{{5, 6}, {0, 1}}, {{7}, {0}}}, 1, 4);
  EXPECT_EQ(wide.length, 4u);
  EXPECT_EQ(wide.ids_BN, (std::vector<int64_t>{5, 6, 1, 1, 7, 1, 1, 1}));
  EXPECT_EQ(wide.type_ids_BN, (std::vector<int64_t>{0, 1, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(wide.mask_BN, (std::vector<int64_t>{1, 1, 0, 0, 1, 0, 0, 0}));
  EXPECT_EQ(pad_batch({{{5, 6, 7}, {0, 0, 0}}}, 1, 2).length, 3u);  // never shorter than the longest
  const PaddedBatch empty = pad_batch({}, 0);
  EXPECT_EQ(empty.batch, 0u);
  EXPECT_TRUE(empty.ids_BN.empty());
}

// ---------------------------------------------------------------------------------------------
// Loading errors: each names the file (or folder) and says what to do

TEST_F(TokenizerFiles, MissingFolderOrFiles) {
  const std::string missing = dir() + "/nope";
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_tokenizer(missing); }), missing));
  const std::string empty = error_of<IoError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(empty, dir()));
  EXPECT_TRUE(contains(empty, "vocab.txt"));
  write("vocab.json", "{}");
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_tokenizer(dir()); }), "no merges.txt"));
}

TEST_F(TokenizerFiles, CorruptTokenizerJson) {
  write("tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {"a": 0)");
  const std::string msg = error_of<IoError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(msg, (dir_ / "tokenizer.json").string()));
  EXPECT_TRUE(contains(msg, "not valid JSON"));
  write("tokenizer.json", R"([1, 2])");
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_tokenizer(dir()); }), "no \"model\" object"));
}

TEST_F(TokenizerFiles, UnsupportedSettingsInTokenizerJson) {
  write("tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  std::string msg = error_of<ConfigError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(msg, "tokenizer.json"));
  EXPECT_TRUE(contains(msg, "\"Unigram\" is not supported"));
  const json bpe = {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}};
  write("tokenizer.json", json{{"model", bpe}, {"pre_tokenizer", {{"type", "Split"}}}}.dump());
  msg = error_of<ConfigError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(msg, "tokenizer.json"));
  EXPECT_TRUE(contains(msg, "\"Split\", which this harness does not implement")) << msg;
  write("tokenizer.json",
        json{{"model", bpe}, {"pre_tokenizer", {{"type", "Metaspace"}, {"prepend_scheme", "sometimes"}}}}.dump());
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_tokenizer(dir()); }), "expected always, first or never"));
  write("tokenizer.json", json{{"model", bpe},
                               {"normalizer", {{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", "_"}}},
                               {"pre_tokenizer", nullptr}}.dump());
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_tokenizer(dir()); }), "not regular expressions"));
  write("tokenizer.json", json{{"model", bpe}, {"pre_tokenizer", {{"type", "ByteLevel"}}}}.dump());
  const auto no_pad = load_tokenizer(dir());  // loads: a tokenizer without padding token is usable ...
  EXPECT_EQ(no_pad->ids_of("a"), (std::vector<int64_t>{0}));
  msg = error_of<ConfigError>([&] { no_pad->pad_id(); });  // ... until padding is asked for
  EXPECT_TRUE(contains(msg, "tokenizer.json"));
  EXPECT_TRUE(contains(msg, "pad_token"));
  json with_dropout = bpe;
  with_dropout["dropout"] = 0.1;
  write("tokenizer.json", json{{"model", with_dropout}, {"pre_tokenizer", {{"type", "ByteLevel"}}}}.dump());
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_tokenizer(dir()); }), "dropout"));
  write("tokenizer.json", json{{"model", {{"type", "WordPiece"}, {"vocab", {{"a", 0}}}}},
                               {"pre_tokenizer", {{"type", "BertPreTokenizer"}}}}.dump());
  msg = error_of<ConfigError>([&] { load_tokenizer(dir()); });  // unk token [UNK] not in the vocabulary
  EXPECT_TRUE(contains(msg, "tokenizer.json"));
  EXPECT_TRUE(contains(msg, "[UNK]"));
  json bad_merge = bpe;
  bad_merge["merges"] = {"a b c"};
  write("tokenizer.json", json{{"model", bad_merge}, {"pre_tokenizer", {{"type", "ByteLevel"}}}}.dump());
  msg = error_of<IoError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(msg, "tokenizer.json"));
  EXPECT_TRUE(contains(msg, "model.merges[0]"));
}

TEST_F(TokenizerFiles, MalformedMergesLine) {
  write_bpe_classic();
  write("merges.txt", "#version: 0.2\nh i\nh i x\n");
  std::string msg = error_of<IoError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(msg, (dir_ / "merges.txt").string()));
  EXPECT_TRUE(contains(msg, "line 3"));
  write("merges.txt", "#version: 0.2\nh i\n\nh i\n");  // an empty line inside is corrupt too
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_tokenizer(dir()); }), "line 3"));
  write("merges.txt", "#version: 0.2\nq z\n");  // "qz" is not in the vocabulary
  msg = error_of<IoError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(msg, "merges.txt: line 2"));
  EXPECT_TRUE(contains(msg, "'qz'"));
}

TEST_F(TokenizerFiles, CorruptClassicFiles) {
  write_bpe_classic();
  write("vocab.json", R"({"a": "zero"})");
  std::string msg = error_of<IoError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(msg, "vocab.json"));
  EXPECT_TRUE(contains(msg, "'a'"));
  write("vocab.json", "{oops");
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_tokenizer(dir()); }), "vocab.json"));
  fs::remove(dir_ / "vocab.json");
  fs::remove(dir_ / "merges.txt");

  write_vocab_txt({"[UNK]"});
  msg = error_of<ConfigError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(msg, "vocab.txt"));
  EXPECT_TRUE(contains(msg, "[UNK]"));
  write_vocab_txt({"[CLS]"});
  msg = error_of<ConfigError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(msg, "vocab.txt"));
  EXPECT_TRUE(contains(msg, "cls_token"));
  write_vocab_txt();
  write("tokenizer_config.json", "{\"do_lower_case\": tru");
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_tokenizer(dir()); }), "tokenizer_config.json"));
  write("tokenizer_config.json", R"({"do_lower_case": "yes"})");
  msg = error_of<ConfigError>([&] { load_tokenizer(dir()); });
  EXPECT_TRUE(contains(msg, "tokenizer_config.json"));
  EXPECT_TRUE(contains(msg, "do_lower_case"));
}

TEST_F(TokenizerFiles, InvalidUtf8TextIsAnError) {
  write_vocab_txt();
  const auto tok = load_tokenizer(dir());
  EXPECT_TRUE(contains(error_of<Error>([&] { tok->encode("ok \xff"); }), "byte 3"));
}

}  // namespace
}  // namespace smyrf
