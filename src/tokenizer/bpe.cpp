// BPE encoding of one pre-token. Merge loop as in tokenizers' word.rs merge_all: a min-heap of candidate pairs
// ordered by (rank, position); stale entries (a side already merged away) are skipped, so a word of n symbols
// costs O(n log n) — a 100 KB word stays fast.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace dm {

namespace {
constexpr uint64_t kEmpty = ~uint64_t(0);
uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
size_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return size_t(k);
}
}  // namespace

Bpe::Bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opt)
    : vocab_(std::move(vocab)), opt_(std::move(opt)) {
  if (opt_.unk_token) {
    unk_id_ = find(*opt_.unk_token);
    if (!unk_id_) fail("tokenizer: model.unk_token '", *opt_.unk_token, "' is not in the vocab");
  }
  size_t cap = 16;
  while (cap < merges.size() * 2) cap <<= 1;
  table_.assign(cap, MergeEntry{kEmpty, 0, 0});
  const size_t prefix_len = opt_.continuing_subword_prefix.size();
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = find(a), ib = find(b);
    if (!ia || !ib)
      fail("tokenizer: model.merges[", rank, "] '", a, " ", b, "': token '", ia ? b : a, "' is not in the vocab");
    joined = a;
    if (prefix_len && b.compare(0, prefix_len, opt_.continuing_subword_prefix) == 0)
      joined.append(b, prefix_len);
    else
      joined += b;
    auto inew = find(joined);
    if (!inew) fail("tokenizer: model.merges[", rank, "] '", a, " ", b, "': merged token '", joined, "' is not in the vocab");
    uint64_t key = pair_key(*ia, *ib);
    size_t mask = cap - 1;
    for (size_t h = mix(key) & mask;; h = (h + 1) & mask) {
      if (table_[h].key == kEmpty) {
        table_[h] = {key, int32_t(rank), *inew};
        ++n_merges_;
        break;
      }
      if (table_[h].key == key) {  // a repeated merge: the later rank wins, as in a Rust HashMap collect
        table_[h] = {key, int32_t(rank), *inew};
        break;
      }
    }
  }
  const auto& bl = unicode::byte_level_table();
  byte_ids_.assign(256, -1);
  byte_fallback_ids_.assign(256, -1);
  byte_ids_complete_ = opt_.continuing_subword_prefix.empty() && opt_.end_of_word_suffix.empty();
  for (int b = 0; b < 256; ++b) {
    if (auto id = find(bl.byte_to_utf8[b])) byte_ids_[b] = *id;
    else byte_ids_complete_ = false;
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    if (auto id = find(name)) byte_fallback_ids_[b] = *id;
  }
}

std::optional<int32_t> Bpe::find(std::string_view token) const {
  return vocab_.find(token);
}

const Bpe::MergeEntry* Bpe::find_merge(int32_t a, int32_t b) const {
  uint64_t key = pair_key(a, b);
  size_t mask = table_.size() - 1;
  for (size_t h = mix(key) & mask;; h = (h + 1) & mask) {
    if (table_[h].key == key) return &table_[h];
    if (table_[h].key == kEmpty) return nullptr;
  }
}

// Splits word into characters and maps each to its id (with prefix/suffix, byte fallback, unk), as
// tokenizers' BPE::merge_word does before merging.
void Bpe::initial_symbols(std::string_view word, std::vector<Symbol>& symbols) const {
  std::string piece;
  bool last_was_unk = false;
  for (size_t i = 0; i < word.size();) {
    uint32_t n = unicode::char_len(static_cast<unsigned char>(word[i]));
    if (i + n > word.size()) n = uint32_t(word.size() - i);
    piece.clear();
    if (i > 0) piece += opt_.continuing_subword_prefix;
    piece.append(word.substr(i, n));
    if (i + n == word.size()) piece += opt_.end_of_word_suffix;
    auto push = [&](int32_t id) { symbols.push_back({id, int32_t(symbols.size()) - 1, int32_t(symbols.size()) + 1, true}); };
    if (auto id = find(piece)) {
      push(*id);
      last_was_unk = false;
    } else {
      bool done = false;
      if (opt_.byte_fallback) {
        bool all = true;
        for (size_t k = 0; k < n; ++k) all = all && byte_fallback_ids_[static_cast<unsigned char>(word[i + k])] >= 0;
        if (all) {
          for (size_t k = 0; k < n; ++k) push(byte_fallback_ids_[static_cast<unsigned char>(word[i + k])]);
          done = true;
          last_was_unk = false;
        }
      }
      if (!done && unk_id_) {
        if (!(opt_.fuse_unk && last_was_unk)) push(*unk_id_);
        last_was_unk = true;
      }
      // note: without unk_token an unknown character is dropped, as tokenizers does.
    }
    i += n;
  }
  if (!symbols.empty()) symbols.back().next = -1;
}

void Bpe::merge(std::vector<Symbol>& sym, std::vector<int32_t>& out) const {
  struct Cand {
    int32_t rank, pos, id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  for (size_t i = 0; i + 1 < sym.size(); ++i)
    if (const MergeEntry* m = find_merge(sym[i].id, sym[i + 1].id)) heap.push({m->rank, int32_t(i), m->id});
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    Symbol& left = sym[c.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    const MergeEntry* m = find_merge(left.id, right.id);
    if (!m || m->id != c.id || m->rank != c.rank) continue;  // stale
    left.id = c.id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = c.pos;
    if (left.prev >= 0)
      if (const MergeEntry* p = find_merge(sym[left.prev].id, left.id)) heap.push({p->rank, left.prev, p->id});
    if (left.next >= 0)
      if (const MergeEntry* p = find_merge(left.id, sym[left.next].id)) heap.push({p->rank, c.pos, p->id});
  }
  for (const Symbol& s : sym)
    if (s.alive) out.push_back(s.id);
}

void Bpe::encode_uncached(std::string_view word, bool byte_level, std::vector<int32_t>& out) const {
  std::vector<Symbol> symbols;
  std::string mapped;
  if (byte_level && !(byte_ids_complete_ && !opt_.ignore_merges)) {
    const auto& bl = unicode::byte_level_table();
    for (char c : word) mapped += bl.byte_to_utf8[static_cast<unsigned char>(c)];
    word = mapped;
    byte_level = false;
  }
  if (opt_.ignore_merges)
    if (auto id = find(word)) {
      out.push_back(*id);
      return;
    }
  if (byte_level) {
    symbols.reserve(word.size());
    for (size_t i = 0; i < word.size(); ++i)
      symbols.push_back({byte_ids_[static_cast<unsigned char>(word[i])], int32_t(i) - 1, int32_t(i) + 1, true});
    if (!symbols.empty()) symbols.back().next = -1;
  } else {
    initial_symbols(word, symbols);
  }
  merge(symbols, out);
}

void Bpe::encode_word(std::string_view word, bool byte_level, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() >= kCacheMaxWordLen) return encode_uncached(word, byte_level, out);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t start = out.size();
  encode_uncached(word, byte_level, out);
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheMaxEntries) cache_.clear();  // bounded memory on adversarial input
  cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + long(start), out.end()));
}

}  // namespace dm
