// linear() on every instruction set (scalar, AVX2, AVX-512) and dtype against linear_ref() over odd shapes and
// token counts; the int8 path against its scalar twin linear_ref_q8() and against linear_ref() within the
// activation-quantization bound; batch and thread-count invariance (bit-identical outputs); the AMX tile kernel
// against a bf16-rounded reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/dtype.h"
#include "kernels/linear.h"
#include "kernels/quant.h"

using namespace dm;

namespace {

// A weight of any dtype made from random values, owning its bytes.
struct TestWeight {
  Weight w;
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
};

TestWeight make_weight(DType t, int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  TestWeight tw;
  tw.w.dtype = t;
  tw.w.rows = rows;
  tw.w.cols = cols;
  tw.bytes.resize(dtype_bytes(t, cols) * size_t(rows));
  std::vector<float> v(size_t(rows * cols));
  for (auto& f : v) f = nd(rng);
  uint8_t* p = tw.bytes.data();
  switch (t) {
    case DType::F32: std::memcpy(p, v.data(), v.size() * 4); break;
    case DType::BF16:
    case DType::F16:
      for (size_t i = 0; i < v.size(); ++i) {
        uint16_t h = t == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      break;
    case DType::F8_E4M3: {
      for (size_t i = 0; i < v.size(); ++i) p[i] = f32_to_f8_e4m3(v[i] * 64);  // spans subnormals to 448
      tw.scales.resize(size_t((rows + 127) / 128 * ((cols + 127) / 128)));
      for (auto& s : tw.scales) s = 0.001f * float(1 + rng() % 50);
      break;
    }
    case DType::Q8_0:
      for (int64_t r = 0; r < rows; ++r)
        quantize_row_q8_0(v.data() + r * cols, reinterpret_cast<BlockQ8_0*>(p + r * tw.w.row_bytes()), cols);
      break;
    case DType::Q4_0:
      for (int64_t r = 0; r < rows; ++r)
        quantize_row_q4_0(v.data() + r * cols, reinterpret_cast<BlockQ4_0*>(p + r * tw.w.row_bytes()), cols);
      break;
    default: {  // K-quants: any bytes are valid codes; keep the fp16 super-block scales finite and small
      for (auto& b : tw.bytes) b = uint8_t(rng());
      const size_t bs = dtype_bytes(t, 256);
      for (size_t off = 0; off < tw.bytes.size(); off += bs) {
        uint16_t d = f32_to_f16(0.01f * float(1 + rng() % 10)), dmin = f32_to_f16(0.02f);
        size_t at = t == DType::Q6_K ? 208 : 0;
        std::memcpy(&tw.bytes[off + at], &d, 2);
        if (t != DType::Q6_K) std::memcpy(&tw.bytes[off + 2], &dmin, 2);
      }
    }
  }
  tw.w.data = tw.bytes.data();
  tw.w.scale_inv = tw.scales.empty() ? nullptr : tw.scales.data();
  return tw;
}

std::vector<float> rand_x(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& f : x) f = nd(rng);
  return x;
}

// Σ_c |x_c · w_c| per (token, row): the scale of fp32 summation error.
std::vector<double> abs_dots(const Weight& w, const std::vector<float>& x, int64_t n) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  std::vector<double> out(size_t(n * w.rows));
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_rows(w, r, r + 1, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int64_t c = 0; c < w.cols; ++c) s += std::fabs(double(x[size_t(t * w.cols + c)]) * row[size_t(c)]);
      out[size_t(t * w.rows + r)] = s;
    }
  }
  return out;
}

std::vector<int64_t> cols_for(DType t) {
  switch (t) {
    case DType::Q8_0:
    case DType::Q4_0: return {32, 96, 160, 352};
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return {256, 768};
    default: return {1, 7, 16, 33, 130, 300};
  }
}

const DType kAll[] = {DType::F32,  DType::BF16, DType::F16,  DType::F8_E4M3, DType::Q8_0,
                      DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};
const Simd kPaths[] = {Simd::Scalar, Simd::Avx2, Simd::Avx512};
const int64_t kTokens[] = {1, 2, 3, 5, 8, 17, 64};

bool available(Simd s) { return linear_simd(LinearOptions{s, false}) == s; }

}  // namespace

