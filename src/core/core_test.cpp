// Tests of dtype conversions and the thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"

using namespace dm;

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  // 1 + 2^-8 is exactly half-way between two bf16 values: ties to even (down).
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
}

TEST(DType, F16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), h) << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
}

TEST(DType, E4m3MatchesPublishedTable) {
  std::ifstream in(DM_TEST_DATA "/golden/e4m3fn_decode_table.f32", std::ios::binary);
  ASSERT_TRUE(in);
  std::vector<float> table(256);
  in.read(reinterpret_cast<char*>(table.data()), 1024);
  for (int c = 0; c < 256; ++c) {
    float f = f8_e4m3_to_f32(uint8_t(c));
    if (std::isnan(table[c])) {
      EXPECT_TRUE(std::isnan(f)) << c;
    } else {
      EXPECT_EQ(f, table[c]) << c;
      EXPECT_EQ(f8_e4m3_to_f32(f32_to_f8_e4m3(f)), f) << c;
    }
  }
  EXPECT_EQ(f8_e4m3_to_f32(f32_to_f8_e4m3(1000.0f)), 448.0f);
}

TEST(ThreadPool, RunsEveryThreadAndSplitsWork) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 200; ++rep) {
    std::vector<std::atomic<int>> hits(1000);
    pool.parallel_for(1000, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
  std::atomic<int> mask{0};
  pool.run([&](int t, int n) { mask |= 1 << t; EXPECT_EQ(n, 3); });
  EXPECT_EQ(mask.load(), 7);
}

TEST(MappedFile, MissingFileNamesPath) {
  try {
    MappedFile f("/nonexistent/deepmoe-file");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/deepmoe-file"), std::string::npos);
  }
}
