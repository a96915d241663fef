// Element-wise ops. Sums run in 16 float lanes (lane l takes elements l, l+16, ...; the lanes are added in a fixed
// tree at the end, then the tail in order), which the compiler vectorizes without reordering anything: results
// depend neither on how many tokens are in a batch (batch invariance) nor on alignment. The hot ones are compiled
// for AVX-512 and AVX2 as well, picked at load by the CPU (function multiversioning).
#include "kernels/ops.h"

#include <cmath>

#include "kernels/clones.h"

namespace dm {

namespace {
constexpr int kLanes = 16;

inline float reduce_lanes(float* acc) {
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}
}  // namespace

DM_CLONES void rms_norm(const float* x, const float* w, int64_t n, float eps, float* out) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l] * x[i + l];
  float ss = reduce_lanes(acc);
  for (; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / float(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::fmax(m, x[i]);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  const float inv = 1.0f / s;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

DM_CLONES void axpy(float a, const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

DM_CLONES float dot(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  float s = reduce_lanes(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void rope_adjacent(float* x, int64_t d, const float* cos, const float* sin) {
  for (int64_t i = 0; i < d / 2; ++i) {
    float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * cos[i] - b * sin[i];
    x[2 * i + 1] = a * sin[i] + b * cos[i];
  }
}

void rope_halves(float* x, int64_t d, const float* cos, const float* sin) {
  const int64_t h = d / 2;
  for (int64_t i = 0; i < h; ++i) {
    float a = x[i], b = x[i + h];
    x[i] = a * cos[i] - b * sin[i];
    x[i + h] = a * sin[i] + b * cos[i];
  }
}

}  // namespace dm
