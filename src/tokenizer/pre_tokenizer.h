// Pre-tokenizers of tokenizer.json: Sequence, Split (Regex or String pattern, every behavior, invert),
// ByteLevel (add_prefix_space, use_regex), Digits, Whitespace, WhitespaceSplit.
// Reference: tokenizers/src/pre_tokenizers/ and NormalizedString::split in tokenizer/normalizer.rs.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/regex.h"

namespace dm {

// The words of one text segment: byte spans into `text`. When byte_level is set, the ByteLevel mapping is
// pending: the spans still hold raw bytes, and the BPE model maps them (saving a copy of every word).
struct PreTokens {
  std::string text;
  std::vector<std::pair<size_t, size_t>> spans;
  bool byte_level = false;
};

// Mutable per-call state shared by the pre-tokenizer steps.
struct PreTokenizeScratch {
  RegexScratch regex;
  std::vector<std::pair<size_t, size_t>> matches;
  std::vector<std::pair<std::pair<size_t, size_t>, bool>> pieces;
  std::vector<std::pair<size_t, size_t>> spans;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(PreTokens& p, PreTokenizeScratch& s) const = 0;
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);
// Programmatic construction (for vocabularies that come without a tokenizer.json, e.g. GGUF):
std::unique_ptr<PreTokenizer> make_regex_split(const std::string& regex, SplitBehavior behavior, bool invert);
std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex);
std::unique_ptr<PreTokenizer> make_sequence(std::vector<std::unique_ptr<PreTokenizer>> items);

// Applies the pending ByteLevel mapping to every span (needed when another step follows ByteLevel).
void materialize_byte_level(PreTokens& p);

}  // namespace dm
