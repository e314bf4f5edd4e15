// Unicode primitives agreeing with HF tokenizers; see unicode.h. Tested in tests/light/test_text.cpp
// and tests/python/test_tokenizers.py.
#include "core/text/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdint>
#include <iterator>

#include "core/util/check.h"

namespace smyrf::text {

namespace {

struct CodeRange {
  char32_t lo, hi;
};

#include "core/text/unicode_tables.inc"

template <std::size_t N>
bool in_ranges(const CodeRange (&ranges)[N], char32_t c) {
  const auto* it = std::upper_bound(std::begin(ranges), std::end(ranges), c,
                                    [](char32_t value, const CodeRange& r) { return value < r.lo; });
  return it != std::begin(ranges) && c <= std::prev(it)->hi;
}

// Lower-case mappings that Rust's std (Unicode 17) has and utf8proc 2.8 (Unicode 15) lacks:
// new case pairs of Unicode 16/17. Each range maps c -> c + delta.
struct LowerRange {
  char32_t lo, hi;
  int32_t delta;
};
constexpr LowerRange kLowercaseBeyondUtf8proc[] = {
    {0x1C89, 0x1C89, 1},       {0xA7CB, 0xA7CB, 0x0264 - 0xA7CB}, {0xA7CC, 0xA7CC, 1},
    {0xA7CE, 0xA7CE, 1},       {0xA7D2, 0xA7D2, 1},               {0xA7D4, 0xA7D4, 1},
    {0xA7DA, 0xA7DA, 1},       {0xA7DC, 0xA7DC, 0x019B - 0xA7DC}, {0x10D50, 0x10D65, 0x20},
    {0x16EA0, 0x16EB8, 0x1B},
};

}  // namespace

std::u32string utf8_decode(std::string_view utf8, std::string_view what) {
  std::u32string out;
  out.reserve(utf8.size());
  const auto* s = reinterpret_cast<const unsigned char*>(utf8.data());
  const std::size_t n = utf8.size();
  std::size_t i = 0;
  const auto fail = [&](std::size_t at) {
    throw Error(fmt::format("invalid UTF-8 at byte {} of {} (byte 0x{:02X}); tokenizers need UTF-8 text",
                            at, what, static_cast<unsigned>(s[at])));
  };
  while (i < n) {
    const unsigned char b = s[i];
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    std::size_t len = 0;
    char32_t c = 0, min = 0;
    if ((b & 0xE0) == 0xC0) {
      len = 2, c = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, c = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, c = b & 0x07, min = 0x10000;
    } else {
      fail(i);
    }
    if (i + len > n) fail(i);
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) fail(i + k);
      c = (c << 6) | (s[i + k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) fail(i);
    out.push_back(c);
    i += len;
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

bool is_whitespace(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

bool is_other_unicode9(char32_t c) {
  if ((c >= 0xF0000 && c <= 0xFFFFD) || (c >= 0x100000 && c <= 0x10FFFD)) return true;
  return in_ranges(kOtherUnicode9, c);
}

bool is_bert_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  return c > 127 && in_ranges(kPunctuationUnicode9, c);
}

bool is_mark_nonspacing_unicode9(char32_t c) { return in_ranges(kMarkNonspacingUnicode9, c); }

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
      return true;
    case UTF8PROC_CATEGORY_CN:
      return in_ranges(kLetterUnicode16, c);
    default:
      return false;
  }
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    case UTF8PROC_CATEGORY_CN:
      return in_ranges(kNumberUnicode16, c);
    default:
      return false;
  }
}

std::u32string nfd(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  utf8proc_int32_t buffer[16];
  for (char32_t c : s) {
    // U+11938 gained a canonical decomposition in Unicode 13; HF's normalisation tables predate it.
    if (c < 0xC0 || c == 0x11938) {  // nothing below U+00C0 decomposes
      out.push_back(c);
      continue;
    }
    int boundclass = UTF8PROC_BOUNDCLASS_START;
    const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buffer, 16,
                                                       UTF8PROC_DECOMPOSE, &boundclass);
    SMYRF_CHECK(n >= 1 && n <= 16, "utf8proc_decompose_char(U+{:04X}) returned {}", static_cast<uint32_t>(c), n);
    for (utf8proc_ssize_t k = 0; k < n; ++k) out.push_back(static_cast<char32_t>(buffer[k]));
  }
  // Canonical ordering: a stable sort of each run of combining marks by combining class.
  const auto ccc = [](char32_t c) { return utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class; };
  for (std::size_t i = 0; i < out.size();) {
    if (out[i] < 0x300 || ccc(out[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < out.size() && out[j] >= 0x300 && ccc(out[j]) != 0) ++j;
    std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(i), out.begin() + static_cast<std::ptrdiff_t>(j),
                     [&](char32_t a, char32_t b) { return ccc(a) < ccc(b); });
    i = j;
  }
  return out;
}

void append_lowercase(std::u32string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return;
  }
  // The one unconditional multi-character lower-case mapping in SpecialCasing.txt: utf8proc only
  // has the simple mapping (U+0069), Rust gives "i" + COMBINING DOT ABOVE.
  if (c == 0x130) {
    out.push_back(0x69);
    out.push_back(0x307);
    return;
  }
  for (const LowerRange& r : kLowercaseBeyondUtf8proc) {
    if (c >= r.lo && c <= r.hi) {
      out.push_back(static_cast<char32_t>(static_cast<int32_t>(c) + r.delta));
      return;
    }
  }
  out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
}

}  // namespace smyrf::text
