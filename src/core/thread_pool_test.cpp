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
