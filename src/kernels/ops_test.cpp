// Element-wise ops against double-precision formulas, and linear() against linear_ref().
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/linear.h"
#include "kernels/ops.h"

using namespace dm;

static std::vector<float> randv(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(Ops, RmsNormSoftmaxSilu) {
  for (int64_t n : {1, 7, 64, 1000}) {
    auto x = randv(size_t(n), 1), w = randv(size_t(n), 2);
    std::vector<float> out(static_cast<size_t>(n));
    rms_norm(x.data(), w.data(), n, 1e-6f, out.data());
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    double inv = 1.0 / std::sqrt(ss / double(n) + 1e-6);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(out[size_t(i)], x[size_t(i)] * inv * w[size_t(i)], 1e-5);

    std::vector<float> s = x;
    softmax(s.data(), n);
    double z = 0;
    for (float v : x) z += std::exp(double(v));
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(s[size_t(i)], std::exp(double(x[size_t(i)])) / z, 1e-6);

    silu_mul(x.data(), w.data(), n, out.data());
    for (int64_t i = 0; i < n; ++i) {
      double g = x[size_t(i)];
      EXPECT_NEAR(out[size_t(i)], g / (1 + std::exp(-g)) * w[size_t(i)], 1e-5);
    }
  }
}

// silu with its own e^-x: within a few ulp of the formula in double over the whole range (the argument clamp
// included), each value independent of where it sits in the array, aliasing allowed, NaN passed on.
TEST(Ops, SiluMulMatchesFormulaEverywhere) {
  std::vector<float> g, u;
  for (float v = -120.0f; v <= 120.0f; v += 0.0137f) g.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 87.0f, -87.0f, 88.5f, -88.5f, 1e30f, -1e30f}) g.push_back(v);
  for (size_t i = 0; i < g.size(); ++i) u.push_back(float(int(i * 7919 % 2001) - 1000) / 250.0f);
  const int64_t n = int64_t(g.size());
  std::vector<float> out(g.size());
  silu_mul(g.data(), u.data(), n, out.data());
  for (size_t i = 0; i < g.size(); ++i) {
    const double want = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * double(u[i]);
    ASSERT_NEAR(out[i], want, 4e-7 * std::fabs(want) + 1e-35) << "g " << g[i] << " u " << u[i];
  }
  for (int64_t off : {1, 5, 15, 17}) {  // shifted starts and lengths: the same value gives the same bits
    std::vector<float> part(size_t(n - off));
    silu_mul(g.data() + off, u.data() + off, n - off - 3, part.data());
    for (int64_t i = 0; i < n - off - 3; ++i) ASSERT_EQ(part[size_t(i)], out[size_t(i + off)]) << off;
  }
  std::vector<float> alias = g;
  silu_mul(alias.data(), u.data(), n, alias.data());
  ASSERT_EQ(0, std::memcmp(alias.data(), out.data(), out.size() * sizeof(float)));
  const float nan = std::nanf(""), one = 1.0f;
  float o = 0;
  silu_mul(&nan, &one, 1, &o);
  EXPECT_TRUE(std::isnan(o));
}

// softmax with exp_lanes: the formula in double for wide spreads and every tail length; -inf scores get 0.
TEST(Ops, SoftmaxMatchesFormulaWithWideSpreads) {
  for (int64_t n : {1, 2, 15, 16, 17, 33, 100, 1000}) {
    for (float spread : {1.0f, 30.0f, 300.0f}) {
      auto x = randv(size_t(n), unsigned(n * 3 + int(spread)), spread);
      if (n > 3) x[2] = -std::numeric_limits<float>::infinity();
      std::vector<float> p = x;
      softmax(p.data(), n);
      double m = -INFINITY, z = 0;
      for (float v : x) m = std::max(m, double(v));
      for (float v : x) z += std::exp(double(v) - m);
      for (int64_t i = 0; i < n; ++i) {
        // x - m is rounded to float first: a relative error of up to |x - m|·2^-24 before any e^x.
        const double d = double(x[size_t(i)]) - m, want = std::exp(d) / z;
        if (std::isinf(d)) continue;  // the -inf score: checked below
        ASSERT_NEAR(p[size_t(i)], want, (1e-6 + 1.2e-7 * std::fabs(d)) * want + 1e-30)
            << "n " << n << " spread " << spread << " i " << i;
      }
      if (n > 3) {
        EXPECT_EQ(p[2], 0.0f);
      }
    }
  }
}

TEST(Ops, RopeRotatesPairs) {
  std::vector<float> x = {1, 2, 3, 4}, y = x;
  float c[2] = {std::cos(0.5f), std::cos(0.25f)}, s[2] = {std::sin(0.5f), std::sin(0.25f)};
  rope_adjacent(x.data(), 4, c, s);
  EXPECT_NEAR(x[0], 1 * c[0] - 2 * s[0], 1e-6);
  EXPECT_NEAR(x[1], 1 * s[0] + 2 * c[0], 1e-6);
  EXPECT_NEAR(x[3], 3 * s[1] + 4 * c[1], 1e-6);
  rope_halves(y.data(), 4, c, s);
  EXPECT_NEAR(y[0], 1 * c[0] - 3 * s[0], 1e-6);
  EXPECT_NEAR(y[2], 1 * s[0] + 3 * c[0], 1e-6);
  EXPECT_NEAR(y[3], 2 * s[1] + 4 * c[1], 1e-6);
}

TEST(Linear, MatchesReferenceForPlainDtypes) {
  ThreadPool pool(2);
  for (auto [rows, cols, n] : {std::tuple{1, 1, 1}, {37, 129, 3}, {130, 257, 5}, {256, 64, 17}}) {
    auto wf = randv(size_t(rows * cols), 3);
    auto x = randv(size_t(n * cols), 4);
    std::vector<uint16_t> wb(wf.size()), wh(wf.size());
    for (size_t i = 0; i < wf.size(); ++i) wb[i] = f32_to_bf16(wf[i]), wh[i] = f32_to_f16(wf[i]);
    std::vector<uint8_t> w8(wf.size());
    for (size_t i = 0; i < wf.size(); ++i) w8[i] = f32_to_f8_e4m3(wf[i] * 4);
    int64_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
    auto scales = randv(size_t(sr * sc), 5, 0.1f);
    Weight ws[] = {{DType::F32, rows, cols, wf.data(), nullptr},
                   {DType::BF16, rows, cols, wb.data(), nullptr},
                   {DType::F16, rows, cols, wh.data(), nullptr},
                   {DType::F8_E4M3, rows, cols, w8.data(), scales.data()}};
    for (const Weight& w : ws) {
      std::vector<float> y(size_t(n * rows)), yr(size_t(n * rows));
      linear(w, x.data(), n, y.data(), &pool);
      linear_ref(w, x.data(), n, yr.data());
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(y[i], yr[i], 1e-4 * (1 + std::fabs(yr[i]))) << dtype_name(w.dtype) << " " << rows << "x" << cols;
    }
  }
}