TEST(Linear, EveryPathMatchesReference) {
  ThreadPool pool(2);
  for (DType t : kAll) {
    for (int64_t rows : {1, 5, 17, 130}) {
      for (int64_t cols : cols_for(t)) {
        TestWeight tw = make_weight(t, rows, cols, unsigned(rows * 131 + cols));
        for (int64_t n : kTokens) {
          if (rows * cols * n > 2000000) continue;
          auto x = rand_x(n * cols, unsigned(n + cols));
          std::vector<float> ref(size_t(n * rows)), y(size_t(n * rows));
          linear_ref(tw.w, x.data(), n, ref.data());
          auto mag = abs_dots(tw.w, x, n);
          for (Simd s : kPaths) {
            if (!available(s)) continue;
            std::fill(y.begin(), y.end(), NAN);
            linear(tw.w, x.data(), n, y.data(), &pool, LinearOptions{s, false});
            for (size_t i = 0; i < y.size(); ++i)
              ASSERT_NEAR(y[i], ref[i], 1e-5 * mag[i] + 1e-30)
                  << dtype_name(t) << " simd " << int(s) << " rows " << rows << " cols " << cols << " n " << n
                  << " at " << i;
          }
        }
      }
    }
  }
}

TEST(Linear, Int8PathMatchesScalarTwinAndQuantizationBound) {
  if (!available(Simd::Avx512)) GTEST_SKIP() << "no AVX-512";
  ThreadPool pool(2);
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    for (int64_t rows : {1, 6, 33, 130}) {
      for (int64_t cols : {32, 64, 96, 160, 1024}) {
        TestWeight tw = make_weight(t, rows, cols, unsigned(rows * 7 + cols));
        for (int64_t n : kTokens) {
          auto x = rand_x(n * cols, unsigned(3 * n + cols));
          std::vector<float> ref(size_t(n * rows)), twin(size_t(n * rows)), y(size_t(n * rows));
          linear_ref(tw.w, x.data(), n, ref.data());
          linear_ref_q8(tw.w, x.data(), n, twin.data());
          linear(tw.w, x.data(), n, y.data(), &pool, LinearOptions{Simd::Avx512, true});
          // Bound of the activation quantization: Σ_c |w_c| · d_x(block of c) / 2.
          std::vector<float> wrow(static_cast<size_t>(cols)), xd(static_cast<size_t>(cols / 32));
          std::vector<int8_t> xq(static_cast<size_t>(cols));
          for (int64_t tok = 0; tok < n; ++tok) {
            quantize_activations_q8(x.data() + tok * cols, cols, xq.data(), xd.data());
            for (int64_t r = 0; r < rows; ++r) {
              dequantize_rows(tw.w, r, r + 1, wrow.data());
              double bound = 0, mag = 0;
              for (int64_t c = 0; c < cols; ++c) {
                bound += std::fabs(wrow[size_t(c)]) * xd[size_t(c / 32)] * 0.5;
                mag += std::fabs(wrow[size_t(c)] * x[size_t(tok * cols + c)]);
              }
              const size_t i = size_t(tok * rows + r);
              ASSERT_NEAR(y[i], twin[i], 1e-5 * (mag + bound) + 1e-30) << dtype_name(t) << " " << rows << "x" << cols;
              ASSERT_NEAR(y[i], ref[i], bound * 1.001 + 1e-5 * mag) << dtype_name(t) << " " << rows << "x" << cols;
            }
          }
        }
      }
    }
  }
}

TEST(Linear, BatchAndThreadInvariance) {
  ThreadPool pool2(2), pool1(1);
  const int64_t n = 17;
  for (DType t : kAll) {
    const int64_t rows = 203, cols = dtype_block(t) == 256 ? 512 : 320;  // > 64 KiB in F32: both threads work
    TestWeight tw = make_weight(t, rows, cols, 99);
    auto x = rand_x(n * cols, 5);
    for (Simd s : kPaths) {
      if (!available(s)) continue;
      for (bool q : {false, true}) {
        LinearOptions opt{s, q};
        std::vector<float> batch(static_cast<size_t>(n * rows)), one(static_cast<size_t>(rows));
        linear(tw.w, x.data(), n, batch.data(), &pool2, opt);
        for (int64_t tok : {int64_t(0), int64_t(5), n - 1}) {
          for (ThreadPool* p : {&pool1, &pool2, static_cast<ThreadPool*>(nullptr)}) {
            linear(tw.w, x.data() + tok * cols, 1, one.data(), p, opt);
            ASSERT_EQ(0, std::memcmp(one.data(), batch.data() + tok * rows, size_t(rows) * 4))
                << dtype_name(t) << " simd " << int(s) << " quant " << q << " token " << tok;
          }
        }
      }
    }
  }
}

