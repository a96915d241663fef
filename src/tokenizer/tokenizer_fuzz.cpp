// Fuzz target: the first byte picks what the rest is. Even: a tokenizer.json to load (errors must be dm::Error;
// a loaded tokenizer then encodes and decodes a fixed text). Odd: text (any bytes) encoded by a small built-in
// tokenizer with every pipeline piece; decoding must give valid UTF-8 and the stream decoder the same text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

const char* kMiniJson = R"({
  "version": "1.0",
  "added_tokens": [
    {"id": 300, "content": "<|s|>", "special": true, "normalized": false},
    {"id": 301, "content": "<m>", "special": true, "lstrip": true, "rstrip": true, "normalized": false},
    {"id": 302, "content": "word", "special": false, "single_word": true, "normalized": true}
  ],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
    {"type": "Digits", "individual_digits": false},
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "MergedWithNext", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": true, "use_regex": true}
  ]},
  "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|s|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                     "special_tokens": {"<|s|>": {"id": "<|s|>", "ids": [300], "tokens": ["<|s|>"]}}},
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "vocab": VOCAB, "merges": ["Ġ t", "h e", "Ġt he", "a a", "aa aa", "Ġ Ġ"]}
})";

std::string mini_json() {
  const auto& bl = dm::unicode::byte_level_table();
  std::string vocab = "{";
  for (int b = 0; b < 256; ++b) {
    std::string tok = bl.byte_to_utf8[b];
    if (tok == "\"" || tok == "\\") tok = "\\" + tok;
    vocab += "\"" + tok + "\": " + std::to_string(b) + ", ";
  }
  vocab += "\"Ġt\": 256, \"he\": 257, \"Ġthe\": 258, \"aa\": 259, \"aaaa\": 260, \"ĠĠ\": 261, \"<m>\": 301}";
  std::string j = kMiniJson;
  j.replace(j.find("VOCAB"), 5, vocab);
  return j;
}

void round_trip(const dm::Tokenizer& tok, std::string_view text) {
  for (bool special : {false, true}) {
    std::vector<int32_t> ids = tok.encode(text, special);
    std::string back = tok.decode(ids, false);
    DM_CHECK(dm::unicode::is_valid(back), "decode produced invalid UTF-8");
    dm::StreamDecoder sd(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.push(id);
    streamed += sd.flush();
    DM_CHECK(streamed == back, "stream decode differs from decode");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    try {
      dm::Tokenizer tok = dm::Tokenizer::from_json(std::string(rest));
      round_trip(tok, "Hello world 123 <|s|> \xff caf\xc3\xa9");
    } catch (const dm::Error&) {
    }
    return 0;
  }
  static const dm::Tokenizer mini = dm::Tokenizer::from_json(mini_json());  // immutable after construction
  round_trip(mini, rest);
  return 0;
}
