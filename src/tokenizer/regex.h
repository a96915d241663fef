// PCRE2 (UTF + UCP + JIT) regex for pre-tokenizer patterns, iterated like the Oniguruma find_iter that
// Hugging Face tokenizers uses: an empty match right after the previous match is skipped by one character.
// note: \s and \S are rewritten to the Unicode White_Space set, because PCRE2's \s (Z + \h + \v) also matches
// U+180E, which Oniguruma's does not. Matching starts on PCRE2's default 32 KiB JIT stack and retries on a
// 256 MiB one (reserved, committed on use) when a pattern with repeated groups runs deep on a long word.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;
struct pcre2_real_match_context_8;
struct pcre2_real_jit_stack_8;

namespace dm {

// Per-call mutable matching state (PCRE2 match data); one per encode call, never shared between threads.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;
  pcre2_real_match_data_8* data() { return data_; }
  // A match context with a large JIT stack, made on first need (patterns with repeated groups on long words).
  pcre2_real_match_context_8* big_stack_context();

 private:
  pcre2_real_match_data_8* data_;
  pcre2_real_match_context_8* context_ = nullptr;
  pcre2_real_jit_stack_8* stack_ = nullptr;
};

class Regex {
 public:
  // Throws dm::Error naming the pattern and PCRE2's message when it does not compile.
  explicit Regex(std::string_view pattern);
  const std::string& pattern() const { return pattern_; }
  // Byte ranges [start, end) of the successive matches in text (valid UTF-8), appended to out.
  void find_all(std::string_view text, RegexScratch& scratch, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  std::string pattern_;
  std::shared_ptr<pcre2_real_code_8> code_;
  bool jit_ = false;
};

// The pattern with \s / \S replaced by explicit White_Space classes (exposed for tests).
std::string rewrite_white_space_classes(std::string_view pattern);

}  // namespace dm