TEST(Linear, F8SliceRowsKeepsBlockScales) {
  TestWeight tw = make_weight(DType::F8_E4M3, 300, 200, 4);
  auto x = rand_x(200, 8);
  std::vector<float> all(300), part(300 - 128);
  linear(tw.w, x.data(), 1, all.data(), nullptr);
  linear(tw.w.slice_rows(128, 300 - 128), x.data(), 1, part.data(), nullptr);
  for (int64_t r = 0; r < 300 - 128; ++r) EXPECT_EQ(part[size_t(r)], all[size_t(r + 128)]);
}

TEST(Linear, MultiMatchesSeparateCalls) {
  // A MoE-like group: experts of different dtypes and token counts (one with none), shared x for two of them.
  ThreadPool pool(2);
  struct Case {
    DType t;
    int64_t rows, cols, n;
  };
  const Case cases[] = {{DType::Q8_0, 96, 256, 7},  {DType::Q4_0, 130, 256, 1}, {DType::BF16, 64, 256, 0},
                        {DType::F8_E4M3, 200, 300, 3}, {DType::Q6_K, 20, 512, 5},   {DType::F32, 33, 256, 17}};
  for (Simd s : kPaths) {
    if (!available(s)) continue;
    std::vector<TestWeight> ws;
    std::vector<std::vector<float>> xs, ys, want;
    std::vector<LinearJob> jobs;
    for (const Case& c : cases) {
      ws.push_back(make_weight(c.t, c.rows, c.cols, unsigned(c.rows + c.cols)));
      xs.push_back(rand_x(std::max<int64_t>(1, c.n) * c.cols, unsigned(c.n + 11)));
      ys.emplace_back(size_t(std::max<int64_t>(1, c.n) * c.rows), NAN);
      want.emplace_back(size_t(std::max<int64_t>(1, c.n) * c.rows), NAN);
    }
    for (size_t i = 0; i < ws.size(); ++i) {
      jobs.push_back(LinearJob{ws[i].w, xs[i].data(), cases[i].n, ys[i].data()});
      linear(ws[i].w, xs[i].data(), cases[i].n, want[i].data(), nullptr, LinearOptions{s, true});
    }
    linear_multi(jobs.data(), jobs.size(), &pool, LinearOptions{s, true});
    for (size_t i = 0; i < ws.size(); ++i) {
      if (cases[i].n == 0) {
        EXPECT_TRUE(std::isnan(ys[i][0])) << "a job without tokens writes nothing";
        continue;
      }
      ASSERT_EQ(0, std::memcmp(ys[i].data(), want[i].data(), ys[i].size() * 4)) << "job " << i << " simd " << int(s);
    }
  }
}

TEST(Linear, LongRowsBlockedByColumnsStayExactAndInvariant) {
  // Rows longer than the prefill kernel's column block: the accumulators are saved between blocks.
  ThreadPool pool(2);
  for (DType t : {DType::F32, DType::BF16, DType::F8_E4M3, DType::Q4_K}) {
    const int64_t rows = 9, cols = t == DType::Q4_K ? 4352 : 4200, n = 13;
    TestWeight tw = make_weight(t, rows, cols, 21);
    auto x = rand_x(n * cols, 22);
    std::vector<float> ref(size_t(n * rows)), y(size_t(n * rows)), one(static_cast<size_t>(rows));
    linear_ref(tw.w, x.data(), n, ref.data());
    auto mag = abs_dots(tw.w, x, n);
    for (Simd s : kPaths) {
      if (!available(s)) continue;
      linear(tw.w, x.data(), n, y.data(), &pool, LinearOptions{s, false});
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-5 * mag[i]) << dtype_name(t);
      for (int64_t tok : {int64_t(0), n - 1}) {
        linear(tw.w, x.data() + tok * cols, 1, one.data(), nullptr, LinearOptions{s, false});
        ASSERT_EQ(0, std::memcmp(one.data(), y.data() + tok * rows, size_t(rows) * 4)) << dtype_name(t);
      }
    }
  }
}

