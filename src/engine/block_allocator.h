// KV cache block accounting: reference-counted blocks of KvCache, and the prefix cache over them.
// A full block whose KV is final can be published under the hash of its token ids chained with the previous
// block's hash (so a hash names a whole prefix, not just 16 tokens); a later sequence with the same prefix
// retains the published blocks instead of recomputing them. Unreferenced published blocks stay cached and are
// evicted least recently used first, only when no never-used block is left.
// Thread safety: none; owned by the engine's step loop.
#pragma once
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace dm {

// Hash of one full block of tokens given the hash of the prefix before it (kRootHash for the first block).
constexpr uint64_t kRootHash = 0x9e3779b97f4a7c15ull;
uint64_t block_hash(uint64_t parent, std::span<const int32_t> tokens);

class BlockAllocator {
 public:
  BlockAllocator(int64_t n_blocks, int block_size);

  int64_t n_blocks() const { return n_blocks_; }
  int block_size() const { return block_size_; }
  int64_t n_available() const { return int64_t(free_.size() + lru_.size()); }  // allocatable now
  int64_t n_used() const { return n_blocks_ - n_available(); }                 // referenced by sequences
  int64_t n_cached() const { return int64_t(lru_.size()); }  // unreferenced, kept for prefix reuse
  int ref_count(int32_t block) const { return blocks_.at(size_t(block)).refs; }

  // A block with reference count 1 and no published contents; evicts the least recently used cached block
  // when no never-used one is left. nullopt when every block is referenced.
  std::optional<int32_t> allocate();
  void retain(int32_t block);   // one more reference (takes a cached block out of the LRU list)
  void release(int32_t block);  // one less; at zero the block becomes cached (if published) or free

  // Prefix cache. lookup() gives the published block holding `tokens` after the prefix named `parent`, or -1;
  // the tokens are compared too, so a hash collision can't hand out wrong KV.
  int32_t lookup(uint64_t parent, std::span<const int32_t> tokens) const;
  // Publishes a referenced, full block whose KV slots are final. If another block already holds the same
  // prefix, nothing changes (that one stays the cached copy). Returns the block's hash.
  uint64_t publish(int32_t block, uint64_t parent, std::span<const int32_t> tokens);

 private:
  struct Block {
    int refs = 0;
    bool published = false;
    uint64_t hash = 0, parent = 0;
    std::vector<int32_t> tokens;       // contents, when published
    std::list<int32_t>::iterator lru;  // position in lru_ while cached
  };
  void unpublish(int32_t block);

  int64_t n_blocks_;
  int block_size_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;      // never used or evicted; a stack
  std::list<int32_t> lru_;         // unreferenced published blocks, least recently used first
  std::unordered_map<uint64_t, int32_t> by_hash_;
};

}  // namespace dm
