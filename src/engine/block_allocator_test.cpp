// Block allocator: reference counts, free/cached accounting, prefix publish and lookup, LRU eviction.
#include "engine/block_allocator.h"

#include <gtest/gtest.h>

#include <numeric>

namespace dm {
namespace {

std::vector<int32_t> toks(int start, int n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(BlockAllocator, AllocatesUntilFullAndReleases) {
  BlockAllocator a(3, 4);
  auto b0 = a.allocate(), b1 = a.allocate(), b2 = a.allocate();
  ASSERT_TRUE(b0 && b1 && b2);
  EXPECT_NE(*b0, *b1);
  EXPECT_FALSE(a.allocate().has_value());
  EXPECT_EQ(a.n_used(), 3);
  a.retain(*b1);
  EXPECT_EQ(a.ref_count(*b1), 2);
  a.release(*b1);
  EXPECT_EQ(a.n_available(), 0);
  a.release(*b1);
  EXPECT_EQ(a.n_available(), 1);
  EXPECT_EQ(*a.allocate(), *b1);
}

TEST(BlockAllocator, PublishedBlocksAreFoundAndCachedAfterRelease) {
  BlockAllocator a(4, 4);
  int32_t b0 = *a.allocate(), b1 = *a.allocate();
  auto t0 = toks(0, 4), t1 = toks(4, 4);
  uint64_t h0 = a.publish(b0, kRootHash, t0);
  a.publish(b1, h0, t1);
  EXPECT_EQ(a.lookup(kRootHash, t0), b0);
  EXPECT_EQ(a.lookup(h0, t1), b1);
  EXPECT_EQ(a.lookup(kRootHash, t1), -1);  // same tokens, other prefix
  auto other = toks(100, 4);
  EXPECT_EQ(a.lookup(h0, other), -1);
  a.release(b0);
  a.release(b1);
  EXPECT_EQ(a.n_cached(), 2);
  EXPECT_EQ(a.n_available(), 4);
  EXPECT_EQ(a.lookup(kRootHash, t0), b0);  // still there after release
  a.retain(b0);                            // reuse takes it out of the LRU list
  EXPECT_EQ(a.n_cached(), 1);
  EXPECT_EQ(a.ref_count(b0), 1);
}

TEST(BlockAllocator, EvictsLeastRecentlyUsedOnlyWhenNoFreeBlockLeft) {
  BlockAllocator a(3, 2);
  int32_t b0 = *a.allocate(), b1 = *a.allocate();
  auto t0 = toks(0, 2), t1 = toks(10, 2);
  a.publish(b0, kRootHash, t0);
  a.publish(b1, kRootHash, t1);
  a.release(b1);  // b1 cached first: least recently used
  a.release(b0);
  int32_t fresh = *a.allocate();  // the never-used block goes first
  EXPECT_NE(fresh, b0);
  EXPECT_NE(fresh, b1);
  EXPECT_EQ(a.n_cached(), 2);
  EXPECT_EQ(*a.allocate(), b1);  // evicts b1
  EXPECT_EQ(a.lookup(kRootHash, t1), -1);
  EXPECT_EQ(a.lookup(kRootHash, t0), b0);
  EXPECT_EQ(*a.allocate(), b0);
  EXPECT_EQ(a.lookup(kRootHash, t0), -1);
  EXPECT_FALSE(a.allocate().has_value());
}

TEST(BlockAllocator, FirstPublisherWins) {
  BlockAllocator a(2, 2);
  int32_t b0 = *a.allocate(), b1 = *a.allocate();
  auto t = toks(5, 2);
  const uint64_t h0 = a.publish(b0, kRootHash, t);
  EXPECT_EQ(a.publish(b1, kRootHash, t), h0);
  EXPECT_EQ(a.lookup(kRootHash, t), b0);
  a.release(b1);  // unpublished duplicate: free, not cached
  EXPECT_EQ(a.n_cached(), 0);
  EXPECT_EQ(a.n_available(), 1);
}

TEST(BlockHash, ChainsAndDependsOnEveryToken) {
  auto t = toks(0, 16);
  uint64_t h = block_hash(kRootHash, t);
  EXPECT_EQ(h, block_hash(kRootHash, t));
  EXPECT_NE(h, block_hash(h, t));
  for (size_t i = 0; i < t.size(); ++i) {
    auto u = t;
    u[i]++;
    EXPECT_NE(block_hash(kRootHash, u), h) << i;
  }
}

}  // namespace
}  // namespace dm