TEST(Linear, LongRowsInt8BlockedByPairs) {
  if (!available(Simd::Avx512)) GTEST_SKIP() << "no AVX-512";
  ThreadPool pool(2);
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    const int64_t rows = 7, cols = 4128, n = 11;  // 129 blocks: an odd last pair beyond the first pair block
    TestWeight tw = make_weight(t, rows, cols, 31);
    auto x = rand_x(n * cols, 32);
    std::vector<float> twin(size_t(n * rows)), y(size_t(n * rows)), one(static_cast<size_t>(rows));
    linear_ref_q8(tw.w, x.data(), n, twin.data());
    auto mag = abs_dots(tw.w, x, n);
    linear(tw.w, x.data(), n, y.data(), &pool);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], twin[i], 1e-5 * mag[i]) << dtype_name(t);
    for (int64_t tok : {int64_t(0), n - 1}) {
      linear(tw.w, x.data() + tok * cols, 1, one.data(), nullptr);
      ASSERT_EQ(0, std::memcmp(one.data(), y.data() + tok * rows, size_t(rows) * 4)) << dtype_name(t);
    }
  }
}

namespace {
// A weight with its rows packed (pack_rows16) into a 64-byte aligned buffer the copy owns.
struct PackedCopy {
  std::vector<uint8_t> buf;
  Weight w;
};
PackedCopy packed_copy(const Weight& w) {
  PackedCopy c{std::vector<uint8_t>(packed_bytes(w) + 64), w};
  uint8_t* p = c.buf.data() + (64 - reinterpret_cast<uintptr_t>(c.buf.data()) % 64) % 64;
  pack_rows16(w, p);
  c.w.packed = p;
  return c;
}
}  // namespace

// The AVX-512 kernels without AMX tiles (which round batches to bf16; tested below).
const LinearOptions kAvx512{Simd::Avx512, true};

// Packed rows (pack_rows16): the int8 kernels over the packed layout give exactly the scalar twin's numbers
// (same blocks in the same order, one fused multiply-add each), for any row count (padded last group), token
// count, thread count and 16-aligned row slice; unaligned slices, and slices of rows in several column panels,
// fall back to the unpacked rows. 130 and 280 rows of 1024 columns are long enough for decode's two streams per
// thread (where the CPU takes them), with an odd and an even number of groups; 1600 (Q8_0) and 3104 / 4448
// (Q4_0) columns go in 2-3 column panels, the last one an odd number of blocks.
TEST(Linear, MultiSharesQuantizedActivations) {
  // gate and up of an expert read the same x (over 64 KiB of weights: threads share the rows): one quantization serves both, results unchanged. In decode (up to
  // kRowTile tokens) every thread converts its own copy of the activations, packed rows or not: same bits.
  ThreadPool pool2(2), pool3(3);
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    TestWeight gate = make_weight(t, 300, 512, 1), up = make_weight(t, 300, 512, 2);
    for (int64_t n : {9, 3, 1}) {
      auto x = rand_x(n * 512, unsigned(3 + n));
      std::vector<float> g1(size_t(n * 300)), u1(size_t(n * 300));
      linear(gate.w, x.data(), n, g1.data(), nullptr);
      linear(up.w, x.data(), n, u1.data(), nullptr);
      for (ThreadPool* tp : {&pool2, &pool3}) {
        std::vector<float> g(size_t(n * 300), NAN), u(size_t(n * 300), NAN);
        LinearJob jobs[] = {{gate.w, x.data(), n, g.data()}, {up.w, x.data(), n, u.data()}};
        linear_multi(jobs, 2, tp);
        EXPECT_EQ(g, g1) << dtype_name(t) << ", " << n << " token(s), " << tp->size() << " threads";
        EXPECT_EQ(u, u1) << dtype_name(t) << ", " << n << " token(s), " << tp->size() << " threads";
      }
      if (!packable(gate.w)) continue;
      const PackedCopy pg = packed_copy(gate.w), pu = packed_copy(up.w);
      for (ThreadPool* tp : {static_cast<ThreadPool*>(nullptr), &pool2, &pool3}) {
        std::vector<float> g(size_t(n * 300), NAN), u(size_t(n * 300), NAN), g2(size_t(n * 300)), u2(size_t(n * 300));
        linear(pg.w, x.data(), n, g2.data(), nullptr);
        linear(pu.w, x.data(), n, u2.data(), nullptr);
        LinearJob jobs[] = {{pg.w, x.data(), n, g.data()}, {pu.w, x.data(), n, u.data()}};
        linear_multi(jobs, 2, tp);
        EXPECT_EQ(g, g2) << "packed " << dtype_name(t) << ", " << n << " token(s)";
        EXPECT_EQ(u, u2) << "packed " << dtype_name(t) << ", " << n << " token(s)";
      }
    }
  }
}

