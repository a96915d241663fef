// BPE model of Hugging Face tokenizers: vocab, merges applied by rank (lowest first, leftmost on ties),
// ignore_merges, byte_fallback, unk_token/fuse_unk, continuing_subword_prefix, end_of_word_suffix,
// and a bounded cache of word -> ids. Reference: tokenizers/src/models/bpe/{model.rs,word.rs}.
// Thread safety: encode_word() may be called from many threads; the cache is guarded by a mutex.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/vocab.h"

namespace dm {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return size_t(Vocab::hash(s)); }
};

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class Bpe {
 public:
  // vocab: token text -> id; merges in rank order. Throws dm::Error when a merge names a token not in vocab.
  Bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opt);
  Bpe(Bpe&&) = delete;

  // Appends the ids of one pre-token. byte_level: word holds raw bytes that the ByteLevel pre-tokenizer
  // would have mapped to its alphabet (the mapping is applied here, which is faster).
  void encode_word(std::string_view word, bool byte_level, std::vector<int32_t>& out) const;

  const Vocab& vocab() const { return vocab_; }
  std::optional<int32_t> find(std::string_view token) const;
  size_t n_merges() const { return n_merges_; }

 private:
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  void merge(std::vector<Symbol>& symbols, std::vector<int32_t>& out) const;
  void initial_symbols(std::string_view word, std::vector<Symbol>& symbols) const;
  void encode_uncached(std::string_view word, bool byte_level, std::vector<int32_t>& out) const;
  // (left id, right id) -> (rank, merged id); open addressing over 64-bit keys.
  struct MergeEntry {
    uint64_t key;
    int32_t rank, id;
  };
  const MergeEntry* find_merge(int32_t a, int32_t b) const;

  Vocab vocab_;
  BpeOptions opt_;
  std::optional<int32_t> unk_id_;
  std::vector<MergeEntry> table_;  // size a power of two; key ~0 marks an empty slot
  size_t n_merges_ = 0;
  std::vector<int32_t> byte_ids_;  // byte -> id of its ByteLevel char, -1 if absent
  bool byte_ids_complete_ = false;
  std::vector<int32_t> byte_fallback_ids_;  // byte -> id of "<0xXX>", -1 if absent

  static constexpr size_t kCacheMaxWordLen = 256;
  static constexpr size_t kCacheMaxEntries = 1 << 17;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace dm
