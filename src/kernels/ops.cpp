// Element-wise ops. Sums run in 16 float lanes (lane l takes elements l, l+16, ...; the lanes are added in a fixed
// tree at the end, then the tail in order), written as 16-float vectors (vec::V16), so nothing is reordered: results
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

using vec::I16;
using vec::load16;
using vec::splat16;
using vec::store16;
using vec::V16;

// e^x in 16 lanes, within ~1 ulp of expf: x reduced by n·ln 2 in two parts (n = the nearest integer of x·log2 e,
// rounded by the 1.5·2^23 shift), a degree-7 polynomial on |r| <= ln(2)/2 (the Cephes expf coefficients) and 2^n
// from its exponent bits; above 88.38 it is +inf and below -87.34 it is 0 (expf gives subnormals there, under
// 1.2e-38), NaN stays NaN.
inline V16 exp16(const V16& x0) {
  const V16 lo = splat16(-87.33654f), hi = splat16(88.37626f), shift = splat16(12582912.0f);
  V16 x = x0 > lo ? x0 : lo;  // NaN goes to the low end here, and is put back below
  x = x < hi ? x : hi;
  const V16 n = (x * 1.44269504088896341f + shift) - shift;
  const V16 r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  V16 p = splat16(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const I16 bits = (__builtin_convertvector(n, I16) + 127) << 23;
  V16 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const V16 e = (p * r * r + r + 1.0f) * scale;
  const V16 low = x0 != x0 ? x0 : V16{};
  return x0 > hi ? splat16(std::numeric_limits<float>::infinity()) : x0 >= lo ? e : low;
}

// silu(g) · u in 16 lanes.
inline V16 silu_mul16(const V16& g, const V16& u) { return g / (1.0f + exp16(-g)) * u; }

inline float reduce16(const V16& v) {
  float a[kLanes];
  store16(a, v);
  return reduce_lanes(a);
}

}  // namespace

DM_CLONES void rms_norm(const float* x, const float* w, int64_t n, float eps, float* out) {
  V16 acc{};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const V16 v = load16(x + i);
    acc += v * v;
  }
  float ss = reduce16(acc);
  for (; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / float(n) + eps);
  for (i = 0; i + kLanes <= n; i += kLanes) store16(out + i, load16(x + i) * inv * load16(w + i));
  for (; i < n; ++i) out[i] = x[i] * inv * w[i];
}

// The tail goes through exp16 in a padded block, so a value's e^x does not depend on where it sits.
DM_CLONES void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  V16 mx = splat16(-std::numeric_limits<float>::infinity());  // the max in lanes; NaN is passed over, as fmax does
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const V16 v = load16(x + i);
    mx = v > mx ? v : mx;
  }
  float m[kLanes];
  store16(m, mx);
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) m[l] = m[l + w] > m[l] ? m[l + w] : m[l];
  for (; i < n; ++i) m[0] = x[i] > m[0] ? x[i] : m[0];
  const float top = m[0];
  V16 acc{};
  for (i = 0; i + kLanes <= n; i += kLanes) {
    const V16 e = exp16(load16(x + i) - top);
    store16(x + i, e);
    acc += e;
  }
  float s = reduce16(acc);
  if (i < n) {
    float t[kLanes] = {};
    std::memcpy(t, x + i, size_t(n - i) * sizeof(float));
    store16(t, exp16(load16(t) - top));
    for (int64_t j = i; j < n; ++j) s += x[j] = t[j - i];
  }
  const float inv = 1.0f / s;
  for (i = 0; i + kLanes <= n; i += kLanes) store16(x + i, load16(x + i) * inv);
  for (; i < n; ++i) x[i] *= inv;
}

DM_CLONES void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store16(out + i, silu_mul16(load16(gate + i), load16(up + i)));
  if (i == n) return;
  float g[kLanes] = {}, u[kLanes] = {}, o[kLanes];
  std::memcpy(g, gate + i, size_t(n - i) * sizeof(float));
  std::memcpy(u, up + i, size_t(n - i) * sizeof(float));
  store16(o, silu_mul16(load16(g), load16(u)));
  std::memcpy(out + i, o, size_t(n - i) * sizeof(float));
}

DM_CLONES void axpy(float a, const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

DM_CLONES float dot(const float* a, const float* b, int64_t n) {
  V16 acc{};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) acc += load16(a + i) * load16(b + i);
  float s = reduce16(acc);
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