TEST(Linear, PackedRowsEqualScalarTwinBitwise) {
  ThreadPool pool(2);
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    const std::vector<int64_t> long_cols = t == DType::Q8_0 ? std::vector<int64_t>{1600}
                                                              : std::vector<int64_t>{3104, 4448};
    for (int64_t rows : {1, 15, 16, 17, 33, 130, 280}) {
      std::vector<int64_t> all_cols = {32, 64, 96, 160, 1024};
      all_cols.insert(all_cols.end(), long_cols.begin(), long_cols.end());
      for (int64_t cols : all_cols) {
        TestWeight tw = make_weight(t, rows, cols, unsigned(rows * 5 + cols));
        if (!packable(tw.w)) GTEST_SKIP() << "no AVX-512 VNNI";
        const PackedCopy pc = packed_copy(tw.w);
        const Weight& pw = pc.w;
        const bool several = std::find(long_cols.begin(), long_cols.end(), cols) != long_cols.end();
        ASSERT_EQ(packed_panels(pw) > 1, several) << dtype_name(t) << " " << cols << " columns";
        for (int64_t n : kTokens) {
          auto x = rand_x(n * cols, unsigned(7 * n + cols));
          std::vector<float> twin(size_t(n * rows)), y(size_t(n * rows));
          linear_ref_q8(tw.w, x.data(), n, twin.data());
          for (ThreadPool* tp : {&pool, static_cast<ThreadPool*>(nullptr)}) {
            std::fill(y.begin(), y.end(), NAN);
            linear(pw, x.data(), n, y.data(), tp, kAvx512);
            ASSERT_EQ(0, std::memcmp(y.data(), twin.data(), y.size() * 4))
                << dtype_name(t) << " " << rows << "x" << cols << " n " << n;
          }
        }
        if (rows < 17) continue;
        for (int64_t r0 : {int64_t(16), int64_t(5)}) {
          const Weight s = pw.slice_rows(r0, rows - r0);
          EXPECT_EQ(s.packed != nullptr, r0 % 16 == 0 && !several);
          auto x = rand_x(3 * cols, 11);
          std::vector<float> twin(size_t(3 * s.rows)), y(size_t(3 * s.rows));
          linear_ref_q8(tw.w.slice_rows(r0, rows - r0), x.data(), 3, twin.data());
          linear(s, x.data(), 3, y.data(), &pool);
          if (s.packed) {
            ASSERT_EQ(0, std::memcmp(y.data(), twin.data(), y.size() * 4)) << dtype_name(t) << " slice " << r0;
          } else {
            for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], twin[i], 1e-4 * (std::fabs(twin[i]) + 1));
          }
        }
      }
    }
  }
}

// Decode of a thread share longer than its output buffer (run_decode_groups stages 64 groups per stream, then
// copies them to y): 2100 rows are 132 groups on one thread, two streams of 66, the last group 4 rows. The int8
// results equal the scalar twin's, the BF16 / F16 ones the weight's as stored, bit for bit, and no row outside
// the weight is written. Each dtype also with rows long enough for column panels (band by band, the last band
// of one group).
TEST(Linear, DecodeLongSharesStageTheirOutput) {
  ThreadPool pool(2);
  const int64_t rows = 2100;
  const std::pair<DType, int64_t> cases[] = {{DType::Q8_0, 64},   {DType::Q4_0, 64},   {DType::BF16, 40},
                                             {DType::F16, 40},    {DType::Q8_0, 1600}, {DType::Q4_0, 3200},
                                             {DType::BF16, 2100}, {DType::F16, 2100}};
  for (const auto& [t, cols] : cases) {
    TestWeight tw = make_weight(t, rows, cols, unsigned(cols + int(t)));
    if (!packable(tw.w)) GTEST_SKIP() << "no AVX-512 VNNI";
    const PackedCopy pc = packed_copy(tw.w);
    ASSERT_EQ(packed_panels(pc.w) > 1, cols >= 1600) << dtype_name(t);
    auto x = rand_x(cols, 21);
    std::vector<float> want(static_cast<size_t>(rows));
    if (t == DType::Q8_0 || t == DType::Q4_0) {
      linear_ref_q8(tw.w, x.data(), 1, want.data());
    } else {
      linear(tw.w, x.data(), 1, want.data(), nullptr);
    }
    for (ThreadPool* tp : {static_cast<ThreadPool*>(nullptr), &pool}) {
      std::vector<float> y(size_t(rows) + 16, NAN);
      linear(pc.w, x.data(), 1, y.data(), tp, kAvx512);
      ASSERT_EQ(0, std::memcmp(y.data(), want.data(), want.size() * 4)) << dtype_name(t);
      for (size_t i = size_t(rows); i < y.size(); ++i) ASSERT_TRUE(std::isnan(y[i])) << dtype_name(t) << " row " << i;
    }
  }
}

