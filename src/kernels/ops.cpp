// Element-wise ops. Sums run in 16 float lanes (lane l takes elements l, l+16, ...; the lanes are added in a fixed
// tree at the end, then the tail in order), which the compiler vectorizes without reordering anything: results
// depend neither on how many tokens are in a batch (batch invariance) nor on alignment. The hot ones are compiled
// for AVX-512 and AVX2 as well, picked at load by the CPU (function multiversioning).
#include "kernels/ops.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

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

namespace {

// silu(g) · u over kLanes values. e^-g: the argument clamped to [-87.3, 88.4] (NaN goes to the low end; g itself
// carries it to the result; above the top e is +inf), reduced by n·ln 2 in two parts (n = the nearest integer of x·log2 e, rounded by the
// 1.5·2^23 shift), a degree-7 polynomial on |r| <= ln(2)/2 (the Cephes expf coefficients, ~1 ulp) and 2^n from
// its exponent bits. Straight-line code the compiler vectorizes; the tail goes through the same code in a padded
// block, so a value's result does not depend on where it sits.
inline void silu_mul_lanes(const float* gate, const float* up, float* out) {
  float res[kLanes];  // out may alias gate or up: results go out after all lanes are read
  for (int l = 0; l < kLanes; ++l) {
    const float x0 = -gate[l];
    float x = x0 > -87.33654f ? x0 : -87.33654f;
    x = x < 88.37626f ? x : 88.37626f;
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    // Past the top e^x overflows, as expf does (so silu → -0, and NaN at g = -inf); below the bottom 1 + e^x
    // is 1 either way.
    const float e = x0 > 88.37626f ? std::numeric_limits<float>::infinity() : (p * r * r + r + 1.0f) * scale;
    res[l] = gate[l] / (1.0f + e) * up[l];
  }
  std::memcpy(out, res, sizeof res);
}

}  // namespace

DM_CLONES void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) silu_mul_lanes(gate + i, up + i, out + i);
  if (i == n) return;
  float g[kLanes] = {}, u[kLanes] = {}, o[kLanes];
  std::memcpy(g, gate + i, size_t(n - i) * sizeof(float));
  std::memcpy(u, up + i, size_t(n - i) * sizeof(float));
  silu_mul_lanes(g, u, o);
  std::memcpy(out + i, o, size_t(n - i) * sizeof(float));
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
