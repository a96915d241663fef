// Memory-bandwidth and peak-rate probes. The read loop uses 512-bit loads where the CPU has AVX-512 (4
// independent accumulators, so the loop is load-bound, not add-bound); the peak loops keep 12 independent
// FMA / VNNI chains per thread, enough to cover the instructions' latency on current x86 cores.
#include "kernels/bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "core/cpu.h"
#include "core/tensor.h"
#include "kernels/linear_kernels.h"

// GCC 12 false positives inside its intrinsic headers (_mm512_reduce_add_*)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace dm {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

__attribute__((target("avx512f"))) uint64_t read_avx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 192));
  }
  a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  return uint64_t(_mm512_reduce_add_epi64(a0));
}

// The access pattern of a decode kernel: 4 rows of 4 KiB side by side, each prefetched one row tile ahead.
// Hardware prefetchers stop at 4 KiB pages, so this often beats the plain stream; the probe takes the best.
__attribute__((target("avx512f"))) uint64_t read_tiles_avx512(const uint8_t* p, size_t n) {
  constexpr size_t kRow = 4096, kTile = 4 * kRow;
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t t = 0; t + kTile <= n; t += kTile) {
    const uint8_t* q = p + t;
    for (size_t c = 0; c < kRow; c += 64) {
      for (size_t r = 0; r < 4; ++r) _mm_prefetch(reinterpret_cast<const char*>(q + r * kRow + c + kTile), _MM_HINT_T0);
      a0 = _mm512_xor_si512(a0, _mm512_load_si512(q + c));
      a1 = _mm512_xor_si512(a1, _mm512_load_si512(q + kRow + c));
      a2 = _mm512_xor_si512(a2, _mm512_load_si512(q + 2 * kRow + c));
      a3 = _mm512_xor_si512(a3, _mm512_load_si512(q + 3 * kRow + c));
    }
  }
  a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  return uint64_t(_mm512_reduce_add_epi64(a0));
}

// S forward streams side by side (the slice cut in S parts), each line prefetched 2 KiB ahead right before its
// load. On an Intel Xeon (huge pages) one stream read 18 GB/s on one core and 4 streams 37.5 on two, where the
// plain loop read 15 and 29 and the tiles 16 and 30: a limit that only took those would be exceeded by the
// decode kernels, which prefetch so (linear_avx512.cpp). TwoLevel: each line 4 KiB ahead into L2 and 2 KiB into
// L1 before its load, as the decode kernels do on Intel, which read two streams per thread there too: on the AMX
// Xeon two such streams per thread read 41-44 GB/s on two threads (~37 in the order GCC had scheduled) where the
// other patterns read 36-38.
template <int S, bool TwoLevel = false>
__attribute__((target("avx512f"))) uint64_t read_prefetched_avx512(const uint8_t* p, size_t n) {
  constexpr size_t kAhead = 2048, kAheadL2 = 4096;
  const size_t len = n / S / 64 * 64;
  __m512i a[S];
  for (int s = 0; s < S; ++s) a[s] = _mm512_setzero_si512();
  for (size_t i = 0; i < len; i += 64)
    for (int s = 0; s < S; ++s) {
      const uint8_t* q = p + size_t(s) * len + i;
      if constexpr (TwoLevel) {  // as asm, in this order (see load_prefetched in linear_avx512.cpp)
        asm volatile("prefetcht1 %c2(%1)\n\tprefetcht0 %c3(%1)\n\tvpxord (%1), %0, %0"
                     : "+v"(a[s])
                     : "r"(q), "i"(kAheadL2), "i"(kAhead), "m"(*reinterpret_cast<const uint8_t(*)[64]>(q)));
      } else {
        _mm_prefetch(reinterpret_cast<const char*>(q) + kAhead, _MM_HINT_T0);  // past the end: a no-op
        a[s] = _mm512_xor_si512(a[s], _mm512_load_si512(q));
      }
    }
  for (int s = 1; s < S; ++s) a[0] = _mm512_xor_si512(a[0], a[s]);
  return uint64_t(_mm512_reduce_add_epi64(a[0]));
}

uint64_t read_plain(const uint8_t* p, size_t n) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i + 4 <= n / 8; i += 4) {
    a0 ^= q[i];
    a1 ^= q[i + 1];
    a2 ^= q[i + 2];
    a3 ^= q[i + 3];
  }
  return a0 ^ a1 ^ a2 ^ a3;
}

constexpr int64_t kPeakIters = 20'000'000;

