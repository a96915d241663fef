// GGML block formats: K-quant dequantization of hand-built blocks (scales/mins packed by hand from the layout),
// bit-exact Q8_0 / Q4_0 quantization of known rows, and f32 -> Q -> f32 round trips within the format's bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/linear.h"
#include "kernels/linear_kernels.h"
#include "kernels/quant.h"

using namespace dm;

namespace {

// Packs 8 six-bit scales and mins the way Q4_K/Q5_K store them: bytes 0-3 hold sc[0..3] with the top 2 bits of
// sc[4..7] in bits 6-7; bytes 4-7 hold m[0..3] with the top bits of m[4..7]; bytes 8-11 hold the low nibbles of
// sc[4..7] (low) and m[4..7] (high).
void pack_k_scales(const int sc[8], const int m[8], uint8_t out[12]) {
  for (int j = 0; j < 4; ++j) {
    out[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = uint8_t(m[j] | ((m[j + 4] >> 4) << 6));
    out[j + 8] = uint8_t((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

const int kSc[8] = {1, 2, 3, 4, 17, 33, 63, 5};
const int kMin[8] = {0, 1, 2, 3, 18, 40, 7, 63};

}  // namespace

TEST(Quant, KScaleMinUnpacksWhatWasPacked) {
  uint8_t s[12];
  pack_k_scales(kSc, kMin, s);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    k_scale_min(j, s, sc, m);
    EXPECT_EQ(sc, kSc[j]) << j;
    EXPECT_EQ(m, kMin[j]) << j;
  }
}

TEST(Quant, Q4KHandBuiltBlock) {
  BlockQ4_K b{};
  b.d = f32_to_f16(0.5f);
  b.dmin = f32_to_f16(0.25f);
  pack_k_scales(kSc, kMin, b.scales);
  // Element e: sub-block j = e/32, position l = e%32; stored in qs[32·(j/2) + l], low nibble for even j.
  auto q_of = [](int e) { return (e * 7 + 3) % 16; };
  for (int e = 0; e < 256; ++e) {
    int j = e / 32, l = e % 32;
    b.qs[32 * (j / 2) + l] |= uint8_t(q_of(e) << (j % 2 ? 4 : 0));
  }
  std::vector<float> out(256);
  dequantize_row_q4_k(&b, out.data(), 256);
  for (int e = 0; e < 256; ++e) {
    int j = e / 32;
    EXPECT_FLOAT_EQ(out[size_t(e)], 0.5f * float(kSc[j]) * float(q_of(e)) - 0.25f * float(kMin[j])) << e;
  }
  // Spot values worked out by hand: e=0: q=3, sc=1, m=0 -> 1.5; e=200 (j=6): q=(1403)%16=11 -> 0.5·63·11-0.25·7.
  EXPECT_FLOAT_EQ(out[0], 1.5f);
  EXPECT_FLOAT_EQ(out[200], 346.5f - 1.75f);
  // e=255 (j=7): q=(1788)%16=12 -> 0.5·5·12 - 0.25·63 = 14.25
  EXPECT_FLOAT_EQ(out[255], 14.25f);
}

TEST(Quant, Q5KHandBuiltBlock) {
  BlockQ5_K b{};
  b.d = f32_to_f16(0.125f);
  b.dmin = f32_to_f16(1.0f);
  pack_k_scales(kSc, kMin, b.scales);
  auto q_of = [](int e) { return (e * 11 + 5) % 32; };
  for (int e = 0; e < 256; ++e) {
    int j = e / 32, l = e % 32, q = q_of(e);
    b.qs[32 * (j / 2) + l] |= uint8_t((q & 15) << (j % 2 ? 4 : 0));
    if (q & 16) b.qh[l] |= uint8_t(1u << j);  // the fifth bit of sub-block j lives in bit j of qh[l]
  }
  std::vector<float> out(256);
  dequantize_row_q5_k(&b, out.data(), 256);
  for (int e = 0; e < 256; ++e) {
    int j = e / 32;
    EXPECT_FLOAT_EQ(out[size_t(e)], 0.125f * float(kSc[j]) * float(q_of(e)) - float(kMin[j])) << e;
  }
  // e=161 (j=5): q=(1776)%32=16 -> 0.125·33·16 - 40 = 26
  EXPECT_FLOAT_EQ(out[161], 26.0f);
}

TEST(Quant, Q6KHandBuiltBlock) {
  BlockQ6_K b{};
  b.d = f32_to_f16(0.5f);
  for (int j = 0; j < 16; ++j) b.scales[j] = int8_t(j % 2 ? -(j + 1) : j + 1);
  // Element e: half h = e/128, i = e%128, s = i/32, l = i%32: low 4 bits in ql[64h + l + 32·(s&1)] (low nibble
  // for s < 2), high 2 bits in qh[32h + l] at bits 2s, 2s+1; scale scales[e/16].
  auto q_of = [](int e) { return (e * 13 + 7) % 64; };
  for (int e = 0; e < 256; ++e) {
    int h = e / 128, i = e % 128, s = i / 32, l = i % 32, q = q_of(e);
    b.ql[64 * h + l + 32 * (s & 1)] |= uint8_t((q & 15) << (s >= 2 ? 4 : 0));
    b.qh[32 * h + l] |= uint8_t((q >> 4) << (2 * s));
  }
  std::vector<float> out(256);
  dequantize_row_q6_k(&b, out.data(), 256);
  for (int e = 0; e < 256; ++e)
    EXPECT_FLOAT_EQ(out[size_t(e)], 0.5f * float(b.scales[e / 16]) * float(q_of(e) - 32)) << e;
  // e=0: q=7, scale 1 -> 0.5·(7-32) = -12.5; e=17: q=(228)%64=36, scale -2 -> 0.5·-2·4 = -4
  EXPECT_FLOAT_EQ(out[0], -12.5f);
  EXPECT_FLOAT_EQ(out[17], -4.0f);
}

TEST(Quant, Q8_0KnownBlockBitExact) {
  // x = 4i - 63.5 (+0.25 for odd i): amax = 63.5, d = 0.5 exactly, x/d = 8i - 127 (+0.5): ties round away from 0.
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = float(4 * i) - 63.5f + (i % 2 ? 0.25f : 0.0f);
  BlockQ8_0 b;
  quantize_row_q8_0(x, &b, 32);
  EXPECT_EQ(b.d, 0x3800);  // fp16 0.5
  for (int i = 0; i < 32; ++i) {
    int base = 8 * i - 127;
    int want = i % 2 ? (base < 0 ? base : base + 1) : base;  // base + 0.5 rounds to base+1 if > 0, else base
    EXPECT_EQ(int(b.qs[i]), want) << i;
  }
  EXPECT_EQ(int(b.qs[1]), -119);
  EXPECT_EQ(int(b.qs[31]), 122);
}

TEST(Quant, Q4_0KnownBlocksBitExact) {
  // Largest magnitude negative: x = i/2 - 8, max = -8, d = 1: q = min(15, int(x + 8.5)) = min(15, (i+1)/2).
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = float(i) / 2 - 8;
  BlockQ4_0 b;
  quantize_row_q4_0(x, &b, 32);
  EXPECT_EQ(b.d, 0x3C00);
  auto q = [](int i) { return std::min(15, (i + 1) / 2); };
  for (int j = 0; j < 16; ++j) EXPECT_EQ(int(b.qs[j]), q(j) | (q(j + 16) << 4)) << j;
  EXPECT_EQ(int(b.qs[0]), 0x80);  // q0 = 0, q16 = 8
  EXPECT_EQ(int(b.qs[15]), 0xF8);  // q15 = 8, q31 = 15 (clamped from 16)
  // Largest magnitude positive: x = 8 - i/2, d = -1; q = min(15, int(8.5 - x)) = the same codes.
  for (int i = 0; i < 32; ++i) x[i] = 8 - float(i) / 2;
  quantize_row_q4_0(x, &b, 32);
  EXPECT_EQ(b.d, 0xBC00);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(int(b.qs[j]), q(j) | (q(j + 16) << 4)) << j;
  float y[32];
  dequantize_row_q4_0(&b, y, 32);
  EXPECT_EQ(y[0], 8.0f);     // (0 - 8)·-1
  EXPECT_EQ(y[31], -7.0f);   // (15 - 8)·-1: the clamp costs one step at the far end
}

TEST(Quant, RoundTripsWithinBounds) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n = 32 * 40;
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = nd(rng) * (1 + float(rng() % 100));
  for (int64_t i = 0; i < 32; ++i) x[size_t(i)] = 0;  // an all-zero block must survive (d = 0)
  std::vector<BlockQ8_0> q8(n / 32);
  quantize_row_q8_0(x.data(), q8.data(), n);
  dequantize_row_q8_0(q8.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[size_t(b * 32 + i)]));
    const float d = amax / 127;
    for (int i = 0; i < 32; ++i)
      ASSERT_LE(std::fabs(x[size_t(b * 32 + i)] - y[size_t(b * 32 + i)]), d * (0.5f + 127.0f / 2048) + 1e-30f);
  }
  std::vector<BlockQ4_0> q4(n / 32);
  quantize_row_q4_0(x.data(), q4.data(), n);
  dequantize_row_q4_0(q4.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[size_t(b * 32 + i)]));
    const float d = amax / 8;
    for (int i = 0; i < 32; ++i)
      ASSERT_LE(std::fabs(x[size_t(b * 32 + i)] - y[size_t(b * 32 + i)]), d * (1.0f + 8.0f / 2048) + 1e-30f);
  }
  // Activation quantizer: |x - d·q| <= d/2 (f32 scale, no fp16 loss).
  std::vector<int8_t> qa(n);
  std::vector<float> da(n / 32);
  quantize_activations_q8(x.data(), n, qa.data(), da.data());
  for (int64_t i = 0; i < n; ++i)
    ASSERT_LE(std::fabs(x[size_t(i)] - da[size_t(i / 32)] * qa[size_t(i)]), da[size_t(i / 32)] * 0.5001f);
}

