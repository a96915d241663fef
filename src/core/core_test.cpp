// Tests of dtype conversions and the thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/tensor.h"
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

TEST(HugeBuffer, IsZeroedAndMoves) {
  HugeBuffer a(3 << 20);
  ASSERT_NE(a.data(), nullptr);
  EXPECT_EQ(a.size(), size_t(3) << 20);
  uint64_t sum = 0;
  for (size_t i = 0; i < a.size(); i += 4096) sum += a.data()[i] + a.data()[a.size() - 1 - i];
  EXPECT_EQ(sum, 0u);
  a.data()[5] = 7;
  HugeBuffer b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.data()[5], 7);
  a = std::move(b);
  EXPECT_EQ(a.data()[5], 7);
  EXPECT_EQ(HugeBuffer(0).data(), nullptr);
}

// Where transparent huge pages are on (always or madvise), a HugeBuffer written after allocation is backed by
// 2 MiB pages (a Buffer, zeroed before any advice could be given, is not: the bandwidth probe ran on 4 KiB
// pages that way and under-measured the memory by 10-20%).
TEST(HugeBuffer, GetsHugePagesWhereTheKernelOffersThem) {
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
  if (mode.empty() || mode.find("[never]") != std::string::npos) GTEST_SKIP() << "transparent huge pages off";
  HugeBuffer b(size_t(16) << 20);
  for (size_t i = 0; i < b.size(); i += 4096) b.data()[i] = 1;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(b.data());
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_range = false;
  long huge_kb = -1;
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find('-')) {
      in_range = lo <= begin && begin < hi;
    } else if (in_range && line.rfind("AnonHugePages:", 0) == 0) {
      huge_kb = std::stol(line.substr(14));
      break;
    }
  }
  ASSERT_GE(huge_kb, 0) << "no mapping of the buffer in /proc/self/smaps";
  EXPECT_GT(huge_kb, 0) << "16 MiB written, none of it on huge pages (THP: " << mode << ")";
}
