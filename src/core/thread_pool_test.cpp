// ThreadPool: run() calls every thread exactly once; run_elastic() does all shared work whatever subset of
// threads joins, interleaved with run() and parallel_for() without losing or repeating jobs.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/thread_pool.h"

using namespace dm;

TEST(ThreadPool, RunCallsEveryThreadOnce) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 50; ++rep) {
    std::vector<std::atomic<int>> calls(3);
    pool.run([&](int t, int n) {
      EXPECT_EQ(n, 3);
      calls[size_t(t)]++;
    });
    for (auto& c : calls) ASSERT_EQ(c.load(), 1);
  }
}

TEST(ThreadPool, ElasticSharesWorkAndInterleavesWithRun) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 100; ++rep) {
      const int64_t n_items = 1 + rep % 37;
      std::vector<std::atomic<int>> done(static_cast<size_t>(n_items));
      std::atomic<int64_t> next{0};
      pool.run_elastic([&](int t) {
        EXPECT_GE(t, 0);
        EXPECT_LT(t, threads);
        for (int64_t i; (i = next.fetch_add(1)) < n_items;) done[size_t(i)]++;
      });
      for (auto& d : done) ASSERT_EQ(d.load(), 1) << "rep " << rep;
      if (rep % 3 == 0) {
        std::atomic<int> calls{0};
        pool.run([&](int, int) { calls++; });
        ASSERT_EQ(calls.load(), threads);
      }
      if (rep % 5 == 0) {
        std::atomic<int64_t> sum{0};
        pool.parallel_for(100, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) sum += i;
        });
        ASSERT_EQ(sum.load(), 4950);
      }
    }
  }
}

#if defined(__linux__)
#include <sched.h>

namespace {
std::vector<int> cpus_of_this_thread() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}
}  // namespace

// A pool that takes every allowed CPU runs its workers on one CPU each, the allowed ones in order from the
// second; the caller keeps its own mask; a pool of more or fewer threads than allowed CPUs, or with pinning off,
// leaves every thread's mask as it was.
TEST(ThreadPool, PinsWorkersWhenTheyTakeTheWholeMask) {
  const std::vector<int> allowed = cpus_of_this_thread();
  ASSERT_FALSE(allowed.empty());
  auto masks = [](ThreadPool& pool) {
    std::vector<std::vector<int>> m(size_t(pool.size()));
    pool.run([&](int t, int) { m[size_t(t)] = cpus_of_this_thread(); });
    return m;
  };
  const int n = int(allowed.size());
  if (n >= 2) {
    ThreadPool pool(n, ThreadPool::Pin::On);
    ASSERT_TRUE(pool.pinned());
    const auto m = masks(pool);
    EXPECT_EQ(m[0], allowed);  // the caller is not pinned
    EXPECT_EQ(pool.pinned_cpu(0), -1);
    for (int i = 1; i < n; ++i) {
      EXPECT_EQ(pool.pinned_cpu(i), allowed[size_t(i)]);
      EXPECT_EQ(m[size_t(i)], std::vector<int>{allowed[size_t(i)]}) << "worker " << i;
    }
  }
  std::vector<std::pair<int, ThreadPool::Pin>> floating = {{n + 1, ThreadPool::Pin::On}, {2, ThreadPool::Pin::Off}};
  if (n >= 3) floating.push_back({n - 1, ThreadPool::Pin::On});
  for (auto [threads, pin] : floating) {
    ThreadPool pool(threads, pin);
    EXPECT_FALSE(pool.pinned());
    for (const auto& mask : masks(pool)) EXPECT_EQ(mask, allowed);
    EXPECT_EQ(pool.pinned_cpu(1), -1);
  }
  EXPECT_EQ(cpus_of_this_thread(), allowed);
}
#endif
