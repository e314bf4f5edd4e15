// Unicode primitives for the tokenizers, defined to agree code point by code point with what the
// Hugging Face `tokenizers` library (Rust) does, not with any one Unicode version:
//   - UTF-8 decoding is strict (overlongs, surrogates, truncated sequences throw smyrf::Error
//     naming the byte offset), so bad input never silently becomes different ids.
//   - BERT categories (control, punctuation, non-spacing mark) come from HF's frozen Unicode 9.0
//     tables (see unicode_tables.inc); the byte-level regex classes \p{L}, \p{N} from utf8proc
//     plus the Unicode 16.0 additions HF's Oniguruma knows; whitespace is the White_Space property.
//   - nfd() and lowercase use utf8proc, with the few code points where Rust differs special-cased.
// Strings inside the pipeline are std::u32string (one element per code point).
// Tested in tests/light/test_text.cpp and, exhaustively over all code points, by
// tests/python/test_tokenizers.py.
#pragma once

#include <string>
#include <string_view>

namespace smyrf::text {

// Strict UTF-8 -> code points. Throws smyrf::Error "invalid UTF-8 at byte N of <what>".
std::u32string utf8_decode(std::string_view utf8, std::string_view what = "text");
void utf8_append(std::string& out, char32_t c);
std::string utf8_encode(std::u32string_view s);

// Rust char::is_whitespace (Unicode White_Space); also Oniguruma's \s in Unicode mode.
bool is_whitespace(char32_t c);
// unicode_categories is_other(): Cc, Cf, Co as of Unicode 9.0 (not Cn: unassigned code points stay).
bool is_other_unicode9(char32_t c);
// BERT punctuation: ASCII punctuation (33-47, 58-64, 91-96, 123-126) or P* as of Unicode 9.0.
bool is_bert_punctuation(char32_t c);
// Mn as of Unicode 9.0 (what strip_accents removes after NFD).
bool is_mark_nonspacing_unicode9(char32_t c);
// The CJK ideograph ranges BertNormalizer surrounds with spaces (HF's list, which starts Extension
// F at U+2B920, not at U+2B820 like Google's original BERT code).
bool is_cjk_ideograph(char32_t c);
// \p{L} and \p{N} as seen by the GPT-2 pre-tokenisation regex.
bool is_letter(char32_t c);
bool is_number(char32_t c);

// Canonical decomposition (NFD) with canonical ordering of combining marks.
std::u32string nfd(std::u32string_view s);
// Appends Rust's char::to_lowercase(c): the full (SpecialCasing) mapping, so U+0130 gives two
// code points; no context-dependent rules (final sigma stays σ).
void append_lowercase(std::u32string& out, char32_t c);

}  // namespace smyrf::text
