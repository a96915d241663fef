// Added tokens (special and not): matched in the text before the model sees it, leftmost-longest like the
// aho-corasick matcher of tokenizers' AddedVocabulary::find_matches, with single_word / lstrip / rstrip.
// Reference: tokenizers/src/tokenizer/added_vocabulary.rs.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dm {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false, rstrip = false;
  bool normalized = false;  // matched against the normalized text instead of the raw text
  bool single_word = false;
};

// One piece of a split: an added token (id >= 0) or a run of ordinary text (id == -1). Byte range in the input.
struct Segment {
  int32_t id;
  size_t start, end;
};

// A byte trie over the contents of a set of added tokens.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }
  // Splits text into ordinary runs and token matches (covering text, in order; no empty ordinary runs).
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;  // byte -> child node
    int32_t token = -1;                                    // index into tokens_ when a token ends here
  };
  // Longest token starting at text[i]: (token index, length), or (-1, 0).
  std::pair<int32_t, size_t> longest_at(std::string_view text, size_t i) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

}  // namespace dm
