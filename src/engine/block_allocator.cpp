// Reference-counted KV blocks with a hashed prefix cache and LRU eviction (see block_allocator.h).
// The chained block hash follows vLLM's automatic prefix caching idea; the mixing is splitmix64.
#include "engine/block_allocator.h"

#include <algorithm>

#include "core/error.h"

namespace dm {

namespace {
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t block_hash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = mix(parent ^ (uint64_t(tokens.size()) << 32));
  for (int32_t t : tokens) h = mix(h ^ uint64_t(uint32_t(t)));
  return h;
}

BlockAllocator::BlockAllocator(int64_t n_blocks, int block_size)
    : n_blocks_(n_blocks), block_size_(block_size), blocks_(size_t(n_blocks)) {
  DM_CHECK(n_blocks > 0 && block_size > 0, "block allocator ", n_blocks, " x ", block_size);
  free_.reserve(size_t(n_blocks));
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));  // hands out 0, 1, 2, ...
}

std::optional<int32_t> BlockAllocator::allocate() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    unpublish(b);
  } else {
    return std::nullopt;
  }
  DM_CHECK(blocks_[b].refs == 0, "allocating referenced block ", b);
  blocks_[b].refs = 1;
  return b;
}

void BlockAllocator::retain(int32_t block) {
  Block& k = blocks_.at(size_t(block));
  if (k.refs == 0) {
    DM_CHECK(k.published, "retaining free block ", block);
    lru_.erase(k.lru);
  }
  k.refs++;
}

void BlockAllocator::release(int32_t block) {
  Block& k = blocks_.at(size_t(block));
  DM_CHECK(k.refs > 0, "releasing unreferenced block ", block);
  if (--k.refs > 0) return;
  if (k.published) {
    lru_.push_back(block);
    k.lru = std::prev(lru_.end());
  } else {
    free_.push_back(block);
  }
}

void BlockAllocator::unpublish(int32_t block) {
  Block& k = blocks_[size_t(block)];
  auto it = by_hash_.find(k.hash);
  if (it != by_hash_.end() && it->second == block) by_hash_.erase(it);
  k.published = false;
  k.tokens.clear();
}

int32_t BlockAllocator::lookup(uint64_t parent, std::span<const int32_t> tokens) const {
  auto it = by_hash_.find(block_hash(parent, tokens));
  if (it == by_hash_.end()) return -1;
  const Block& k = blocks_[size_t(it->second)];
  if (k.parent != parent || !std::equal(k.tokens.begin(), k.tokens.end(), tokens.begin(), tokens.end())) return -1;
  return it->second;
}

uint64_t BlockAllocator::publish(int32_t block, uint64_t parent, std::span<const int32_t> tokens) {
  Block& k = blocks_.at(size_t(block));
  DM_CHECK(k.refs > 0 && int64_t(tokens.size()) == block_size_, "publishing block ", block, " refs ", k.refs,
           " with ", tokens.size(), " tokens");
  const uint64_t h = block_hash(parent, tokens);
  if (k.published) return h;
  if (by_hash_.count(h)) return h;  // an identical prefix is cached already
  k.published = true;
  k.hash = h;
  k.parent = parent;
  k.tokens.assign(tokens.begin(), tokens.end());
  by_hash_[h] = block;
  return h;
}

}  // namespace dm