// Decode-sized calls (1-2 tokens over MiBs of packed weights, several jobs, rows not a multiple of 16): the
// threads' ranges are cut into items that shrink towards their ends and are taken from both ends; every row is
// computed once, by whichever thread, with the same bits as one thread alone, for 2 and 3 threads.
TEST(Linear, DecodeItemsCoverEveryRowOnce) {
  TestWeight a = make_weight(DType::Q4_0, 4099, 512, 1), b = make_weight(DType::Q8_0, 1000, 1024, 2),
             c = make_weight(DType::Q4_0, 17, 256, 3), d = make_weight(DType::Q4_0, 333, 3200, 4);
  if (!packable(a.w)) GTEST_SKIP() << "no AVX-512 VNNI";
  const PackedCopy pa = packed_copy(a.w), pb = packed_copy(b.w), pc = packed_copy(c.w), pd = packed_copy(d.w);
  ASSERT_GT(packed_panels(pd.w), 1);  // items of whole bands
  ThreadPool pool2(2), pool3(3);
  for (int64_t n : {1, 2}) {
    auto xa = rand_x(n * 512, 4), xb = rand_x(n * 1024, 5), xc = rand_x(n * 256, 6), xd = rand_x(n * 3200, 7);
    std::vector<float> want[4] = {std::vector<float>(size_t(n * 4099)), std::vector<float>(size_t(n * 1000)),
                                  std::vector<float>(size_t(n * 17)), std::vector<float>(size_t(n * 333))};
    linear(pa.w, xa.data(), n, want[0].data(), nullptr, kAvx512);
    linear(pb.w, xb.data(), n, want[1].data(), nullptr, kAvx512);
    linear(pc.w, xc.data(), n, want[2].data(), nullptr, kAvx512);
    linear(pd.w, xd.data(), n, want[3].data(), nullptr, kAvx512);
    for (ThreadPool* tp : {&pool2, &pool3}) {
      std::vector<float> y[4];
      for (int i = 0; i < 4; ++i) y[i].assign(want[i].size(), NAN);
      const LinearJob jobs[] = {{pa.w, xa.data(), n, y[0].data()}, {pb.w, xb.data(), n, y[1].data()},
                                {pc.w, xc.data(), n, y[2].data()}, {pd.w, xd.data(), n, y[3].data()}};
      linear_multi(jobs, 4, tp, kAvx512);
      for (int i = 0; i < 4; ++i)
        ASSERT_EQ(0, std::memcmp(y[i].data(), want[i].data(), y[i].size() * 4))
            << "job " << i << ", " << n << " token(s), " << tp->size() << " threads";
    }
  }
}

// Packed BF16 / F16 rows (pack_rows16): decode over the packed groups and batches over row tiles converted from
// them give exactly the bits of the same weight read as stored, for any row count (padded last group), column
// count (padded last chunk), token count, thread count and 16-aligned row slice (of rows in column panels: read
// as stored).
TEST(Linear, PackedHalfRowsEqualRowsAsStoredBitwise) {
  ThreadPool pool(2);
  for (DType t : {DType::BF16, DType::F16}) {
    for (int64_t rows : {1, 2, 15, 16, 17, 33, 130}) {
      // From 130x320 on: decode's two streams, where taken; 2100 columns: column panels (the last one's last
      // chunk partial).
      for (int64_t cols : {1, 16, 23, 40, 320, 1030, 2100}) {
        TestWeight tw = make_weight(t, rows, cols, unsigned(rows * 7 + cols));
        if (!packable(tw.w)) GTEST_SKIP() << "no AVX-512";
        const PackedCopy pc = packed_copy(tw.w);
        const Weight& pw = pc.w;
        ASSERT_EQ(packed_panels(pw) > 1, cols > 2048) << dtype_name(t) << " " << cols << " columns";
        for (int64_t n : kTokens) {
          auto x = rand_x(n * cols, unsigned(3 * n + cols));
          std::vector<float> want(size_t(n * rows)), y(size_t(n * rows));
          linear(tw.w, x.data(), n, want.data(), nullptr);
          for (ThreadPool* tp : {&pool, static_cast<ThreadPool*>(nullptr)}) {
            std::fill(y.begin(), y.end(), NAN);
            linear(pw, x.data(), n, y.data(), tp, kAvx512);
            ASSERT_EQ(0, std::memcmp(y.data(), want.data(), y.size() * 4))
                << dtype_name(t) << " " << rows << "x" << cols << " n " << n;
          }
          // A token alone (decode, from the packed groups) equals the same token in the batch.
          std::vector<float> one(static_cast<size_t>(rows));
          linear(pw, x.data() + (n - 1) * cols, 1, one.data(), &pool);
          ASSERT_EQ(0, std::memcmp(one.data(), want.data() + (n - 1) * rows, one.size() * 4)) << dtype_name(t);
        }
        if (rows < 17) continue;
        const Weight s = pw.slice_rows(16, rows - 16);
        ASSERT_EQ(s.packed != nullptr, packed_panels(pw) == 1);
        for (int64_t n : {int64_t(1), int64_t(3)}) {
          auto x = rand_x(n * cols, 11);
          std::vector<float> want(size_t(n * s.rows)), y(size_t(n * s.rows));
          linear(tw.w.slice_rows(16, rows - 16), x.data(), n, want.data(), nullptr);
          linear(s, x.data(), n, y.data(), &pool);
          ASSERT_EQ(0, std::memcmp(y.data(), want.data(), y.size() * 4)) << dtype_name(t) << " slice, n " << n;
        }
      }
    }
  }
}