TEST(Quant, DequantizeRowsMatchesRowFunctions) {
  // dequantize_rows() over a Q4_0 weight of 3 rows x 64 = rows of dequantize_row_q4_0.
  std::mt19937 rng(3);
  std::vector<float> x(3 * 64);
  for (auto& v : x) v = float(int(rng() % 200) - 100) / 7;
  std::vector<BlockQ4_0> blocks(6);
  quantize_row_q4_0(x.data(), blocks.data(), 3 * 64);
  Weight w{DType::Q4_0, 3, 64, blocks.data(), nullptr};
  std::vector<float> a(2 * 64), b(2 * 64);
  dequantize_rows(w, 1, 3, a.data());
  dequantize_row_q4_0(blocks.data() + 2, b.data(), 2 * 64);
  EXPECT_EQ(a, b);
}

TEST(Quant, SimdDequantizationIsBitExact) {
  if (linear_simd(LinearOptions{Simd::Avx512, false}) != Simd::Avx512) GTEST_SKIP() << "no AVX-512";
  std::mt19937 rng(11);
  for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const int64_t rows = 3, cols = 512;
    std::vector<uint8_t> bytes(dtype_bytes(t, cols) * rows);
    for (auto& b : bytes) b = uint8_t(rng());
    const size_t bs = dtype_bytes(t, 256);
    for (size_t off = 0; off < bytes.size(); off += bs) {  // finite fp16 super-block scales
      uint16_t d = f32_to_f16(0.001f * float(1 + rng() % 100)), dmin = f32_to_f16(0.003f);
      std::memcpy(&bytes[off + (t == DType::Q6_K ? 208 : 0)], &d, 2);
      if (t != DType::Q6_K) std::memcpy(&bytes[off + 2], &dmin, 2);
    }
    Weight w{t, rows, cols, bytes.data(), nullptr};
    std::vector<float> a(size_t(rows * cols)), b(size_t(rows * cols));
    dequantize_rows(w, 0, rows, a.data());
    kern::dequantize_rows_avx512(w, 0, rows, b.data());
    ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << dtype_name(t);
  }
}
