// UTF-8 decoding with U+FFFD replacement, Unicode character classes and the GPT-2 byte<->char table.
// Replacement follows the Unicode "maximal subpart" practice (Unicode 15, section 3.9, table 3-7), which is what
// Python's bytes.decode(errors="replace") and Rust's String::from_utf8_lossy do.
// Byte-level table: GPT-2's bytes_to_unicode() (openai/gpt-2 encoder.py), used by ByteLevel pre-tokenizer/decoder.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dm::unicode {

constexpr char32_t kReplacement = 0xFFFD;

// Result of looking at the bytes at one position.
struct Scan {
  char32_t cp;        // the code point, or kReplacement when the bytes are ill-formed
  uint32_t len;       // bytes consumed (the maximal subpart when ill-formed), >= 1
  bool valid;         // false: ill-formed (len bytes become one U+FFFD)
  bool incomplete;    // ill-formed only because the input ended inside a well-formed prefix
};
Scan scan(std::string_view s, size_t i);

// s with every ill-formed subsequence replaced by U+FFFD.
std::string sanitize(std::string_view s);
bool is_valid(std::string_view s);
void append_utf8(std::string& out, char32_t cp);
// Length of the UTF-8 sequence starting at lead byte b of valid text (1 for ASCII and stray bytes).
inline uint32_t char_len(unsigned char b) { return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

// Unicode White_Space property (what Oniguruma's and Rust regex's \s match).
bool is_white_space(char32_t c);
// Rust regex's \w: letters, marks, decimal digits, connector punctuation, join controls.
bool is_word_char(char32_t c);
// Rust char::is_numeric: general categories Nd, Nl, No.
bool is_numeric(char32_t c);
// General category Mn (nonspacing mark).
bool is_nonspacing_mark(char32_t c);
// Simple lowercase mapping.
char32_t to_lower(char32_t c);

// GPT-2 byte-level alphabet: byte b <-> one printable code point.
struct ByteLevelTable {
  std::array<char32_t, 256> byte_to_char;
  std::array<std::string, 256> byte_to_utf8;  // byte_to_char as UTF-8
  // char -> byte, or -1; the alphabet's code points are all below 324.
  std::array<int16_t, 324> char_to_byte;
  ByteLevelTable();
  int byte_of(char32_t c) const { return c < char_to_byte.size() ? char_to_byte[c] : -1; }
};
const ByteLevelTable& byte_level_table();

}  // namespace dm::unicode