// AMX bf16 tiles over packed Q8_0 / Q4_0 / BF16 / F16 rows: each output is the sum of the products of the weights
// in bf16 (quantized weights as bf16(q · d)) and x (quantized weights: x rounded to bf16; float weights: x exactly,
// in three bf16 parts), to f32 summation error, for odd row counts
// (padded last group), columns (a half tile of 16 for BF16 / F16), token counts (padded last tile) and panels of
// several row groups; a token gives the same bits in any batch of kAmxMinTokens or more and on any thread count.
TEST(Linear, AmxTilesMatchBf16Reference) {
  if (linear_simd(LinearOptions{Simd::Amx, true}) != Simd::Amx) GTEST_SKIP() << "no AMX";
  auto bf = [](float v) { return bf16_to_f32(f32_to_bf16(v)); };
  ThreadPool pool(2);
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::BF16, DType::F16}) {
    const bool quant = t == DType::Q8_0 || t == DType::Q4_0;
    for (int64_t rows : {16, 17, 50, 300}) {
      for (int64_t cols : quant ? std::vector<int64_t>{32, 96, 2080} : std::vector<int64_t>{16, 40, 96, 1000}) {
        TestWeight tw = make_weight(t, rows, cols, unsigned(rows * 3 + cols));
        const PackedCopy pc = packed_copy(tw.w);
        std::vector<float> w(size_t(rows * cols));
        dequantize_rows(tw.w, 0, rows, w.data());
        for (float& v : w) v = bf(v);
        for (int64_t n : {kAmxMinTokens, int64_t(17), int64_t(45), int64_t(64)}) {
          auto x = rand_x(n * cols, unsigned(5 * n + cols));
          std::vector<float> y(size_t(n * rows), NAN), y1(size_t(n * rows), NAN);
          linear(pc.w, x.data(), n, y.data(), &pool);
          linear(pc.w, x.data(), n, y1.data(), nullptr);
          ASSERT_EQ(0, std::memcmp(y.data(), y1.data(), y.size() * 4)) << dtype_name(t) << " threads";
          for (int64_t tok = 0; tok < n; ++tok)
            for (int64_t r = 0; r < rows; ++r) {
              double want = 0, mag = 0;
              for (int64_t c = 0; c < cols; ++c) {
                const float xv = x[size_t(tok * cols + c)];
                const double p = double(quant ? bf(xv) : xv) * w[size_t(r * cols + c)];
                want += p;
                mag += std::fabs(p);
              }
              ASSERT_NEAR(y[size_t(tok * rows + r)], want, 2e-6 * mag + 1e-30)
                  << dtype_name(t) << " " << rows << "x" << cols << " n " << n << " token " << tok << " row " << r;
            }
          // The last token in a batch of exactly kAmxMinTokens (the others different) gives the same bits.
          std::vector<float> xs = rand_x(kAmxMinTokens * cols, 99), ys(size_t(kAmxMinTokens * rows));
          std::copy(x.end() - cols, x.end(), xs.end() - cols);
          linear(pc.w, xs.data(), kAmxMinTokens, ys.data(), &pool);
          ASSERT_EQ(0, std::memcmp(ys.data() + (kAmxMinTokens - 1) * rows, y.data() + (n - 1) * rows, size_t(rows) * 4))
              << dtype_name(t) << " batch invariance, n " << n;
        }
      }
    }
  }
}

