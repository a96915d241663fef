// attend_causal_head against the formula in double precision, over block boundaries, a cached prefix and strides.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace dm {
namespace {

TEST(Attention, CausalHeadMatchesFormula) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t dk = 24, dv = 16, qs = 40, os = 20;  // strides wider than the rows
  for (int64_t n_past : {0, 5}) {
    for (int64_t n_new : {1, 64, 70, 130}) {
      const int64_t n = n_past + n_new;
      std::vector<float> k(size_t(n * dk)), v(size_t(n * dv)), q(size_t(n_new * qs)), out(size_t(n_new * os), NAN);
      for (std::vector<float>* x : {&k, &v, &q})
        for (float& e : *x) e = nd(rng);
      const float scale = 0.3f;
      attend_causal_head(q.data(), qs, n_new, n_past, k.data(), dk, v.data(), dv, scale, out.data(), os);
      for (int64_t i = 0; i < n_new; ++i) {
        const int64_t p = n_past + i;
        std::vector<double> s(size_t(p + 1));
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j <= p; ++j) {
          double d = 0;
          for (int64_t c = 0; c < dk; ++c) d += double(q[size_t(i * qs + c)]) * k[size_t(j * dk + c)];
          s[size_t(j)] = d * scale;
          m = std::max(m, s[size_t(j)]);
        }
        for (double& x : s) sum += (x = std::exp(x - m));
        for (int64_t c = 0; c < dv; ++c) {
          double o = 0;
          for (int64_t j = 0; j <= p; ++j) o += s[size_t(j)] / sum * v[size_t(j * dv + c)];
          ASSERT_NEAR(out[size_t(i * os + c)], o, 1e-5) << "n_past " << n_past << " n_new " << n_new << " i " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace dm
