// Vocab hash table. The hash mixes 8 bytes at a time (multiply-xorshift); tokens are short, so this is cheap.
#include "tokenizer/vocab.h"

#include <cstring>

namespace dm {

uint64_t Vocab::hash(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (s.size() * 0xC2B2AE3D27D4EB4FULL);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t k;
    std::memcpy(&k, s.data() + i, 8);
    h = (h ^ k) * 0xFF51AFD7ED558CCDULL;
    h ^= h >> 32;
  }
  if (i < s.size()) {
    uint64_t k = 0;
    std::memcpy(&k, s.data() + i, s.size() - i);
    h = (h ^ k) * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 29;
  }
  h *= 0x9E3779B97F4A7C15ULL;
  return h ^ (h >> 32);
}

void Vocab::reserve(size_t n) {
  ids_.reserve(n);
  hashes_.reserve(n);
  starts_.reserve(n + 1);
  arena_.reserve(n * 8);
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  if (cap > slots_.size()) {
    slots_.assign(cap, 0);
    for (size_t e = 0; e < ids_.size(); ++e) {
      size_t mask = cap - 1;
      size_t h = hashes_[e] & mask;
      while (slots_[h]) h = (h + 1) & mask;
      slots_[h] = uint32_t(e + 1);
    }
  }
}

void Vocab::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

void Vocab::insert(std::string_view token, int32_t id) {
  if (2 * (ids_.size() + 1) > slots_.size()) grow();
  uint32_t h32 = uint32_t(hash(token));
  size_t mask = slots_.size() - 1;
  size_t h = h32 & mask;
  for (; slots_[h]; h = (h + 1) & mask) {
    size_t e = slots_[h] - 1;
    if (hashes_[e] == h32 && this->token(e) == token) {
      ids_[e] = id;
      return;
    }
  }
  arena_.append(token);
  starts_.push_back(arena_.size());
  ids_.push_back(id);
  hashes_.push_back(h32);
  slots_[h] = uint32_t(ids_.size());
}

std::optional<int32_t> Vocab::find(std::string_view token) const {
  if (slots_.empty()) return std::nullopt;
  uint32_t h32 = uint32_t(hash(token));
  size_t mask = slots_.size() - 1;
  for (size_t h = h32 & mask; slots_[h]; h = (h + 1) & mask) {
    size_t e = slots_[h] - 1;
    if (hashes_[e] == h32 && this->token(e) == token) return ids_[e];
  }
  return std::nullopt;
}

}  // namespace dm