// vdpbf16ps over packed BF16 / F16 rows whose batches may round x to bf16 (Weight::bf16_acts, AVX512-BF16): each
// output is the sum of the exact products of bf16(weight) and bf16(x), to f32 summation error, for odd row counts
// (padded last group), columns (a half column tile), token counts (a partial register tile, several token blocks)
// and several panels; a token gives the same bits in any batch of kAmxMinTokens or more and on any thread count.
// Below kAmxMinTokens tokens, and without the flag, the f32 kernels run (bit-identical to the weight as stored).
TEST(Linear, Dpbf16MatchesBf16Reference) {
  if (!cpu_features().avx512bf16 || linear_simd(kAvx512) != Simd::Avx512) GTEST_SKIP() << "no AVX512-BF16";
  auto bf = [](float v) { return bf16_to_f32(f32_to_bf16(v)); };
  ThreadPool pool(2);
  for (DType dt : {DType::BF16, DType::F16}) {
    for (int64_t rows : {16, 17, 50, 300}) {
      for (int64_t cols : {16, 40, 96, 1000}) {
        SCOPED_TRACE(dtype_name(dt));
        TestWeight tw = make_weight(dt, rows, cols, unsigned(rows * 5 + cols));
        PackedCopy pc = packed_copy(tw.w);
        pc.w.bf16_acts = true;
        std::vector<float> w(size_t(rows * cols));
        dequantize_rows(tw.w, 0, rows, w.data());
        for (float& v : w) v = bf(v);  // F16 weights go in as bf16 (BF16 ones already are)
        for (int64_t n : {kAmxMinTokens, int64_t(17), int64_t(45), int64_t(300)}) {
          auto x = rand_x(n * cols, unsigned(3 * n + cols));
          std::vector<float> y(size_t(n * rows), NAN), y1(size_t(n * rows), NAN);
          linear(pc.w, x.data(), n, y.data(), &pool, kAvx512);
          linear(pc.w, x.data(), n, y1.data(), nullptr, kAvx512);
          ASSERT_EQ(0, std::memcmp(y.data(), y1.data(), y.size() * 4)) << rows << "x" << cols << " threads";
          for (int64_t tok = 0; tok < n; ++tok)
            for (int64_t r = 0; r < rows; ++r) {
              double want = 0, mag = 0;
              for (int64_t c = 0; c < cols; ++c) {
                const double p = double(bf(x[size_t(tok * cols + c)])) * w[size_t(r * cols + c)];
                want += p;
                mag += std::fabs(p);
              }
              ASSERT_NEAR(y[size_t(tok * rows + r)], want, 2e-6 * mag + 1e-30)
                  << rows << "x" << cols << " n " << n << " token " << tok << " row " << r;
            }
          // The last token in a batch of exactly kAmxMinTokens (the others different) gives the same bits.
          std::vector<float> xs = rand_x(kAmxMinTokens * cols, 99), ys(size_t(kAmxMinTokens * rows));
          std::copy(x.end() - cols, x.end(), xs.end() - cols);
          linear(pc.w, xs.data(), kAmxMinTokens, ys.data(), &pool, kAvx512);
          ASSERT_EQ(0, std::memcmp(ys.data() + (kAmxMinTokens - 1) * rows, y.data() + (n - 1) * rows, size_t(rows) * 4))
              << rows << "x" << cols << " batch invariance, n " << n;
        }
        // Smaller batches, and the same weight without the flag, run the f32 kernels: the bits of the rows as stored.
        for (int64_t n : {int64_t(1), kAmxMinTokens - 1, kAmxMinTokens}) {
          auto x = rand_x(n * cols, unsigned(n + cols));
          std::vector<float> want(size_t(n * rows)), y(size_t(n * rows));
          linear(tw.w, x.data(), n, want.data(), nullptr, kAvx512);
          Weight exact = pc.w;
          exact.bf16_acts = n != kAmxMinTokens;  // below 16 tokens with the flag, 16 without it
          linear(exact, x.data(), n, y.data(), &pool, kAvx512);
          ASSERT_EQ(0, std::memcmp(y.data(), want.data(), y.size() * 4)) << rows << "x" << cols << " f32 path, n " << n;
        }
      }
    }
  }
}
