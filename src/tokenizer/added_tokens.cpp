// Added-token matching: a byte trie scanned at each start position (tokens are short, so this is linear in the
// text); after a match, even a discarded one (single_word), the search resumes at the match's end, as
// aho-corasick's non-overlapping find_iter does.
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace dm {

namespace {

// Last code point of text[0, end) (valid UTF-8), or -1 when empty.
long last_char(std::string_view text, size_t end) {
  if (end == 0) return -1;
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  return long(unicode::scan(text, i).cp);
}

// Start of the code point that ends at text[0, end), end > 0.
size_t prev_char(std::string_view text, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  nodes_.emplace_back();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const std::string& s = tokens_[t].content;
    if (s.empty()) continue;
    first_byte_[static_cast<unsigned char>(s[0])] = true;
    int32_t n = 0;
    for (unsigned char c : s) {
      int32_t child = -1;
      for (auto& [b, idx] : nodes_[n].next)
        if (b == c) child = idx;
      if (child < 0) {
        child = int32_t(nodes_.size());
        nodes_[n].next.emplace_back(c, child);
        nodes_.emplace_back();
      }
      n = child;
    }
    if (nodes_[n].token < 0) nodes_[n].token = int32_t(t);  // duplicate contents: the first one wins
  }
}

std::pair<int32_t, size_t> AddedTokenMatcher::longest_at(std::string_view text, size_t i) const {
  std::pair<int32_t, size_t> best{-1, 0};
  int32_t n = 0;
  for (size_t k = i; k < text.size(); ++k) {
    unsigned char c = static_cast<unsigned char>(text[k]);
    int32_t child = -1;
    for (auto& [b, idx] : nodes_[n].next)
      if (b == c) {
        child = idx;
        break;
      }
    if (child < 0) break;
    n = child;
    if (nodes_[n].token >= 0) best = {nodes_[n].token, k + 1 - i};
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  size_t start_offset = 0;  // end of the previous accepted match
  size_t i = 0;
  while (i < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    auto [t, len] = longest_at(text, i);
    if (t < 0) {
      ++i;
      continue;
    }
    const AddedToken& tok = tokens_[t];
    size_t start = i, stop = i + len;
    i = stop;
    if (tok.single_word) {
      long before = last_char(text, start);
      long after = stop < text.size() ? long(unicode::scan(text, stop).cp) : -1;
      bool start_space = before < 0 || !unicode::is_word_char(char32_t(before));
      bool stop_space = after < 0 || !unicode::is_word_char(char32_t(after));
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) {
      size_t s = start;
      for (long c; (c = last_char(text, s)) >= 0 && unicode::is_white_space(char32_t(c));) s = prev_char(text, s);
      start = std::max(s, start_offset);
    }
    if (tok.rstrip) {
      while (stop < text.size()) {
        unicode::Scan r = unicode::scan(text, stop);
        if (!unicode::is_white_space(r.cp)) break;
        stop += r.len;
      }
    }
    if (start_offset < start) out.push_back({-1, start_offset, start});
    out.push_back({tok.id, start, stop});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({-1, start_offset, text.size()});
}

}  // namespace dm