__attribute__((target("avx512f"))) float fma_loop_avx512(int64_t iters) {
  __m512 a[12];
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(float(i));
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(int64_t iters) {
  __m256 a[12];
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(float(i));
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

__attribute__((target("avx512f,avx512vnni"))) int32_t vnni_loop(int64_t iters) {
  __m512i a[12];
  const __m512i u = _mm512_set1_epi8(3), s8 = _mm512_set1_epi8(-2);
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_epi32(i);
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_dpbusd_epi32(a[i], u, s8);
  __m512i s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_epi32(s, a[i]);  // lanes wrap (the values do not matter)
  uint32_t lanes[16];
  _mm512_storeu_si512(lanes, s);
  uint32_t sum = 0;
  for (uint32_t v : lanes) sum += v;  // unsigned: wraps instead of overflowing
  return int32_t(sum & 0x7fffffff);
}

__attribute__((target("avx512f,avx512bf16"))) int32_t dpbf16_loop(int64_t iters) {
  __m512 a[12];
  const __m512bh u = __m512bh(_mm512_set1_epi32(0x3c003c00)), v = __m512bh(_mm512_set1_epi32(0x3c003c00));
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(float(i));
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_dpbf16_ps(a[i], u, v);  // + 2 · 2^-14 a step: stays finite
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return int32_t(_mm512_reduce_add_ps(s)) & 0x7fffffff;
}

// Runs body(iters) on every thread, returns total operations per second / 1e9 (ops_per_iter per iteration).
template <typename Body>
double rate(ThreadPool& pool, double ops_per_iter, Body body) {
  std::atomic<int64_t> sink{0};
  int64_t iters = kPeakIters / 20;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const double t0 = now_s();
    pool.run([&](int, int) { sink += int64_t(body(iters)); });
    const double dt = now_s() - t0;
    best = std::max(best, ops_per_iter * double(iters) * pool.size() / dt / 1e9);
    if (dt < 0.05) iters *= 4;
  }
  return best;
}

}  // namespace

size_t beyond_caches(size_t at_least) { return std::max(at_least, 3 * last_level_cache_bytes()); }

ReadBandwidthProbe::ReadBandwidthProbe(ThreadPool& pool, size_t bytes) : pool_(pool) {
  if (bytes == 0) bytes = beyond_caches(size_t(1) << 30);
  const int nt = pool.size();
  slice_ = bytes / size_t(nt) / 4096 * 4096;
  buf_ = HugeBuffer(slice_ * size_t(nt));  // on 2 MiB pages where the kernel allows it, as the weights the decode
                                           // kernels stream (model/packed_weights.h)
  // Each thread first writes its own slice, so its pages are faulted in (and placed) by the thread reading them.
  pool.run([&](int t, int) {
    uint8_t* p = buf_.data() + size_t(t) * slice_;
    for (size_t i = 0; i < slice_; i += 64) p[i] = uint8_t(i >> 6);
  });
}

double ReadBandwidthProbe::measure() {
  const int nt = pool_.size();
  const size_t slice = slice_;
  const bool wide = cpu_features().avx512f;
  std::atomic<uint64_t> sink{0};
  // Passes go round the patterns (the plain stream, the tiles, one and four prefetched streams, two streams
  // prefetched into L1 and L2); the best median is the limit.
  using Read = uint64_t (*)(const uint8_t*, size_t);
  const std::vector<Read> kinds = wide ? std::vector<Read>{read_avx512, read_tiles_avx512, read_prefetched_avx512<1>,
                                                           read_prefetched_avx512<4>, read_prefetched_avx512<2, true>}
                                       : std::vector<Read>{read_plain};
  const int passes = 2 + 5 * int(kinds.size());  // the first two warm up
  std::vector<std::vector<double>> gbs(kinds.size());
  for (int pass = 0; pass < passes; ++pass) {
    const size_t kind = size_t(pass) % kinds.size();
    const double t0 = now_s();
    pool_.run([&](int t, int) { sink += kinds[kind](buf_.data() + size_t(t) * slice, slice); });
    const double dt = now_s() - t0;
    if (pass > 1) gbs[kind].push_back(double(slice) * nt / dt / 1e9);
  }
  double best = 0;
  for (auto& g : gbs) {
    if (g.empty()) continue;
    std::sort(g.begin(), g.end());
    best = std::max(best, g[g.size() / 2]);
  }
  return best;
}

double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes) { return ReadBandwidthProbe(pool, bytes).measure(); }

double measure_fma_gflops(ThreadPool& pool) {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f) return rate(pool, 12 * 16 * 2, fma_loop_avx512);
  if (f.avx2 && f.fma) return rate(pool, 12 * 8 * 2, fma_loop_avx2);
  return 0;
}

double measure_vnni_gops(ThreadPool& pool) {
  if (!cpu_features().avx512vnni) return 0;
  return rate(pool, 12 * 64 * 2, vnni_loop);
}

double measure_dpbf16_gflops(ThreadPool& pool) {
  if (!cpu_features().avx512bf16) return 0;
  return rate(pool, 12 * 32 * 2, dpbf16_loop);
}

double measure_amx_bf16_gflops(ThreadPool& pool) {
  if (!cpu_features().amx_bf16) return 0;
  return rate(pool, 4.0 * 16 * 16 * 32 * 2, kern::amx_bf16_loop);
}

}  // namespace dm
