// Memory bandwidth and FMA rate measurements (see hardware.h). The FMA loop keeps 12 independent accumulators
// so that the FMA latency (4 cycles) times the 2 ports is covered; the read loop sums 64-bit words with 4
// accumulators per thread, which is enough to saturate DRAM when every core streams.
#include "cli/hardware.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/tensor.h"

namespace dm::cli {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr int kAcc = 12;

__attribute__((target("avx512f"))) float fma_avx512(int64_t iters) {
  __m512 acc[kAcc];
  for (int k = 0; k < kAcc; ++k) acc[k] = _mm512_set1_ps(float(k) * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < kAcc; ++k) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
  float s = 0;
  for (int k = 0; k < kAcc; ++k) s += _mm512_reduce_add_ps(acc[k]);
  return s;
}

__attribute__((target("avx2,fma"))) float fma_avx2(int64_t iters) {
  __m256 acc[kAcc];
  for (int k = 0; k < kAcc; ++k) acc[k] = _mm256_set1_ps(float(k) * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < kAcc; ++k) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
  float lanes[8];
  float s = 0;
  for (int k = 0; k < kAcc; ++k) {
    _mm256_storeu_ps(lanes, acc[k]);
    for (float v : lanes) s += v;
  }
  return s;
}

float fma_scalar(int64_t iters) {
  float acc[kAcc];
  for (int k = 0; k < kAcc; ++k) acc[k] = float(k) * 1e-3f;
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < kAcc; ++k) acc[k] = acc[k] * 0.999999f + 1e-7f;
  float s = 0;
  for (float v : acc) s += v;
  return s;
}
}  // namespace

double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes) {
  const size_t n = std::max<size_t>(bytes / 8, 1024);
  Buffer buf(n * 8);
  uint64_t* w = buf.as<uint64_t>();
  pool.parallel_for(int64_t(n), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) w[i] = uint64_t(i) * 0x9e3779b97f4a7c15ull;
  });
  std::atomic<uint64_t> sink{0};
  double best = 0;
  for (int pass = 0; pass < 4; ++pass) {
    const auto t = Clock::now();
    pool.parallel_for(int64_t(n), [&](int64_t b, int64_t e) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t i = b;
      for (; i + 4 <= e; i += 4) {
        s0 += w[i];
        s1 += w[i + 1];
        s2 += w[i + 2];
        s3 += w[i + 3];
      }
      for (; i < e; ++i) s0 += w[i];
      sink += s0 ^ s1 ^ s2 ^ s3;
    });
    const double s = seconds_since(t);
    if (pass > 0) best = std::max(best, double(n * 8) / s / 1e9);  // pass 0 warms up
  }
  return sink.load() == 1 ? best + 1e-12 : best;  // keeps the sums alive
}

double measure_peak_gflops(ThreadPool& pool, std::string* isa) {
  const CpuFeatures& f = cpu_features();
  int lanes = 1;
  float (*loop)(int64_t) = fma_scalar;
  const char* name = "scalar";
  if (f.avx512f) {
    loop = fma_avx512, lanes = 16, name = "avx512 f32 fma";
  } else if (f.avx2 && f.fma) {
    loop = fma_avx2, lanes = 8, name = "avx2 f32 fma";
  }
  if (isa) *isa = name;
  const int64_t iters = lanes == 1 ? 20'000'000 : 4'000'000;
  std::atomic<float> sink{0};
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const auto t = Clock::now();
    pool.run([&](int, int) { sink = sink + loop(iters); });
    const double s = seconds_since(t);
    best = std::max(best, double(iters) * kAcc * lanes * 2 * pool.size() / s / 1e9);
  }
  return sink.load() == 12345.0f ? best + 1e-12 : best;
}

}  // namespace dm::cli
