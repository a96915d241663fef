// attend_causal_head against the formula in double precision, over block boundaries, a cached prefix and strides;
// attend_shared_rows against the formula over head counts that exercise every group size, odd widths (the lane
// tails), odd row counts and position blocks, values in the key rows (MLA) or apart (GQA),
// and bitwise against itself one head at a time (the grouping changes nothing).
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

TEST(Attention, SharedRowsMatchFormulaAndDoNotDependOnGrouping) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto [dk, dv] : {std::pair<int64_t, int64_t>{576, 512}, {37, 19}, {16, 16}}) {
    for (int64_t H : {1, 3, 5, 8, 13, 16}) {
      for (auto [n, separate] : {std::pair<int64_t, bool>{1, false}, {2, true}, {3, false}, {17, true}, {64, false},
                                 {130, true}}) {
        const int64_t qs = dk + 3, os = dv + 5, rs = dk + 7;  // strides wider than the rows
        std::vector<float> cache(size_t(n * rs)), q(size_t(H * qs)), out(size_t(H * os), NAN), one(static_cast<size_t>(dv));
        for (std::vector<float>* x : {&cache, &q})
          for (float& e : *x) e = nd(rng) * 0.2f;
        std::vector<float> vcache(size_t(n * rs));
        for (float& e : vcache) e = nd(rng);
        std::vector<const float*> rows(static_cast<size_t>(n)), vrows(static_cast<size_t>(n));
        for (int64_t j = n - 1; j >= 0; --j) rows[size_t(n - 1 - j)] = &cache[size_t(j * rs)];  // out of order
        for (int64_t j = 0; j < n; ++j) vrows[size_t(j)] = separate ? &vcache[size_t(j * rs)] : rows[size_t(j)];
        const float scale = 0.25f;
        attend_shared_rows(q.data(), qs, H, rows.data(), vrows.data(), n, dk, dv, scale, out.data(), os);
        for (int64_t h = 0; h < H; ++h) {
          std::vector<double> s(static_cast<size_t>(n));
          double m = -INFINITY, sum = 0;
          for (int64_t j = 0; j < n; ++j) {
            double d = 0;
            for (int64_t c = 0; c < dk; ++c) d += double(q[size_t(h * qs + c)]) * rows[size_t(j)][c];
            s[size_t(j)] = d * scale;
            m = std::max(m, s[size_t(j)]);
          }
          for (double& x : s) sum += (x = std::exp(x - m));
          attend_shared_rows(&q[size_t(h * qs)], qs, 1, rows.data(), vrows.data(), n, dk, dv, scale, one.data(), dv);
          for (int64_t c = 0; c < dv; ++c) {
            double o = 0;
            for (int64_t j = 0; j < n; ++j) o += s[size_t(j)] / sum * vrows[size_t(j)][c];
            ASSERT_NEAR(out[size_t(h * os + c)], o, 1e-5) << "dk " << dk << " H " << H << " n " << n << " separate " << separate << " h " << h;
            ASSERT_EQ(out[size_t(h * os + c)], one[size_t(c)]) << "dk " << dk << " H " << H << " n " << n << " separate " << separate << " h " << h;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace dm
