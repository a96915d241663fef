// Dispatch of linear layers. For now: rows split over threads, each thread dequantizes a row once and uses it
// for every token (the row stays in L1). SIMD variants replace the inner loops per dtype.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/linear.h"

namespace dm {

Simd linear_simd(const LinearOptions&) { return Simd::Scalar; }

void linear(const Weight& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  linear(w, x, n_tokens, y, pool, LinearOptions{});
}

void linear(const Weight& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool, const LinearOptions&) {
  DM_CHECK(linear_supports(w.dtype), "linear: unsupported dtype ", dtype_name(w.dtype));
  auto work = [&](int64_t r0, int64_t r1) {
    std::vector<float> row(size_t(w.cols));
    for (int64_t r = r0; r < r1; ++r) {
      dequantize_rows(w, r, r + 1, row.data());
      for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = x + t * w.cols;
        float acc = 0;
        for (int64_t c = 0; c < w.cols; ++c) acc += xt[c] * row[size_t(c)];
        y[t * w.rows + r] = acc;
      }
    }
  };
  if (pool && pool->size() > 1 && w.rows >= 16) {
    pool->parallel_for(w.rows, work);
  } else {
    work(0, w.rows);
  }
}

}  // namespace dm
