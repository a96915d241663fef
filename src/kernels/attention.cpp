#include "kernels/attention.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/linear.h"
#include "kernels/ops.h"

namespace dm {

void attend_causal_head(const float* q, int64_t q_stride, int64_t n_new, int64_t n_past, const float* k, int64_t dk,
                        const float* v, int64_t dv, float scale, float* out, int64_t out_stride) {
  constexpr int64_t kBlock = 64;
  const int64_t n_ctx = n_past + n_new;
  std::vector<float> qb(size_t(kBlock * dk)), sc(size_t(kBlock * n_ctx)), vt(size_t(dv * n_ctx)), ob(size_t(kBlock * dv));
  for (int64_t i0 = 0; i0 < n_new; i0 += kBlock) {
    const int64_t nb = std::min(kBlock, n_new - i0), seen = n_past + i0 + nb;  // positions [0, seen)
    for (int64_t d = 0; d < dv; ++d)  // Vᵀ [dv, seen]
      for (int64_t j = 0; j < seen; ++j) vt[size_t(d * seen + j)] = v[j * dv + d];
    for (int64_t i = 0; i < nb; ++i) std::memcpy(&qb[size_t(i * dk)], q + (i0 + i) * q_stride, size_t(dk) * sizeof(float));
    linear(Weight{DType::F32, seen, dk, k, nullptr}, qb.data(), nb, sc.data(), nullptr);
    for (int64_t i = 0; i < nb; ++i) {
      float* row = &sc[size_t(i * seen)];
      const int64_t p = n_past + i0 + i;
      for (int64_t j = 0; j <= p; ++j) row[j] *= scale;
      softmax(row, p + 1);
      std::fill(row + p + 1, row + seen, 0.0f);
    }
    linear(Weight{DType::F32, dv, seen, vt.data(), nullptr}, sc.data(), nb, ob.data(), nullptr);
    for (int64_t i = 0; i < nb; ++i)
      std::memcpy(out + (i0 + i) * out_stride, &ob[size_t(i * dv)], size_t(dv) * sizeof(float));
  }
}

}  // namespace dm
