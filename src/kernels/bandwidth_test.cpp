// The hardware probes: a read-bandwidth probe measures again and again over the buffer it mapped once.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/bandwidth.h"

using namespace dm;

TEST(Bandwidth, ProbeMeasuresRepeatedlyOverOneBuffer) {
  ThreadPool pool(2);
  const size_t bytes = size_t(32) << 20;  // small for a test: speed does not matter here, only the values' sanity
  ReadBandwidthProbe probe(pool, bytes);
  for (int i = 0; i < 3; ++i) {
    const double gbs = probe.measure();
    EXPECT_TRUE(std::isfinite(gbs));
    EXPECT_GT(gbs, 0.1);  // GB/s: any machine reads 32 MiB in well under 0.3 s
  }
  EXPECT_GT(measure_read_bandwidth_gbs(pool, bytes), 0.1);
  EXPECT_GE(beyond_caches(bytes), bytes);
}
